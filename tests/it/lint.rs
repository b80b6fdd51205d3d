//! `plan lint` as a reviewer and a CI job run it: formats, exit codes,
//! several files, the example plans, and SARIF against the official schema
//! (tests/fixtures/sarif-schema-2.1.0.json, the OASIS 2.1.0 schema as the
//! serde-sarif crate ships it).

use std::path::Path;

use serde_json::Value;

use crate::support::plan;

/// A throwaway folder of plan files, and `plan` run inside it.
struct Folder {
    dir: tempfile::TempDir,
}

impl Folder {
    fn new() -> Self {
        Folder {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    fn file(self, name: &str, text: &str) -> Self {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folders");
        }
        std::fs::write(path, text).expect("write a plan");
        self
    }

    fn lint(&self, args: &[&str]) -> Run {
        let output = plan()
            .current_dir(self.dir.path())
            .arg("lint")
            .args(args)
            .output()
            .expect("plan runs");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

const CLEAN: &str = r#"plan "acme" {
  from = "5.0"
  to   = "6.0"
  update_command = "openerp-server -d ${db} -u ${modules} --stop-after-init"
}

stop down {
  run = "systemctl stop openerp-5.0"
}

backup before {
  after = down
}

update all {
  after   = before
  modules = "all"
  timeout = "2h"
}

check settled {
  after  = all
  sql    = "select count(*) from ir_module_module where state like 'to %'"
  expect = "0"
}

on_failure {
  start up {
    run = "systemctl start openerp-5.0"
  }
}
"#;

/// The clean plan with its `timeout` dropped: one warning (W105).
fn warning_only() -> String {
    CLEAN.replace("  timeout = \"2h\"\n", "")
}

/// One error (E009) and nothing else.
fn with_error() -> String {
    CLEAN.replace("after  = all", "after  = al")
}

#[test]
fn every_example_plan_lints_clean() {
    let output = plan()
        .args(["lint", "--format", "json", "plans/"])
        .output()
        .expect("plan runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(stdout, "[]\n", "plans/ must lint without a finding");
    let plans = std::fs::read_dir("plans").expect("plans/ exists").count();
    assert!(plans > 0);
}

#[test]
fn warnings_alone_exit_0_and_deny_makes_them_fail() {
    let folder = Folder::new().file("a.plan", &warning_only());
    let run = folder.lint(&["a.plan"]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(run.stdout.contains("W105(missing-timeout)"));
    assert!(
        run.stdout
            .ends_with("1 file checked: 0 errors, 1 warning\n")
    );
    let denied = folder.lint(&["--deny", "warnings", "a.plan"]);
    assert_eq!(denied.code, Some(1));
    assert!(denied.stdout.ends_with("(denied)\n"), "{}", denied.stdout);
    // JSON keeps the finding's own severity; only the exit changes.
    let json = folder.lint(&["--deny", "warnings", "--format", "json", "a.plan"]);
    assert_eq!(json.code, Some(1));
    assert_eq!(json.json()[0]["severity"], "warning");
}

#[test]
fn errors_exit_1() {
    let run = Folder::new()
        .file("a.plan", &with_error())
        .lint(&["a.plan"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.contains("E009(unknown-after)"), "{}", run.stdout);
}

/// The clean plan with its update no longer waiting for the backup: one
/// warning, W101, the one `plan apply` refuses.
fn unprotected() -> String {
    CLEAN.replace(
        "update all {\n  after   = before\n",
        "update all {\n  after   = down\n",
    )
}

#[test]
fn a_warning_that_apply_refuses_fails_lint() {
    let folder = Folder::new().file("a.plan", &unprotected());
    let run = folder.lint(&["a.plan"]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stdout.contains("W101(missing-backup)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .ends_with("1 file checked: 0 errors, 1 warning; 1 warning blocks `plan apply`\n"),
        "{}",
        run.stdout
    );
    let json = folder.lint(&["--format", "json", "a.plan"]);
    assert_eq!(json.code, Some(1));
    assert_eq!(json.json()[0]["severity"], "warning");
    assert_eq!(json.json()[0]["blocks_apply"], true);
    let sarif = folder.lint(&["--format", "sarif", "a.plan"]);
    assert_eq!(sarif.code, Some(1));
}

#[test]
fn a_silenced_missing_backup_passes_lint_as_it_passes_apply() {
    let text = unprotected().replace(
        "update all {",
        "# lint: allow(missing-backup) the host snapshots the disk first\nupdate all {",
    );
    let run = Folder::new().file("a.plan", &text).lint(&["a.plan"]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
}

/// `plan lint` fails exactly on the plans `plan apply` refuses before it
/// connects anywhere: the two ask the same function.
#[test]
fn lint_fails_exactly_where_apply_refuses() {
    let plans = [
        ("clean", CLEAN.to_string()),
        ("warning", warning_only()),
        ("error", with_error()),
        ("unprotected", unprotected()),
    ];
    for (name, text) in plans {
        let folder = Folder::new().file("a.plan", &text);
        let lint = folder.lint(&["a.plan"]);
        let state = folder.dir.path().join("state");
        let apply = crate::support::plan_process()
            .current_dir(folder.dir.path())
            // No server there: a plan apply accepts fails to connect, later.
            .env("PGHOST", folder.dir.path().join("no-server"))
            .args(["apply", "--database", "acme", "--state-dir"])
            .arg(&state)
            .arg("a.plan")
            .output()
            .expect("plan runs");
        let stderr = String::from_utf8_lossy(&apply.stderr);
        let refused = stderr.contains("nothing was run: fix the plan first");
        assert_eq!(
            lint.code == Some(1),
            refused,
            "{name}: lint exits {:?}, apply says:\n{stderr}",
            lint.code
        );
        if refused {
            assert_eq!(apply.status.code(), Some(1), "{name}: {stderr}");
        }
    }
}

#[test]
fn usage_errors_exit_2() {
    let folder = Folder::new().file("a.plan", CLEAN);
    let missing = folder.lint(&["a.plan", "nope.plan"]);
    assert_eq!(missing.code, Some(2));
    assert!(
        missing.stderr.contains("`nope.plan` does not exist"),
        "{}",
        missing.stderr
    );
    assert_eq!(folder.lint(&["--format", "xml", "a.plan"]).code, Some(2));
    assert_eq!(folder.lint(&["--deny", "errors", "a.plan"]).code, Some(2));
    assert_eq!(folder.lint(&["--frobnicate", "a.plan"]).code, Some(2));
    assert_eq!(folder.lint(&[]).code, Some(2), "no path at all");
}

#[test]
fn folders_are_searched_and_every_file_reported_with_one_summary() {
    let folder = Folder::new()
        .file("plans/a.plan", &warning_only())
        .file("plans/nested/b.plan", &with_error())
        // A folder of its own: b.plan migrates the same pair, and two
        // plans for one pair in a folder are an error (E040).
        .file("plans/nested/other/c.plan", CLEAN)
        .file("plans/notes.txt", "not a plan");
    let run = folder.lint(&["plans"]);
    assert_eq!(run.code, Some(1));
    let a = run
        .stdout
        .find("plans/a.plan:15:8")
        .expect("a.plan's finding");
    let b = run
        .stdout
        .find("plans/nested/b.plan:22:12")
        .expect("b.plan's finding");
    assert!(a < b, "files in path order");
    assert!(
        run.stdout
            .ends_with("3 files checked: 1 error, 1 warning\n"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.matches("files checked").count(), 1);
}

#[test]
fn json_has_one_object_per_finding_with_the_documented_keys() {
    let folder = Folder::new()
        .file("a.plan", &warning_only())
        .file("b.plan", &with_error());
    let run = folder.lint(&["--format", "json", "a.plan", "b.plan"]);
    assert_eq!(run.code, Some(1));
    let findings = run.json();
    let findings = findings.as_array().expect("an array");
    assert_eq!(findings.len(), 2);
    for f in findings {
        let mut keys: Vec<&str> = f
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "blocks_apply",
                "code",
                "column",
                "end_column",
                "end_line",
                "file",
                "help",
                "line",
                "message",
                "severity"
            ]
        );
    }
    assert_eq!(findings[0]["file"], "a.plan");
    assert_eq!(findings[0]["code"], "W105");
    assert_eq!(findings[1]["file"], "b.plan");
    assert_eq!(findings[1]["severity"], "error");
    assert_eq!(findings[0]["blocks_apply"], false);
    assert_eq!(findings[1]["blocks_apply"], true);
    assert_eq!(
        (&findings[1]["line"], &findings[1]["column"]),
        (&Value::from(22), &Value::from(12))
    );
}

#[test]
fn suppressions_show_in_the_summary() {
    let text = warning_only().replace(
        "update all {",
        "# lint: allow(W105) the vendor's update has its own watchdog\nupdate all {",
    );
    let run = Folder::new().file("a.plan", &text).lint(&["a.plan"]);
    assert_eq!(run.code, Some(0));
    assert_eq!(
        run.stdout,
        "1 file checked: 0 errors, 0 warnings; 1 finding allowed by `# lint: allow`\n"
    );
}

/// The official schema's pattern for `language` (BCP 47 tags) has a stray
/// `]` that strict regex engines refuse, so the validator would reject the
/// schema itself. Our logs never set `language`; the pattern is dropped
/// before compiling, and everything else is checked as published.
const BROKEN_LANGUAGE_PATTERN: &str = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";

fn drop_broken_pattern(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("pattern").and_then(Value::as_str) == Some(BROKEN_LANGUAGE_PATTERN) {
                map.remove("pattern");
            }
            map.values_mut().for_each(drop_broken_pattern);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_broken_pattern),
        _ => {}
    }
}

fn sarif_validator() -> jsonschema::Validator {
    let mut schema: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new("tests/fixtures/sarif-schema-2.1.0.json"))
            .expect("the SARIF schema fixture"),
    )
    .expect("the schema is JSON");
    let before = schema.to_string().len();
    drop_broken_pattern(&mut schema);
    assert!(
        schema.to_string().len() < before,
        "the known flaw is still there"
    );
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

fn assert_valid(validator: &jsonschema::Validator, log: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(log)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn sarif_is_valid_against_the_official_schema() {
    let folder = Folder::new()
        .file("a.plan", &warning_only())
        .file("b b.plan", &with_error())
        .file(
            "c.plan",
            // Several labels (related locations), a non-ASCII column.
            &CLEAN.replace("check settled", "check all").replace(
                "stop down {",
                "stop down {\n  description = \"arrêt « password=x »\"",
            ),
        );
    let run = folder.lint(&["--format", "sarif", "a.plan", "b b.plan", "c.plan"]);
    assert_eq!(run.code, Some(1));
    let log = run.json();
    let validator = sarif_validator();
    assert_valid(&validator, &log);
    let sarif_run = &log["runs"][0];
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(sarif_run["columnKind"], "unicodeCodePoints");
    let results = sarif_run["results"].as_array().expect("results");
    assert!(results.len() >= 3, "{results:#?}");
    assert_eq!(
        results[1]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "b%20b.plan"
    );
    let rules = sarif_run["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules");
    let w101 = rules
        .iter()
        .find(|r| r["id"] == "W101")
        .expect("every code is a rule");
    assert_eq!(w101["name"], "missing-backup");
    assert!(w101["shortDescription"]["text"].is_string());
}

#[test]
fn sarif_with_documentation_links_is_valid_too() {
    // The binary links the docs only when the package names its
    // repository; the log with links must be as valid as the one without.
    let source = plan_runner::source::Source::new("a.plan", warning_only());
    let analysis =
        plan_runner::analysis::analyse(source, &plan_runner::resolve::Context::default());
    let report = plan_runner::lint::lint(&analysis);
    let text = plan_runner::lint::output::sarif::render(
        &[report],
        Some("https://example.org/plan-runner/blob/main/"),
    );
    let log: Value = serde_json::from_str(&text).expect("JSON");
    assert_valid(&sarif_validator(), &log);
    let rules = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules");
    let w105 = rules.iter().find(|r| r["id"] == "W105").expect("W105");
    assert_eq!(
        w105["helpUri"],
        "https://example.org/plan-runner/blob/main/docs/lints.md#w105-missing-timeout"
    );
}

#[test]
fn a_broken_sarif_log_is_rejected_by_the_validator() {
    // The schema check can fail: a log without `version` does.
    let log = serde_json::json!({ "runs": [] });
    assert!(!sarif_validator().is_valid(&log));
    let log = serde_json::json!({ "version": "2.1.0", "runs": [{ "tool": { "driver": { "name": "plan", "informationUri": "not a uri" } } }] });
    assert!(!sarif_validator().is_valid(&log), "formats are checked");
    // Why the binary names no `helpUri` without a repository: SARIF wants
    // an absolute URI there, and a path in the repository is not one.
    let rule = serde_json::json!({ "id": "W101", "helpUri": "docs/lints.md#w101-missing-backup" });
    let log = serde_json::json!({ "version": "2.1.0", "runs": [{ "tool": { "driver": { "name": "plan", "rules": [rule] } } }] });
    assert!(
        !sarif_validator().is_valid(&log),
        "a relative helpUri is invalid"
    );
}
