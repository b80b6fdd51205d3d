//! Variables: declarations, precedence (`--var`, inventory, environment,
//! default), order independence with cycle detection, and interpolation of
//! `${name}` into segments.

use std::rc::Rc;

use super::Context;
use super::words::Seg;
use crate::ast::{Expr, Str, StrPart, VarDecl};
use crate::diagnostic::{Code, Diagnostic, suggest};
use crate::names::NameMap;
use crate::parse::is_var_name;
use crate::plan::{Piece, Secret, Text};
use crate::source::Span;

/// `target.*` fields a plan may read.
pub const TARGET_FIELDS: [&str; 4] = ["database", "host", "port", "user"];

/// Names that are bound by the runner, not declared.
pub const MODULES: &str = "modules";
pub const DB: &str = "db";
/// Bound while the plan block names the ERP configuration.
pub const ERP_CONFIG: &str = "erp_config";

/// The most bytes one string may hold once its variables are substituted
/// (docs/language.md): a handful of variables that each double the one
/// before would otherwise build gigabytes from a few lines.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// The most bytes the substituted strings of one plan may hold in all
/// (shared among the threads that resolve steps): a 1 MiB value used by
/// thousands of steps is as hostile as one that doubles.
pub const MAX_PLAN_BYTES: usize = 64 << 20;

enum State {
    Unresolved,
    Resolving,
    /// Shared by every use: a variable used in every step is computed once
    /// and never copied.
    Done(Rc<Text>),
    Failed,
}

/// The variables of one plan and their values, computed on demand.
pub struct Scope<'a> {
    /// The accepted declarations, in file order.
    decls: Vec<&'a VarDecl>,
    /// A declaration's index by name.
    index: NameMap<&'a str, usize>,
    /// Per declaration.
    states: Vec<State>,
    /// The declarations being computed, outermost first.
    stack: Vec<usize>,
    /// For each declaration on `stack`, the index of the next part of its
    /// string to look at for a variable it reads.
    parts: Vec<usize>,
    /// The bytes the substituted strings may still take (`MAX_PLAN_BYTES`).
    budget: usize,
    /// Whether running out of `budget` was reported.
    spent: bool,
    /// `target.database`, the value of `${db}` when the plan does not
    /// declare `db`.
    default_db: Option<Rc<Text>>,
    /// The value of `${erp_config}` once the plan block names the ERP
    /// configuration: the run's derived file, `<erp_config>` without one.
    erp_config: Option<Rc<Text>>,
    ctx: &'a Context,
    /// Values a live run needs but the environment does not hold.
    pub missing: Vec<String>,
}

impl<'a> Scope<'a> {
    pub fn new(decls: &[&'a VarDecl], ctx: &'a Context, diagnostics: &mut Vec<Diagnostic>) -> Self {
        let mut index: NameMap<&str, usize> = NameMap::default();
        let mut accepted: Vec<&VarDecl> = Vec::with_capacity(decls.len());
        for decl in decls {
            let name = decl.name.name.as_str();
            if !is_var_name(name) {
                diagnostics.push(
                    Diagnostic::new(
                        Code::BadName,
                        decl.name.span,
                        format!("`{name}` is not a valid variable name"),
                    )
                    .label("bad name")
                    .help(format!(
                        "names use lower-case letters, digits and `_`, such as `{}`",
                        fix_name(name)
                    )),
                );
            }
            if name == MODULES {
                diagnostics.push(
                    Diagnostic::new(Code::ReservedVariable, decl.name.span, "`modules` is reserved")
                        .label("cannot be declared")
                        .help("`${modules}` is bound by each `update` step to its `modules`; choose another name"),
                );
                continue;
            }
            if let Some(&first) = index.get(name) {
                let first: &VarDecl = accepted[first];
                diagnostics.push(
                    Diagnostic::new(
                        Code::DuplicateVariable,
                        decl.name.span,
                        format!("variable `{name}` is declared twice"),
                    )
                    .label("declared again here")
                    .also(first.name.span, "first declared here")
                    .help("remove one of the declarations, or rename one"),
                );
                continue;
            }
            index.insert(name, accepted.len());
            accepted.push(decl);
        }
        Scope {
            states: accepted.iter().map(|_| State::Unresolved).collect(),
            decls: accepted,
            index,
            stack: Vec::new(),
            parts: Vec::new(),
            budget: MAX_PLAN_BYTES,
            spent: false,
            default_db: None,
            erp_config: None,
            ctx,
            missing: Vec::new(),
        }
    }

    /// The declared names in name order (the order of `Plan::vars`, and
    /// of the candidates for "did you mean").
    fn sorted(&self) -> Vec<(&'a str, usize)> {
        let mut names: Vec<(&str, usize)> = self
            .decls
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.name.as_str(), i))
            .collect();
        names.sort_unstable();
        names
    }

    /// Every declared variable's value, in name order.
    pub fn all(&mut self, diagnostics: &mut Vec<Diagnostic>) -> Vec<(String, Text)> {
        self.sorted()
            .into_iter()
            .filter_map(|(name, i)| {
                let span = self.decls[i].name.span;
                self.lookup(name, span, None, diagnostics)
                    .map(|v| (name.to_string(), Rc::unwrap_or_clone(v)))
            })
            .collect()
    }

    /// Binds `${erp_config}` (the plan block names the configuration).
    pub fn bind_erp_config(&mut self) {
        let value = match self.ctx.live.as_ref().and_then(|l| l.erp_config.as_ref()) {
            Some(path) => Text::lit(path),
            None => Text(vec![Piece::Placeholder(format!("<{ERP_CONFIG}>"))]),
        };
        self.erp_config = Some(Rc::new(value));
    }

    /// A value given on the command line or by the inventory.
    fn given(&self, name: &str, value: &str) -> Rc<Text> {
        let secret = self
            .index
            .get(name)
            .is_some_and(|&i| matches!(self.decls[i].expr, Expr::Secret { .. }));
        // A value given for a secret stays a secret.
        Rc::new(if secret {
            Text(vec![Piece::Secret(Secret::new(name, value))])
        } else {
            Text::lit(value)
        })
    }

    /// The value of `${name}` used at `span`; `modules` is the value of
    /// `${modules}` inside an `update` command.
    pub fn lookup(
        &mut self,
        name: &str,
        span: Span,
        modules: Option<&Rc<Text>>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Rc<Text>> {
        // `--var` and the inventory set only what the plan declares, and
        // `db` (docs/language.md): an inventory's `modules`, or a value
        // for a name the plan uses without declaring it, must not stand
        // in for the runner's binding or for the "not defined" error.
        let settable = name == DB || self.index.contains_key(name);
        if settable
            && let Some(value) = self
                .ctx
                .overrides
                .get(name)
                .or_else(|| self.ctx.inventory.get(name))
        {
            return Some(self.given(name, value));
        }
        if name == ERP_CONFIG
            && let Some(bound) = &self.erp_config
        {
            return Some(Rc::clone(bound));
        }
        if name == MODULES {
            if let Some(modules) = modules {
                return Some(Rc::clone(modules));
            }
            diagnostics.push(
                Diagnostic::new(Code::UndefinedVariable, span, "`${modules}` is only known inside an update command")
                    .label("not bound here")
                    .help("use `${modules}` in the plan's `update_command` or in an `update` step's `run`"),
            );
            return None;
        }
        let Some(&i) = self.index.get(name) else {
            if name == DB {
                let db = self
                    .default_db
                    .get_or_insert_with(|| Rc::new(target(self.ctx, "database")));
                return Some(Rc::clone(db));
            }
            let mut d = Diagnostic::new(
                Code::UndefinedVariable,
                span,
                format!("variable `{name}` is not defined"),
            )
            .label("no such variable");
            let sorted = self.sorted();
            let names = sorted.iter().map(|(n, _)| *n).chain([DB]);
            d = match suggest(name, names) {
                Some(near) => d.help(format!("did you mean `{near}`?")),
                None => d.help(format!(
                    "declare it: var {name} = \"...\"; write `$${{` for a literal `${{`"
                )),
            };
            diagnostics.push(d);
            return None;
        };
        if matches!(self.states[i], State::Unresolved) {
            self.settle(i, diagnostics);
        }
        match &self.states[i] {
            State::Done(value) => Some(Rc::clone(value)),
            // `Resolving`: a declaration read while `settle` computes it,
            // which is only ever through a cycle already reported.
            State::Resolving | State::Failed | State::Unresolved => None,
        }
    }

    /// Computes declaration `root` and every declaration it reads, deepest
    /// first, on a stack of its own: a chain of thousands of variables each
    /// naming the next must not exhaust the thread's stack (DESIGN:
    /// resolution is bounded). When a declaration is computed, every one
    /// it reads is done or failed, so computing it never comes back here.
    fn settle(&mut self, root: usize, diagnostics: &mut Vec<Diagnostic>) {
        let depth = self.stack.len();
        self.enter(root);
        while self.stack.len() > depth {
            let top = self.stack.len() - 1;
            let (i, from) = (self.stack[top], self.parts[top]);
            match self.next_read(i, from) {
                Some((part, j, span)) => {
                    self.parts[top] = part + 1;
                    match self.states[j] {
                        State::Unresolved => self.enter(j),
                        State::Resolving => self.cycle(j, span, diagnostics),
                        State::Done(_) | State::Failed => {}
                    }
                }
                None => {
                    self.stack.pop();
                    self.parts.pop();
                    let decl = self.decls[i];
                    // Computed even when a cycle failed it, so that its
                    // other mistakes are reported too.
                    let value = self.expr(&decl.expr, diagnostics).map(Rc::new);
                    if !matches!(self.states[i], State::Failed) {
                        self.states[i] = match value {
                            Some(v) => State::Done(v),
                            None => State::Failed,
                        };
                    }
                }
            }
        }
    }

    fn enter(&mut self, i: usize) {
        self.states[i] = State::Resolving;
        self.stack.push(i);
        self.parts.push(0);
    }

    /// The first declared variable that declaration `i` reads, from part
    /// `from` of its string on: the part's index, the declaration read, and
    /// where. Only what `lookup` would compute counts: a value given by
    /// `--var` or the inventory reads nothing.
    fn next_read(&self, i: usize, from: usize) -> Option<(usize, usize, Span)> {
        let Expr::Str(s) = &self.decls[i].expr else {
            return None;
        };
        s.parts
            .iter()
            .enumerate()
            .skip(from)
            .find_map(|(n, part)| match part {
                StrPart::Var(ident) => {
                    let name = ident.name.as_str();
                    let given = self.ctx.overrides.contains_key(name)
                        || self.ctx.inventory.contains_key(name);
                    let j = *self.index.get(name)?;
                    (!given).then_some((n, j, ident.span))
                }
                StrPart::Lit(_) => None,
            })
    }

    /// Reports the cycle that reading declaration `i` at `span` closes,
    /// and fails every declaration in it.
    fn cycle(&mut self, i: usize, span: Span, diagnostics: &mut Vec<Diagnostic>) {
        let start = self.stack.iter().position(|&n| n == i).unwrap_or(0);
        let mut chain: Vec<usize> = self.stack[start..].to_vec();
        chain.push(i);
        let names: Vec<&str> = chain
            .iter()
            .map(|&n| self.decls[n].name.name.as_str())
            .collect();
        diagnostics.push(
            Diagnostic::new(
                Code::VariableCycle,
                self.decls[i].name.span,
                format!(
                    "variables refer to each other in a circle: {}",
                    names.join(" -> ")
                ),
            )
            .label("this variable's value depends on itself")
            .also(span, "used here")
            .help("give one of these variables a value that does not use the others"),
        );
        for n in chain {
            self.states[n] = State::Failed;
        }
    }

    fn expr(&mut self, expr: &Expr, diagnostics: &mut Vec<Diagnostic>) -> Option<Text> {
        match expr {
            Expr::Str(s) => {
                let mut segs = Vec::new();
                self.interpolate(s, None, diagnostics, &mut segs)
                    .then(|| super::words::join(&segs))
            }
            Expr::Number(n) => Some(Text::lit(&n.text)),
            Expr::Env { name, default, .. } => {
                let key = name.literal();
                if let Some(live) = &self.ctx.live
                    && let Some(value) = live.env.get(&key)
                {
                    return Some(Text::lit(value));
                }
                match default {
                    Some(default) => Some(Text::lit(default.literal())),
                    None if self.ctx.live.is_some() => {
                        self.missing.push(format!("environment variable {key}"));
                        Some(Text(vec![Piece::Placeholder(format!("<env.{key}>"))]))
                    }
                    None => Some(Text(vec![Piece::Placeholder(format!("<env.{key}>"))])),
                }
            }
            Expr::Secret { name, .. } => {
                let key = name.literal();
                match &self.ctx.live {
                    Some(live) => match live.env.get(&key) {
                        Some(value) => Some(Text(vec![Piece::Secret(Secret::new(&key, value))])),
                        None => {
                            self.missing
                                .push(format!("environment variable {key} (a secret)"));
                            Some(Text(vec![Piece::Secret(Secret::new(&key, ""))]))
                        }
                    },
                    None => Some(Text(vec![Piece::Secret(Secret::new(&key, ""))])),
                }
            }
            Expr::Target { field, .. } => {
                if !TARGET_FIELDS.contains(&field.name.as_str()) {
                    let mut d = Diagnostic::new(
                        Code::BadTarget,
                        field.span,
                        format!("`target.{}` is not a field of the target", field.name),
                    )
                    .label("unknown field");
                    d = match suggest(&field.name, TARGET_FIELDS) {
                        Some(near) => d.help(format!("did you mean `target.{near}`?")),
                        None => d.help("the target's fields are database, host, port and user"),
                    };
                    diagnostics.push(d);
                    return None;
                }
                Some(self.target(&field.name))
            }
        }
    }

    /// The value of `target.FIELD`.
    pub fn target(&self, field: &str) -> Text {
        target(self.ctx, field)
    }

    /// Fills `segs` with the segments of a string: literal text and
    /// variables' values. `false` when a variable could not be resolved
    /// (already reported); it then stands in `segs` as an unresolved piece,
    /// so that a step can still be built for lint. The caller's buffer is
    /// reused from string to string: most strings of a plan need it for a
    /// moment only.
    pub fn interpolate<'s>(
        &mut self,
        s: &'s Str,
        modules: Option<&Rc<Text>>,
        diagnostics: &mut Vec<Diagnostic>,
        segs: &mut Vec<Seg<'s>>,
    ) -> bool {
        segs.clear();
        let mut ok = true;
        let mut bytes = 0usize;
        for part in &s.parts {
            match part {
                StrPart::Lit(text) => {
                    bytes = bytes.saturating_add(text.len());
                    segs.push(Seg::Lit(text));
                }
                StrPart::Var(ident) => {
                    match self.lookup(&ident.name, ident.span, modules, diagnostics) {
                        Some(value) => {
                            bytes = bytes.saturating_add(value.byte_len());
                            segs.push(Seg::Value(value));
                        }
                        None => {
                            ok = false;
                            segs.push(Seg::Value(Rc::new(Text::unresolved(ident.name.as_str()))));
                        }
                    }
                }
            }
        }
        if !s.has_vars() {
            return ok;
        }
        // Checked before anything is joined: until then the values are
        // shared, so even one of gigabytes has cost nothing yet.
        let over = if bytes > MAX_VALUE_BYTES {
            Some(
                Diagnostic::new(
                    Code::BadValue,
                    s.span,
                    format!(
                        "this string grows to {bytes} bytes once its variables are substituted, past the {} MiB a value may hold",
                        MAX_VALUE_BYTES >> 20
                    ),
                )
                .label("too large")
                .help("so large a value is a mistake, such as variables that each repeat the one before; see \"How large a value may grow\" in docs/language.md"),
            )
        } else if bytes > self.budget {
            // Reported once: every string after it is over too.
            (!std::mem::replace(&mut self.spent, true)).then(|| {
                Diagnostic::new(
                    Code::BadValue,
                    s.span,
                    format!(
                        "the plan's strings grow past {} MiB in all once their variables are substituted",
                        MAX_PLAN_BYTES >> 20
                    ),
                )
                .label("the limit is reached here")
                .help("a large value used by many steps is a mistake; see \"How large a value may grow\" in docs/language.md")
            })
        } else {
            self.budget -= bytes;
            return ok;
        };
        diagnostics.extend(over);
        // What the string would be is not known: each variable in it
        // stands unresolved, and nothing is copied.
        for (seg, part) in segs.iter_mut().zip(&s.parts) {
            if let StrPart::Var(ident) = part {
                *seg = Seg::Value(Rc::new(Text::unresolved(ident.name.as_str())));
            }
        }
        false
    }
}

fn target(ctx: &Context, field: &str) -> Text {
    match ctx.live.as_ref().and_then(|l| l.target.get(field)) {
        Some(value) => Text::lit(value),
        None => Text(vec![Piece::Placeholder(format!("<target.{field}>"))]),
    }
}

/// A name that follows the naming rule, for "such as `...`" hints.
pub fn fix_name(name: &str) -> String {
    let fixed: String = name
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' | '_' => c,
            _ => '_',
        })
        .collect();
    if fixed.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{fixed}")
    } else {
        fixed
    }
}
