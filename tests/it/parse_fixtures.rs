//! The parser fixtures: every plan under `tests/fixtures/parse/ok` must give
//! no diagnostic at all, every plan under `tests/fixtures/parse/err` at
//! least one error, and what the user then sees is snapshotted, one
//! snapshot per file. Inputs too large to commit are generated here.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

use plan_runner::analysis::{Analysis, analyse, analyse_path};
use plan_runner::ast::{File, Item};
use plan_runner::diagnostic::human::{Style, render};
use plan_runner::resolve::Context;
use plan_runner::source::Source;

const OK: &str = "tests/fixtures/parse/ok";
const ERR: &str = "tests/fixtures/parse/err";

/// The fixture files of a folder, sorted, as paths relative to the crate
/// (the tests run there), so that snapshots do not depend on the machine.
fn fixtures(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("cannot list {folder}: {e}"))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "plan"))
        .collect();
    files.sort();
    files
}

fn analyse_file(path: &Path) -> Analysis {
    analyse_path(path, &Context::default())
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Exactly what `plan lint` prints for the file's findings, without colour.
fn rendered(analysis: &Analysis) -> String {
    analysis
        .diagnostics
        .iter()
        .map(|d| render(d, &analysis.source, Style::plain(), false))
        .collect()
}

/// Names of grammar rules that are not also words of the language: none of
/// them may ever reach a user.
fn internal_rule_names() -> Vec<String> {
    let grammar = std::fs::read_to_string("grammar/plan.pest").expect("the grammar");
    let words_of_the_language = [
        "file",
        "item",
        "step",
        "attr",
        "expr",
        "value",
        "scalar",
        "list",
        "map",
        "string",
        "number",
        "boolean",
        "word",
        "on_failure",
        "equals",
        "comma",
    ];
    grammar
        .lines()
        .filter_map(|line| line.split_once(" = ").map(|(name, _)| name.trim()))
        .filter(|name| !name.is_empty() && !name.contains(' ') && !name.starts_with("//"))
        .filter(|name| !words_of_the_language.contains(name))
        .map(str::to_string)
        .chain(["SOI", "EOI"].map(String::from))
        .collect()
}

fn assert_partner_words(name: &str, text: &str) {
    for rule in internal_rule_names() {
        let leaked = text
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == rule);
        assert!(!leaked, "{name}: the grammar rule `{rule}` shows:\n{text}");
    }
}

#[test]
fn grammar_rule_names_are_found() {
    // The check above is only worth something if it knows the rules.
    let rules = internal_rule_names();
    for rule in ["plan_block", "string_body", "kw_var", "rbrace"] {
        assert!(rules.iter().any(|r| r == rule), "{rule} missing: {rules:?}");
    }
}

#[test]
fn valid_plans_give_no_diagnostic() {
    let files = fixtures(OK);
    assert!(files.len() >= 5, "too few ok fixtures: {files:?}");
    for path in files {
        let analysis = analyse_file(&path);
        assert!(
            analysis.diagnostics.is_empty(),
            "{} should be clean, got:\n{}",
            path.display(),
            rendered(&analysis)
        );
        assert!(analysis.plan.is_some(), "{}: no plan", path.display());
    }
}

#[test]
fn broken_plans_are_reported_as_a_partner_would_want() {
    let files = fixtures(ERR);
    assert!(
        files.len() >= 25,
        "issue 3 asks for at least 25 kinds of mistake, found {}",
        files.len()
    );
    for path in files {
        let analysis = analyse_file(&path);
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 file name");
        assert!(
            analysis.has_errors(),
            "{} should have an error, got:\n{}",
            path.display(),
            rendered(&analysis)
        );
        let text = rendered(&analysis);
        assert_partner_words(name, &text);
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn every_error_in_separate_blocks_is_reported() {
    // The line of each finding, and the steps that are still read.
    let cases: [(&str, &[usize], &[&str]); 4] = [
        ("two_errors_two_blocks", &[7, 12], &["up", "!old_up"]),
        ("two_broken_steps", &[9, 15, 21], &["pre", "!old_server_up"]),
        (
            "stray_line_between_blocks",
            &[11, 20],
            &["down", "before", "!up"],
        ),
        ("two_broken_failure_steps", &[14, 23], &["down", "!up"]),
    ];
    for (name, lines, steps) in cases {
        let analysis = analyse_file(Path::new(&format!("{ERR}/{name}.plan")));
        let found: Vec<usize> = analysis
            .diagnostics
            .iter()
            .map(|d| analysis.source.line_col(d.primary.span.start).line)
            .collect();
        assert_eq!(found, lines, "{name}:\n{}", rendered(&analysis));
        assert_eq!(step_names(&analysis.ast), steps, "{name}");
    }
}

/// The binary on a file with two broken steps: `plan lint` shows both
/// errors, and the finding in the step between them, and exits 1; `plan
/// apply` refuses the file before it looks for the database.
#[test]
fn lint_shows_every_syntax_error_and_apply_refuses_the_file() {
    let path = format!("{ERR}/two_broken_steps.plan");
    let plan = |args: &[&str]| {
        Command::cargo_bin("plan")
            .expect("the plan binary is built")
            .args(args)
            .arg(&path)
            .output()
            .expect("plan runs")
    };
    let lint = plan(&["lint"]);
    let stdout = String::from_utf8_lossy(&lint.stdout);
    assert_eq!(lint.status.code(), Some(1), "{stdout}");
    for at in [":9:7]", ":15:13]", ":21:42]"] {
        assert!(stdout.contains(at), "{at} missing:\n{stdout}");
    }
    assert!(
        stdout.ends_with("1 file checked: 3 errors, 0 warnings\n"),
        "{stdout}"
    );

    let apply = plan(&["apply", "--database", "never_reached"]);
    let stderr = String::from_utf8_lossy(&apply.stderr);
    assert_eq!(apply.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(":9:7]") && stderr.contains(":21:42]"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was run"), "{stderr}");
}

/// The names of a file's steps, `on_failure` ones after a `!`.
fn step_names(file: &File) -> Vec<String> {
    let mut names = Vec::new();
    for item in &file.items {
        match item {
            Item::Step(s) => names.push(s.name.name.clone()),
            Item::OnFailure(o) => names.extend(o.steps.iter().map(|s| format!("!{}", s.name.name))),
            _ => {}
        }
    }
    names
}

#[test]
fn not_utf8_names_the_line_of_the_first_bad_byte() {
    let analysis = analyse_file(Path::new("tests/fixtures/parse/err/not_utf8.plan"));
    let first = analysis.diagnostics.first().expect("a diagnostic");
    assert_eq!(first.code.as_str(), "E022");
    assert_eq!(analysis.source.line_col(first.primary.span.start).line, 7);
}

#[test]
fn columns_count_characters() {
    // `é` takes two bytes; the bad escape is the 16th character of its line.
    let analysis = analyse_file(Path::new("tests/fixtures/parse/err/bad_escape.plan"));
    let d = analysis.diagnostics.first().expect("a diagnostic");
    let at = analysis.source.line_col(d.primary.span.start);
    assert_eq!((at.line, at.column), (7, 16));
    assert!(rendered(&analysis).contains("bad_escape.plan:7:16]"));
}

/// An absurd input generated here rather than committed: it must give a
/// located error, never a panic or a stack overflow, and a short report.
fn assert_absurd_input_is_refused_briefly(name: &str, text: String) -> String {
    let path = format!("tests/generated/{name}.plan");
    let analysis = analyse(Source::new(&path, text), &Context::default());
    assert!(analysis.has_errors(), "{name}: no error");
    let out = rendered(&analysis);
    for d in &analysis.diagnostics {
        let at = analysis.source.line_col(d.primary.span.start);
        assert!(
            out.contains(&format!("{path}:{at}")),
            "{name}: the report does not give the location {at}:\n{out}"
        );
    }
    assert!(
        out.len() < 3_000,
        "{name}: a {} byte report is not short",
        out.len()
    );
    assert_partner_words(name, &out);
    out
}

const HEADER: &str = "plan \"p\" {\n  from = \"5.0\"\n  to   = \"6.0\"\n}\n\n";

#[test]
fn a_multi_megabyte_line_is_reported_without_being_quoted() {
    let long = "x".repeat(2 * 1024 * 1024);
    // A mistake at the end of a huge, otherwise valid, line.
    let text = format!("{HEADER}stop down {{ run = \"{long}\" timout = \"1m\" }}\n");
    let out = assert_absurd_input_is_refused_briefly("huge_line", text);
    assert!(out.contains("the line is too long to show"), "{out}");
    insta::assert_snapshot!("huge_line", out);

    // A huge line that is not even syntax.
    let text = format!(
        "{HEADER}stop down {{\n  run = {}\n}}\n",
        "@".repeat(2 * 1024 * 1024)
    );
    let out = assert_absurd_input_is_refused_briefly("huge_junk_line", text);
    insta::assert_snapshot!("huge_junk_line", out);
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    for (name, open) in [
        ("nested_brackets", "["),
        ("nested_braces", "{"),
        ("nested_parens", "("),
    ] {
        let text = format!(
            "{HEADER}stop down {{\n  run = {}\n}}\n",
            open.repeat(50_000)
        );
        let out = assert_absurd_input_is_refused_briefly(name, text);
        insta::assert_snapshot!(name, out);
    }
}

/// Every prefix of a valid plan is a plan cut short: analysing it must
/// never panic, and every finding must point inside the text.
#[test]
fn every_prefix_of_a_valid_plan_is_handled() {
    let mut checked = 0;
    for path in fixtures(OK) {
        let text = std::fs::read_to_string(&path).expect("a fixture");
        for (cut, _) in text.char_indices().step_by(5) {
            let prefix = &text[..cut];
            let analysis = analyse(Source::new("cut.plan", prefix), &Context::default());
            for d in &analysis.diagnostics {
                assert!(
                    d.primary.span.start <= prefix.len(),
                    "{} cut at {cut}: {d:?}",
                    path.display()
                );
                let out = render(d, &analysis.source, Style::plain(), false);
                assert!(out.contains("cut.plan"), "{out}");
            }
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked}");
}
