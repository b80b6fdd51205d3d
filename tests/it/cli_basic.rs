//! The built `plan` binary run as a partner runs it, in a temporary folder:
//! `fmt` (check, rewrite, refusal), `show` (JSON, YAML, secrets), `--help`
//! and usage errors.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

const EXAMPLE: &str = "plans/openerp-5.0.0-to-6.0.0.plan";

/// `plan` with a fixed help width and no colour, so output is the same on
/// every machine.
fn plan() -> Command {
    let mut cmd = crate::support::plan();
    cmd.env("COLUMNS", "100").env("NO_COLOR", "1");
    cmd
}

/// What one run of `plan` gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let output = cmd.output().expect("plan runs");
    Run {
        code: output.status.code().expect("plan exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// A temporary folder holding plan files.
struct Folder {
    dir: tempfile::TempDir,
}

impl Folder {
    fn new() -> Self {
        Folder {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a plan");
        path
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read a plan")
}

/// The example plan with its layout undone: no indentation, no alignment.
/// The example is laid out as `fmt` lays it out, so `fmt` must give it back.
fn unformatted_example() -> (String, String) {
    let canonical = read(Path::new(EXAMPLE));
    let messy: String = canonical
        .lines()
        .map(|line| {
            let line = line.trim();
            match line.split_once('=') {
                Some((key, value)) if !line.starts_with('#') => {
                    format!("{}={}\n", key.trim_end(), value.trim_start())
                }
                _ => format!("{line}\n"),
            }
        })
        .collect();
    assert_ne!(messy, canonical, "the copy must need formatting");
    (canonical, messy)
}

#[test]
fn fmt_check_prints_a_diff_and_changes_nothing() {
    let folder = Folder::new();
    let (_, messy) = unformatted_example();
    let path = folder.write("example.plan", &messy);

    let out = run(plan().arg("fmt").arg("--check").arg(&path));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let name = path.display().to_string();
    assert!(
        out.stdout.contains(&format!("--- {name}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&format!("+++ {name} (formatted)")));
    assert!(out.stdout.contains("\n-to=\"6.0.0\"\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("\n+  to   = \"6.0.0\"\n"),
        "{}",
        out.stdout
    );
    assert_eq!(read(&path), messy, "--check must not write");
}

#[test]
fn fmt_rewrites_once_and_then_changes_nothing() {
    let folder = Folder::new();
    let (canonical, messy) = unformatted_example();
    let path = folder.write("example.plan", &messy);

    let out = run(plan().arg("fmt").arg(&path));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("formatted"), "{}", out.stderr);
    assert_eq!(read(&path), canonical);

    let again = run(plan().arg("fmt").arg(&path));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stderr, "", "a formatted file is left alone");
    assert_eq!(read(&path), canonical);
    let check = run(plan().arg("fmt").arg("--check").arg(&path));
    assert_eq!((check.code, check.stdout.as_str()), (0, ""));
}

#[test]
fn fmt_refuses_a_file_with_syntax_errors_and_leaves_it_alone() {
    let folder = Folder::new();
    let broken =
        "plan \"p\" {\n  from = \"5.0\"\n    to = \"6.0\"\n}\n\nstop   down {\n  run \"x\"\n}\n";
    let path = folder.write("broken.plan", broken);
    for args in [&["fmt"][..], &["fmt", "--check"]] {
        let out = run(plan().args(args).arg(&path));
        assert_eq!(out.code, 1, "{args:?}");
        assert!(out.stderr.contains("expected `=`"), "{}", out.stderr);
        assert!(out.stderr.contains("broken.plan:7:7"), "{}", out.stderr);
        assert_eq!(read(&path), broken, "{args:?} touched a broken file");
    }
}

fn show_json(path: &Path) -> (Value, String) {
    let out = run(plan()
        .args(["show", "--format", "json"])
        .arg(path)
        // `show` never reads the environment: these must not show.
        .env("OLD_SERVER", "/from/the/environment/old")
        .env("NEW_SERVER", "/from/the/environment/new"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        !out.stdout.contains("/from/the/environment"),
        "{}",
        out.stdout
    );
    let value = serde_json::from_str(&out.stdout).expect("show prints JSON");
    (value, out.stdout)
}

fn step_names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("an array of steps")
        .iter()
        .map(|s| s["name"].as_str().expect("a step name"))
        .collect()
}

/// Every step comes after each step it waits for.
fn assert_dependencies_first(steps: &Value) {
    let names = step_names(steps);
    for (n, step) in steps.as_array().into_iter().flatten().enumerate() {
        for after in step["after"].as_array().into_iter().flatten() {
            let after = after.as_str().expect("a step name");
            let at = names
                .iter()
                .position(|m| *m == after)
                .expect("a known step");
            assert!(at < n, "{} runs before {after}", names[n]);
        }
    }
}

#[test]
fn show_json_is_the_stable_document() {
    let (doc, text) = show_json(Path::new(EXAMPLE));
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["from"], "5.0.0");
    assert_eq!(doc["to"], "6.0.0");
    assert_eq!(
        step_names(&doc["steps"]),
        [
            "old_server_down",
            "before_upgrade",
            "pre",
            "all_modules",
            "post",
            "modules_settled",
            "new_server_up"
        ]
    );
    assert_dependencies_first(&doc["steps"]);
    assert_eq!(step_names(&doc["on_failure"]), ["old_server_up"]);
    insta::assert_snapshot!("show_example_json", text);
}

#[test]
fn show_orders_dependencies_first_and_ties_in_file_order() {
    let folder = Folder::new();
    let path = folder.write(
        "order.plan",
        "plan \"p\" {\n  from = \"1\"\n  to   = \"2\"\n}\n\n\
         start last {\n  after = [b, a]\n  run   = \"true\"\n}\n\n\
         script b {\n  after = root\n  run   = \"true\"\n}\n\n\
         script a {\n  after = root\n  run   = \"true\"\n}\n\n\
         stop root {\n  run = \"true\"\n}\n",
    );
    let (doc, _) = show_json(&path);
    assert_eq!(step_names(&doc["steps"]), ["root", "b", "a", "last"]);
    let levels: Vec<u64> = doc["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["level"].as_u64().expect("a level"))
        .collect();
    assert_eq!(levels, [0, 1, 1, 2]);
}

#[test]
fn show_yaml_holds_the_same_document_as_json() {
    let (json, _) = show_json(Path::new(EXAMPLE));
    let out = run(plan().args(["show", "--format", "yaml", EXAMPLE]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let yaml: Value = serde_yaml::from_str(&out.stdout).expect("show prints YAML");
    assert_eq!(yaml, json);
}

#[test]
fn show_never_prints_a_secret_even_when_it_is_set() {
    let folder = Folder::new();
    let path = folder.write(
        "secret.plan",
        "plan \"p\" {\n  from = \"1\"\n  to   = \"2\"\n}\n\n\
         var password = secret(\"ERP_ADMIN_PASSWORD\")\n\n\
         script login {\n  run = \"erp-login --password=${password}\"\n  \
         env = { ERP_PASSWORD = \"${password}\", PREFIXED = \"pw:${password}\" }\n}\n\n\
         script piped {\n  shell = \"echo ${password} | erp-login\"\n}\n",
    );
    let secret = "hunter2-do-not-print";
    for format in ["human", "json", "yaml"] {
        let out = run(plan()
            .args(["show", "--format", format])
            .arg(&path)
            .env("ERP_ADMIN_PASSWORD", secret));
        assert_eq!(out.code, 0, "{format}: {}", out.stderr);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(!all.contains(secret), "{format} shows the secret:\n{all}");
        assert!(
            !all.contains("hunter2"),
            "{format} shows part of it:\n{all}"
        );
        // The redacted value is there, in the argument, the env and the shell.
        assert!(all.contains("--password=***"), "{format}:\n{all}");
        assert!(all.contains("pw:***"), "{format}:\n{all}");
        assert!(all.matches("***").count() >= 4, "{format}:\n{all}");
    }
}

#[test]
fn help_is_snapshotted() {
    let out = run(plan().arg("--help"));
    assert_eq!(out.code, 0);
    insta::assert_snapshot!("help", out.stdout);
    // Every command clap knows: a new one cannot go unsnapshotted.
    let cli = <plan_runner::cli::Cli as clap::CommandFactory>::command();
    for command in cli.get_subcommands().map(|c| c.get_name()) {
        let out = run(plan().args([command, "--help"]));
        assert_eq!(out.code, 0, "{command}");
        assert!(out.stdout.starts_with(char::is_uppercase), "{command}");
        insta::assert_snapshot!(format!("help_{command}"), out.stdout);
    }
}

#[test]
fn help_lists_every_exit_code() {
    let top = run(plan().arg("--help"));
    assert!(
        top.stdout.contains(&plan_runner::exit::help()),
        "{}",
        top.stdout
    );
    // `apply` says what each status means for a run, in its own words.
    let apply = run(plan().args(["apply", "--help"]));
    let codes = apply
        .stdout
        .split_once("Exit codes: ")
        .and_then(|(_, rest)| rest.split("\n\n").next())
        .unwrap_or_else(|| panic!("`plan apply --help` has no exit codes:\n{}", apply.stdout));
    for exit in plan_runner::exit::Exit::ALL {
        let code = exit.code().to_string();
        assert!(
            codes
                .split(|c: char| !c.is_ascii_digit())
                .any(|word| word == code),
            "`plan apply --help` does not list {code}:\n{codes}"
        );
    }
}

#[test]
fn an_unknown_var_names_each_declared_variable_once() {
    // Refused before any connection: no server is needed.
    let out = run(plan()
        .args(["apply", EXAMPLE, "--database", "acme", "--var", "nope=1"])
        .env("PGHOST", "/nonexistent"));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the plan declares: db, new_server, old_server, scripts\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_flag_is_a_usage_error() {
    for args in [
        &["lint", "--bogus", EXAMPLE][..],
        &["show", "--format", "xml", EXAMPLE],
        &["fmt"],
        &["frobnicate"],
    ] {
        let out = run(plan().args(args));
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("error: "),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("try '--help'"),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "{args:?}");
    }
}
