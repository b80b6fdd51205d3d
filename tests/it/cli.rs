//! The built `plan` binary, run as a partner would.

use crate::support::plan;

#[test]
fn example_plans_are_formatted() {
    plan().args(["fmt", "--check", "plans/"]).assert().success();
}

#[test]
fn missing_path_is_a_usage_error() {
    plan().args(["lint", "no/such/folder"]).assert().code(2);
}
