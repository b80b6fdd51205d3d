//! Text to AST: the only place that sees pest. Reports every syntax error it
//! can: when the whole file does not parse, each top-level block is parsed
//! on its own, so one missing brace does not hide the next block's mistake.

mod chunks;
mod errors;
mod fast;
mod strings;
mod tree;

use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use pest::Parser as _;

pub use strings::is_var_name;

use crate::ast::File;
use crate::cores;
use crate::diagnostic::{Code, Diagnostic};
use crate::source::{Source, Span};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/plan.pest"]
#[grammar = "../grammar/fast.pest"]
struct Grammar;

/// The AST of a file and what was wrong with it. `file` holds every block
/// that could be read, even when there are errors.
#[derive(Debug)]
pub struct Parsed {
    pub file: File,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads a plan file. Bytes that are not UTF-8 are replaced so the rest can
/// still be shown; the first bad byte is reported with its line.
pub fn read(path: &Path) -> std::io::Result<(Source, Option<Diagnostic>)> {
    let bytes = std::fs::read(path)?;
    Ok(from_bytes(path, bytes))
}

/// As `read`, for bytes already in memory.
pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> (Source, Option<Diagnostic>) {
    match String::from_utf8(bytes) {
        Ok(text) => (Source::new(path, text), None),
        Err(error) => {
            let valid = error.utf8_error().valid_up_to();
            let bytes = error.into_bytes();
            // The valid prefix maps to itself in the lossy text, so `valid`
            // is the bad byte's offset there too.
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let source = Source::new(path, text);
            let span = source.clamp(Span::new(valid, valid + 1));
            let diagnostic = Diagnostic::new(
                Code::NotUtf8,
                span,
                format!(
                    "the file is not UTF-8: byte 0x{:02X} is not valid here",
                    bytes[valid]
                ),
            )
            .label("invalid byte")
            .help("save the plan as UTF-8 text");
            (source, Some(diagnostic))
        }
    }
}

/// Pest counts rule calls; our grammar has no recursion, so the limit is
/// only a backstop against a pathological input taking unbounded time.
const CALL_LIMIT: usize = 500_000_000;

/// Parses a plan's text.
pub fn parse(source: &Source) -> Parsed {
    parse_with(source, fast)
}

/// What `parse` gives, read with grammar/plan.pest alone: the reference
/// that grammar/fast.pest must agree with. For tests and the fuzzer, which
/// compare the two; `parse` itself takes this path only for files that
/// fast.pest does not accept.
#[doc(hidden)]
pub fn parse_with_plan_grammar(source: &Source) -> Parsed {
    parse_with(source, |_| None)
}

/// What `parse` gives, with the fast path's pieces about `piece_bytes`
/// long, read on `threads` threads: for tests and the fuzzer, which check
/// that neither changes the result.
#[doc(hidden)]
pub fn parse_in_pieces(source: &Source, piece_bytes: usize, threads: usize) -> Parsed {
    parse_with(source, |text| fast_with(text, piece_bytes, threads))
}

/// An empty file's diagnostic; else what `fast` reads; else, when it
/// reads nothing, what plan.pest reads.
fn parse_with(source: &Source, fast: impl FnOnce(&str) -> Option<Parsed>) -> Parsed {
    let text = source.text();
    empty(text).unwrap_or_else(|| fast(text).unwrap_or_else(|| with_plan_grammar(text)))
}

fn set_call_limit() {
    static LIMIT: Once = Once::new();
    LIMIT.call_once(|| pest::set_call_limit(NonZeroUsize::new(CALL_LIMIT)));
}

/// The one diagnostic of a file with nothing in it.
fn empty(text: &str) -> Option<Parsed> {
    if !text.trim().is_empty() {
        return None;
    }
    Some(Parsed {
        file: File::default(),
        diagnostics: vec![
            Diagnostic::new(Code::EmptyFile, Span::new(0, text.len()), "the file is empty")
                .help("a plan starts with `plan \"NAME\" { from = \"X\" to = \"Y\" }` and lists its steps"),
        ],
    })
}

/// The file read with grammar/fast.pest, or `None` when that grammar does
/// not accept it (a syntax error: plan.pest's `file` then says which).
fn fast(text: &str) -> Option<Parsed> {
    fast_with(
        text,
        PIECE_BYTES,
        cores::threads_for(text.len(), PARALLEL_BYTES),
    )
}

/// `fast` with the size of the pieces and the number of threads given: the
/// result must not depend on either (the tests try many).
fn fast_with(text: &str, piece_bytes: usize, threads: usize) -> Option<Parsed> {
    if has_stray_controls(text) {
        return None;
    }
    set_call_limit();
    let pieces: Vec<_> = pieces(text, piece_bytes).collect();
    // A cut that does not fall between blocks (inside a block whose `}`
    // stands at the start of a line, or a string) leaves a piece that does
    // not parse: the whole file is then read as one piece.
    in_parallel(text, &pieces, threads).or_else(|| {
        (pieces.len() > 1).then(|| fast_in_pieces(text, std::iter::once(0..text.len())))?
    })
}

/// Below this size a plan is read on the calling thread alone: starting a
/// thread costs about as much as reading this much text.
const PARALLEL_BYTES: usize = 128 * 1024;

/// Reads the pieces on up to `threads` threads (`crate::cores`) and joins
/// the results in file order. Pieces are independent: each is a whole pest
/// parse.
fn in_parallel(text: &str, pieces: &[Range<usize>], threads: usize) -> Option<Parsed> {
    let threads = threads.min(pieces.len());
    if threads <= 1 {
        return fast_in_pieces(text, pieces.iter().cloned());
    }
    let (done, failed) = cores::run(threads, pieces.len(), |queue| {
        let mut done = Vec::new();
        while let Some(i) = queue.take() {
            match fast_in_pieces(text, std::iter::once(pieces[i].clone())) {
                Some(parsed) => done.push((i, parsed)),
                None => queue.stop(),
            }
        }
        done
    });
    if failed {
        return None;
    }
    let mut done: Vec<(usize, Parsed)> = done.into_iter().flatten().collect();
    done.sort_unstable_by_key(|(i, _)| *i);
    // Sized once: grown by doubling, the items of a large plan would be
    // copied several times, each time onto fresh pages.
    let count = |f: fn(&Parsed) -> usize| done.iter().map(|(_, part)| f(part)).sum::<usize>();
    let mut whole = Parsed {
        file: File {
            items: Vec::with_capacity(count(|p| p.file.items.len())),
            comments: Vec::with_capacity(count(|p| p.file.comments.len())),
        },
        diagnostics: Vec::with_capacity(count(|p| p.diagnostics.len())),
    };
    for (_, part) in done {
        whole.file.items.extend(part.file.items);
        whole.file.comments.extend(part.file.comments);
        whole.diagnostics.extend(part.diagnostics);
    }
    Some(whole)
}

/// Reads the pieces of `text` one after another. `None` when any piece
/// is not a sequence of whole blocks that fast.pest accepts.
fn fast_in_pieces(text: &str, pieces: impl Iterator<Item = Range<usize>>) -> Option<Parsed> {
    let mut parsed = Parsed {
        file: File::default(),
        diagnostics: Vec::new(),
    };
    for piece in pieces {
        let pairs = Grammar::parse(Rule::fast_file, &text[piece.clone()]).ok()?;
        fast::read(
            text,
            piece.start,
            pairs.tokens(),
            &mut parsed.file,
            &mut parsed.diagnostics,
        )
        .ok()?;
    }
    Some(parsed)
}

/// How much text pest reads at a time on the fast path. Pest keeps every
/// token of a parse in one growing vector (40 bytes a token); a whole large
/// plan makes it megabytes, copied as it grows and each time on fresh pages
/// from the kernel, where a piece this size keeps it in the cache.
const PIECE_BYTES: usize = 8 * 1024;

/// Splits `text` into pieces of about `size` bytes, each cut at the start
/// of the line after a `}` alone at the start of its line (where a
/// top-level block normally ends).
///
/// A cut needs no proof that it lies between blocks: a line start never
/// lies inside a comment, and a piece that ends inside a string or a block
/// does not parse, so `fast` then reads the file whole. A piece that does
/// parse ends with whole blocks, and reading on from its end is what
/// reading the whole file would do there.
fn pieces(text: &str, size: usize) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        // Byte-wise, as `start + size` may fall inside a character; the
        // cut itself follows a `\n`, so it is a character boundary.
        let from = (start + size).min(text.len());
        let end = memchr::memmem::find(&text.as_bytes()[from..], b"\n}\n")
            .map_or(text.len(), |at| from + at + 3);
        let piece = start..end;
        start = end;
        Some(piece)
    })
}

/// Whether the text holds a control character other than tab, line feed
/// and carriage return, anywhere. fast.pest skips every character from tab
/// to space as whitespace, which is plan.pest's whitespace only in a text
/// without these.
fn has_stray_controls(text: &str) -> bool {
    let stray = |b: u8| b < b' ' && !matches!(b, b'\t' | b'\n' | b'\r');
    // In blocks without an early exit, so that the compiler vectorises it.
    text.as_bytes()
        .chunks(64)
        .any(|block| block.iter().fold(false, |found, &b| found | stray(b)))
}

fn with_plan_grammar(text: &str) -> Parsed {
    set_call_limit();
    let mut parsed = Parsed {
        file: File::default(),
        diagnostics: Vec::new(),
    };
    match Grammar::parse(Rule::file, text) {
        Ok(pairs) => {
            let mut builder = tree::Builder {
                offset: 0,
                diagnostics: &mut parsed.diagnostics,
            };
            builder.items(pairs, &mut parsed.file);
        }
        Err(_) => recover(text, &mut parsed),
    }
    parsed
}

/// Parses each top-level block on its own and reports each one's error.
fn recover(text: &str, parsed: &mut Parsed) {
    let scan = chunks::scan(text);
    for block in chunks::blocks(&scan, text.len()) {
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
            Err(error) => parsed
                .diagnostics
                .push(block_error(&error, chunk, block.start)),
        }
    }
    parsed.file.comments.sort_by_key(|c| c.span.start);
}

/// The most useful diagnostic for a block that does not parse: an open
/// string or an unclosed brace says more than "expected `}`".
fn block_error(error: &pest::error::Error<Rule>, chunk: &str, offset: usize) -> Diagnostic {
    let scan = chunks::scan(chunk);
    if let Some(quote) = scan.open_string {
        return Diagnostic::new(
            Code::UnterminatedString,
            Span::new(quote, quote + 1).shifted(offset),
            "this string is never closed",
        )
        .label("the string starts here")
        .help("add the closing `\"`; write `\\\"` for a quote inside a string");
    }
    let diagnostic = errors::from_pest(error, chunk, offset);
    let at_end = diagnostic.primary.span.start >= offset + chunk.trim_end().len();
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
    diagnostic
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Parsed {
        parse(&Source::new("t.plan", text))
    }

    #[test]
    fn every_broken_block_is_reported() {
        let parsed = parse_text(
            "plan \"p\" {\n  from = \"1\"\n  to = \"2\"\n}\n\nstop a {\n  run \"x\"\n}\n\nstop b {\n  run = [\n}\n\nstop c {\n  run = \"ok\"\n}\n",
        );
        assert_eq!(parsed.diagnostics.len(), 2, "{:#?}", parsed.diagnostics);
        // The good blocks are still read.
        assert_eq!(parsed.file.items.len(), 2);
    }

    #[test]
    fn comments_are_kept() {
        let parsed =
            parse_text("# top\nplan \"p\" { # trailing\n  from = \"1\" # f\n  to = \"2\"\n}\n");
        assert!(parsed.diagnostics.is_empty());
        let texts: Vec<_> = parsed
            .file
            .comments
            .iter()
            .map(|c| c.text.as_str())
            .collect();
        assert_eq!(texts, ["# top", "# trailing", "# f"]);
    }

    #[test]
    fn not_utf8_names_the_line() {
        let (source, diagnostic) =
            from_bytes(Path::new("x.plan"), b"plan \"a\" {\n  \xff\n}".to_vec());
        let diagnostic = diagnostic.expect("a diagnostic");
        assert_eq!(source.line_col(diagnostic.primary.span.start).line, 2);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = format!("stop a {{ run = {} }}", "[".repeat(100_000));
        let parsed = parse_text(&text);
        assert!(!parsed.diagnostics.is_empty());
    }
}
