//! The attributes of one block: unknown and duplicate keys reported once,
//! then typed access that reports a value of the wrong type.

use crate::ast::{Attr, Str, Value};
use crate::diagnostic::{Code, Diagnostic, suggest};

/// A block has a dozen attributes at most: a list searched in place costs
/// less than a map built per step.
pub struct Attrs<'a> {
    list: Vec<(&'a str, &'a Attr)>,
}

impl<'a> Attrs<'a> {
    /// `block` names the block in messages ("a `backup` step"); `elsewhere`
    /// says where a key that is not allowed here does belong, if anywhere.
    pub fn collect(
        attrs: &'a [Attr],
        allowed: &[&'static str],
        block: &dyn std::fmt::Display,
        elsewhere: impl Fn(&str) -> Option<String>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Self {
        let mut list: Vec<(&str, &Attr)> = Vec::with_capacity(attrs.len());
        for attr in attrs {
            let key = attr.key.name.as_str();
            if !allowed.contains(&key) {
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
            }
            if let Some((_, first)) = list.iter().find(|(k, _)| *k == key) {
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
            list.push((key, attr));
        }
        Attrs { list }
    }

    pub fn get(&self, key: &str) -> Option<&'a Attr> {
        self.list.iter().find(|(k, _)| *k == key).map(|(_, a)| *a)
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

    /// Each attribute's span, in key order.
    pub fn spans(&self) -> Vec<(String, crate::source::Span)> {
        let mut spans: Vec<_> = self
            .list
            .iter()
            .map(|(k, a)| (k.to_string(), a.span))
            .collect();
        spans.sort_unstable_by(|a, b| a.0.cmp(&b.0));
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
