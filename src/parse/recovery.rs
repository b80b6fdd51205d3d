//! What `parse` does with a file that does not parse: every top-level
//! block is read on its own, so that one mistake does not hide the next
//! block's, and the blocks that are fine still reach resolve and lint. The
//! blocks are found by a lexical scan that pest cannot give: where
//! top-level blocks start, where a string is left open, and which `{` is
//! never closed. It looks only at quotes, comments and braces.

use std::ops::Range;

use pest::Parser as _;

use super::{Grammar, Parsed, Rule, errors, tree};
use crate::ast::{File, Item, OnFailure};
use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

/// Parses each top-level block on its own and reports each one's error.
pub fn recover(text: &str, parsed: &mut Parsed) {
    let scan = scan(text);
    for block in blocks(&scan, text.len()) {
        let chunk = &text[block.start..block.end];
        // A chunk is parsed as a whole file: when the scan missed a
        // block's start, the chunk holds two blocks, and pest then points
        // at the real mistake instead of "expected the end of the file".
        match Grammar::parse(Rule::file, chunk) {
            Ok(pairs) => {
                let mut builder = tree::Builder {
                    offset: block.start,
                    diagnostics: &mut parsed.diagnostics,
                };
                builder.items(pairs, &mut parsed.file);
            }
            Err(error) => {
                let block = block.start..block.end;
                if !recover_on_failure(text, block.clone(), &error, parsed) {
                    keep_leading_items(text, block.clone(), parsed);
                    parsed.diagnostics.push(block_error(&error, text, block));
                }
            }
        }
    }
    parsed.file.comments.sort_by_key(|c| c.span.start);
}

/// Reads an `on_failure` block that does not parse a step at a time, each
/// from its header to the next (the last one with the block's `}`): every
/// broken step is reported, and the others are kept in the block, so that
/// one mistake does not make the block look empty to lint. `false` when
/// `text[block]` is not such a block, or its steps cannot be told apart.
fn recover_on_failure(
    text: &str,
    block: Range<usize>,
    error: &pest::error::Error<Rule>,
    parsed: &mut Parsed,
) -> bool {
    let chunk = &text[block.clone()];
    if header_at(chunk) != Some(Header::OnFailure) {
        return false;
    }
    // `header_at` saw it on the block's first line.
    let Some(open) = chunk.find('{') else {
        return false;
    };
    let starts = scan(chunk).inner_steps;
    if starts.is_empty() {
        return false;
    }
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(chunk.len());
        let piece = block.start + start..block.start + end;
        let mut builder = tree::Builder {
            offset: piece.start,
            diagnostics: &mut parsed.diagnostics,
        };
        match Grammar::parse(Rule::failure_step, &text[piece.clone()]) {
            Ok(pairs) => builder.steps(pairs, &mut steps, &mut parsed.file.comments),
            Err(error) => {
                if let Ok(pairs) = Grammar::parse(Rule::leading_items, &text[piece.clone()]) {
                    let mut kept = File::default();
                    builder.items(pairs, &mut kept);
                    parsed.file.comments.extend(kept.comments);
                    steps.extend(kept.items.into_iter().filter_map(|item| match item {
                        Item::Step(step) => Some(step),
                        _ => None,
                    }));
                }
                errors.push(block_error(&error, text, piece));
            }
        }
    }
    // Every step reads well: the mistake is elsewhere in the block.
    if errors.is_empty() {
        errors.push(block_error(error, text, block.clone()));
    }
    parsed.diagnostics.extend(errors);
    let end = block.start + errors::content_len(chunk);
    parsed.file.items.push(Item::OnFailure(OnFailure {
        steps,
        keyword: Span::new(block.start, block.start + "on_failure".len()),
        body: Span::new(block.start + open, end),
        span: Span::new(block.start, end),
    }));
    true
}

/// Adds to the AST the whole blocks that start `text[block]`, a part of the
/// file that does not parse: when the scan did not see where a block ends
/// (a stray line after it, or the next block indented), the mistake lies
/// after a block that is fine, and the block is kept for the later stages.
fn keep_leading_items(text: &str, block: Range<usize>, parsed: &mut Parsed) {
    // `leading_items` cannot fail but for pest's call limit, and then there
    // is nothing to keep.
    if let Ok(pairs) = Grammar::parse(Rule::leading_items, &text[block.clone()]) {
        let mut builder = tree::Builder {
            offset: block.start,
            diagnostics: &mut parsed.diagnostics,
        };
        builder.items(pairs, &mut parsed.file);
    }
}

/// The most useful diagnostic for a block that does not parse: an open
/// string or an unclosed brace says more than "expected `}`".
fn block_error(error: &pest::error::Error<Rule>, text: &str, block: Range<usize>) -> Diagnostic {
    let (chunk, offset) = (&text[block.clone()], block.start);
    let scan = scan(chunk);
    if let Some(quote) = scan.open_string {
        return Diagnostic::new(
            Code::UnterminatedString,
            Span::new(quote, quote + 1).shifted(offset),
            "this string is never closed",
        )
        .label("the string starts here")
        .help("add the closing `\"`; write `\\\"` for a quote inside a string");
    }
    let at_end = errors::position(error) >= chunk.trim_end().len();
    if at_end && let Some(&(open, bracket)) = scan.open_brackets.last() {
        let close = match bracket {
            '{' => '}',
            '[' => ']',
            _ => ')',
        };
        return Diagnostic::new(
            Code::Syntax,
            Span::new(open, open + 1).shifted(offset),
            format!("this `{bracket}` is never closed"),
        )
        .label("opened here")
        .help(format!(
            "add the matching `{close}` at the end of the block"
        ));
    }
    errors::from_pest(error, text, block)
}

/// What the scan found in a piece of text.
#[derive(Debug, Default)]
struct Scan {
    /// Byte offsets where top-level blocks start; the first is always 0.
    starts: Vec<usize>,
    /// The opening quote of a string that reaches the end of the text.
    open_string: Option<usize>,
    /// Each `{` (and `[`, `(`) still open at the end of the text.
    open_brackets: Vec<(usize, char)>,
    /// Byte offsets of the step headers that start no top-level block:
    /// indented ones, and those right inside an `on_failure` block. Where
    /// the steps of an `on_failure` block that does not parse start.
    inner_steps: Vec<usize>,
}

/// Scans `text`. A line that starts in column 1 with what looks like a block
/// header (`plan "`, `var x`, `on_failure {`, `kind name {`) starts a block,
/// unless it lies inside a string or is a step of an open `on_failure`;
/// when a string is never closed, strings are ignored for that purpose,
/// since its true end is unknown.
fn scan(text: &str) -> Scan {
    let first = scan_with(text, true);
    if first.open_string.is_some() {
        let ignoring = scan_with(text, false);
        return Scan {
            starts: ignoring.starts,
            inner_steps: ignoring.inner_steps,
            ..first
        };
    }
    first
}

fn scan_with(text: &str, respect_strings: bool) -> Scan {
    let bytes = text.as_bytes();
    let mut scan = Scan {
        starts: vec![0],
        ..Scan::default()
    };
    let mut in_string: Option<usize> = None;
    // The depth of the `{` of an `on_failure` block still open: a step
    // header right inside it belongs to it and does not start a block.
    let mut failure_brace: Option<usize> = None;
    let mut pending_failure = false;
    let mut i = 0;
    let mut line_start = true;
    while i < bytes.len() {
        let b = bytes[i];
        if line_start && (in_string.is_none() || !respect_strings) {
            let indent = text[i..].len() - text[i..].trim_start_matches([' ', '\t']).len();
            match header_at(&text[i + indent..]) {
                Some(Header::Step) if indent > 0 => scan.inner_steps.push(i + indent),
                Some(_) if indent > 0 => {}
                Some(header) => {
                    let in_failure = header == Header::Step
                        && failure_brace.is_some_and(|depth| scan.open_brackets.len() == depth + 1);
                    if in_failure {
                        scan.inner_steps.push(i);
                    } else {
                        if i > 0 {
                            scan.starts.push(i);
                        }
                        pending_failure = header == Header::OnFailure;
                    }
                }
                None => {}
            }
        }
        line_start = b == b'\n';
        match (in_string, b) {
            (Some(_), b'\\') => i += 1,
            (Some(_), b'"') => in_string = None,
            (Some(_), _) => {}
            (None, b'"') => in_string = Some(i),
            (None, b'#') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                line_start = true;
            }
            (None, b'{' | b'[' | b'(') => {
                if b == b'{' && pending_failure {
                    failure_brace = Some(scan.open_brackets.len());
                    pending_failure = false;
                }
                scan.open_brackets.push((i, b as char));
            }
            (None, b'}' | b']' | b')') => {
                scan.open_brackets.pop();
                if failure_brace.is_some_and(|depth| scan.open_brackets.len() <= depth) {
                    failure_brace = None;
                }
            }
            _ => {}
        }
        i += 1;
    }
    scan.open_string = in_string;
    scan
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Header {
    Plan,
    Var,
    OnFailure,
    Step,
}

/// What block, if any, a line opens when it starts with `text`: `plan ...`,
/// `var ...`, `on_failure {`, or `KIND NAME {` (the block may go on on the
/// same line). An indented line never starts a top-level block: steps
/// inside `on_failure` are indented, and so are attributes.
fn header_at(text: &str) -> Option<Header> {
    let line = text.split('\n').next().unwrap_or("");
    let first_len = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(line.len());
    let (first, rest) = line.split_at(first_len);
    let starts_word = |w: &str| w.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    if !starts_word(first) {
        return None;
    }
    let after_space = rest.trim_start();
    let spaced = after_space.len() < rest.len();
    match first {
        "plan" if spaced => Some(Header::Plan),
        "var" if spaced => Some(Header::Var),
        "on_failure" if after_space.starts_with('{') => Some(Header::OnFailure),
        _ if spaced => {
            let second_len = after_space
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(after_space.len());
            let (second, tail) = after_space.split_at(second_len);
            (starts_word(second) && tail.trim_start().starts_with('{')).then_some(Header::Step)
        }
        _ => None,
    }
}

/// Splits the text into the blocks' spans.
fn blocks(scan: &Scan, len: usize) -> Vec<Span> {
    scan.starts
        .iter()
        .enumerate()
        .map(|(n, &start)| Span::new(start, scan.starts.get(n + 1).copied().unwrap_or(len)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_block_starts_outside_strings() {
        let text = "plan \"x\" {\n}\nvar a = \"\nstop b {\n\"\nstop c {\n}\n";
        let scan = scan(text);
        assert_eq!(scan.starts, vec![0, 13, 34]);
        assert!(scan.open_string.is_none());
        assert!(scan.open_brackets.is_empty());
    }

    #[test]
    fn an_open_string_does_not_hide_later_blocks() {
        let text = "stop a {\n  run = \"x\n}\nstop b {\n}\n";
        let scan = scan(text);
        assert_eq!(scan.open_string, Some(17));
        assert_eq!(scan.starts, vec![0, 22]);
    }

    #[test]
    fn steps_of_on_failure_stay_in_their_block() {
        let text = "on_failure {\n  start a {\n  }\nstart b {\n}\n}\nstop c {\n}\n";
        assert_eq!(scan(text).starts, vec![0, 43]);
    }

    #[test]
    fn steps_inside_blocks_are_listed() {
        let text = "on_failure {\n  start a {\n  }\nstart b {\n}\n}\nstop c {\n  x y {\n}\n";
        let scan = scan(text);
        let at = |s: &str| text.find(s).expect(s);
        assert_eq!(scan.starts, vec![0, at("stop c")]);
        assert_eq!(
            scan.inner_steps,
            vec![at("start a"), at("start b"), at("x y")]
        );
    }

    #[test]
    fn one_line_blocks_start_blocks() {
        let text = "plan \"p\" { from = \"1\" }\nstop a { run = 'x' }\nvar 1x = \"a\"\n";
        assert_eq!(scan(text).starts, vec![0, 24, 45]);
    }

    #[test]
    fn reports_unclosed_braces() {
        let scan = scan("stop a {\n  run = \"}\" # }\n");
        assert_eq!(scan.open_brackets, vec![(7, '{')]);
    }
}
