//! Steps: kinds, names, attributes by kind, `after` against the names that
//! exist, and each kind's action.

use std::collections::hash_map::Entry;
use std::fmt::Write as _;
use std::rc::Rc;

use super::attrs::{Attrs, plain, wrong_type};
use super::parse_duration;
use super::vars::{Scope, fix_name};
use super::words::{self, Seg, WordError};
use crate::ast::{self, Str, Value};
use crate::diagnostic::{Code, Diagnostic, suggest};
use crate::names::NameMap;
use crate::parse::is_var_name;
use crate::plan::*;
use crate::source::Span;

mod actions;

const COMMON: [&str; 8] = [
    "after",
    "timeout",
    "retries",
    "env",
    "cwd",
    "user",
    "fail_on_output",
    "description",
];

const BACKUP: [&str; 4] = ["method", "database", "paths", "keep"];
const COMMAND: [&str; 2] = ["run", "shell"];
const STOP: [&str; 3] = ["run", "shell", "rehearse"];
const START: [&str; 4] = ["run", "shell", "ready", "rehearse"];
const SQL: [&str; 2] = ["sql", "file"];
const UPDATE: [&str; 4] = ["modules", "run", "install", "check_modules"];
const CHECK: [&str; 3] = ["sql", "expect", "run"];

fn own_attrs(kind: StepKind) -> &'static [&'static str] {
    match kind {
        StepKind::Backup => &BACKUP,
        StepKind::Script => &COMMAND,
        StepKind::Stop => &STOP,
        StepKind::Start => &START,
        StepKind::Sql => &SQL,
        StepKind::Update => &UPDATE,
        StepKind::Check => &CHECK,
    }
}

/// The common keys, then a kind's own: each kind's list is built once, at
/// compile time, not per step.
const fn with_common<const N: usize, const M: usize>(own: [&'static str; N]) -> [&'static str; M] {
    assert!(M == COMMON.len() + N, "M is the length of both lists");
    let mut out = [""; M];
    let mut i = 0;
    while i < COMMON.len() {
        out[i] = COMMON[i];
        i += 1;
    }
    while i < M {
        out[i] = own[i - COMMON.len()];
        i += 1;
    }
    out
}

const BACKUP_ALL: [&str; 12] = with_common(BACKUP);
const COMMAND_ALL: [&str; 10] = with_common(COMMAND);
const STOP_ALL: [&str; 11] = with_common(STOP);
const START_ALL: [&str; 12] = with_common(START);
const SQL_ALL: [&str; 10] = with_common(SQL);
const UPDATE_ALL: [&str; 12] = with_common(UPDATE);
const CHECK_ALL: [&str; 11] = with_common(CHECK);

/// Every key a step of `kind` accepts.
fn allowed(kind: StepKind) -> &'static [&'static str] {
    match kind {
        StepKind::Backup => &BACKUP_ALL,
        StepKind::Script => &COMMAND_ALL,
        StepKind::Stop => &STOP_ALL,
        StepKind::Start => &START_ALL,
        StepKind::Sql => &SQL_ALL,
        StepKind::Update => &UPDATE_ALL,
        StepKind::Check => &CHECK_ALL,
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

/// Where the steps with one name are.
#[derive(Clone, Copy)]
struct Named {
    /// The first step with this name.
    first: Span,
    in_main: bool,
    in_failure: bool,
}

/// The step names of a file, looked up once per `after` entry.
struct Names<'a> {
    map: NameMap<&'a str, Named>,
    main: Vec<&'a str>,
    failure: Vec<&'a str>,
}

pub struct StepBuilder<'s, 'a> {
    scope: &'s mut Scope<'a>,
    update_command: Option<&'a Str>,
    diagnostics: &'s mut Vec<Diagnostic>,
    /// A buffer for the segments of one string at a time.
    segs: Vec<Seg<'a>>,
    /// Each `fail_on_output` pattern already checked, with the error's
    /// label if it is not valid: compiling a regex costs more than the rest
    /// of a step, and plans repeat the same pattern.
    patterns: NameMap<&'a str, Option<String>>,
    /// Builds every text of the plan, reusing its buffers.
    texts: words::Builder,
}

impl<'s, 'a> StepBuilder<'s, 'a> {
    pub fn new(
        scope: &'s mut Scope<'a>,
        update_command: Option<&'a Str>,
        diagnostics: &'s mut Vec<Diagnostic>,
    ) -> Self {
        StepBuilder {
            scope,
            update_command,
            diagnostics,
            segs: Vec::new(),
            patterns: NameMap::default(),
            texts: words::Builder::default(),
        }
    }
    /// Builds the main steps and the `on_failure` steps.
    pub fn build_all(
        &mut self,
        main: &[&'a ast::Step],
        failure: &[&'a ast::Step],
    ) -> (Vec<Step>, Vec<Step>) {
        // Names are unique across the whole file.
        let mut names = Names {
            map: NameMap::default(),
            main: main.iter().map(|s| s.name.name.as_str()).collect(),
            failure: failure.iter().map(|s| s.name.name.as_str()).collect(),
        };
        names.map.reserve(main.len() + failure.len());
        for (n, step) in main.iter().chain(failure).enumerate() {
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
            let in_main = n < main.len();
            match names.map.entry(name) {
                Entry::Occupied(mut named) => {
                    let named = named.get_mut();
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::DuplicateStep,
                            step.name.span,
                            format!("two steps are named `{name}`"),
                        )
                        .label("second step with this name")
                        .also(named.first, "first step with this name")
                        .help("step names are unique in a file: rename one of them"),
                    );
                    named.in_main |= in_main;
                    named.in_failure |= !in_main;
                }
                Entry::Vacant(slot) => {
                    slot.insert(Named {
                        first: step.name.span,
                        in_main,
                        in_failure: !in_main,
                    });
                }
            }
        }
        let mut main_steps = Vec::with_capacity(main.len());
        main_steps.extend(main.iter().filter_map(|s| self.step(s, &names, false)));
        let mut failure_steps = Vec::with_capacity(failure.len());
        failure_steps.extend(failure.iter().filter_map(|s| self.step(s, &names, true)));
        (main_steps, failure_steps)
    }

    /// Interpolates `s` into the builder's buffer and hands the segments to
    /// `f`. A variable that could not be resolved (already reported) is an
    /// unresolved piece there: the step is still built, so that lint sees
    /// it, and the error keeps the plan from running.
    fn with_segs<R>(
        &mut self,
        s: &'a Str,
        modules: Option<&Rc<Text>>,
        f: impl FnOnce(&mut Self, &[Seg<'a>]) -> Option<R>,
    ) -> Option<R> {
        let mut segs = std::mem::take(&mut self.segs);
        self.scope
            .interpolate(s, modules, self.diagnostics, &mut segs);
        let out = f(self, &segs);
        segs.clear();
        self.segs = segs;
        out
    }

    /// `s` with its variables substituted, as one text.
    fn joined(&mut self, s: &'a Str) -> Option<Text> {
        self.with_segs(s, None, |this, segs| Some(this.texts.join(segs)))
    }

    /// One step; `None` when it is too broken to run (already reported).
    fn step(&mut self, step: &'a ast::Step, names: &Names<'_>, failure: bool) -> Option<Step> {
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
            allowed(kind),
            || format!("a `{kind}` step"),
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
        let name = step.name.name.as_str();
        let after = self.after(&attrs, name, names, failure);
        let d = &mut *self.diagnostics;
        let timeout = attrs.literal("timeout", d).and_then(|s| {
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
        let description = match attrs.string("description", self.diagnostics) {
            // The redacted text, written straight into one string.
            Some(s) => Some(self.with_segs(s, None, |_, segs| {
                let mut out = String::new();
                for seg in segs {
                    match seg {
                        Seg::Lit(text) => out.push_str(text),
                        Seg::Value(value) => {
                            let _ = write!(out, "{value}");
                        }
                    }
                }
                Some(out)
            })?),
            None => None,
        };
        let mut fail_on_output = attrs
            .literal("fail_on_output", self.diagnostics)
            .and_then(|s| self.pattern(s));
        let ready = self.ready(&attrs);
        let rehearse = self.rehearse(&attrs);
        let action = self.action(kind, step, &attrs)?;
        if kind == StepKind::Update && !attrs.has("fail_on_output") {
            fail_on_output = Some(UPDATE_FAIL_ON_OUTPUT.to_string());
        }
        Some(Step {
            name: name.to_string(),
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
            ready: ready?,
            rehearse: rehearse?,
            span: step.span,
            name_span: step.name.span,
            kind_span: step.kind.span,
            attr_spans: attrs.spans(),
        })
    }

    /// `fail_on_output`, checked once per distinct pattern.
    fn pattern(&mut self, s: &'a Str) -> Option<String> {
        let pattern = plain(s);
        let error = match self.patterns.get(pattern.as_ref()) {
            Some(error) => error.clone(),
            None => {
                let error = regex::Regex::new(&pattern).err().map(|error| {
                    error
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("invalid")
                        .trim()
                        .trim_start_matches("error: ")
                        .to_string()
                });
                // Only a borrowed pattern can be a key; the rare pattern
                // with escapes is checked each time.
                if let std::borrow::Cow::Borrowed(key) = pattern {
                    self.patterns.insert(key, error.clone());
                }
                error
            }
        };
        match error {
            None => Some(pattern.into_owned()),
            Some(label) => {
                self.diagnostics.push(
                    Diagnostic::new(Code::BadRegex, s.span, "`fail_on_output` is not a valid regular expression")
                        .label(label)
                        .help("write a regular expression (Rust regex syntax), such as \" (ERROR|CRITICAL) \""),
                );
                None
            }
        }
    }

    fn after(
        &mut self,
        attrs: &Attrs<'a>,
        own: &str,
        names: &Names<'_>,
        failure: bool,
    ) -> Option<Vec<After>> {
        let Some(attr) = attrs.get("after") else {
            return Some(Vec::new());
        };
        let items = match &attr.value {
            Value::List(list) => list.items.as_slice(),
            Value::Name(_) | Value::Str(_) => std::slice::from_ref(&attr.value),
            other => {
                self.diagnostics.push(wrong_type(
                    "after",
                    "a step's name or a list of names",
                    other,
                ));
                return None;
            }
        };
        // An entry of the wrong type is the only thing reported then.
        if let Some(other) = items
            .iter()
            .find(|item| !matches!(item, Value::Name(_) | Value::Str(_)))
        {
            self.diagnostics
                .push(wrong_type("after", "a step's name", other));
            return None;
        }
        let mut ok = true;
        let mut after = Vec::with_capacity(items.len());
        for item in items {
            let (name, span) = match item {
                Value::Name(i) => (i.name.clone(), i.span),
                Value::Str(s) => (s.literal(), s.span),
                _ => continue,
            };
            if name == own {
                ok = false;
                self.diagnostics.push(
                    Diagnostic::new(Code::SelfDependency, span, format!("step `{own}` waits for itself"))
                        .label("names the step it is in")
                        .help("`after` names the steps that must finish before this one; remove this name"),
                );
            } else if !names
                .map
                .get(name.as_str())
                .is_some_and(|n| if failure { n.in_failure } else { n.in_main })
            {
                ok = false;
                let in_main = names.map.get(name.as_str()).is_some_and(|n| n.in_main);
                let d = if failure && in_main {
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
                    let candidates = if failure { &names.failure } else { &names.main };
                    match suggest(&name, candidates.iter().copied().filter(|n| *n != own)) {
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

    fn retries(&mut self, attrs: &Attrs<'a>) -> Option<u32> {
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

    fn env(&mut self, attrs: &Attrs<'a>) -> Option<Vec<(String, Text)>> {
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
                Value::Str(s) => self.joined(s),
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
    fn text_attr(&mut self, attrs: &Attrs<'a>, key: &str) -> Option<Option<Text>> {
        match attrs.get(key) {
            None => Some(None),
            Some(_) => {
                let s = attrs.string(key, self.diagnostics)?;
                self.joined(s).map(Some)
            }
        }
    }
}
