//! The `plan` binary: everything is in the library.

fn main() -> std::process::ExitCode {
    plan_runner::run(std::env::args_os()).into()
}
