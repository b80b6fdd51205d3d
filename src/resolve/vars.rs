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

/// `target.*` fields a plan may read.
pub const TARGET_FIELDS: [&str; 4] = ["database", "host", "port", "user"];

/// Names that are bound by the runner, not declared.
pub const MODULES: &str = "modules";
pub const DB: &str = "db";

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
    /// `target.database`, the value of `${db}` when the plan does not
    /// declare `db`.
    default_db: Option<Rc<Text>>,
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
            default_db: None,
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
        span: crate::source::Span,
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
        match &self.states[i] {
            State::Done(value) => return Some(Rc::clone(value)),
            State::Failed => return None,
            State::Resolving => {
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
                return None;
            }
            State::Unresolved => {}
        }
        let decl = self.decls[i];
        self.states[i] = State::Resolving;
        self.stack.push(i);
        let value = self.expr(&decl.expr, diagnostics).map(Rc::new);
        self.stack.pop();
        // A cycle found below may already have marked this one failed.
        if matches!(self.states[i], State::Failed) {
            return None;
        }
        self.states[i] = match &value {
            Some(v) => State::Done(Rc::clone(v)),
            None => State::Failed,
        };
        value
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
    /// (already reported). The caller's buffer is reused from string to
    /// string: most strings of a plan need it for a moment only.
    pub fn interpolate<'s>(
        &mut self,
        s: &'s Str,
        modules: Option<&Rc<Text>>,
        diagnostics: &mut Vec<Diagnostic>,
        segs: &mut Vec<Seg<'s>>,
    ) -> bool {
        segs.clear();
        let mut ok = true;
        for part in &s.parts {
            match part {
                StrPart::Lit(text) => segs.push(Seg::Lit(text)),
                StrPart::Var(ident) => {
                    match self.lookup(&ident.name, ident.span, modules, diagnostics) {
                        Some(value) => segs.push(Seg::Value(value)),
                        None => ok = false,
                    }
                }
            }
        }
        ok
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
