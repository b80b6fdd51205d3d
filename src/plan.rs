//! The resolved plan: what will run, with variables substituted and values
//! checked. Built by `resolve`, read by `graph`, `lint`, `show` and the
//! executor. Secrets stay wrapped so that only the executor, on purpose,
//! ever sees their value.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::source::Span;
use crate::version::Version;

/// A secret's value: shown as `***` by Display and Debug alike.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    value: String,
}

impl Secret {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Secret {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The value, for the one place that hands it to a child process.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A piece of a resolved value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    Secret(Secret),
    /// A value not known without a target or environment, such as
    /// `<target.database>` or `<env.NEW_SERVER>` (lint and show).
    Placeholder(String),
    /// A variable that did not resolve (the error is already reported):
    /// its steps still resolve, so that lint speaks of them, but a plan
    /// holding one never runs. Shown as written, `${name}`.
    Unresolved(String),
}

/// A resolved string: literal text, secrets and placeholders.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text(pub Vec<Piece>);

impl Text {
    pub fn lit(text: impl Into<String>) -> Self {
        Text(vec![Piece::Lit(text.into())])
    }

    pub fn push_lit(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(Piece::Lit(last)) = self.0.last_mut() {
            last.push_str(text);
        } else {
            self.0.push(Piece::Lit(text.to_string()));
        }
    }

    pub fn push(&mut self, piece: Piece) {
        match piece {
            Piece::Lit(text) => self.push_lit(&text),
            other => self.0.push(other),
        }
    }

    pub fn extend(&mut self, other: &Text) {
        for piece in &other.0 {
            match piece {
                // Copied once, not cloned and then copied again.
                Piece::Lit(text) => self.push_lit(text),
                other => self.0.push(other.clone()),
            }
        }
    }

    pub fn has_secret(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Piece::Secret(_)))
    }

    /// The length of the text in bytes, secrets and stand-ins included.
    pub fn byte_len(&self) -> usize {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Lit(text) | Piece::Placeholder(text) => text.len(),
                Piece::Secret(secret) => secret.expose().len(),
                Piece::Unresolved(name) => name.len() + 3,
            })
            .sum()
    }

    /// A variable that did not resolve.
    pub fn unresolved(name: impl Into<String>) -> Self {
        Text(vec![Piece::Unresolved(name.into())])
    }

    /// Whether a variable in it did not resolve: what it would be is not
    /// known, and lint must not guess.
    pub fn has_unresolved(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Piece::Unresolved(_)))
    }

    /// The literal text, when there is no secret and no placeholder in it.
    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Lit(text) => out.push_str(text),
                _ => return None,
            }
        }
        Some(out)
    }

    /// The real value, secrets included; `None` while a placeholder is left.
    pub fn expose(&self) -> Option<String> {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Lit(text) => out.push_str(text),
                Piece::Secret(secret) => out.push_str(secret.expose()),
                Piece::Placeholder(_) | Piece::Unresolved(_) => return None,
            }
        }
        Some(out)
    }

    /// The value quoted as one unit (for `shell =` and SQL, where a
    /// substituted value must stay one word or one literal). A value holding
    /// a secret stays secret as a whole; one holding a placeholder stays a
    /// placeholder.
    pub fn quoted(&self, quote: impl Fn(&str) -> String) -> Text {
        // Still unknown once quoted.
        if self.has_unresolved() {
            return self.clone();
        }
        if let Some(literal) = self.as_literal() {
            return Text::lit(quote(&literal));
        }
        match self.expose() {
            Some(value) => {
                let name = self.0.iter().find_map(|p| match p {
                    Piece::Secret(s) => Some(s.name.clone()),
                    _ => None,
                });
                Text(vec![Piece::Secret(Secret::new(
                    name.unwrap_or_default(),
                    quote(&value),
                ))])
            }
            None => Text(vec![Piece::Placeholder(quote(&self.to_string()))]),
        }
    }
}

impl fmt::Display for Text {
    /// The redacted form: secrets as `***`, placeholders as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for piece in &self.0 {
            match piece {
                Piece::Lit(text) => f.write_str(text)?,
                Piece::Secret(_) => f.write_str("***")?,
                Piece::Placeholder(p) => f.write_str(p)?,
                Piece::Unresolved(name) => write!(f, "${{{name}}}")?,
            }
        }
        Ok(())
    }
}

/// A resolved plan.
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub from: Version,
    pub to: Version,
    pub description: Option<String>,
    pub release_query: Option<Text>,
    /// The ERP server's configuration file (`erp_config`), as written.
    pub erp_config: Option<Text>,
    /// Every declared variable with its value, in file order.
    pub vars: Vec<(String, Text)>,
    /// The database the steps change: the value of `${db}` (the target's
    /// database unless the plan declares `db`); `None` when `db` itself
    /// could not be resolved (already reported).
    pub database: Option<Text>,
    pub steps: Vec<Step>,
    pub on_failure: Vec<Step>,
    /// The folder relative paths are resolved against.
    pub folder: PathBuf,
}

/// What a file resolves to below its `plan` block, kept on its own when
/// the block itself does not resolve (no `from`, a bad release, no block):
/// lint still speaks of the steps. Never run.
#[derive(Clone, Debug)]
pub struct Body {
    /// As `Plan::vars`.
    pub vars: Vec<(String, Text)>,
    /// As `Plan::database`.
    pub database: Option<Text>,
    pub steps: Vec<Step>,
    pub on_failure: Vec<Step>,
    /// The folder relative paths are resolved against.
    pub folder: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Backup,
    Stop,
    Start,
    Script,
    Sql,
    Update,
    Check,
}

impl StepKind {
    pub const ALL: [StepKind; 7] = [
        StepKind::Backup,
        StepKind::Stop,
        StepKind::Start,
        StepKind::Script,
        StepKind::Sql,
        StepKind::Update,
        StepKind::Check,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Backup => "backup",
            StepKind::Stop => "stop",
            StepKind::Start => "start",
            StepKind::Script => "script",
            StepKind::Sql => "sql",
            StepKind::Update => "update",
            StepKind::Check => "check",
        }
    }

    pub fn from_name(name: &str) -> Option<StepKind> {
        StepKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether a step of this kind changes the database's data.
    pub fn changes_data(self) -> bool {
        matches!(self, StepKind::Script | StepKind::Sql | StepKind::Update)
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `after` entry, kept with its span for diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct After {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
    pub after: Vec<After>,
    pub action: Action,
    pub timeout: Option<Duration>,
    pub retries: u32,
    pub env: Vec<(String, Text)>,
    pub cwd: Option<Text>,
    pub user: Option<Text>,
    pub fail_on_output: Option<String>,
    pub description: Option<String>,
    /// The whole step block.
    pub span: Span,
    pub name_span: Span,
    pub kind_span: Span,
    /// Each attribute's span, by name (the names are the language's own
    /// keys, so none is copied per step).
    pub attr_spans: Vec<(&'static str, Span)>,
}

impl Step {
    pub fn attr_span(&self, name: &str) -> Option<Span> {
        self.attr_spans
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
    }
}

/// How a command runs.
#[derive(Clone, Debug)]
pub enum Command {
    /// `run =`: arguments, no shell.
    Argv(Vec<Text>),
    /// `shell =`: a script for `sh -c`, variables already single-quoted.
    Shell(Text),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupMethod {
    Snapshot,
    Dump,
}

impl BackupMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupMethod::Snapshot => "snapshot",
            BackupMethod::Dump => "dump",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Backup {
    pub method: BackupMethod,
    pub database: Text,
    pub paths: Vec<Text>,
    pub keep: bool,
}

#[derive(Clone, Debug)]
pub enum Sql {
    Inline(Text),
    /// A file, relative to the plan's folder.
    File(Text),
}

#[derive(Clone, Debug)]
pub enum Modules {
    All,
    Named(Vec<String>),
}

impl Modules {
    /// The value of `${modules}`: `all` or the names joined by commas.
    pub fn joined(&self) -> String {
        match self {
            Modules::All => "all".into(),
            Modules::Named(names) => names.join(","),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Check {
    Sql { sql: Text, expect: Text },
    Command(Command),
}

#[derive(Clone, Debug)]
pub enum Action {
    /// `stop`, `start`, `script`.
    Command(Command),
    Backup(Backup),
    Sql(Sql),
    Update {
        modules: Modules,
        command: Command,
    },
    Check(Check),
}

/// The default `fail_on_output` of `update` steps: the ERP server can exit 0
/// after logging that modules failed to load.
pub const UPDATE_FAIL_ON_OUTPUT: &str = " (ERROR|CRITICAL) ";
