//! A refresh plan's part of the `plan` block: `refresh = true` (the same
//! release updated after new code was deployed, so `from` equals `to`) and
//! `revision` (what the history records of that code, such as a git
//! commit of the addons).

use super::attrs::{Attrs, wrong_type};
use super::vars::Scope;
use super::words;
use crate::ast::{self, Value};
use crate::diagnostic::Diagnostic;
use crate::plan::Text;

/// Whether the block declares `refresh = true`.
pub fn declared(block: &ast::PlanBlock) -> bool {
    block
        .attrs
        .iter()
        .any(|a| a.key.name == "refresh" && matches!(a.value, Value::Bool(true, _)))
}

/// `refresh` and `revision`, each checked; the block's other keys are
/// checked by `plan_header`.
pub fn read(
    block: &ast::PlanBlock,
    keys: &'static [&'static str],
    scope: &mut Scope<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> (bool, Option<Text>) {
    let attrs = Attrs::collect(
        &block.attrs,
        keys,
        || "the `plan` block".to_string(),
        |_| None,
        &mut Vec::new(),
    );
    let refresh = match attrs.get("refresh") {
        None => false,
        Some(attr) => match &attr.value {
            Value::Bool(b, _) => *b,
            other => {
                diagnostics.push(wrong_type("refresh", "`true` or `false`", other));
                false
            }
        },
    };
    let revision = attrs.string("revision", diagnostics).and_then(|s| {
        let mut segs = Vec::new();
        scope
            .interpolate(s, None, diagnostics, &mut segs)
            .then(|| words::join(&segs))
    });
    (refresh, revision)
}
