//! The spanned syntax tree of one plan file, as written: names unchecked
//! against each other, variables not substituted, comments kept (for `fmt`
//! and `# lint: allow`). Produced by `parse`, read by `resolve`, `fmt` and
//! `lint`. Spans are skipped when serialized, so two trees can be compared
//! for shape alone.

use serde::Serialize;

use crate::source::Span;

/// A whole file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct File {
    pub items: Vec<Item>,
    /// Every comment in the file, in order.
    pub comments: Vec<Comment>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Comment {
    /// The comment's text, `#` included, trailing spaces removed.
    pub text: String,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub enum Item {
    Plan(PlanBlock),
    Var(VarDecl),
    Step(Step),
    OnFailure(OnFailure),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Plan(p) => p.span,
            Item::Var(v) => v.span,
            Item::Step(s) => s.span,
            Item::OnFailure(o) => o.span,
        }
    }
}

/// A name as written, with where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ident {
    pub name: String,
    #[serde(skip)]
    pub span: Span,
}

/// `plan "NAME" { ... }`
#[derive(Clone, Debug, Serialize)]
pub struct PlanBlock {
    pub name: Str,
    pub attrs: Vec<Attr>,
    #[serde(skip)]
    pub keyword: Span,
    /// From `{` to `}` inclusive.
    #[serde(skip)]
    pub body: Span,
    #[serde(skip)]
    pub span: Span,
}

/// `var NAME = EXPR`
#[derive(Clone, Debug, Serialize)]
pub struct VarDecl {
    pub name: Ident,
    pub expr: Expr,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub enum Expr {
    Str(Str),
    Number(Number),
    Env {
        name: Str,
        default: Option<Str>,
        #[serde(skip)]
        span: Span,
    },
    Secret {
        name: Str,
        #[serde(skip)]
        span: Span,
    },
    Target {
        field: Ident,
        #[serde(skip)]
        span: Span,
    },
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Str(s) => s.span,
            Expr::Number(n) => n.span,
            Expr::Env { span, .. } | Expr::Secret { span, .. } | Expr::Target { span, .. } => *span,
        }
    }
}

/// `KIND NAME { ... }`
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub kind: Ident,
    pub name: Ident,
    pub attrs: Vec<Attr>,
    #[serde(skip)]
    pub body: Span,
    #[serde(skip)]
    pub span: Span,
}

impl Step {
    pub fn attr(&self, key: &str) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.key.name == key)
    }
}

/// `on_failure { ... }`
#[derive(Clone, Debug, Serialize)]
pub struct OnFailure {
    pub steps: Vec<Step>,
    #[serde(skip)]
    pub keyword: Span,
    #[serde(skip)]
    pub body: Span,
    #[serde(skip)]
    pub span: Span,
}

/// `KEY = VALUE`
#[derive(Clone, Debug, Serialize)]
pub struct Attr {
    pub key: Ident,
    pub value: Value,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub enum Value {
    Str(Str),
    Number(Number),
    Bool(bool, #[serde(skip)] Span),
    Name(Ident),
    List(List),
    Map(Map),
}

impl Value {
    pub fn span(&self) -> Span {
        match self {
            Value::Str(s) => s.span,
            Value::Number(n) => n.span,
            Value::Bool(_, span) => *span,
            Value::Name(i) => i.span,
            Value::List(l) => l.span,
            Value::Map(m) => m.span,
        }
    }

    /// How the value is described in "expected a string, found a list".
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(..) => "`true` or `false`",
            Value::Name(_) => "a name",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Number {
    pub text: String,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct List {
    pub items: Vec<Value>,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Map {
    pub entries: Vec<MapEntry>,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct MapEntry {
    /// A bare word or a quoted string, as written.
    pub key: Ident,
    /// Whether the key was quoted (fmt keeps it so).
    pub quoted: bool,
    pub value: Value,
    #[serde(skip)]
    pub span: Span,
}

/// A string literal: its source text and its decoded parts.
#[derive(Clone, Debug, Serialize)]
pub struct Str {
    /// Exactly as written, quotes included (fmt prints it back unchanged).
    pub raw: String,
    pub parts: Vec<StrPart>,
    #[serde(skip)]
    pub span: Span,
}

impl Str {
    /// The text with escapes decoded and `${name}` kept as written; for
    /// places where interpolation does not apply (a variable's name in
    /// `env("NAME")`).
    pub fn literal(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                StrPart::Lit(text) => out.push_str(text),
                StrPart::Var(ident) => {
                    out.push_str("${");
                    out.push_str(&ident.name);
                    out.push('}');
                }
            }
        }
        out
    }

    pub fn has_vars(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, StrPart::Var(_)))
    }
}

#[derive(Clone, Debug, Serialize)]
pub enum StrPart {
    /// Decoded text (escapes and `$${` already turned into what they mean).
    Lit(String),
    /// `${name}`; the span covers the name.
    Var(Ident),
}
