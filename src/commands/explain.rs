//! `plan explain CODE`: the documentation of a diagnostic code, as
//! `rustc --explain` prints an error's. The pages are built into the binary
//! (docs/diagnostics.md, and docs/lints.md for the rules it describes in
//! depth), so the text is the one of the release that printed the code,
//! and it needs no network and no source tree.

use miette::Diagnostic;
use thiserror::Error;

use crate::cli::ExplainArgs;
use crate::commands::{UsageError, print};
use crate::diagnostic::{Code, suggest};
use crate::exit::Ending;

/// docs/diagnostics.md: a section for every `E0xx`, `W1xx` and `plan::`
/// code.
const DIAGNOSTICS: &str = include_str!("../../docs/diagnostics.md");
/// docs/lints.md: a longer section (why, a bad example, the fix) for each
/// lint rule; preferred where a code has one.
const LINTS: &str = include_str!("../../docs/lints.md");

/// Why `plan explain` printed nothing.
#[derive(Debug, Error, Diagnostic)]
pub enum ExplainError {
    #[error("`{code}` is not a diagnostic code")]
    #[diagnostic(code(plan::explain::unknown_code), help("{help}"))]
    UnknownCode { code: String, help: String },
}

pub fn run(args: &ExplainArgs) -> Result<Ending, UsageError> {
    let text = explain(&args.code)?;
    print(&format!("{text}\n"));
    Ok(Ending::checked(false))
}

/// One `## ` section of a page: its heading's first word (`E004`,
/// `plan::io`), and its text from the heading to the next heading of the
/// same or a higher level.
#[derive(Debug, Clone, Copy)]
struct Section<'a> {
    key: &'a str,
    text: &'a str,
}

/// The `## ` sections of a Markdown page; a `#` inside a code fence (a
/// plan's comment) is not a heading.
fn sections(page: &str) -> Vec<Section<'_>> {
    let mut found = Vec::new();
    let mut open: Option<(usize, &str)> = None;
    let mut fenced = false;
    let mut at = 0;
    for line in page.split_inclusive('\n') {
        let start = at;
        at += line.len();
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !(line.starts_with("# ") || line.starts_with("## ")) {
            continue;
        }
        if let Some((from, key)) = open.take() {
            found.push(Section {
                key,
                text: page[from..start].trim_end(),
            });
        }
        if let Some(heading) = line.strip_prefix("## ") {
            let key = heading.split_whitespace().next().unwrap_or_default();
            open = Some((start, key));
        }
    }
    if let Some((from, key)) = open {
        found.push(Section {
            key,
            text: page[from..].trim_end(),
        });
    }
    found
}

fn section<'a>(page: &'a str, key: &str) -> Option<&'a str> {
    sections(page)
        .into_iter()
        .find(|s| s.key == key)
        .map(|s| s.text)
}

/// The `plan::` codes docs/diagnostics.md documents.
fn program_codes() -> Vec<&'static str> {
    sections(DIAGNOSTICS)
        .into_iter()
        .map(|s| s.key)
        .filter(|key| key.starts_with("plan::"))
        .collect()
}

/// The documentation of `query`: a code as a diagnostic shows it (`E004`,
/// `E004(unknown-step-kind)`, `w101`, `missing-backup`, `plan::io`) or a
/// `plan::` code without its prefix (`unknown_var`,
/// `cluster::no_binaries`).
pub fn explain(query: &str) -> Result<&'static str, ExplainError> {
    let word = query.trim().trim_matches('`');
    // The human output heads a finding with `E004(unknown-step-kind)`.
    let word = word.split('(').next().unwrap_or(word).trim();
    let code = Code::parse(word).or_else(|| Code::parse(&word.to_ascii_lowercase()));
    let documented = code.and_then(|code| {
        section(LINTS, code.as_str()).or_else(|| section(DIAGNOSTICS, code.as_str()))
    });
    if let Some(text) = documented {
        return Ok(text);
    }
    let codes = program_codes();
    let full = match word.strip_prefix("plan::") {
        Some(_) => word.to_string(),
        None => format!("plan::{word}"),
    };
    let by_last = |c: &&&str| c.rsplit("::").next() == Some(word);
    let found = codes.iter().find(|c| **c == full).or_else(|| {
        // `no_binaries` for `plan::cluster::no_binaries`, when only one
        // code ends so.
        let mut ends = codes.iter().filter(by_last);
        match (ends.next(), ends.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    });
    if let Some(text) = found.and_then(|c| section(DIAGNOSTICS, c)) {
        return Ok(text);
    }
    let mut candidates: Vec<&str> = Code::ALL
        .iter()
        .flat_map(|c| [c.as_str(), c.name()])
        .collect();
    candidates.extend(codes.iter().copied());
    candidates.extend(codes.iter().filter_map(|c| c.strip_prefix("plan::")));
    let near = suggest(word, candidates.iter().copied())
        .or_else(|| suggest(&word.to_ascii_uppercase(), candidates.iter().copied()));
    let mut help = match near {
        Some(near) => format!("did you mean `{near}`? "),
        None => String::new(),
    };
    help.push_str(
        "codes look like `E004`, `W101` (or its name, `missing-backup`) and `plan::unknown_var`; \
         docs/diagnostics.md lists them all",
    );
    Err(ExplainError::UnknownCode {
        code: query.to_string(),
        help,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plan_code_is_explained_from_its_own_section() {
        for code in Code::ALL {
            let text = explain(code.as_str()).unwrap_or_else(|e| panic!("{code}: {e}"));
            assert!(
                text.starts_with(&format!("## {} {}", code.as_str(), code.name())),
                "{code}: {text}"
            );
            assert_eq!(explain(code.name()).ok(), Some(text));
            assert_eq!(explain(&code.as_str().to_lowercase()).ok(), Some(text));
            // One section, not the page from there on.
            assert_eq!(text.matches("\n## ").count(), 0, "{code}: {text}");
        }
    }

    #[test]
    fn lint_rules_are_explained_from_lints_md() {
        let text = explain("W101").expect("W101");
        assert!(text.contains("**What it catches.**"), "{text}");
        assert!(LINTS.contains(text));
        // E004 has no section in lints.md: diagnostics.md's.
        let text = explain("E004(unknown-step-kind)").expect("E004");
        assert!(DIAGNOSTICS.contains(text) && !LINTS.contains(text));
    }

    #[test]
    fn program_codes_are_explained_with_or_without_their_prefix() {
        let codes = program_codes();
        assert!(codes.len() >= 40, "{codes:?}");
        for code in codes {
            let text = explain(code).unwrap_or_else(|e| panic!("{code}: {e}"));
            assert!(text.starts_with(&format!("## {code}\n")), "{text}");
            let short = code.strip_prefix("plan::").expect("a plan:: code");
            assert_eq!(explain(short).ok(), Some(text), "{short}");
        }
        assert_eq!(
            explain("no_binaries").ok(),
            explain("plan::cluster::no_binaries").ok()
        );
        assert!(
            explain("`plan::io`")
                .expect("plan::io")
                .contains("cannot read")
        );
    }

    #[test]
    fn a_comment_in_a_fence_is_not_a_heading() {
        let page = "# Page\n\n## W1 a\n\n```plan\n# lint: allow(W1)\n## not\n```\n\nmore\n\n## W2 b\nend\n";
        let found = sections(page);
        let keys: Vec<&str> = found.iter().map(|s| s.key).collect();
        assert_eq!(keys, ["W1", "W2"]);
        assert!(found[0].text.ends_with("more"), "{:?}", found[0].text);
        assert_eq!(found[1].text, "## W2 b\nend");
    }

    #[test]
    fn an_unknown_code_gets_a_suggestion() {
        let Err(ExplainError::UnknownCode { help, .. }) = explain("W1O1") else {
            panic!("W1O1 is not a code");
        };
        assert!(help.starts_with("did you mean `W101`?"), "{help}");
        let Err(ExplainError::UnknownCode { help, .. }) = explain("plan::unknwn_var") else {
            panic!("not a code");
        };
        assert!(
            help.starts_with("did you mean `plan::unknown_var`?"),
            "{help}"
        );
        let Err(ExplainError::UnknownCode { help, .. }) = explain("missing-backpu") else {
            panic!("not a code");
        };
        assert!(help.starts_with("did you mean `missing-backup`?"), "{help}");
        assert!(explain("zzzzzzzz").is_err());
    }
}
