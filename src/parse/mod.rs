//! Text to AST: the only place that sees pest. Reports every syntax error it
//! can: when the whole file does not parse, each top-level block is parsed
//! on its own (`recovery.rs`), so one missing brace does not hide the next
//! block's mistake, and the blocks that read well are still returned.

mod errors;
mod recovery;
mod strings;
mod tree;

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Once;

use pest::Parser as _;

pub use strings::is_var_name;

use crate::ast::File;
use crate::diagnostic::{Code, Diagnostic};
use crate::source::{Source, Span};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/plan.pest"]
struct Grammar;

/// The AST of a file and what was wrong with it. `file` holds every block
/// that could be read, even when there are errors (in a broken `on_failure`
/// block, every step that could be read), so that later stages can still
/// report their own findings; `diagnostics` holds every syntax error found,
/// one per broken block or `on_failure` step. A caller must not run a file
/// whose `diagnostics` hold an error.
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

/// Parses a plan's text. Never stops at the first error: see `Parsed`.
pub fn parse(source: &Source) -> Parsed {
    static LIMIT: Once = Once::new();
    LIMIT.call_once(|| pest::set_call_limit(NonZeroUsize::new(CALL_LIMIT)));

    let text = source.text();
    let mut parsed = Parsed {
        file: File::default(),
        diagnostics: Vec::new(),
    };
    if text.trim().is_empty() {
        parsed.diagnostics.push(
            Diagnostic::new(Code::EmptyFile, Span::new(0, text.len()), "the file is empty")
                .help("a plan starts with `plan \"NAME\" { from = \"X\" to = \"Y\" }` and lists its steps"),
        );
        return parsed;
    }
    match Grammar::parse(Rule::file, text) {
        Ok(pairs) => {
            let mut builder = tree::Builder {
                offset: 0,
                diagnostics: &mut parsed.diagnostics,
            };
            builder.items(pairs, &mut parsed.file);
        }
        Err(_) => recovery::recover(text, &mut parsed),
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Item;

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

    /// The names of the steps in the AST, `on_failure` ones after a `!`.
    fn step_names(parsed: &Parsed) -> Vec<String> {
        let mut names = Vec::new();
        for item in &parsed.file.items {
            match item {
                Item::Step(s) => names.push(s.name.name.clone()),
                Item::OnFailure(o) => {
                    names.extend(o.steps.iter().map(|s| format!("!{}", s.name.name)))
                }
                _ => {}
            }
        }
        names
    }

    #[test]
    fn a_block_before_a_stray_line_is_kept() {
        let text = "plan \"p\" {\n  from = \"1\"\n  to = \"2\"\n}\n\nstop a {\n  run = \"x\"\n}\noops\n\n# b\nstop b {\n  run = \"y\"\n}\n";
        let parsed = parse_text(text);
        assert_eq!(step_names(&parsed), ["a", "b"]);
        let [error] = parsed.diagnostics.as_slice() else {
            panic!("one error: {:#?}", parsed.diagnostics)
        };
        // Right after `oops`, not at the comment or `stop b`, and not "the
        // end of the file".
        assert_eq!(error.message, "expected a name, found the end of the block");
        let after_oops = text.find("oops").expect("oops") + 4;
        assert_eq!(error.primary.span, Span::new(after_oops, after_oops));
        let b = text.find("stop b").expect("stop b");
        assert_eq!(error.secondary[0].span, Span::new(b, b + 4));
    }

    #[test]
    fn every_broken_step_of_on_failure_is_reported_and_the_others_kept() {
        let text = "plan \"p\" {\n  from = \"1\"\n  to = \"2\"\n}\n\non_failure {\n  start up {\n    run = \"x\"\n  }\n\n  script notify {\n    run \"y\"\n  }\n\n  script log {\n    after = up,\n  }\n\n  script last {\n    after = up\n  }\n}\n";
        let parsed = parse_text(text);
        let lines: Vec<usize> = parsed
            .diagnostics
            .iter()
            .map(|d| text[..d.primary.span.start].lines().count())
            .collect();
        assert_eq!(lines, [12, 16], "{:#?}", parsed.diagnostics);
        assert_eq!(step_names(&parsed), ["!up", "!last"]);
    }

    #[test]
    fn an_on_failure_block_left_open_keeps_its_steps() {
        let parsed = parse_text(
            "stop down {\n}\n\non_failure {\n  start up {\n    run = \"x\"\n  }\n\n  start cron_up {\n  }\n",
        );
        let [error] = parsed.diagnostics.as_slice() else {
            panic!("one error: {:#?}", parsed.diagnostics)
        };
        assert_eq!(error.message, "this `{` is never closed");
        assert_eq!(error.primary.span, Span::new(26, 27));
        assert_eq!(step_names(&parsed), ["down", "!up", "!cron_up"]);
    }

    #[test]
    fn a_part_read_on_its_own_does_not_end_the_file() {
        let parsed =
            parse_text("on_failure {\n  start a {\n  } junk\n  start b {\n  }\n}\nstop c {\n}\n");
        let [error] = parsed.diagnostics.as_slice() else {
            panic!("one error: {:#?}", parsed.diagnostics)
        };
        assert_eq!(
            error.message,
            "expected `}` or the end of the block, found `junk`"
        );
        // `a` is whole before the mistake, so it is kept.
        assert_eq!(step_names(&parsed), ["!a", "!b", "c"]);
    }

    #[test]
    fn the_end_of_the_file_is_named_only_there() {
        let parsed = parse_text("plan \"p\" {\n  from = \"1\"\n  to = \"2\"\n}\nvar x =\n");
        let [error] = parsed.diagnostics.as_slice() else {
            panic!("one error: {:#?}", parsed.diagnostics)
        };
        assert!(
            error.message.ends_with("found the end of the file"),
            "{}",
            error.message
        );
        assert_eq!(parsed.file.items.len(), 1, "the plan block is kept");
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
