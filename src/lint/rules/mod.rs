//! The lint rules, one file each, and the table that lists them. A rule
//! reads the `Context` and returns its findings; it never prints and never
//! stops another rule.

mod erp_config_bypassed;
mod erp_config_connection;
mod literal_secret;
mod missing_backup;
mod missing_file;
mod missing_timeout;
mod no_failure_restart;
mod secret_in_argv;
mod shell_step;
mod snapshot_without_stop;
mod update_without_check;

use crate::diagnostic::{Code, Diagnostic};
use crate::plan::{Action, Check, Command, Step};

use super::Context;

/// A rule: the code it reports and the check that finds it.
pub struct Rule {
    pub code: Code,
    pub check: fn(&Context<'_>) -> Vec<Diagnostic>,
}

/// Every rule, in code order. Only these codes can be silenced with
/// `# lint: allow`.
pub const RULES: &[Rule] = &[
    Rule {
        code: Code::MissingFile,
        check: missing_file::check,
    },
    Rule {
        code: Code::MissingBackup,
        check: missing_backup::check,
    },
    Rule {
        code: Code::SnapshotWithoutStop,
        check: snapshot_without_stop::check,
    },
    Rule {
        code: Code::UpdateWithoutCheck,
        check: update_without_check::check,
    },
    Rule {
        code: Code::NoFailureRestart,
        check: no_failure_restart::check,
    },
    Rule {
        code: Code::MissingTimeout,
        check: missing_timeout::check,
    },
    Rule {
        code: Code::ShellStep,
        check: shell_step::check,
    },
    Rule {
        code: Code::LiteralSecret,
        check: literal_secret::check,
    },
    Rule {
        code: Code::SecretInArgv,
        check: secret_in_argv::check,
    },
    Rule {
        code: Code::ErpConfigConnection,
        check: erp_config_connection::check,
    },
    Rule {
        code: Code::ErpConfigBypassed,
        check: erp_config_bypassed::check,
    },
];

/// The command a step runs, if it runs one.
fn command(step: &Step) -> Option<&Command> {
    match &step.action {
        Action::Command(c) | Action::Update { command: c, .. } => Some(c),
        Action::Check(Check::Command(c)) => Some(c),
        Action::Backup(_) | Action::Sql(_) | Action::Check(Check::Sql { .. }) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lint_code_has_a_rule_or_belongs_to_suppression() {
        for code in Code::ALL {
            let has_rule = RULES.iter().any(|r| r.code == *code);
            let is_lint = code.as_str().starts_with('W');
            let about_comments = matches!(code, Code::UnknownLintCode | Code::NotAllowable);
            assert_eq!(
                has_rule || about_comments,
                is_lint || *code == Code::MissingFile,
                "{code}"
            );
        }
    }
}
