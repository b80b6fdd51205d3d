//! Lint findings as text: for people (`human`), for scripts (`json`) and
//! for code-review tools (`sarif`). Each takes every file's report and
//! returns the whole output; none prints.

pub mod human;
pub mod json;
pub mod sarif;

use crate::source::{LineCol, Source, Span};

/// Where a span starts and ends, 1-based, in characters; the end is the
/// position just after the last character (SARIF's convention).
pub(crate) fn region(source: &Source, span: Span) -> (LineCol, LineCol) {
    let span = source.clamp(span);
    (source.line_col(span.start), source.line_col(span.end))
}
