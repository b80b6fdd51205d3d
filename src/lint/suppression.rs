//! `# lint: allow(CODE, ...)` comments: which findings they silence, and
//! what is wrong with them. A comment on the lines just above a step, or
//! inside its block, silences the step's findings; one inside the `plan`
//! block, or just above it, silences the whole file. The comment stays in
//! the file, so the reviewer sees every silenced rule.

use std::collections::HashMap;

use crate::ast::{self, Comment, Item};
use crate::diagnostic::{Code, Diagnostic, Severity, suggest};
use crate::source::{Source, Span};

use super::RULES;

/// The `allow` comments of one file.
pub struct Allows {
    /// Codes silenced everywhere in the file.
    file: Vec<Code>,
    /// Per step block (its span, in file order): the codes silenced in it.
    steps: Vec<(Span, Vec<Code>)>,
    /// Unknown codes and malformed comments (W109, W110).
    pub diagnostics: Vec<Diagnostic>,
}

/// One `# lint:` comment, read.
struct Directive {
    codes: Vec<Code>,
}

impl Allows {
    pub fn collect(source: &Source, file: &ast::File) -> Allows {
        let mut diagnostics = Vec::new();
        let directives: Vec<Option<Directive>> = file
            .comments
            .iter()
            .map(|c| read(c, &mut diagnostics))
            .collect();
        // Comments alone on their line, by line: the ones that can stand
        // "above" a block.
        let own_line: HashMap<usize, usize> = file
            .comments
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                let line = source.line_span(source.line_index(c.span.start));
                source
                    .slice(Span::new(line.start, c.span.start))
                    .trim()
                    .is_empty()
            })
            .map(|(i, c)| (source.line_index(c.span.start), i))
            .collect();
        let scope = |span: Span| -> Vec<Code> {
            let mut codes = Vec::new();
            let mut add = |i: usize| {
                if let Some(Some(d)) = directives.get(i) {
                    codes.extend(&d.codes);
                }
            };
            // The run of comment lines right above the block.
            let mut line = source.line_index(span.start);
            while line > 0 {
                line -= 1;
                match own_line.get(&line) {
                    Some(&i) => add(i),
                    None => break,
                }
            }
            // Comments inside the block.
            let first = file.comments.partition_point(|c| c.span.start < span.start);
            for (i, c) in file.comments.iter().enumerate().skip(first) {
                if c.span.start >= span.end {
                    break;
                }
                add(i);
            }
            codes
        };
        let mut allows = Allows {
            file: Vec::new(),
            steps: Vec::new(),
            diagnostics,
        };
        for item in &file.items {
            match item {
                Item::Plan(p) => allows.file.extend(scope(p.span)),
                Item::Step(s) => allows.steps.push((s.span, scope(s.span))),
                Item::OnFailure(o) => {
                    for s in &o.steps {
                        allows.steps.push((s.span, scope(s.span)));
                    }
                }
                Item::Var(_) => {}
            }
        }
        allows.steps.retain(|(_, codes)| !codes.is_empty());
        allows.steps.sort_by_key(|(span, _)| span.start);
        allows
    }

    /// Whether a comment silences this finding.
    pub fn allows(&self, finding: &Diagnostic) -> bool {
        if self.file.contains(&finding.code) {
            return true;
        }
        let at = finding.primary.span.start;
        let i = self.steps.partition_point(|(span, _)| span.start <= at);
        i > 0 && self.steps[i - 1].0.end > at && self.steps[i - 1].1.contains(&finding.code)
    }
}

/// Reads a comment: `None` when it is no `# lint:` directive, or a broken
/// one (then reported).
fn read(comment: &Comment, diagnostics: &mut Vec<Diagnostic>) -> Option<Directive> {
    let body = comment.text.strip_prefix('#')?.trim_start();
    let rest = body.strip_prefix("lint:")?.trim_start();
    let Some(inside) = rest.strip_prefix("allow(").and_then(|r| r.split_once(')')) else {
        diagnostics.push(
            Diagnostic::new(
                Code::UnknownLintCode,
                comment.span,
                "a `# lint:` comment that is not `# lint: allow(CODE, ...)`",
            )
            .label("not understood, silences nothing")
            .help("write # lint: allow(W101) or # lint: allow(missing-backup, shell-step)"),
        );
        return None;
    };
    let list = inside.0;
    // Where the list starts in the comment's text (the text begins at the
    // span's start).
    let list_offset = comment.text.len() - inside.1.len() - 1 - list.len();
    let mut codes = Vec::new();
    let mut offset = list_offset;
    for entry in list.split(',') {
        let word = entry.trim();
        let start = comment.span.start + offset + (entry.len() - entry.trim_start().len());
        let span = Span::new(start, start + word.len());
        offset += entry.len() + 1;
        if word.is_empty() {
            continue;
        }
        match Code::parse(word) {
            Some(code) if RULES.iter().any(|r| r.code == code) => codes.push(code),
            Some(code) => diagnostics.push(
                Diagnostic::new(
                    Code::NotAllowable,
                    span,
                    format!("`{word}` cannot be silenced"),
                )
                .label(if code.severity() == Severity::Error {
                    "an error of the language"
                } else {
                    "a finding about this comment"
                })
                .help(format!(
                    "fix what {code} ({}) reports: only lint rules (docs/lints.md) can be allowed",
                    code.name()
                )),
            ),
            None => {
                let names = RULES.iter().map(|r| r.code.name());
                let d = Diagnostic::new(
                    Code::UnknownLintCode,
                    span,
                    format!("`{word}` is not a lint code"),
                )
                .label("unknown code, silences nothing");
                diagnostics.push(match suggest(&word.to_lowercase(), names) {
                    Some(near) => d.help(format!("did you mean `{near}`?")),
                    None => d.help(
                        "name a rule of docs/lints.md by code or name, such as W101 or missing-backup",
                    ),
                });
            }
        }
    }
    if codes.is_empty() && list.trim().is_empty() {
        diagnostics.push(
            Diagnostic::new(
                Code::UnknownLintCode,
                comment.span,
                "`allow()` names no code",
            )
            .label("silences nothing")
            .help("name the rules to silence, such as # lint: allow(W101)"),
        );
    }
    Some(Directive { codes })
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::Code;
    use crate::lint::testing::*;

    const ROOT_SQL: &str = "sql fix {\n  after = settled\n  sql = \"update res_partner set active = true\"\n}\n\nsql early {\n  sql = \"update res_partner set active = false\"\n}\n";

    fn codes(text: &str) -> Vec<(Code, usize)> {
        let report = lint_text(text);
        report
            .diagnostics
            .iter()
            .map(|d| (d.code, report.source.line_col(d.primary.span.start).line))
            .collect()
    }

    #[test]
    fn a_comment_above_a_step_silences_that_step_only() {
        let steps = format!(
            "{CLEAN_STEPS}\nscript a {{\n  after = settled\n  run = \"true\"\n}}\n\n# lint: allow(W105)\nscript b {{\n  after = settled\n  run = \"true\"\n}}\n"
        );
        let report = lint_text(&plan_with(&steps));
        let timeouts = with_code(&report, Code::MissingTimeout);
        assert_eq!(timeouts.len(), 1, "{:#?}", report.diagnostics);
        assert!(report.source.slice(timeouts[0].primary.span) == "a");
        assert_eq!(report.allowed, 1);
    }

    #[test]
    fn names_several_codes_and_comment_runs_count() {
        let steps = format!(
            "{CLEAN_STEPS}\n# lint: allow(missing-timeout, W106)\n# the vendor's tool needs a pipe\nscript b {{\n  after = settled\n  shell = \"true | true\"\n}}\n"
        );
        let report = lint_text(&plan_with(&steps));
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
        assert_eq!(report.allowed, 2);
    }

    #[test]
    fn a_comment_inside_the_step_counts_too() {
        let steps = format!(
            "{CLEAN_STEPS}\nscript b {{ # lint: allow(W105)\n  after = settled\n  run = \"true\"\n}}\n\nscript c {{\n  after = settled\n  # lint: allow(missing-timeout) bounded by the tool itself\n  run = \"true\"\n}}\n"
        );
        let report = lint_text(&plan_with(&steps));
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
        assert_eq!(report.allowed, 2);
    }

    #[test]
    fn a_blank_line_breaks_the_link_to_the_step() {
        let steps = format!(
            "{CLEAN_STEPS}\n# lint: allow(W105)\n\nscript b {{\n  after = settled\n  run = \"true\"\n}}\n"
        );
        let report = lint_text(&plan_with(&steps));
        assert_eq!(with_code(&report, Code::MissingTimeout).len(), 1);
    }

    #[test]
    fn a_comment_in_the_plan_block_silences_the_whole_file() {
        let text = plan_with(&format!("{CLEAN_STEPS}\n{ROOT_SQL}")).replacen(
            "plan \"t\" {\n",
            "plan \"t\" {\n  # lint: allow(missing-backup) the host snapshots the disk first\n",
            1,
        );
        let found = codes(&text);
        assert!(
            found.iter().all(|(c, _)| *c != Code::MissingBackup),
            "{found:?}"
        );
        // `fix` runs after the backup; `early` is the one silenced.
        assert_eq!(lint_text(&text).allowed, 1);
    }

    #[test]
    fn a_comment_above_the_plan_block_silences_the_whole_file() {
        let text = format!(
            "# lint: allow(W101)\n{}",
            plan_with(&format!("{CLEAN_STEPS}\n{ROOT_SQL}"))
        );
        assert!(codes(&text).is_empty(), "{:?}", codes(&text));
    }

    #[test]
    fn an_unknown_code_is_a_warning_at_the_code() {
        let text = format!(
            "# lint: allow(W101, W999, missing-bakup)\n{}",
            plan_with(CLEAN_STEPS)
        );
        let report = lint_text(&text);
        let unknown = with_code(&report, Code::UnknownLintCode);
        let words: Vec<&str> = unknown
            .iter()
            .map(|d| report.source.slice(d.primary.span))
            .collect();
        assert_eq!(words, ["W999", "missing-bakup"]);
        assert_eq!(
            unknown[1].help.as_deref(),
            Some("did you mean `missing-backup`?")
        );
    }

    #[test]
    fn errors_cannot_be_allowed_and_broken_comments_are_reported() {
        let text = format!(
            "# lint: allow(E001)\n# lint: allow W101\n{}",
            plan_with(CLEAN_STEPS)
        );
        let found = codes(&text);
        assert_eq!(
            found,
            [(Code::NotAllowable, 1), (Code::UnknownLintCode, 2)],
            "{found:?}"
        );
    }

    #[test]
    fn ordinary_comments_are_ignored() {
        let text = format!("# lint the plan before review\n{}", plan_with(CLEAN_STEPS));
        assert!(codes(&text).is_empty());
    }
}
