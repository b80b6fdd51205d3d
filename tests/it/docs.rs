//! The docs kept honest: every plan snippet in docs/*.md analyses as its
//! fence says, every diagnostic code has its section in docs/diagnostics.md,
//! the `show` document in docs/cli.md is what `plan show` prints, and every
//! plan in plans/ analyses with no error and names files that exist.
//!
//! Fences: ```plan is a whole plan that gives no error and is laid out as
//! `plan fmt` lays it out; ```plan-warning too (it shows a lint warning);
//! ```plan-error must give at least one error; ```plan-unformatted gives
//! no error, and `plan fmt` turns it into the ```plan that follows it;
//! ```plan-fragment is part of a plan and is not checked. Under a
//! `## CODE name` heading of docs/diagnostics.md, an error or warning
//! snippet must report CODE and a ```plan snippet (the fix) must not.

use std::path::{Path, PathBuf};

use plan_runner::analysis::{Analysis, analyse};
use plan_runner::diagnostic::Code;
use plan_runner::diagnostic::human::{self, Style};
use plan_runner::plan::{Action, Check, Command, Sql};
use plan_runner::resolve::Context;
use plan_runner::source::Source;

use crate::support::plan;

/// Codes the analysis does not report yet: `plan lint` will (issue 4).
/// A snippet for such a code is still checked for the rest; once the code
/// is reported, the test below asks for it to leave this list.
const PENDING: &[Code] = &[];

#[derive(Debug)]
struct Snippet {
    doc: PathBuf,
    /// 1-based line of the opening fence.
    line: usize,
    tag: String,
    /// The last `## ` heading above the snippet.
    section: String,
    text: String,
}

impl Snippet {
    fn at(&self) -> String {
        format!("{}:{}", self.doc.display(), self.line)
    }

    /// The code a `## E004 unknown-step-kind` heading is about.
    fn code(&self) -> Option<Code> {
        self.section.split_whitespace().next().and_then(Code::parse)
    }

    /// Analysed as if it were a file of plans/, so that the files it names
    /// (`migrate/5.0.0-6.0.0/pre.py`) are the real example files.
    fn analyse(&self) -> Analysis {
        let mut analysis = analyse(
            Source::new(repo().join("plans/docs-snippet.plan"), self.text.as_str()),
            &Context::default(),
        );
        // What `plan lint` reports: the language's errors and the rules.
        analysis.diagnostics = plan_runner::lint::lint(&analysis).diagnostics;
        analysis
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every fenced block of every Markdown file in docs/, but lints.md: its
/// bad and fixed examples are checked rule by rule by `lint_docs`.
fn snippets() -> Vec<Snippet> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("a readable docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .filter(|p| p.file_name().is_none_or(|n| n != "lints.md"))
        .collect();
    docs.sort();
    let mut out = Vec::new();
    for doc in docs {
        out.extend(fences(&doc, &read(&doc)));
    }
    out
}

fn fences(doc: &Path, text: &str) -> Vec<Snippet> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut open: Option<(usize, String, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut open {
            Some((start, tag, body)) => {
                if line.trim_end() == "```" {
                    out.push(Snippet {
                        doc: doc.strip_prefix(repo()).unwrap_or(doc).to_path_buf(),
                        line: *start,
                        tag: std::mem::take(tag),
                        section: section.clone(),
                        text: std::mem::take(body),
                    });
                    open = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
            None => {
                if let Some(tag) = line.strip_prefix("```") {
                    open = Some((n + 1, tag.trim().to_string(), String::new()));
                } else if let Some(heading) = line.strip_prefix("## ") {
                    section = heading.trim().to_string();
                }
            }
        }
    }
    assert!(open.is_none(), "{}: a fence is never closed", doc.display());
    out
}

fn rendered(analysis: &Analysis) -> String {
    analysis
        .diagnostics
        .iter()
        .map(|d| human::render(d, &analysis.source, Style::plain(), false))
        .collect()
}

fn reports(analysis: &Analysis, code: Code) -> bool {
    analysis.diagnostics.iter().any(|d| d.code == code)
}

#[test]
fn plan_snippets_give_no_error() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for s in snippets()
        .iter()
        .filter(|s| ["plan", "plan-warning", "plan-unformatted"].contains(&s.tag.as_str()))
    {
        checked += 1;
        let analysis = s.analyse();
        if analysis.has_errors() {
            failures.push(format!("{} ({}):\n{}", s.at(), s.tag, rendered(&analysis)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The language reference alone has dozens: a broken fence parser must
    // not make this test pass by finding none.
    assert!(checked >= 40, "only {checked} plan snippets found");
}

/// `plan fmt`'s layout of a snippet; `None` when it does not parse.
fn formatted(text: &str) -> Option<String> {
    let source = Source::new("snippet.plan", text);
    let parsed = plan_runner::parse::parse(&source);
    parsed
        .diagnostics
        .is_empty()
        .then(|| plan_runner::fmt::format(&parsed.file, &source))
}

fn diff(old: &str, new: &str, headers: (&str, &str)) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .header(headers.0, headers.1)
        .to_string()
}

const FMT: (&str, &str) = ("docs", "plan fmt");

#[test]
fn plan_snippets_are_laid_out_as_fmt_lays_them_out() {
    let mut failures = Vec::new();
    for s in snippets()
        .iter()
        .filter(|s| s.tag == "plan" || s.tag == "plan-warning")
    {
        // One that does not parse is reported by plan_snippets_give_no_error.
        if let Some(formatted) = formatted(&s.text)
            && formatted != s.text
        {
            failures.push(format!("{}:\n{}", s.at(), diff(&s.text, &formatted, FMT)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unformatted_snippets_become_the_plan_after_them() {
    let all = snippets();
    let mut checked = 0;
    for (n, s) in all.iter().enumerate() {
        if s.tag != "plan-unformatted" {
            continue;
        }
        checked += 1;
        let after = all[n + 1..]
            .iter()
            .find(|a| a.doc == s.doc && a.tag == "plan")
            .unwrap_or_else(|| panic!("{}: no ```plan follows it", s.at()));
        let formatted = formatted(&s.text).unwrap_or_else(|| panic!("{} does not parse", s.at()));
        assert_ne!(formatted, s.text, "{} is already formatted", s.at());
        assert!(
            formatted == after.text,
            "{}: plan fmt does not give {}:\n{}",
            s.at(),
            after.at(),
            diff(&after.text, &formatted, FMT)
        );
    }
    assert!(checked >= 1, "no plan-unformatted snippet found");
}

#[test]
fn error_snippets_give_an_error() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for s in snippets().iter().filter(|s| s.tag == "plan-error") {
        if s.code().is_some_and(|c| PENDING.contains(&c)) {
            continue;
        }
        checked += 1;
        if !s.analyse().has_errors() {
            failures.push(format!("{}: expected an error, got none", s.at()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 28, "only {checked} plan-error snippets found");
}

#[test]
fn diagnostic_sections_show_their_own_code() {
    let mut failures = Vec::new();
    let mut newly_reported = Vec::new();
    for s in snippets() {
        let Some(code) = s.code() else { continue };
        let analysis = s.analyse();
        let found = reports(&analysis, code);
        let shows_the_problem = s.tag == "plan-error" || s.tag == "plan-warning";
        if PENDING.contains(&code) {
            if shows_the_problem && found {
                newly_reported.push(code.as_str());
            }
        } else if shows_the_problem && !found {
            failures.push(format!(
                "{} does not report {code}; it reports:\n{}",
                s.at(),
                rendered(&analysis)
            ));
        } else if s.tag == "plan" && found {
            failures.push(format!(
                "{}: the fix still reports {code}:\n{}",
                s.at(),
                rendered(&analysis)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        newly_reported.is_empty(),
        "now reported, remove from PENDING: {newly_reported:?}"
    );
}

#[test]
fn the_whole_plan_in_language_md_is_the_example_file() {
    let doc = repo().join("docs/language.md");
    let snippets = fences(&doc, &read(&doc));
    let shown = snippets
        .iter()
        .find(|s| s.section == "A whole plan" && s.tag == "plan")
        .expect("docs/language.md shows a whole plan");
    let file = read(&repo().join("plans/openerp-5.0.0-to-6.0.0.plan"));
    assert!(
        shown.text == file,
        "{} differs from plans/openerp-5.0.0-to-6.0.0.plan:\n{}",
        shown.at(),
        diff(&shown.text, &file, ("docs", "plans"))
    );
}

#[test]
fn every_code_has_its_section() {
    let text = read(&repo().join("docs/diagnostics.md"));
    let headings: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(str::trim)
        .collect();
    for code in Code::ALL {
        let heading = format!("{} {}", code.as_str(), code.name());
        assert!(
            headings.contains(&heading.as_str()),
            "docs/diagnostics.md has no `## {heading}`"
        );
    }
    // And no section for a code that does not exist.
    for heading in &headings {
        let first = heading.split_whitespace().next().unwrap_or("");
        let looks_like_code = first.len() == 4
            && first.starts_with(['E', 'W'])
            && first[1..].bytes().all(|b| b.is_ascii_digit());
        if looks_like_code {
            assert!(
                Code::parse(first).is_some(),
                "docs/diagnostics.md documents `{first}`, which is not a code"
            );
        }
    }
}

/// Every `*.plan` below plans/.
fn example_plans() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("a readable folder") {
            let path = entry.expect("a readable entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "plan") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join("plans"), &mut out);
    out.sort();
    out
}

#[test]
fn example_plans_give_no_error() {
    let plans = example_plans();
    assert!(plans.len() >= 3, "plans/ holds {} plans", plans.len());
    for path in plans {
        let analysis = analyse(Source::new(&path, read(&path)), &Context::default());
        assert!(
            !analysis.has_errors(),
            "{}:\n{}",
            path.display(),
            rendered(&analysis)
        );
    }
}

/// Until `plan lint` reports missing files (issue 4): the SQL files and the
/// relative script paths an example plan runs must be there.
#[test]
fn example_plans_name_files_that_exist() {
    let script = |arg: &str| {
        !arg.starts_with('/') && [".py", ".sh", ".sql"].iter().any(|ext| arg.ends_with(ext))
    };
    let mut named = 0;
    for path in example_plans() {
        let analysis = analyse(Source::new(&path, read(&path)), &Context::default());
        let plan = analysis.plan.expect("the plan resolves");
        for step in plan.steps.iter().chain(&plan.on_failure) {
            let mut files = Vec::new();
            let argv = match &step.action {
                Action::Sql(Sql::File(file)) => {
                    files.push(file.to_string());
                    None
                }
                Action::Command(Command::Argv(argv))
                | Action::Update {
                    command: Command::Argv(argv),
                    ..
                }
                | Action::Check(Check::Command(Command::Argv(argv))) => Some(argv),
                _ => None,
            };
            files.extend(
                argv.into_iter()
                    .flatten()
                    .map(ToString::to_string)
                    .filter(|a| script(a)),
            );
            for file in files {
                named += 1;
                assert!(
                    plan.folder.join(&file).is_file(),
                    "{}: step `{}` names `{file}`, which does not exist",
                    path.display(),
                    step.name
                );
            }
        }
    }
    assert!(named >= 8, "only {named} files named by the example plans");
}

/// The text of the first fence tagged `tag` after the heading `heading`.
fn fence_after<'a>(snippets: &'a [Snippet], heading: &str, tag: &str) -> &'a Snippet {
    snippets
        .iter()
        .find(|s| s.section == heading && s.tag == tag)
        .unwrap_or_else(|| panic!("docs/cli.md has no ```{tag} under `## {heading}`"))
}

#[test]
fn show_document_in_cli_md_is_what_show_prints() {
    let cli = repo().join("docs/cli.md");
    let snippets = fences(&cli, &read(&cli));
    let heading = "The `show` document";
    let example = fence_after(&snippets, heading, "plan");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("example.plan");
    std::fs::write(&path, &example.text).expect("the example is written");
    for (format, tag) in [("json", "json"), ("yaml", "yaml")] {
        let shown = plan()
            .args(["show", "--format", format])
            .arg(&path)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let shown = String::from_utf8(shown).expect("UTF-8 output");
        let documented = &fence_after(&snippets, heading, tag).text;
        assert!(
            &shown == documented,
            "docs/cli.md's {format} example is not what `plan show` prints:\n{}",
            diff(documented, &shown, ("docs/cli.md", "plan show"))
        );
    }
}

#[test]
fn every_flag_in_help_is_in_cli_md() {
    let cli = read(&repo().join("docs/cli.md"));
    for command in [
        "lint", "fmt", "show", "graph", "apply", "status", "backups", "recover",
    ] {
        let help = plan()
            .args([command, "--help"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let help = String::from_utf8(help).expect("UTF-8 help");
        let flags: Vec<&str> = help
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2 && *w != "--help")
            .collect();
        assert!(!flags.is_empty(), "`plan {command} --help` shows no flag");
        for flag in flags {
            assert!(
                cli.contains(&format!("`{flag}")),
                "docs/cli.md does not mention `{flag}` of `plan {command}`"
            );
        }
    }
}
