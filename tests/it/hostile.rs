//! Hostile and odd input given to the real binary: each must get a
//! diagnostic or be read as meant, quickly, and never crash `plan`.

use std::path::Path;

use assert_cmd::Command;

/// What one run of `plan` gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn plan(dir: &Path, args: &[&str]) -> Run {
    let output = Command::cargo_bin("plan")
        .expect("the plan binary is built")
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("plan runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

const HEADER: &str = "plan \"t\" {\n  from = \"1.0\"\n  to   = \"2.0\"\n}\n";

#[test]
fn thousands_of_chained_variables_resolve() {
    // Each names the next: the first needs every other one. With one call
    // per level this aborted on a stack overflow (exit 134).
    let n = 8_000;
    let mut text = String::from(HEADER);
    for i in 0..n - 1 {
        text.push_str(&format!("var v{i} = \"${{v{}}}\"\n", i + 1));
    }
    text.push_str(&format!("var v{} = \"x\"\n", n - 1));
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("chain.plan"), text).expect("write the plan");
    let run = plan(dir.path(), &["lint", "chain.plan"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .ends_with("1 file checked: 0 errors, 0 warnings\n")
    );
}

/// A plan file in a new temporary folder.
fn folder_with(name: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join(name), text).expect("write the plan");
    dir
}

#[test]
fn two_hundred_kilobytes_of_unclosed_interpolations_are_one_diagnostic() {
    // 50,000 `${` and no `}`: each searched to the end of the string, which
    // took seconds; now one report says how many there are.
    let text = format!("{HEADER}var a = \"{}\"\n", "${x ".repeat(50_000));
    let dir = folder_with("a.plan", &text);
    let run = plan(dir.path(), &["lint", "a.plan"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.stdout.matches("E003(bad-string)").count(), 1);
    assert!(
        run.stdout.contains("`${` is not closed by `}`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("at a.plan:5:10 (the line is too long to show)"),
        "points at the first `${{`: {}",
        run.stdout
    );
}

/// A plan that lints clean and is laid out as `plan fmt` writes it.
const CLEAN: &str = r#"plan "acme" {
  from           = "5.0"
  to             = "6.0"
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
  sql    = "
    select count(*)
      from ir_module_module
     where state like 'to %'
  "
  expect = "0"
}

on_failure {
  start up {
    run = "systemctl start openerp-5.0"
  }
}
"#;

#[test]
fn a_byte_order_mark_is_read_as_nothing() {
    // What some Windows editors write first: it was an "invisible
    // character" error.
    let dir = folder_with("a.plan", &format!("\u{FEFF}{CLEAN}"));
    let run = plan(dir.path(), &["lint", "a.plan"]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    // Positions count from the first character a person sees.
    let untimed = CLEAN.replace("  timeout = \"2h\"\n", "");
    std::fs::write(dir.path().join("a.plan"), format!("\u{FEFF}{untimed}")).expect("write");
    let run = plan(dir.path(), &["lint", "--format", "json", "a.plan"]);
    assert!(run.stdout.contains("\"line\": 15,\n"), "{}", run.stdout);
    assert!(run.stdout.contains("\"column\": 8,\n"), "{}", run.stdout);
    // plan fmt keeps it, and has nothing else to change.
    std::fs::write(dir.path().join("a.plan"), format!("\u{FEFF}{CLEAN}")).expect("write");
    let check = plan(dir.path(), &["fmt", "--check", "a.plan"]);
    assert_eq!(check.code, Some(0), "{}{}", check.stdout, check.stderr);
    let messy = CLEAN.replace("  after   = before\n", "  after = before\n");
    std::fs::write(dir.path().join("a.plan"), format!("\u{FEFF}{messy}")).expect("write");
    let fmt = plan(dir.path(), &["fmt", "a.plan"]);
    assert_eq!(fmt.code, Some(0), "{}", fmt.stderr);
    let written = std::fs::read_to_string(dir.path().join("a.plan")).expect("read");
    assert_eq!(written, format!("\u{FEFF}{CLEAN}"));
}

#[test]
fn a_byte_order_mark_leaves_the_not_utf8_position_right() {
    let mut bytes = b"\xEF\xBB\xBFplan \"t\" {\n  from = \"1.0\"\xFF\n".to_vec();
    bytes.extend_from_slice(b"}\n");
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("a.plan"), bytes).expect("write");
    let run = plan(dir.path(), &["lint", "a.plan"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.contains("E022(not-utf8)"), "{}", run.stdout);
    assert!(run.stdout.contains("[a.plan:2:15]"), "{}", run.stdout);
}

#[test]
fn crlf_files_lint_and_keep_their_line_endings_through_fmt() {
    let crlf = CLEAN.replace('\n', "\r\n");
    let dir = folder_with("a.plan", &crlf);
    let run = plan(dir.path(), &["lint", "a.plan"]);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    // Formatted already: nothing to show (it showed the whole file).
    let check = plan(dir.path(), &["fmt", "--check", "a.plan"]);
    assert_eq!(check.code, Some(0), "{}", check.stdout);
    assert_eq!(check.stdout, "");
    // A change is written with the file's line endings.
    let messy = CLEAN
        .replace("  after   = before\n", "  after = before\n")
        .replace('\n', "\r\n");
    std::fs::write(dir.path().join("a.plan"), &messy).expect("write");
    let check = plan(dir.path(), &["fmt", "--check", "a.plan"]);
    assert_eq!(check.code, Some(1));
    assert_eq!(
        check.stdout.matches("\n-").count(),
        1,
        "one line changes: {}",
        check.stdout
    );
    let fmt = plan(dir.path(), &["fmt", "a.plan"]);
    assert_eq!(fmt.code, Some(0), "{}", fmt.stderr);
    let written = std::fs::read_to_string(dir.path().join("a.plan")).expect("read");
    assert_eq!(written, crlf);
}

#[test]
fn a_folder_without_plans_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::create_dir(dir.path().join("plans")).expect("a folder");
    std::fs::write(dir.path().join("plans/notes.txt"), "not a plan").expect("write");
    for command in ["lint", "fmt"] {
        let run = plan(dir.path(), &[command, "plans"]);
        assert_eq!(run.code, Some(2), "{command}: {}", run.stderr);
        assert!(
            run.stderr.contains("no `.plan` files in `plans`"),
            "{command}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("help:"), "{}", run.stderr);
    }
}

#[test]
fn a_fifo_named_like_a_plan_is_skipped_with_a_warning() {
    let dir = folder_with("a.plan", CLEAN);
    nix::unistd::mkfifo(
        &dir.path().join("pipe.plan"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("a FIFO");
    // Reading the FIFO would wait for a writer forever.
    let output = Command::cargo_bin("plan")
        .expect("the plan binary is built")
        .current_dir(dir.path())
        .args(["lint", "."])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("plan runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("warning: skipping `./pipe.plan`: not a regular file"),
        "{stderr}"
    );
    assert!(
        stdout.ends_with("1 file checked: 0 errors, 0 warnings\n"),
        "{stdout}"
    );
    // Alone, it leaves nothing to check.
    std::fs::remove_file(dir.path().join("a.plan")).expect("remove");
    let run = plan(dir.path(), &["lint", "."]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
}
