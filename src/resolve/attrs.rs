//! The attributes of one block: unknown and duplicate keys reported once,
//! then typed access that reports a value of the wrong type.

use std::borrow::Cow;

use crate::ast::{Attr, Str, StrPart, Value};
use crate::diagnostic::{Code, Diagnostic, suggest};
use crate::source::Span;

/// More than any block accepts (a step: 8 common + 4 of its kind).
const MAX: usize = 16;

/// A block's attributes, each at the position of its key in the block's
/// list of allowed keys: no map is built per block.
pub struct Attrs<'a> {
    allowed: &'static [&'static str],
    found: [Option<&'a Attr>; MAX],
}

impl<'a> Attrs<'a> {
    /// `block` names the block in messages ("a `backup` step"), built only
    /// when there is a message; `elsewhere` says where a key that is not
    /// allowed here does belong, if anywhere.
    pub fn collect(
        attrs: &'a [Attr],
        allowed: &'static [&'static str],
        block: impl Fn() -> String,
        elsewhere: impl Fn(&str) -> Option<String>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Self {
        assert!(allowed.len() <= MAX, "a block accepts at most {MAX} keys");
        let mut found = [None; MAX];
        for attr in attrs {
            let key = attr.key.name.as_str();
            let Some(at) = allowed.iter().position(|a| *a == key) else {
                let block = block();
                let mut d = Diagnostic::new(
                    Code::UnknownAttribute,
                    attr.key.span,
                    format!("{block} has no attribute `{key}`"),
                )
                .label("unknown attribute");
                let normalized = key.replace('-', "_").to_lowercase();
                let near = if allowed.contains(&normalized.as_str()) {
                    allowed.iter().copied().find(|a| *a == normalized)
                } else {
                    suggest(key, allowed.iter().copied())
                };
                d = match (near, elsewhere(key)) {
                    (Some(near), _) => d.help(format!("did you mean `{near}`?")),
                    (None, Some(there)) => d.help(there),
                    (None, None) => d.help(format!("{block} accepts: {}", allowed.join(", "))),
                };
                diagnostics.push(d);
                continue;
            };
            if let Some(first) = found[at] {
                let first: &Attr = first;
                diagnostics.push(
                    Diagnostic::new(
                        Code::DuplicateAttribute,
                        attr.key.span,
                        format!("`{key}` is set twice"),
                    )
                    .label("set again here")
                    .also(first.key.span, "first set here")
                    .help("keep one of the two"),
                );
                continue;
            }
            found[at] = Some(attr);
        }
        Attrs { allowed, found }
    }

    pub fn get(&self, key: &str) -> Option<&'a Attr> {
        let at = self.allowed.iter().position(|a| *a == key)?;
        self.found[at]
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The value of `key` if it is a string; a diagnostic if it is not.
    pub fn string(&self, key: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<&'a Str> {
        let attr = self.get(key)?;
        match &attr.value {
            Value::Str(s) => Some(s),
            other => {
                diagnostics.push(wrong_type(key, "a string", other));
                None
            }
        }
    }

    /// As `string`, for attributes whose value is taken as written: a
    /// `${name}` there would not be substituted, so it is an error.
    pub fn literal(&self, key: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<&'a Str> {
        let s = self.string(key, diagnostics)?;
        if let Some(var) = s.parts.iter().find_map(|p| match p {
            StrPart::Var(ident) => Some(ident),
            _ => None,
        }) {
            diagnostics.push(
                Diagnostic::new(
                    Code::BadValue,
                    var.span,
                    format!("variables are not substituted in `{key}`"),
                )
                .label("taken as written")
                .help(format!(
                    "write the value of `{key}` itself; write `$${{` for a literal `${{`"
                )),
            );
            return None;
        }
        Some(s)
    }

    /// Each attribute's span, by key.
    pub fn spans(&self) -> Vec<(&'static str, Span)> {
        let mut spans = Vec::with_capacity(self.found.iter().flatten().count());
        spans.extend(
            self.allowed
                .iter()
                .zip(&self.found)
                .filter_map(|(key, attr)| attr.map(|a| (*key, a.span))),
        );
        spans
    }
}

pub fn wrong_type(key: &str, expected: &str, found: &Value) -> Diagnostic {
    Diagnostic::new(
        Code::BadValue,
        found.span(),
        format!("`{key}` expects {expected}, found {}", found.describe()),
    )
    .label(format!("expected {expected}"))
    .help(match key {
        "timeout" => "write a duration as a string, such as \"90s\", \"15m\" or \"2h\"".to_string(),
        "from" | "to" => "write the release as a string, such as \"6.0.0\"".to_string(),
        "after" => "write a step's name, or a list of names: after = [a, b]".to_string(),
        "paths" => "write a list of strings: paths = [\"/var/lib/erp/filestore\"]".to_string(),
        "env" => "write a map: env = { KEY = \"value\" }".to_string(),
        "keep" => "write keep = true or keep = false".to_string(),
        "retries" => "write a whole number, such as retries = 2".to_string(),
        _ => format!("write `{key} = \"...\"`"),
    })
}

/// The decoded text of a string taken as written, borrowed when it is one
/// piece (most are): the common case allocates nothing.
pub fn plain(s: &Str) -> Cow<'_, str> {
    match s.parts.as_slice() {
        [] => Cow::Borrowed(""),
        [StrPart::Lit(text)] => Cow::Borrowed(text),
        _ => Cow::Owned(s.literal()),
    }
}
