//! The built `plan` binary, run as a partner would.

use assert_cmd::Command;

fn plan() -> Command {
    Command::cargo_bin("plan").expect("the plan binary is built")
}

#[test]
fn example_plans_are_formatted() {
    plan().args(["fmt", "--check", "plans/"]).assert().success();
}

#[test]
fn missing_path_is_a_usage_error() {
    plan().args(["lint", "no/such/folder"]).assert().code(2);
}
