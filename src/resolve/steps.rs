//! Steps: kinds, names, attributes by kind, `after` against the names that
//! exist, and each kind's action.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::LazyLock;

use super::attrs::{Attrs, wrong_type};
use super::parse_duration;
use super::vars::{Scope, fix_name};
use super::words::{self, Seg, WordError};
use crate::ast::{self, Str, Value};
use crate::diagnostic::{Code, Diagnostic, suggest};
use crate::parse::is_var_name;
use crate::plan::*;
use crate::source::Span;

const COMMON: &[&str] = &[
    "after",
    "timeout",
    "retries",
    "env",
    "cwd",
    "user",
    "fail_on_output",
    "description",
];

fn own_attrs(kind: StepKind) -> &'static [&'static str] {
    match kind {
        StepKind::Backup => &["method", "database", "paths", "keep"],
        StepKind::Stop | StepKind::Start | StepKind::Script => &["run", "shell"],
        StepKind::Sql => &["sql", "file"],
        StepKind::Update => &["modules", "run"],
        StepKind::Check => &["sql", "expect", "run"],
    }
}

/// Every attribute of a kind, the common ones first (the order of "accepts:"
/// lists and of suggestions); made once, not per step.
fn allowed_attrs(kind: StepKind) -> &'static [&'static str] {
    static ALLOWED: LazyLock<Vec<(StepKind, Vec<&'static str>)>> = LazyLock::new(|| {
        StepKind::ALL
            .iter()
            .map(|&k| (k, COMMON.iter().chain(own_attrs(k)).copied().collect()))
            .collect()
    });
    ALLOWED
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(COMMON, |(_, allowed)| allowed)
}

/// "a `backup` step", written only when a message needs it.
struct StepBlock(StepKind);

impl fmt::Display for StepBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a `{}` step", self.0)
    }
}

/// Whether `key` is an attribute of some step kind.
pub fn belongs_to_step(key: &str) -> bool {
    COMMON.contains(&key) || StepKind::ALL.iter().any(|k| own_attrs(*k).contains(&key))
}

fn kinds_with(key: &str) -> Vec<&'static str> {
    StepKind::ALL
        .iter()
        .filter(|k| own_attrs(**k).contains(&key))
        .map(|k| k.as_str())
        .collect()
}

/// A string's decoded text, borrowed when it is one plain run (as almost
/// every duration is).
fn plain(s: &Str) -> std::borrow::Cow<'_, str> {
    match s.parts.as_slice() {
        [ast::StrPart::Lit(text)] => std::borrow::Cow::Borrowed(text),
        _ => std::borrow::Cow::Owned(s.literal()),
    }
}

/// The step names of one graph: in file order for suggestions, and hashed,
/// since every `after` of every step is looked up (a linear search made a
/// 5,000-step plan quadratic).
struct Names<'a> {
    in_order: Vec<&'a str>,
    set: HashSet<&'a str>,
}

impl<'a> Names<'a> {
    fn new(steps: &[&'a ast::Step]) -> Self {
        let in_order: Vec<&str> = steps.iter().map(|s| s.name.name.as_str()).collect();
        let set = in_order.iter().copied().collect();
        Names { in_order, set }
    }

    fn contains(&self, name: &str) -> bool {
        self.set.contains(name)
    }
}

pub struct StepBuilder<'s, 'a> {
    pub scope: &'s mut Scope<'a>,
    pub update_command: Option<&'a Str>,
    pub diagnostics: &'s mut Vec<Diagnostic>,
    /// `fail_on_output` patterns already compiled once: a plan repeats the
    /// same few, and compiling a regex costs more than reading a step.
    pub valid_patterns: HashSet<String>,
}

impl StepBuilder<'_, '_> {
    /// Builds the main steps and the `on_failure` steps.
    pub fn build_all(
        &mut self,
        main: &[&ast::Step],
        failure: &[&ast::Step],
    ) -> (Vec<Step>, Vec<Step>) {
        // Names are unique across the whole file.
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for step in main.iter().chain(failure) {
            let name = step.name.name.as_str();
            if !is_var_name(name) {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::BadName,
                        step.name.span,
                        format!("`{name}` is not a valid step name"),
                    )
                    .label("bad name")
                    .help(format!(
                        "names use lower-case letters, digits and `_`, such as `{}`",
                        fix_name(name)
                    )),
                );
            }
            if let Some(first) = seen.get(name) {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::DuplicateStep,
                        step.name.span,
                        format!("two steps are named `{name}`"),
                    )
                    .label("second step with this name")
                    .also(*first, "first step with this name")
                    .help("step names are unique in a file: rename one of them"),
                );
            } else {
                seen.insert(name, step.name.span);
            }
        }
        let main_names = Names::new(main);
        let failure_names = Names::new(failure);
        let main_steps = main
            .iter()
            .filter_map(|s| self.step(s, &main_names, None))
            .collect();
        let failure_steps = failure
            .iter()
            .filter_map(|s| self.step(s, &failure_names, Some(&main_names)))
            .collect();
        (main_steps, failure_steps)
    }

    /// One step; `None` when it is too broken to run (already reported).
    fn step(
        &mut self,
        step: &ast::Step,
        names: &Names<'_>,
        outside: Option<&Names<'_>>,
    ) -> Option<Step> {
        let kind_name = step.kind.name.as_str();
        let Some(kind) = StepKind::from_name(kind_name) else {
            let kinds = StepKind::ALL.map(|k| k.as_str());
            let mut d = Diagnostic::new(
                Code::UnknownKind,
                step.kind.span,
                format!("unknown step kind `{kind_name}`"),
            )
            .label("not a step kind");
            d = match suggest(&kind_name.to_lowercase(), kinds) {
                Some(near) => d.help(format!("did you mean `{near}`?")),
                None => d.help(format!("the step kinds are {}", kinds.join(", "))),
            };
            self.diagnostics.push(d);
            return None;
        };
        let attrs = Attrs::collect(
            &step.attrs,
            allowed_attrs(kind),
            &StepBlock(kind),
            |key| {
                let kinds = kinds_with(key);
                (!kinds.is_empty()).then(|| {
                    format!(
                        "`{key}` belongs to {} steps",
                        kinds
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            },
            self.diagnostics,
        );
        let name = step.name.name.clone();
        let after = self.after(&attrs, &name, names, outside);
        let d = &mut *self.diagnostics;
        let timeout = attrs.string("timeout", d).and_then(|s| {
            let text = plain(s);
            let parsed = parse_duration(&text);
            if parsed.is_none() {
                d.push(
                    Diagnostic::new(Code::BadDuration, s.span, format!("`{text}` is not a duration"))
                        .label("not a duration")
                        .help("write a number and a unit (ms, s, m, h), such as \"90s\", \"15m\", \"2h\" or \"1h30m\""),
                );
            }
            parsed
        });
        let retries = self.retries(&attrs);
        let env = self.env(&attrs);
        let cwd = self.text_attr(&attrs, "cwd");
        let user = self.text_attr(&attrs, "user");
        let description = attrs
            .string("description", self.diagnostics)
            .map(|s| s.literal());
        let mut fail_on_output = attrs.string("fail_on_output", self.diagnostics).and_then(|s| {
            let pattern = s.literal();
            if self.valid_patterns.contains(&pattern) {
                return Some(pattern);
            }
            match regex::Regex::new(&pattern) {
                Ok(_) => {
                    self.valid_patterns.insert(pattern.clone());
                    Some(pattern)
                }
                Err(error) => {
                    self.diagnostics.push(
                        Diagnostic::new(Code::BadRegex, s.span, "`fail_on_output` is not a valid regular expression")
                            .label(error.to_string().lines().last().unwrap_or("invalid").trim().to_string())
                            .help("write a regular expression (Rust regex syntax), such as \" (ERROR|CRITICAL) \""),
                    );
                    None
                }
            }
        });
        let action = self.action(kind, step, &attrs)?;
        if kind == StepKind::Update && !attrs.has("fail_on_output") {
            fail_on_output = Some(UPDATE_FAIL_ON_OUTPUT.to_string());
        }
        Some(Step {
            name,
            kind,
            after: after?,
            action,
            timeout,
            retries: retries?,
            env: env?,
            cwd: cwd?,
            user: user?,
            fail_on_output,
            description,
            span: step.span,
            name_span: step.name.span,
            kind_span: step.kind.span,
            attr_spans: attrs.spans(),
        })
    }

    fn after(
        &mut self,
        attrs: &Attrs<'_>,
        own: &str,
        names: &Names<'_>,
        outside: Option<&Names<'_>>,
    ) -> Option<Vec<After>> {
        let Some(attr) = attrs.get("after") else {
            return Some(Vec::new());
        };
        let entries: Vec<(String, Span)> = match &attr.value {
            Value::Name(i) => vec![(i.name.clone(), i.span)],
            Value::Str(s) => vec![(s.literal(), s.span)],
            Value::List(list) => {
                let mut out = Vec::new();
                for item in &list.items {
                    match item {
                        Value::Name(i) => out.push((i.name.clone(), i.span)),
                        Value::Str(s) => out.push((s.literal(), s.span)),
                        other => {
                            self.diagnostics
                                .push(wrong_type("after", "a step's name", other));
                            return None;
                        }
                    }
                }
                out
            }
            other => {
                self.diagnostics.push(wrong_type(
                    "after",
                    "a step's name or a list of names",
                    other,
                ));
                return None;
            }
        };
        let mut ok = true;
        let mut after = Vec::new();
        for (name, span) in entries {
            if name == own {
                ok = false;
                self.diagnostics.push(
                    Diagnostic::new(Code::SelfDependency, span, format!("step `{own}` waits for itself"))
                        .label("names the step it is in")
                        .help("`after` names the steps that must finish before this one; remove this name"),
                );
            } else if !names.contains(&name) {
                ok = false;
                let d = if outside.is_some_and(|o| o.contains(&name)) {
                    Diagnostic::new(
                        Code::FailureAfter,
                        span,
                        format!("`on_failure` step `{own}` waits for `{name}`, a step of the plan"),
                    )
                    .label("outside `on_failure`")
                    .help(
                        "`on_failure` steps run after a rollback and may wait only for each other",
                    )
                } else {
                    let d = Diagnostic::new(
                        Code::UnknownAfter,
                        span,
                        format!("there is no step named `{name}`"),
                    )
                    .label("unknown step");
                    match suggest(&name, names.in_order.iter().copied().filter(|n| *n != own)) {
                        Some(near) => d.help(format!("did you mean `{near}`?")),
                        None => d.help("`after` names steps of this file"),
                    }
                };
                self.diagnostics.push(d);
            }
            after.push(After { name, span });
        }
        ok.then_some(after)
    }

    fn retries(&mut self, attrs: &Attrs<'_>) -> Option<u32> {
        let Some(attr) = attrs.get("retries") else {
            return Some(0);
        };
        match &attr.value {
            Value::Number(n) => match n.text.parse::<u32>() {
                Ok(r) if r <= 100 => Some(r),
                _ => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::BadValue,
                            n.span,
                            format!(
                                "`retries` must be a whole number from 0 to 100, found `{}`",
                                n.text
                            ),
                        )
                        .label("not a retry count")
                        .help("write retries = 2 to run a failing step up to three times"),
                    );
                    None
                }
            },
            other => {
                self.diagnostics
                    .push(wrong_type("retries", "a whole number", other));
                None
            }
        }
    }

    fn env(&mut self, attrs: &Attrs<'_>) -> Option<Vec<(String, Text)>> {
        let Some(attr) = attrs.get("env") else {
            return Some(Vec::new());
        };
        let Value::Map(map) = &attr.value else {
            self.diagnostics
                .push(wrong_type("env", "a map", &attr.value));
            return None;
        };
        let mut out: Vec<(String, Text)> = Vec::new();
        let mut ok = true;
        for entry in &map.entries {
            let key = &entry.key.name;
            let valid = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                ok = false;
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::BadName,
                        entry.key.span,
                        format!("`{key}` is not an environment variable name"),
                    )
                    .label("bad name")
                    .help("environment names use letters, digits and `_`, such as PGOPTIONS"),
                );
                continue;
            }
            if let Some((_, _)) = out.iter().find(|(k, _)| k == key) {
                ok = false;
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::DuplicateAttribute,
                        entry.key.span,
                        format!("`{key}` is set twice in `env`"),
                    )
                    .label("set again here")
                    .help("keep one of the two"),
                );
                continue;
            }
            let value = match &entry.value {
                Value::Str(s) => self
                    .scope
                    .interpolate(s, None, self.diagnostics)
                    .map(|segs| words::join(&segs)),
                Value::Number(n) => Some(Text::lit(&n.text)),
                other => {
                    self.diagnostics.push(wrong_type(key, "a string", other));
                    None
                }
            };
            match value {
                Some(v) => out.push((key.clone(), v)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// An optional string attribute, interpolated into plain text.
    fn text_attr(&mut self, attrs: &Attrs<'_>, key: &str) -> Option<Option<Text>> {
        match attrs.get(key) {
            None => Some(None),
            Some(_) => {
                let s = attrs.string(key, self.diagnostics)?;
                let segs = self.scope.interpolate(s, None, self.diagnostics)?;
                Some(Some(words::join(&segs)))
            }
        }
    }

    fn argv(&mut self, s: &Str, modules: Option<&str>) -> Option<Vec<Text>> {
        let segs = self.scope.interpolate(s, modules, self.diagnostics)?;
        self.split(&segs, s.span)
    }

    fn split(&mut self, segs: &[Seg], span: Span) -> Option<Vec<Text>> {
        match words::split(segs) {
            Ok(argv) if argv.is_empty() => {
                self.diagnostics.push(
                    Diagnostic::new(Code::MissingCommand, span, "the command is empty")
                        .label("nothing to run")
                        .help("write the program and its arguments, such as \"python3 pre.py -d ${db}\""),
                );
                None
            }
            Ok(argv) => Some(argv),
            Err(WordError::UnclosedQuote(q)) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::BadValue,
                        span,
                        format!("a `{q}` in this command is never closed"),
                    )
                    .label("unbalanced quote")
                    .help(format!(
                        "close the `{q}`, or escape it with a backslash to pass it as text"
                    )),
                );
                None
            }
            Err(WordError::ShellSyntax(token)) => {
                self.diagnostics.push(
                    Diagnostic::new(Code::BadValue, span, format!("`{token}` has no meaning in `run`: the command runs without a shell"))
                        .label("shell syntax")
                        .help(format!("quote it ('{token}') to pass it as text, or use `shell = \"...\"` for pipes and redirections")),
                );
                None
            }
        }
    }

    fn command(
        &mut self,
        step: &ast::Step,
        attrs: &Attrs<'_>,
        modules: Option<&str>,
    ) -> Option<Command> {
        match (attrs.get("run"), attrs.get("shell")) {
            (Some(_), Some(shell)) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::MissingCommand,
                        shell.key.span,
                        "a step has `run` or `shell`, not both",
                    )
                    .label("second command")
                    .help("keep `run` (no shell) unless the step needs pipes or redirections"),
                );
                None
            }
            (Some(_), None) => {
                let s = attrs.string("run", self.diagnostics)?;
                self.argv(s, modules).map(Command::Argv)
            }
            (None, Some(_)) => {
                let s = attrs.string("shell", self.diagnostics)?;
                let segs = self.scope.interpolate(s, modules, self.diagnostics)?;
                Some(Command::Shell(words::join_quoted(
                    &segs,
                    words::shell_quote,
                )))
            }
            (None, None) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::MissingCommand,
                        step.name.span,
                        format!(
                            "`{}` step `{}` has nothing to run",
                            step.kind.name, step.name.name
                        ),
                    )
                    .label("no `run` or `shell`")
                    .help("add run = \"program arg...\""),
                );
                None
            }
        }
    }

    fn sql_text(&mut self, s: &Str) -> Option<Text> {
        let segs = self.scope.interpolate(s, None, self.diagnostics)?;
        Some(words::join_quoted(&segs, words::sql_quote))
    }

    fn action(&mut self, kind: StepKind, step: &ast::Step, attrs: &Attrs<'_>) -> Option<Action> {
        match kind {
            StepKind::Stop | StepKind::Start | StepKind::Script => {
                self.command(step, attrs, None).map(Action::Command)
            }
            StepKind::Backup => self.backup(attrs, step.name.span).map(Action::Backup),
            StepKind::Sql => match (attrs.get("sql"), attrs.get("file")) {
                (Some(_), Some(file)) => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::MissingCommand,
                            file.key.span,
                            "an `sql` step has `sql` or `file`, not both",
                        )
                        .label("second source of SQL")
                        .help("keep one of the two"),
                    );
                    None
                }
                (Some(_), None) => {
                    let s = attrs.string("sql", self.diagnostics)?;
                    self.sql_text(s).map(|t| Action::Sql(Sql::Inline(t)))
                }
                (None, Some(_)) => {
                    let s = attrs.string("file", self.diagnostics)?;
                    let segs = self.scope.interpolate(s, None, self.diagnostics)?;
                    Some(Action::Sql(Sql::File(words::join(&segs))))
                }
                (None, None) => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::MissingCommand,
                            step.name.span,
                            format!("`sql` step `{}` has no SQL", step.name.name),
                        )
                        .label("no `sql` or `file`")
                        .help("add sql = \"...\" or file = \"migrate/fix.sql\""),
                    );
                    None
                }
            },
            StepKind::Update => self.update(step, attrs),
            StepKind::Check => self.check(step, attrs),
        }
    }

    fn backup(&mut self, attrs: &Attrs<'_>, step_span: Span) -> Option<Backup> {
        let method = match attrs.string("method", self.diagnostics) {
            None if attrs.has("method") => return None,
            None => BackupMethod::Snapshot,
            Some(s) => match s.literal().as_str() {
                "snapshot" => BackupMethod::Snapshot,
                "dump" => BackupMethod::Dump,
                other => {
                    let mut d = Diagnostic::new(
                        Code::BadValue,
                        s.span,
                        format!("`{other}` is not a backup method"),
                    )
                    .label("unknown method");
                    d = match suggest(other, ["snapshot", "dump"]) {
                        Some(near) => d.help(format!("did you mean \"{near}\"? the methods are \"snapshot\" and \"dump\"")),
                        None => d.help("the methods are \"snapshot\" (a copy made by the server) and \"dump\" (pg_dump into the run folder)"),
                    };
                    self.diagnostics.push(d);
                    return None;
                }
            },
        };
        let database = match self.text_attr(attrs, "database")? {
            Some(db) => db,
            // A backup of the target unless it says otherwise.
            None => self.scope.lookup("db", step_span, None, self.diagnostics)?,
        };
        let paths = match attrs.get("paths") {
            None => Vec::new(),
            Some(attr) => {
                let items: Vec<&Value> = match &attr.value {
                    Value::List(list) => list.items.iter().collect(),
                    Value::Str(_) => vec![&attr.value],
                    other => {
                        self.diagnostics
                            .push(wrong_type("paths", "a list of strings", other));
                        return None;
                    }
                };
                let mut out = Vec::new();
                for item in items {
                    let Value::Str(s) = item else {
                        self.diagnostics.push(wrong_type("paths", "a string", item));
                        return None;
                    };
                    out.push(words::join(&self.scope.interpolate(
                        s,
                        None,
                        self.diagnostics,
                    )?));
                }
                out
            }
        };
        let keep = match attrs.get("keep") {
            None => true,
            Some(attr) => match &attr.value {
                Value::Bool(b, _) => *b,
                other => {
                    self.diagnostics
                        .push(wrong_type("keep", "`true` or `false`", other));
                    return None;
                }
            },
        };
        Some(Backup {
            method,
            database,
            paths,
            keep,
        })
    }

    fn update(&mut self, step: &ast::Step, attrs: &Attrs<'_>) -> Option<Action> {
        let Some(attr) = attrs.get("modules") else {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::MissingAttribute,
                    step.name.span,
                    format!(
                        "`update` step `{}` does not say which modules",
                        step.name.name
                    ),
                )
                .label("no `modules`")
                .help("add modules = \"all\", or a list such as modules = [\"sale\", \"stock\"]"),
            );
            return None;
        };
        let names: Vec<(String, Span)> = match &attr.value {
            Value::Str(s) if s.literal() == "all" => Vec::new(),
            Value::Str(s) => s
                .literal()
                .split(',')
                .map(|m| (m.trim().to_string(), s.span))
                .collect(),
            Value::List(list) => {
                let mut out = Vec::new();
                for item in &list.items {
                    match item {
                        Value::Str(s) => out.push((s.literal(), s.span)),
                        Value::Name(i) => out.push((i.name.clone(), i.span)),
                        other => {
                            self.diagnostics
                                .push(wrong_type("modules", "a module's name", other));
                            return None;
                        }
                    }
                }
                if out.is_empty() {
                    self.diagnostics.push(
                        Diagnostic::new(Code::BadValue, list.span, "the list of modules is empty")
                            .label("no module")
                            .help("name at least one module, or write modules = \"all\""),
                    );
                    return None;
                }
                out
            }
            other => {
                self.diagnostics
                    .push(wrong_type("modules", "\"all\" or a list of names", other));
                return None;
            }
        };
        for (name, span) in &names {
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::BadValue,
                        *span,
                        format!("`{name}` is not a module name"),
                    )
                    .label("not a module name")
                    .help("module names use letters, digits and `_`, such as \"sale_stock\""),
                );
                return None;
            }
        }
        let modules = if names.is_empty() {
            Modules::All
        } else {
            Modules::Named(names.into_iter().map(|(n, _)| n).collect())
        };
        let joined = modules.joined();
        let command = if attrs.has("run") || attrs.has("shell") {
            self.command(step, attrs, Some(&joined))?
        } else if let Some(template) = self.update_command {
            Command::Argv(self.argv(template, Some(&joined))?)
        } else {
            self.diagnostics.push(
                Diagnostic::new(Code::MissingCommand, step.name.span, format!("`update` step `{}` has no command", step.name.name))
                    .label("no `run`, and the plan has no `update_command`")
                    .help("set update_command = \"${new_server} -d ${db} --update=${modules} --stop-after-init\" in the `plan` block, or give the step a `run`"),
            );
            return None;
        };
        Some(Action::Update { modules, command })
    }

    fn check(&mut self, step: &ast::Step, attrs: &Attrs<'_>) -> Option<Action> {
        let name = &step.name.name;
        match (attrs.get("sql"), attrs.get("run"), attrs.get("expect")) {
            (Some(_), Some(run), _) => {
                self.diagnostics.push(
                    Diagnostic::new(Code::BadCheck, run.key.span, format!("check `{name}` has both `sql` and `run`"))
                        .label("second way of checking")
                        .help("a check is either `sql` with `expect`, or `run` (passes on exit 0): split it into two checks"),
                );
                None
            }
            (Some(_), None, Some(expect)) => {
                let sql = attrs.string("sql", self.diagnostics)?;
                let sql = self.sql_text(sql)?;
                let expect = match &expect.value {
                    Value::Str(s) => s.literal(),
                    Value::Number(n) => n.text.clone(),
                    other => {
                        self.diagnostics.push(wrong_type(
                            "expect",
                            "the expected value as a string",
                            other,
                        ));
                        return None;
                    }
                };
                Some(Action::Check(Check::Sql { sql, expect }))
            }
            (Some(sql), None, None) => {
                self.diagnostics.push(
                    Diagnostic::new(Code::BadCheck, sql.key.span, format!("check `{name}` has `sql` but no `expect`"))
                        .label("nothing to compare with")
                        .help("add expect = \"...\": the single value the query must return, as text (\"t\" for true)"),
                );
                None
            }
            (None, Some(_), expect) => {
                if let Some(expect) = expect {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::BadCheck,
                            expect.key.span,
                            "`expect` applies to `sql` checks only",
                        )
                        .label("ignored with `run`")
                        .help("a `run` check passes when the command exits 0; remove `expect`"),
                    );
                    return None;
                }
                self.command(step, attrs, None)
                    .map(|c| Action::Check(Check::Command(c)))
            }
            (None, None, _) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::BadCheck,
                        step.name.span,
                        format!("check `{name}` has neither `sql` nor `run`"),
                    )
                    .label("nothing to check")
                    .help(
                        "add sql = \"select ...\" with expect = \"...\", or run = \"program ...\"",
                    ),
                );
                None
            }
        }
    }
}
