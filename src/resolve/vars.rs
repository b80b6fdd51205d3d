//! Variables: declarations, precedence (`--var`, inventory, environment,
//! default), order independence with cycle detection, and interpolation of
//! `${name}` into segments.

use std::collections::{BTreeMap, HashMap};

use super::Context;
use super::words::Seg;
use crate::ast::{Expr, Str, StrPart, VarDecl};
use crate::diagnostic::{Code, Diagnostic, suggest};
use crate::parse::is_var_name;
use crate::plan::{Piece, Secret, Text};

/// `target.*` fields a plan may read.
pub const TARGET_FIELDS: [&str; 4] = ["database", "host", "port", "user"];

/// Names that are bound by the runner, not declared.
pub const MODULES: &str = "modules";
pub const DB: &str = "db";

enum State {
    Resolving,
    Done(Text),
    Failed,
}

/// The variables of one plan and their values, computed on demand.
pub struct Scope<'a> {
    decls: BTreeMap<&'a str, &'a VarDecl>,
    states: HashMap<String, State>,
    stack: Vec<String>,
    ctx: &'a Context,
    /// Values a live run needs but the environment does not hold.
    pub missing: Vec<String>,
}

impl<'a> Scope<'a> {
    pub fn new(decls: &[&'a VarDecl], ctx: &'a Context, diagnostics: &mut Vec<Diagnostic>) -> Self {
        let mut map: BTreeMap<&str, &VarDecl> = BTreeMap::new();
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
            if let Some(first) = map.get(name) {
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
            map.insert(name, decl);
        }
        Scope {
            decls: map,
            states: HashMap::new(),
            stack: Vec::new(),
            ctx,
            missing: Vec::new(),
        }
    }

    /// Every declared variable's value, in name order.
    pub fn all(&mut self, diagnostics: &mut Vec<Diagnostic>) -> Vec<(String, Text)> {
        let names: Vec<&str> = self.decls.keys().copied().collect();
        names
            .into_iter()
            .filter_map(|name| {
                let decl = self.decls[name];
                self.lookup(name, decl.name.span, None, diagnostics)
                    .map(|v| (name.to_string(), v))
            })
            .collect()
    }

    /// The value of `${name}` used at `span`; `modules` is the value of
    /// `${modules}` inside an `update` command.
    pub fn lookup(
        &mut self,
        name: &str,
        span: crate::source::Span,
        modules: Option<&str>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Text> {
        if let Some(value) = self
            .ctx
            .overrides
            .get(name)
            .or_else(|| self.ctx.inventory.get(name))
        {
            // A value given for a secret stays a secret.
            return Some(match self.decls.get(name).map(|d| &d.expr) {
                Some(Expr::Secret { .. }) => Text(vec![Piece::Secret(Secret::new(name, value))]),
                _ => Text::lit(value),
            });
        }
        if name == MODULES {
            if let Some(modules) = modules {
                return Some(Text::lit(modules));
            }
            diagnostics.push(
                Diagnostic::new(Code::UndefinedVariable, span, "`${modules}` is only known inside an update command")
                    .label("not bound here")
                    .help("use `${modules}` in the plan's `update_command` or in an `update` step's `run`"),
            );
            return None;
        }
        // `--var` and the inventory set declared variables (and `db`); a
        // name the plan does not declare is not a variable of this plan.
        if (self.decls.contains_key(name) || name == DB)
            && let Some(value) = self
                .ctx
                .overrides
                .get(name)
                .or_else(|| self.ctx.inventory.get(name))
        {
            // A value given for a secret stays a secret.
            return Some(match self.decls.get(name).map(|d| &d.expr) {
                Some(Expr::Secret { .. }) => Text(vec![Piece::Secret(Secret::new(name, value))]),
                _ => Text::lit(value),
            });
        }
        let Some(&decl) = self.decls.get(name) else {
            if name == DB {
                return Some(self.target("database"));
            }
            let mut d = Diagnostic::new(
                Code::UndefinedVariable,
                span,
                format!("variable `{name}` is not defined"),
            )
            .label("no such variable");
            let names = self.decls.keys().copied().chain([DB]);
            d = match suggest(name, names) {
                Some(near) => d.help(format!("did you mean `{near}`?")),
                None => d.help(format!(
                    "declare it: var {name} = \"...\"; write `$${{` for a literal `${{`"
                )),
            };
            diagnostics.push(d);
            return None;
        };
        match self.states.get(name) {
            Some(State::Done(value)) => return Some(value.clone()),
            Some(State::Failed) => return None,
            Some(State::Resolving) => {
                let start = self.stack.iter().position(|n| n == name).unwrap_or(0);
                let mut chain: Vec<String> = self.stack[start..].to_vec();
                chain.push(name.to_string());
                diagnostics.push(
                    Diagnostic::new(
                        Code::VariableCycle,
                        decl.name.span,
                        format!(
                            "variables refer to each other in a circle: {}",
                            chain.join(" -> ")
                        ),
                    )
                    .label("this variable's value depends on itself")
                    .also(span, "used here")
                    .help("give one of these variables a value that does not use the others"),
                );
                for n in &chain {
                    self.states.insert(n.clone(), State::Failed);
                }
                return None;
            }
            None => {}
        }
        self.states.insert(name.to_string(), State::Resolving);
        self.stack.push(name.to_string());
        let value = self.expr(&decl.expr, diagnostics);
        self.stack.pop();
        let state = match &value {
            Some(v) => State::Done(v.clone()),
            None => State::Failed,
        };
        // A cycle found below may already have marked this one failed.
        if !matches!(self.states.get(name), Some(State::Failed)) {
            self.states.insert(name.to_string(), state);
        } else {
            return None;
        }
        value
    }

    fn expr(&mut self, expr: &Expr, diagnostics: &mut Vec<Diagnostic>) -> Option<Text> {
        match expr {
            Expr::Str(s) => self
                .interpolate(s, None, diagnostics)
                .map(|segs| super::words::join(&segs)),
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
        match self.ctx.live.as_ref().and_then(|l| l.target.get(field)) {
            Some(value) => Text::lit(value),
            None => Text(vec![Piece::Placeholder(format!("<target.{field}>"))]),
        }
    }

    /// The segments of a string: literal text and variables' values.
    /// `None` when a variable could not be resolved (already reported).
    pub fn interpolate(
        &mut self,
        s: &Str,
        modules: Option<&str>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Vec<Seg>> {
        let mut segs = Vec::with_capacity(s.parts.len());
        let mut ok = true;
        for part in &s.parts {
            match part {
                StrPart::Lit(text) => segs.push(Seg::Lit(text.clone())),
                StrPart::Var(ident) => {
                    match self.lookup(&ident.name, ident.span, modules, diagnostics) {
                        Some(value) => segs.push(Seg::Value(value)),
                        None => ok = false,
                    }
                }
            }
        }
        ok.then_some(segs)
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
