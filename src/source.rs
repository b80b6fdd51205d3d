//! A plan's source text and positions in it: byte spans, 1-based line and
//! column (counted in characters), and the glue that lets miette show them.
//! It knows nothing of the language.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

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

/// The UTF-8 byte order mark some Windows editors start a file with.
pub const BOM: char = '\u{FEFF}';

/// A plan file as read: its path (as the user gave it) and its text.
#[derive(Clone, Debug)]
pub struct Source {
    path: PathBuf,
    /// Without a byte order mark: spans count from the first character a
    /// person sees, as editors do.
    text: Arc<str>,
    /// Whether the file started with a byte order mark (`plan fmt` keeps
    /// it).
    bom: bool,
    line_starts: Arc<[usize]>,
    /// Built when a position is first shown, not when a file is parsed:
    /// most files never have a diagnostic.
    shown: Arc<OnceLock<Shown>>,
}

/// What turns a byte offset into what a person sees in constant time, so
/// that showing thousands of diagnostics in one long line is not quadratic.
#[derive(Debug, Default)]
struct Shown {
    /// Where each character of more than one byte starts, and how many
    /// bytes beyond one the characters up to and including it have.
    multibyte: Vec<(usize, usize)>,
    /// Where each `\r` not followed by `\n` is: miette counts it as a line
    /// break, and our lines do not.
    lone_cr: Vec<usize>,
}

impl Shown {
    fn of(text: &str) -> Shown {
        let mut shown = Shown::default();
        let bytes = text.as_bytes();
        if !text.is_ascii() {
            let mut extra = 0;
            for (at, &b) in bytes.iter().enumerate() {
                let more = match b {
                    0xC0..=0xDF => 1,
                    0xE0..=0xEF => 2,
                    0xF0..=0xFF => 3,
                    _ => continue,
                };
                extra += more;
                shown.multibyte.push((at, extra));
            }
        }
        shown.lone_cr = memchr::memchr_iter(b'\r', bytes)
            .filter(|&at| bytes.get(at + 1) != Some(&b'\n'))
            .collect();
        shown
    }

    /// The bytes beyond one of the characters that start before `offset`.
    fn extra_before(&self, offset: usize) -> usize {
        match self.multibyte.partition_point(|&(at, _)| at < offset) {
            0 => 0,
            n => self.multibyte[n - 1].1,
        }
    }
}

impl Source {
    /// A source from its text; a leading byte order mark is dropped (and
    /// remembered).
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let (text, bom) = match text.strip_prefix(BOM) {
            Some(rest) => (Arc::from(rest), true),
            None => (text, false),
        };
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect::<Vec<_>>()
            .into();
        Source {
            path: path.into(),
            text,
            bom,
            line_starts,
            shown: Arc::default(),
        }
    }

    fn shown(&self) -> &Shown {
        self.shown.get_or_init(|| Shown::of(&self.text))
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

    /// Whether the file started with a byte order mark, dropped from
    /// `text`.
    pub fn had_bom(&self) -> bool {
        self.bom
    }

    /// The same source, marked as read from a file that had a byte order
    /// mark (dropped before its bytes were decoded).
    pub fn with_bom(mut self) -> Self {
        self.bom = true;
        self
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
        let shown = self.shown();
        let chars = (offset - start) - (shown.extra_before(offset) - shown.extra_before(start));
        LineCol {
            line: line + 1,
            column: chars + 1,
        }
    }

    /// Where line `index` (0-based) starts; the end of the text past the
    /// last line.
    pub fn line_start(&self, index: usize) -> usize {
        self.line_starts
            .get(index)
            .copied()
            .unwrap_or(self.text.len())
    }

    /// How many `\r` not followed by `\n` come before `offset`.
    pub fn lone_crs_before(&self, offset: usize) -> usize {
        self.shown().lone_cr.partition_point(|&at| at < offset)
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
    fn columns_are_counted_from_an_index_that_agrees_with_chars() {
        let text = "aé\u{1F600}b\nxü€\r\nz\ry";
        let source = Source::new("x.plan", text);
        for (offset, _) in text.char_indices() {
            let start = text[..offset].rfind('\n').map_or(0, |n| n + 1);
            assert_eq!(
                source.line_col(offset).column,
                text[start..offset].chars().count() + 1,
                "at {offset}"
            );
        }
        assert_eq!(source.lone_crs_before(text.len()), 1);
        assert_eq!(source.lone_crs_before(text.len() - 2), 0);
    }

    #[test]
    fn a_byte_order_mark_is_dropped_and_remembered() {
        let source = Source::new("x.plan", "\u{FEFF}plan\nx");
        assert_eq!(source.text(), "plan\nx");
        assert!(source.had_bom());
        assert_eq!(source.line_col(0), LineCol { line: 1, column: 1 });
        assert!(!Source::new("x.plan", "plan \u{FEFF}").had_bom());
    }

    #[test]
    fn line_span_excludes_the_newline() {
        let source = Source::new("x.plan", "ab\ncd\n");
        assert_eq!(source.slice(source.line_span(1)), "cd");
        assert_eq!(source.slice(source.line_span(2)), "");
    }
}
