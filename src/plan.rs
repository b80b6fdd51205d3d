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
    /// `refresh = true`: the same release (`from` equals `to`) updated
    /// after new code was deployed.
    pub refresh: bool,
    /// `revision`: what the history records of the code a run deploys
    /// (`--revision` wins over it).
    pub revision: Option<Text>,
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
    /// `ready` (`start` steps): what the step waits for once its command
    /// has ended.
    pub ready: Option<Ready>,
    /// `rehearse` (`stop` and `start` steps): whether `plan rehearse`
    /// runs it; other kinds always run in a rehearsal.
    pub rehearse: Rehearse,
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
        /// `install`: modules the command installs (`-i`), besides those
        /// it upgrades.
        install: Vec<String>,
        /// Whether the module registry is read after the command
        /// (`check_modules`, on by default): a module left `to install`,
        /// `to upgrade` or `to remove`, or a named one not `installed`,
        /// fails the step.
        check_modules: bool,
    },
    Check(Check),
}

/// What `plan rehearse` does with a `stop` or `start` step: skip it (it
/// would stop or start the production server), unless the plan says it
/// is safe to run against the copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rehearse {
    #[default]
    Skip,
    Run,
}

impl Step {
    /// Whether a rehearsal leaves this step out.
    pub fn skipped_in_rehearsal(&self) -> bool {
        matches!(self.kind, StepKind::Stop | StepKind::Start) && self.rehearse == Rehearse::Skip
    }
}

/// What a `start` step waits for: the server answering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ready {
    /// `http://host:port/path`: a GET answered with a 2xx status.
    Http {
        url: String,
        host: String,
        port: u16,
        path: String,
    },
    /// `tcp://host:port` or `host:port`: a connection accepted.
    Tcp { host: String, port: u16 },
    /// An address holding a value known only when the plan runs, such as
    /// `http://127.0.0.1:<env.ODOO_PORT>/web/health` (lint and show).
    Later(String),
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ready::Http { url, .. } => f.write_str(url),
            Ready::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Ready::Later(text) => f.write_str(text),
        }
    }
}

impl Ready {
    /// Parses a `ready` value; `Err` says what is wrong with it.
    pub fn parse(text: &str) -> Result<Ready, String> {
        let (http, rest) = if let Some(rest) = text.strip_prefix("http://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("tcp://") {
            (false, rest)
        } else if text.contains("://") {
            return Err("only http:// and tcp:// are understood".into());
        } else {
            (false, text)
        };
        let (authority, path) = match rest.find('/') {
            Some(at) if http => (&rest[..at], &rest[at..]),
            Some(_) => return Err("a tcp address has no path".into()),
            None => (rest, "/"),
        };
        let Some((host, port)) = authority.rsplit_once(':') else {
            return Err("the port is missing, as in 127.0.0.1:8069".into());
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("the host is missing, as in 127.0.0.1:8069".into());
        }
        let port: u16 = match port.parse() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("`{port}` is not a port")),
        };
        Ok(if http {
            Ready::Http {
                url: text.to_string(),
                host: host.to_string(),
                port,
                path: path.to_string(),
            }
        } else {
            Ready::Tcp {
                host: host.to_string(),
                port,
            }
        })
    }
}

/// The default `fail_on_output` of `update` steps: the ERP server can exit 0
/// after logging that modules failed to load.
pub const UPDATE_FAIL_ON_OUTPUT: &str = " (ERROR|CRITICAL) ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reads_http_and_tcp_addresses() {
        assert_eq!(
            Ready::parse("http://127.0.0.1:8069/web/health"),
            Ok(Ready::Http {
                url: "http://127.0.0.1:8069/web/health".into(),
                host: "127.0.0.1".into(),
                port: 8069,
                path: "/web/health".into(),
            })
        );
        assert_eq!(
            Ready::parse("localhost:8069"),
            Ok(Ready::Tcp {
                host: "localhost".into(),
                port: 8069
            })
        );
        assert_eq!(
            Ready::parse("tcp://[::1]:8069"),
            Ok(Ready::Tcp {
                host: "::1".into(),
                port: 8069
            })
        );
        for bad in [
            "https://erp:443/",
            "http://erp/web",
            "erp:0",
            "erp:http",
            ":8069",
            "tcp://erp:8069/x",
        ] {
            assert!(Ready::parse(bad).is_err(), "{bad}");
        }
    }
}
