//! A plan's source text and positions in it: byte spans, 1-based line and
//! column (counted in characters), and the glue that lets miette show them.
//! It knows nothing of the language.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// Moves the span by `offset` bytes (spans of a block parsed on its own).
    pub fn shifted(self, offset: usize) -> Span {
        Span::new(self.start + offset, self.end + offset)
    }
}

impl From<pest::Span<'_>> for Span {
    fn from(span: pest::Span<'_>) -> Self {
        Span::new(span.start(), span.end())
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        (span.start, span.len()).into()
    }
}

/// A 1-based line and column; the column counts Unicode scalar values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for LineCol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A plan file as read: its path (as the user gave it) and its text.
#[derive(Clone, Debug)]
pub struct Source {
    path: PathBuf,
    text: Arc<str>,
    line_starts: Arc<[usize]>,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect::<Vec<_>>()
            .into();
        Source {
            path: path.into(),
            text,
            line_starts,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as shown to the user.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The folder relative paths in the plan are resolved against.
    pub fn folder(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Clamps a span to the text and to character boundaries, so a span
    /// computed from a damaged input can always be shown.
    pub fn clamp(&self, span: Span) -> Span {
        let len = self.text.len();
        let mut start = span.start.min(len);
        while !self.text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = span.end.clamp(start, len);
        while !self.text.is_char_boundary(end) {
            end += 1;
        }
        Span::new(start, end)
    }

    /// The 1-based line and character column of a byte offset.
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = self.clamp(Span::new(offset, offset)).start;
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        LineCol {
            line: line + 1,
            column: self.text[start..offset].chars().count() + 1,
        }
    }

    /// The 0-based index of the line holding `offset`.
    pub fn line_index(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset) - 1
    }

    /// The byte range of line `index` (0-based), without its newline.
    pub fn line_span(&self, index: usize) -> Span {
        let start = self
            .line_starts
            .get(index)
            .copied()
            .unwrap_or(self.text.len());
        let end = self
            .line_starts
            .get(index + 1)
            .map(|next| next - 1)
            .unwrap_or(self.text.len());
        Span::new(start, end.max(start))
    }

    pub fn slice(&self, span: Span) -> &str {
        let span = self.clamp(span);
        &self.text[span.start..span.end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_not_bytes() {
        let source = Source::new("x.plan", "var é = \"ü\"\nplan");
        assert_eq!(source.line_col(0), LineCol { line: 1, column: 1 });
        // `=` is the 7th character but the 8th byte.
        assert_eq!(source.line_col(7), LineCol { line: 1, column: 7 });
        assert_eq!(source.line_col(14), LineCol { line: 2, column: 1 });
    }

    #[test]
    fn clamp_keeps_spans_inside_the_text_and_on_char_boundaries() {
        let source = Source::new("x.plan", "é");
        assert_eq!(source.clamp(Span::new(1, 99)), Span::new(0, 2));
        assert_eq!(source.line_col(99), LineCol { line: 1, column: 2 });
    }

    #[test]
    fn line_span_excludes_the_newline() {
        let source = Source::new("x.plan", "ab\ncd\n");
        assert_eq!(source.slice(source.line_span(1)), "cd");
        assert_eq!(source.slice(source.line_span(2)), "");
    }
}
