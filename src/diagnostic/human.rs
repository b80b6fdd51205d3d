//! Diagnostics for people: miette's graphical report, without colour when
//! asked (tests, pipes), with the file's name and `line:col` in the header.

use std::fmt;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SpanContents,
};

use super::{Diagnostic, Severity};
use crate::source::Source;

/// Lines longer than this are not quoted (a multi-megabyte line would flood
/// the terminal); the location is given in words instead.
const MAX_QUOTED_LINE: usize = 500;

/// How diagnostics are drawn.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
    pub width: usize,
}

impl Style {
    /// What tests and snapshots use: no colour, a fixed width.
    pub fn plain() -> Self {
        Style {
            color: false,
            width: 100,
        }
    }
}

/// Renders one diagnostic about `source` as text ending with a newline.
pub fn render(
    diagnostic: &Diagnostic,
    source: &Source,
    style: Style,
    deny_warnings: bool,
) -> String {
    let theme = if style.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(style.width)
        .with_links(false);
    let report = Report::new(diagnostic, source, deny_warnings);
    let mut out = String::new();
    if handler.render_report(&mut out, &report).is_err() {
        // Rendering only fails on a broken formatter; fall back to one line.
        out = format!(
            "{}: {} [{}]\n",
            report.location(),
            diagnostic.message,
            diagnostic.code
        );
    }
    out
}

struct Report<'a> {
    diagnostic: &'a Diagnostic,
    source: NamedText<'a>,
    quote: bool,
    severity: Severity,
}

impl<'a> Report<'a> {
    fn new(diagnostic: &'a Diagnostic, source: &'a Source, deny_warnings: bool) -> Self {
        let span = source.clamp(diagnostic.primary.span);
        let first = source.line_index(span.start);
        let last = source.line_index(span.end);
        let quote = (first..=last).all(|line| source.line_span(line).len() <= MAX_QUOTED_LINE);
        let severity = if deny_warnings {
            Severity::Error
        } else {
            diagnostic.severity()
        };
        Report {
            diagnostic,
            source: NamedText(source),
            quote,
            severity,
        }
    }

    fn location(&self) -> String {
        let source = self.source.0;
        format!(
            "{}:{}",
            source.name(),
            source.line_col(self.diagnostic.primary.span.start)
        )
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diagnostic, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)?;
        if !self.quote {
            write!(
                f,
                "\n  at {} (the line is too long to show)",
                self.location()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(format!(
            "{}({})",
            self.diagnostic.code,
            self.diagnostic.code.name()
        )))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.quote.then_some(&self.source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if !self.quote {
            return None;
        }
        let source = self.source.0;
        let primary = &self.diagnostic.primary;
        let labels =
            std::iter::once(LabeledSpan::new_primary_with_span(
                primary.text.clone(),
                source.clamp(primary.span),
            ))
            .chain(self.diagnostic.secondary.iter().map(|label| {
                LabeledSpan::new_with_span(label.text.clone(), source.clamp(label.span))
            }));
        Some(Box::new(labels))
    }
}

/// A source with its file name, read by miette without copying the text.
struct NamedText<'a>(&'a Source);

impl SourceCode for NamedText<'_> {
    fn read_span<'b>(
        &'b self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let source = self.0;
        let text = source.text();
        let (start, end) = (span.offset(), span.offset() + span.len());
        if end > text.len() {
            // miette's own answer (out of bounds), as before.
            return text.read_span(span, context_lines_before, context_lines_after);
        }
        // miette reads from the start of the text to the span: for each of
        // thousands of diagnostics in a large file, that was quadratic.
        // It is handed the lines around the span only, from a line start,
        // with room after it; its lines and offsets are then moved back.
        let first = source
            .line_index(start)
            .saturating_sub(context_lines_before);
        let last = source.line_index(end) + context_lines_after + 2;
        let (from, to) = (source.line_start(first), source.line_start(last + 1));
        let window = text.get(from..to).unwrap_or(text);
        let from = if window.len() == text.len() { 0 } else { from };
        let inner = miette::SourceSpan::from((start - from, span.len()));
        let contents = window.read_span(&inner, context_lines_before, context_lines_after)?;
        // The line breaks before the window, as miette counts them.
        let lines_before = source.line_index(from) + source.lone_crs_before(from);
        let lines_before = if from == 0 { 0 } else { lines_before };
        // miette counts the header's column in bytes; a partner counts
        // characters (`é` is one). Only a read without context lines gives
        // that column; with context the contents start a line (column 0).
        let column = if context_lines_before == 0 {
            source.line_col(start).column - 1
        } else {
            contents.column()
        };
        Ok(Box::new(MietteSpanContents::new_named(
            source.name(),
            contents.data(),
            (contents.span().offset() + from, contents.span().len()).into(),
            contents.line() + lines_before,
            column,
            contents.line_count() + lines_before,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Code;
    use crate::source::Span;

    #[test]
    fn spans_read_around_them_are_what_miette_reads_from_the_start() {
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!("line {i} é\r\n"));
            if i % 7 == 0 {
                text.push_str("old mac\rline\n");
            }
        }
        let source = Source::new("x.plan", text.as_str());
        let named = NamedText(&source);
        for (start, len) in [
            (0, 0),
            (0, 3),
            (50, 4),
            (120, 30),
            (300, 1),
            (text.len() - 3, 3),
        ] {
            for (before, after) in [(0, 0), (1, 1), (3, 3), (0, 2)] {
                let span = miette::SourceSpan::from((start, len));
                let ours = named.read_span(&span, before, after).expect("in bounds");
                let theirs = text
                    .as_str()
                    .read_span(&span, before, after)
                    .expect("in bounds");
                assert_eq!(ours.data(), theirs.data(), "{start}+{len} {before}/{after}");
                assert_eq!(ours.span(), theirs.span(), "{start}+{len} {before}/{after}");
                assert_eq!(ours.line(), theirs.line(), "{start}+{len} {before}/{after}");
                assert_eq!(
                    ours.line_count(),
                    theirs.line_count(),
                    "{start}+{len} {before}/{after}"
                );
                if before > 0 {
                    assert_eq!(ours.column(), theirs.column());
                }
            }
        }
        let beyond = miette::SourceSpan::from((text.len(), 5));
        assert!(named.read_span(&beyond, 1, 1).is_err());
    }

    #[test]
    fn the_header_column_counts_characters() {
        let source = Source::new("x.plan", "var é = \"ü\" x\n");
        // `x` is the 13th character and the 15th byte.
        let d = Diagnostic::new(Code::Syntax, Span::new(14, 15), "unexpected `x`");
        let out = render(&d, &source, Style::plain(), false);
        assert!(out.contains("[x.plan:1:13]"), "{out}");
    }
}
