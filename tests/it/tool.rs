//! The commands around plans, run as a partner runs them: `new` writes a
//! plan that the real `plan lint`, `fmt --check` and `show` accept for
//! each flavor, and refuses what it must; `explain` prints the docs'
//! section for a code; `completions` and `man` describe every command.

use std::path::Path;

use clap::CommandFactory;
use plan_runner::cli::Cli;
use serde_json::Value;

use crate::support::plan;

/// What one run of `plan` gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(dir: &Path, args: &[&str]) -> Run {
    let output = plan()
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("plan runs");
    Run {
        code: output.status.code().expect("plan exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

fn commands() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

/// The update step's arguments, as `plan show` resolves them.
fn update_argv(dir: &Path, file: &str) -> Vec<String> {
    let shown = run(dir, &["show", "--format", "json", file]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let doc: Value = serde_json::from_str(&shown.stdout).expect("show's JSON");
    let steps = doc["steps"].as_array().expect("steps");
    let kinds: Vec<&str> = steps.iter().filter_map(|s| s["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "stop", "backup", "script", "update", "script", "check", "start"
        ],
        "the published procedure, in its order"
    );
    assert_eq!(doc["on_failure"][0]["kind"], "start");
    let update = steps
        .iter()
        .find(|s| s["kind"] == "update")
        .expect("update");
    update["argv"]
        .as_array()
        .expect("argv")
        .iter()
        .map(|a| a.as_str().expect("a string").to_string())
        .collect()
}

#[test]
fn new_writes_a_plan_that_lints_clean_for_each_flavor() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for flavor in ["openerp", "odoo", "openupgrade"] {
        let made = run(dir.path(), &["new", "16.0", "17.0", "--flavor", flavor]);
        assert_eq!(made.code, 0, "{flavor}: {}", made.stderr);
        let file = format!("{flavor}-16.0-to-17.0.plan");
        assert!(dir.path().join(&file).is_file(), "{flavor}: no {file}");
        assert!(
            made.stderr.contains(&format!("plan lint {file}")),
            "{}",
            made.stderr
        );

        let lint = run(dir.path(), &["lint", "--deny", "warnings", &file]);
        assert_eq!(lint.code, 0, "{flavor}: {}{}", lint.stdout, lint.stderr);
        assert!(
            lint.stdout.contains("1 file checked: 0 errors, 0 warnings"),
            "{flavor}: {}",
            lint.stdout
        );
        let fmt = run(dir.path(), &["fmt", "--check", &file]);
        assert_eq!((fmt.code, fmt.stdout.as_str()), (0, ""), "{flavor}");

        let argv = update_argv(dir.path(), &file);
        let has = |arg: &str| argv.iter().any(|a| a == arg);
        assert!(has("--update=all") && has("--stop-after-init"), "{argv:?}");
        match flavor {
            "openerp" => assert_eq!(argv[0], "/opt/openerp-17.0/bin/openerp-server"),
            "odoo" => {
                // The server reads the copy of the configuration the run
                // derives, with the target's connection (`erp_config`).
                assert_eq!(argv[..3], ["/opt/odoo-17.0/odoo-bin", "-c", "<erp_config>"]);
                assert!(!argv.iter().any(|a| a.contains("openupgrade")), "{argv:?}");
            }
            _ => {
                assert_eq!(argv[0], "/opt/odoo-17.0/odoo-bin");
                assert!(has("--load=base,web,openupgrade_framework"), "{argv:?}");
                assert!(
                    has("--upgrade-path=/opt/openupgrade-17.0/openupgrade_scripts/scripts"),
                    "{argv:?}"
                );
            }
        }
    }
}

#[test]
fn new_picks_the_flavor_by_release_and_prints_with_dash() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let old = run(dir.path(), &["new", "5.0.0", "6.0.0"]);
    assert_eq!(old.code, 0, "{}", old.stderr);
    assert!(dir.path().join("openerp-5.0.0-to-6.0.0.plan").is_file());

    let printed = run(dir.path(), &["new", "16.0", "17.0", "-o", "-"]);
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    assert!(
        printed.stdout.contains("plan \"odoo 16.0 to 17.0\" {"),
        "{}",
        printed.stdout
    );
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("the folder")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert_eq!(
        files,
        ["openerp-5.0.0-to-6.0.0.plan"],
        "`-o -` wrote a file"
    );
}

#[test]
fn new_refuses_an_existing_file_unless_forced() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("mine.plan");
    std::fs::write(&path, "# a partner's own plan\n").expect("write");

    let refused = run(dir.path(), &["new", "16.0", "17.0", "-o", "mine.plan"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("`mine.plan` exists already"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "# a partner's own plan\n"
    );

    let forced = run(
        dir.path(),
        &["new", "16.0", "17.0", "-o", "mine.plan", "--force"],
    );
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains("from = \"16.0\""), "{text}");
}

#[test]
fn new_refuses_releases_that_are_not_a_step_up() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let bad = run(dir.path(), &["new", "5.x", "6.0"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("`5.x` is not a release"),
        "{}",
        bad.stderr
    );
    let bad = run(dir.path(), &["new", "16.0", "v17"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("`v17` is not a release"),
        "{}",
        bad.stderr
    );
    for (from, to) in [("17.0", "16.0"), ("6.0", "6.0.0")] {
        let out = run(dir.path(), &["new", from, to]);
        assert_eq!(out.code, 2, "{from} {to}");
        assert!(
            out.stderr.contains("plan::new::release_order"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains(&format!("`{from}` is not before `{to}`")),
            "{}",
            out.stderr
        );
    }
    let left = std::fs::read_dir(dir.path()).expect("the folder").count();
    assert_eq!(left, 0, "a refused `plan new` wrote a file");
}

fn section_of(page: &str, heading: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(page),
    )
    .expect("the page");
    let start = text.find(&format!("\n{heading}\n")).expect("the heading") + 1;
    let end = text[start + 1..]
        .find("\n## ")
        .map_or(text.len(), |e| start + 1 + e);
    text[start..end].trim_end().to_string()
}

#[test]
fn explain_prints_the_section_of_the_docs() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = run(dir.path(), &["explain", "plan::unknown_var"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim_end(),
        section_of("diagnostics.md", "## plan::unknown_var")
    );
    assert_eq!(
        run(dir.path(), &["explain", "unknown_var"]).stdout,
        out.stdout
    );

    let rule = run(dir.path(), &["explain", "W105"]);
    assert_eq!(rule.code, 0, "{}", rule.stderr);
    assert_eq!(
        rule.stdout.trim_end(),
        section_of("lints.md", "## W105 missing-timeout")
    );
    assert_eq!(
        run(dir.path(), &["explain", "missing-timeout"]).stdout,
        rule.stdout
    );
}

#[test]
fn explain_suggests_a_near_code_for_an_unknown_one() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = run(dir.path(), &["explain", "plan::misssing_value"]);
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains("plan::explain::unknown_code"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `plan::missing_value`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn bash_completes_every_command() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = run(dir.path(), &["completions", "bash"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for command in commands() {
        assert!(
            out.stdout.contains(&format!("plan,{command})")),
            "the bash completion does not know `{command}`"
        );
    }
    // Loaded into a real bash, it completes a command and a flag's values.
    let script = dir.path().join("plan.bash");
    std::fs::write(&script, &out.stdout).expect("write the script");
    let completed = std::process::Command::new("bash")
        .arg("-c")
        .arg(
            r#"source "$1"
               COMP_WORDS=(plan expl); COMP_CWORD=1; _plan plan expl plan; echo "${COMPREPLY[@]}"
               COMP_WORDS=(plan new 1 2 --flavor ''); COMP_CWORD=5; _plan plan '' --flavor
               echo "${COMPREPLY[@]}""#,
        )
        .arg("bash")
        .arg(&script)
        .output()
        .expect("bash runs");
    assert!(completed.status.success(), "{completed:?}");
    assert_eq!(
        String::from_utf8_lossy(&completed.stdout),
        "explain\nopenerp odoo openupgrade\n"
    );
}

#[test]
fn zsh_and_fish_completions_name_every_command() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for shell in ["zsh", "fish"] {
        let out = run(dir.path(), &["completions", shell]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        for command in commands() {
            let said = match shell {
                "zsh" => format!("'{command}:"),
                _ => format!("-a \"{command}\""),
            };
            assert!(out.stdout.contains(&said), "{shell}: no `{said}`");
        }
    }
}

#[test]
fn the_man_page_has_a_name_and_every_command() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = run(dir.path(), &["man"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(".TH plan 1"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("\n.SH NAME\nplan \\- Run ERP version migrations")
    );
    assert!(out.stdout.contains(".SH SUBCOMMANDS"), "{}", out.stdout);
    for command in commands() {
        assert!(
            out.stdout.contains(&format!("plan\\-{command}(1)")),
            "plan(1) does not list `{command}`"
        );
    }

    let pages = dir.path().join("man1");
    std::fs::create_dir(&pages).expect("a folder");
    let written = run(dir.path(), &["man", "--dir", "man1"]);
    assert_eq!(written.code, 0, "{}", written.stderr);
    assert_eq!(
        std::fs::read_to_string(pages.join("plan.1")).expect("plan.1"),
        out.stdout
    );
    for command in commands() {
        let page = std::fs::read_to_string(pages.join(format!("plan-{command}.1")))
            .unwrap_or_else(|e| panic!("plan-{command}.1: {e}"));
        assert!(page.contains(&format!(".TH plan-{command} 1")), "{page}");
        assert_eq!(run(dir.path(), &["man", &command]).stdout, page);
    }
}
