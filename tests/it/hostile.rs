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
