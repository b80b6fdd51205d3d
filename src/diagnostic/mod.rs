//! Findings about a plan, as values: the product's one table of diagnostic
//! codes, and the `Diagnostic` every stage (parse, resolve, graph, lint)
//! returns. Rendering lives in the submodules; nothing here prints.

pub mod human;

use std::fmt;

use serde::Serialize;

use crate::source::Span;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $name:literal, $severity:ident, $summary:literal;)*) => {
        /// Every diagnostic code of the product. A code is never reused;
        /// docs/diagnostics.md has a section for each.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable code, such as `E004` or `W101`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// The kebab-case name, such as `unknown-step-kind`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            pub fn severity(self) -> Severity {
                match self {
                    $(Code::$variant => Severity::$severity,)*
                }
            }

            /// One line saying what the code is about.
            pub fn summary(self) -> &'static str {
                match self {
                    $(Code::$variant => $summary,)*
                }
            }
        }
    };
}

codes! {
    Syntax = "E001", "syntax-error", Error, "the text is not valid plan syntax";
    UnterminatedString = "E002", "unterminated-string", Error, "a string has no closing quote";
    BadString = "E003", "bad-string", Error, "a string holds an unknown escape or a malformed `${...}`";
    UnknownKind = "E004", "unknown-step-kind", Error, "a step kind that does not exist";
    UnknownAttribute = "E005", "unknown-attribute", Error, "an attribute the block does not accept";
    BadName = "E006", "bad-name", Error, "a step or variable name that breaks the naming rule";
    DuplicateStep = "E007", "duplicate-step", Error, "two steps with the same name";
    DuplicateAttribute = "E008", "duplicate-attribute", Error, "the same attribute twice in a block";
    UnknownAfter = "E009", "unknown-after", Error, "`after` names a step that does not exist";
    SelfDependency = "E010", "self-dependency", Error, "a step that waits for itself";
    Cycle = "E011", "dependency-cycle", Error, "steps that wait for each other in a circle";
    UndefinedVariable = "E012", "undefined-variable", Error, "`${name}` with no such variable";
    VariableCycle = "E013", "variable-cycle", Error, "variables defined in terms of each other in a circle";
    DuplicateVariable = "E014", "duplicate-variable", Error, "two variables with the same name";
    BadDuration = "E015", "bad-duration", Error, "a duration that is not like `90s`, `15m` or `2h`";
    BadVersion = "E016", "bad-version", Error, "a release that is not a dotted number";
    ReleaseOrder = "E017", "release-order", Error, "`from` is not before `to`";
    BadCheck = "E018", "bad-check", Error, "a check without exactly one of `sql` and `run`";
    MissingCommand = "E019", "missing-command", Error, "a step with nothing to run";
    PlanBlock = "E020", "plan-block", Error, "the file has no `plan` block, or more than one";
    EmptyFile = "E021", "empty-file", Error, "the file holds no plan";
    NotUtf8 = "E022", "not-utf8", Error, "the file is not UTF-8 text";
    BadValue = "E023", "bad-value", Error, "a value of the wrong type or outside the allowed set";
    MissingAttribute = "E024", "missing-attribute", Error, "a required attribute is missing";
    BadRegex = "E025", "bad-regex", Error, "`fail_on_output` is not a valid regular expression";
    ReservedVariable = "E026", "reserved-variable", Error, "a variable declared with a reserved name";
    MissingFile = "E027", "missing-file", Error, "a script or SQL file the plan names does not exist";
    BadTarget = "E028", "bad-target", Error, "`target.` followed by something other than database, host, port or user";
    FailureAfter = "E029", "on-failure-after", Error, "an `on_failure` step waits for a step outside `on_failure`";
    DuplicatePair = "E040", "duplicate-pair", Error, "two plans in one folder for the same pair of releases";
    ReleaseCycle = "E041", "release-cycle", Error, "the plans of a folder lead round in a circle of releases";
    MissingBackup = "W101", "missing-backup", Warning, "a step changes data without a backup on every path before it";
    SnapshotWithoutStop = "W102", "snapshot-without-stop", Warning, "a snapshot backup not preceded by stopping the server";
    UpdateWithoutCheck = "W103", "update-without-check", Warning, "an `update` with no `check` after it";
    NoFailureRestart = "W104", "no-failure-restart", Warning, "no `on_failure` step restarts a server";
    MissingTimeout = "W105", "missing-timeout", Warning, "an `update` or `script` without `timeout`";
    ShellStep = "W106", "shell-step", Warning, "a step runs through `sh -c`";
    LiteralSecret = "W107", "literal-secret", Warning, "a password written into the plan";
    SecretInArgv = "W108", "secret-in-argv", Warning, "a `secret()` passed as a command-line argument";
    UnknownLintCode = "W109", "unknown-lint-code", Warning, "`# lint: allow(...)` names a code that does not exist, or is not written as `allow(CODE, ...)`";
    NotAllowable = "W110", "not-allowable", Warning, "`# lint: allow(...)` names a code that cannot be silenced";
    ErpConfigConnection = "W111", "erp-config-connection", Warning, "the ERP configuration names a database server, user or database of its own";
    ErpConfigBypassed = "W112", "erp-config-bypassed", Warning, "a step gives the server the ERP configuration itself instead of `${erp_config}`";
}

impl Code {
    pub fn parse(code: &str) -> Option<Code> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(code) || c.name() == code)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A span with an optional note shown under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub text: Option<String>,
}

/// One finding in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub message: String,
    /// The place at fault; its start gives the line and column.
    pub primary: Label,
    /// Further places worth showing (the other end of a duplicate, each
    /// `after` of a cycle).
    pub secondary: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            primary: Label { span, text: None },
            secondary: Vec::new(),
            help: None,
        }
    }

    /// The note under the primary span.
    pub fn label(mut self, text: impl Into<String>) -> Self {
        self.primary.text = Some(text.into());
        self
    }

    pub fn also(mut self, span: Span, text: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            text: Some(text.into()),
        });
        self
    }

    pub fn help(mut self, text: impl Into<String>) -> Self {
        self.help = Some(text.into());
        self
    }

    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    pub fn is_error(&self) -> bool {
        self.severity() == Severity::Error
    }
}

/// "did you mean `backup`?" for a near miss among `candidates`.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(distance, c)| *distance <= (c.len() / 3).max(1) + usize::from(c.len() > 6))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{code} is used twice");
            assert_eq!(Code::parse(code.as_str()), Some(*code));
            assert_eq!(Code::parse(code.name()), Some(*code));
        }
    }

    #[test]
    fn suggest_finds_near_misses_only() {
        let kinds = [
            "backup", "stop", "start", "script", "sql", "update", "check",
        ];
        assert_eq!(suggest("bakup", kinds), Some("backup"));
        assert_eq!(suggest("updte", kinds), Some("update"));
        assert_eq!(suggest("chek", kinds), Some("check"));
        assert_eq!(suggest("migrate", kinds), None);
    }
}
