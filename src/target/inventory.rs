//! The YAML inventory (`--inventory FILE --target NAME`): named targets with
//! their connection settings and the variables a plan sees. It parses and
//! checks the file; it reads no environment and opens no connection
//! (`crate::target` turns an inventory target into a connection).
//!
//! ```yaml
//! targets:
//!   acme:
//!     production: true
//!     host: 127.0.0.1
//!     port: 5432
//!     user: erp
//!     database: acme
//!     vars:
//!       new_server: /opt/openerp-6.0/bin/openerp-server
//! ```
//!
//! A `password` is accepted, but the inventory is a file people share and
//! commit: `PGPASSWORD` or a 0600 `~/.pgpass` is the better home for it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use thiserror::Error;

use crate::db::conninfo::SslMode;
use crate::diagnostic::suggest;
use crate::parse::is_var_name;
use crate::plan::Secret;

/// The fields a target accepts, for "did you mean" on an unknown one.
const TARGET_FIELDS: &[&str] = &[
    "production",
    "host",
    "port",
    "user",
    "database",
    "password",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "maintenance_db",
    "step_user",
    "erp_config",
    "vars",
    "labels",
];

/// At most this many target names are listed in an "unknown target" help.
const MAX_LISTED_TARGETS: usize = 20;

/// Why an inventory cannot be used.
#[derive(Debug, Error, Diagnostic)]
pub enum InventoryError {
    #[error("cannot read the inventory `{}`", path.display())]
    #[diagnostic(code(plan::inventory_io))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is not YAML, or not the inventory's shape. `line` and
    /// `column` are 1-based; `column` counts characters.
    #[error("{message}")]
    #[diagnostic(code(plan::inventory_invalid))]
    Invalid {
        message: String,
        line: usize,
        column: usize,
        #[source_code]
        src: Arc<NamedSource<String>>,
        /// The place at fault first, then where the construct it was in
        /// began (a quoted string left open, say).
        #[label(collection)]
        labels: Vec<LabeledSpan>,
        #[help]
        help: Option<String>,
    },

    #[error("no target `{name}` in `{}`", path.display())]
    #[diagnostic(code(plan::unknown_target))]
    UnknownTarget {
        name: String,
        path: PathBuf,
        #[help]
        help: String,
    },
}

/// A parsed inventory.
#[derive(Clone, Debug)]
pub struct Inventory {
    path: PathBuf,
    targets: BTreeMap<String, InventoryTarget>,
}

/// One target as the inventory gives it; what it leaves out comes from
/// the environment (libpq's conventions) when the target is resolved.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryTarget {
    /// Marks a production database (shown by `apply` before it starts).
    #[serde(default)]
    pub production: bool,
    /// A host name, an IP address, or a Unix socket folder (a path).
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    #[serde(deserialize_with = "non_empty")]
    pub database: String,
    #[serde(default, deserialize_with = "password")]
    pub password: Option<Secret>,
    #[serde(default, deserialize_with = "sslmode")]
    pub sslmode: Option<SslMode>,
    /// libpq's certificate files; a relative path is relative to the
    /// inventory's folder, where a team keeps them beside it.
    pub sslrootcert: Option<PathBuf>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    /// Where the runner's lock and runs table live (`postgres` by default).
    pub maintenance_db: Option<String>,
    /// The system user steps run as when the runner is root and the step
    /// names none.
    pub step_user: Option<String>,
    /// The ERP server's configuration file on this target's machine; it
    /// wins over the plan's `erp_config` (docs/odoo.md).
    pub erp_config: Option<PathBuf>,
    /// Values for the plan's variables (below `--var`, above the
    /// environment and the defaults).
    #[serde(default, deserialize_with = "vars")]
    pub vars: BTreeMap<String, String>,
    /// What a fleet run selects targets by (`--select tier=gold`).
    #[serde(default, deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(deserialize_with = "targets")]
    targets: BTreeMap<String, InventoryTarget>,
}

impl Inventory {
    /// Reads and parses the inventory at `path`.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Inventory::parse(path, &text)
    }

    /// Parses `text`, read from `path` (used in messages only).
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<Inventory, InventoryError> {
        let path = path.into();
        match serde_yaml::from_str::<RawInventory>(text) {
            Ok(mut raw) => {
                let folder = path.parent().unwrap_or(Path::new("")).to_path_buf();
                for target in raw.targets.values_mut() {
                    for file in [
                        &mut target.sslrootcert,
                        &mut target.sslcert,
                        &mut target.sslkey,
                        &mut target.erp_config,
                    ]
                    .into_iter()
                    .flatten()
                    {
                        // `system` is libpq's word for the system's roots,
                        // not a file.
                        if file.is_relative() && file.as_os_str() != "system" {
                            *file = folder.join(&*file);
                        }
                    }
                }
                Ok(Inventory {
                    path,
                    targets: raw.targets,
                })
            }
            Err(error) => Err(invalid(&path, text, &error)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every target with its name, sorted by name.
    pub fn targets(&self) -> impl Iterator<Item = (&str, &InventoryTarget)> {
        self.targets.iter().map(|(name, t)| (name.as_str(), t))
    }

    /// The target names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.targets.keys().map(String::as_str)
    }

    /// The target called `name`, or an error listing the known ones.
    pub fn target(&self, name: &str) -> Result<&InventoryTarget, InventoryError> {
        if let Some(target) = self.targets.get(name) {
            return Ok(target);
        }
        let mut help = match suggest(name, self.names()) {
            Some(near) => format!("did you mean `{near}`? "),
            None => String::new(),
        };
        if self.targets.is_empty() {
            help.push_str("the inventory defines no target");
        } else {
            let mut listed: Vec<String> = self
                .names()
                .take(MAX_LISTED_TARGETS)
                .map(|n| format!("`{n}`"))
                .collect();
            if self.targets.len() > MAX_LISTED_TARGETS {
                listed.push(format!(
                    "and {} more",
                    self.targets.len() - MAX_LISTED_TARGETS
                ));
            }
            help.push_str("the targets are ");
            help.push_str(&listed.join(", "));
        }
        Err(InventoryError::UnknownTarget {
            name: name.to_string(),
            path: self.path.clone(),
            help,
        })
    }
}

/// A serde_yaml error as a located diagnostic over the file's text.
fn invalid(path: &Path, text: &str, error: &serde_yaml::Error) -> InventoryError {
    let full = error.to_string();
    // Locations are written into the message as ` at line L column C`
    // (libyaml's adds a second one for the construct being read). They
    // become labels, shown under the `file:line:col` header, so the
    // message keeps only what went wrong.
    let mut parts = String::new();
    let mut contexts = Vec::new();
    let mut rest = full.as_str();
    while let Some((before, line, column, after)) = split_location(rest) {
        parts.push_str(before);
        let phrase = before.rsplit(", ").next().unwrap_or(before).trim();
        contexts.push((phrase.to_string(), line, column));
        rest = after;
    }
    parts.push_str(rest);
    // serde names the Rust types; say what the user has to write instead.
    let mut message = parts
        .replace("struct RawInventory", "a map with `targets`")
        .replace("struct InventoryTarget", "a map of connection settings");

    let mut labels = Vec::new();
    let location = match error.location() {
        Some(at) => {
            let label = if message.contains("unknown field") {
                "unknown field"
            } else if at.index() >= text.trim_end().len() {
                "the file ends here"
            } else {
                "here"
            };
            labels.push(LabeledSpan::new_primary_with_span(
                Some(label.to_string()),
                token_span(text, at.index()),
            ));
            (at.line(), at.column())
        }
        None => (0, 0),
    };
    let (line, column) = location;
    for (phrase, line, column) in contexts {
        // The problem's own location is already the primary label.
        if (line, column) == location {
            continue;
        }
        if let Some(offset) = offset_of(text, line, column) {
            labels.push(LabeledSpan::new_with_span(
                Some(phrase),
                token_span(text, offset),
            ));
        }
    }
    if labels.is_empty() {
        message = format!("{}: {message}", path.display());
    }
    let tab = error
        .location()
        .is_some_and(|at| text.get(at.index()..).is_some_and(|t| t.starts_with('\t')));
    let help = if tab {
        Some("YAML indents with spaces; replace the tab".to_string())
    } else {
        unknown_field(&message)
            .and_then(|field| suggest(field, TARGET_FIELDS.iter().copied()))
            .map(|near| format!("did you mean `{near}`?"))
    };
    InventoryError::Invalid {
        message,
        line,
        column,
        src: Arc::new(NamedSource::new(
            path.display().to_string(),
            redact_passwords(text),
        )),
        labels,
        help,
    }
}

/// Finds the first ` at line L column C` in `text`: what is before it, the
/// line and column, and what is after.
fn split_location(text: &str) -> Option<(&str, usize, usize, &str)> {
    let mut search = 0;
    while let Some(found) = text[search..].find(" at line ") {
        let at = search + found;
        let after_line = &text[at + " at line ".len()..];
        let line_digits = after_line
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after_line.len());
        if let Some(after_column) = after_line[line_digits..].strip_prefix(" column ") {
            let column_digits = after_column
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after_column.len());
            if let (Ok(line), Ok(column)) = (
                after_line[..line_digits].parse(),
                after_column[..column_digits].parse(),
            ) {
                return Some((&text[..at], line, column, &after_column[column_digits..]));
            }
        }
        search = at + 1;
    }
    None
}

/// The byte offset of a 1-based line and character column.
fn offset_of(text: &str, line: usize, column: usize) -> Option<usize> {
    let start = if line <= 1 {
        0
    } else {
        text.match_indices('\n').nth(line - 2).map(|(i, _)| i + 1)?
    };
    let line_text = text[start..].split('\n').next().unwrap_or("");
    let within = line_text
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(line_text.len(), |(i, _)| i);
    Some(start + within)
}

/// The field name in serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.split_once("unknown field `")?.1;
    Some(rest.split_once('`')?.0)
}

/// The span of the word starting at byte `offset` (up to white space or
/// YAML punctuation), so the label underlines the key or value at fault.
fn token_span(text: &str, offset: usize) -> SourceSpan {
    let mut start = offset.min(text.len());
    // Past the last line (an unexpected end of file): point at the end of
    // the text that is there, which is a line miette can show.
    if start >= text.trim_end().len() {
        start = text.trim_end().len().saturating_sub(1);
    }
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let len = text[start..]
        .find(|c: char| c.is_whitespace() || matches!(c, ':' | ',' | '{' | '}' | '[' | ']' | '#'))
        .unwrap_or(text.len() - start);
    // A token that starts with punctuation (`[`, `{`) is underlined alone.
    let len = if len == 0 {
        text[start..].chars().next().map_or(0, char::len_utf8)
    } else {
        len
    };
    (start, len).into()
}

/// The text with every `password:` value masked byte for byte, so an error
/// about a nearby line does not print the password, and offsets still hold.
fn redact_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut block_indent: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_end_matches(['\n', '\r']);
        if let Some(key_indent) = block_indent {
            if body.trim().is_empty() || indent > key_indent {
                out.push_str(&mask(body));
                out.push_str(&line[body.len()..]);
                continue;
            }
            block_indent = None;
        }
        match body.find("password") {
            Some(at) if body[at + "password".len()..].trim_start().starts_with(':') => {
                let colon =
                    at + "password".len() + body[at + "password".len()..].find(':').unwrap_or(0);
                let value = &body[colon + 1..];
                if matches!(value.trim_start().chars().next(), Some('|' | '>')) {
                    block_indent = Some(indent);
                }
                out.push_str(&body[..=colon]);
                out.push_str(&mask(value));
                out.push_str(&line[body.len()..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// Every non-blank byte as `*`, keeping the byte length.
fn mask(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b == b' ' || b == b'\t' {
                b as char
            } else {
                '*'
            }
        })
        .collect()
}

/// A scalar checked by `check` while the deserializer is still on it, so
/// that its error carries the value's own position. Checked after
/// `deserialize` returns, the error would point at the start of the
/// target's map, a line or more away from the value at fault.
fn checked_str<'de, D, T>(
    d: D,
    expecting: &'static str,
    check: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Checked<T> {
        expecting: &'static str,
        check: fn(&str) -> Result<T, String>,
    }
    impl<T> Visitor<'_> for Checked<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
            (self.check)(value).map_err(E::custom)
        }
    }
    d.deserialize_str(Checked { expecting, check })
}

fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked_str(d, "a database name", |value| {
        if value.is_empty() {
            return Err("`database` is empty".to_string());
        }
        Ok(value.to_string())
    })
}

fn password<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|value| Secret::new("password", value)))
}

fn sslmode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SslMode>, D::Error> {
    struct Mode(SslMode);
    impl<'de> Deserialize<'de> for Mode {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            checked_str(d, "an sslmode such as `prefer` or `disable`", |text| {
                // serde_yaml puts the field's path (`targets.a.sslmode`)
                // before the message.
                SslMode::parse(text)
                    .map(Mode)
                    .map_err(|error| error.to_string())
            })
        }
    }
    Ok(Option::<Mode>::deserialize(d)?.map(|mode| mode.0))
}

fn targets<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, InventoryTarget>, D::Error> {
    struct Targets;
    impl<'de> Visitor<'de> for Targets {
        type Value = BTreeMap<String, InventoryTarget>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map from target names to targets")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                // serde_yaml keeps the last of two equal keys without a
                // word; a second `acme` would silently replace the first.
                if out.contains_key(&name) {
                    return Err(de::Error::custom(format!(
                        "target `{name}` is defined twice"
                    )));
                }
                let target = map.next_value()?;
                out.insert(name, target);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Targets)
}

fn vars<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct Vars;
    impl<'de> Visitor<'de> for Vars {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map from variable names to values")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                if !is_var_name(&name) {
                    return Err(de::Error::custom(format!(
                        "`{name}` is not a valid variable name (lower-case letters, digits and `_`)"
                    )));
                }
                if out.contains_key(&name) {
                    return Err(de::Error::custom(format!(
                        "variable `{name}` is given twice"
                    )));
                }
                match map.next_value::<Option<Scalar>>()? {
                    Some(Scalar(value)) => {
                        out.insert(name, value);
                    }
                    None => {
                        return Err(de::Error::custom(format!(
                            "variable `{name}` has no value (write \"\" for an empty string)"
                        )));
                    }
                }
            }
            Ok(out)
        }
    }
    d.deserialize_map(Vars)
}

/// Whether `key` may name a label: what `--select KEY=VALUE` can type
/// without quoting, and what a selector's `=` cannot be part of.
pub fn is_label_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
}

fn labels<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct Labels;
    impl<'de> Visitor<'de> for Labels {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map from label names to values, such as `{tier: gold}`")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if !is_label_key(&key) {
                    return Err(de::Error::custom(format!(
                        "`{key}` is not a label name (a lower-case letter, then letters, digits, `_`, `-` or `.`)"
                    )));
                }
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format!("label `{key}` is given twice")));
                }
                match map.next_value::<Option<Scalar>>()? {
                    Some(Scalar(value)) => {
                        out.insert(key, value);
                    }
                    None => {
                        return Err(de::Error::custom(format!(
                            "label `{key}` has no value (write \"\" for an empty one)"
                        )));
                    }
                }
            }
            Ok(out)
        }
    }
    d.deserialize_map(Labels)
}

/// A variable's value: a string, number or boolean, kept as written.
///
/// Read through `deserialize_str`, which gives a plain scalar's own text:
/// `6.10` stays `6.10` (as a float it would become `6.1`, a different
/// release) and `0755` stays `0755`.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Scalar;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Scalar, E> {
                Ok(Scalar(value.to_string()))
            }
        }
        d.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Inventory, InventoryError> {
        Inventory::parse("inv.yaml", text)
    }

    fn message(text: &str) -> (String, usize, usize) {
        match parse(text) {
            Err(InventoryError::Invalid {
                message,
                line,
                column,
                ..
            }) => (message, line, column),
            other => panic!("expected an invalid inventory, got {other:?}"),
        }
    }

    #[test]
    fn reads_every_field() {
        let inventory = parse(
            "targets:
  acme:
    production: true
    host: /var/run/postgresql
    port: 5433
    user: erp
    database: acme
    password: s3cret
    sslmode: disable
    maintenance_db: template1
    step_user: openerp
    vars:
      new_server: /opt/openerp-6.0/bin/openerp-server
",
        )
        .unwrap();
        let acme = inventory.target("acme").unwrap();
        assert!(acme.production);
        assert_eq!(acme.host.as_deref(), Some("/var/run/postgresql"));
        assert_eq!(acme.port, Some(5433));
        assert_eq!(acme.user.as_deref(), Some("erp"));
        assert_eq!(acme.database, "acme");
        assert_eq!(acme.password.as_ref().map(Secret::expose), Some("s3cret"));
        assert_eq!(acme.sslmode, Some(SslMode::Disable));
        assert_eq!(acme.maintenance_db.as_deref(), Some("template1"));
        assert_eq!(acme.step_user.as_deref(), Some("openerp"));
        assert_eq!(
            acme.vars.get("new_server").map(String::as_str),
            Some("/opt/openerp-6.0/bin/openerp-server")
        );
        assert!(!format!("{acme:?}").contains("s3cret"));
    }

    #[test]
    fn only_database_is_required() {
        let inventory = parse("targets:\n  a:\n    database: a\n").unwrap();
        let a = inventory.target("a").unwrap();
        assert!(!a.production);
        assert_eq!(a.host, None);
        assert!(a.vars.is_empty());
        let (message, _, _) = message("targets:\n  a:\n    host: x\n");
        assert!(message.contains("missing field `database`"), "{message}");
    }

    #[test]
    fn vars_keep_the_scalar_as_written() {
        let inventory = parse(
            "targets:
  a:
    database: a
    vars: {release: 6.10, mode: 0755, flag: true, quoted: \"~\", empty: \"\"}
",
        )
        .unwrap();
        let vars = &inventory.target("a").unwrap().vars;
        assert_eq!(vars["release"], "6.10");
        assert_eq!(vars["mode"], "0755");
        assert_eq!(vars["flag"], "true");
        assert_eq!(vars["quoted"], "~");
        assert_eq!(vars["empty"], "");
    }

    #[test]
    fn vars_refuse_lists_maps_and_nulls() {
        let (m, line, column) =
            message("targets:\n  a:\n    database: a\n    vars:\n      x: [1, 2]\n");
        assert!(m.contains("expected a string, number or boolean"), "{m}");
        assert_eq!((line, column), (5, 10));
        let (m, _, _) = message("targets:\n  a:\n    database: a\n    vars:\n      x: {y: 1}\n");
        assert!(m.contains("invalid type: map"), "{m}");
        let (m, _, _) = message("targets:\n  a:\n    database: a\n    vars:\n      x: ~\n");
        assert!(m.contains("variable `x` has no value"), "{m}");
        let (m, _, _) = message("targets:\n  a:\n    database: a\n    vars:\n      x:\n");
        assert!(m.contains("variable `x` has no value"), "{m}");
    }

    #[test]
    fn var_names_follow_the_plan_rule() {
        let (m, _, _) =
            message("targets:\n  a:\n    database: a\n    vars:\n      New-Server: x\n");
        assert!(
            m.contains("`New-Server` is not a valid variable name"),
            "{m}"
        );
    }

    #[test]
    fn duplicates_are_errors_not_silent_overrides() {
        let (m, _, _) = message("targets:\n  a:\n    database: a\n  a:\n    database: b\n");
        assert!(m.contains("target `a` is defined twice"), "{m}");
        let (m, _, _) =
            message("targets:\n  a:\n    database: a\n    vars:\n      x: 1\n      x: 2\n");
        assert!(m.contains("variable `x` is given twice"), "{m}");
        let (m, _, _) = message("targets:\n  a:\n    database: a\n    database: b\n");
        assert!(m.contains("duplicate field `database`"), "{m}");
    }

    #[test]
    fn unknown_field_is_located_and_suggested() {
        match parse("targets:\n  a:\n    database: a\n    hots: x\n") {
            Err(InventoryError::Invalid {
                message,
                line,
                column,
                labels,
                help,
                ..
            }) => {
                assert!(
                    message.starts_with("targets.a: unknown field `hots`"),
                    "{message}"
                );
                assert!(!message.contains("at line"), "{message}");
                assert_eq!((line, column), (4, 5));
                assert_eq!(labels.len(), 1);
                assert_eq!((labels[0].offset(), labels[0].len()), (34, 4));
                assert_eq!(labels[0].label(), Some("unknown field"));
                assert_eq!(help.as_deref(), Some("did you mean `host`?"));
            }
            other => panic!("{other:?}"),
        }
        let (m, _, _) = message("targets:\n  a:\n    database: a\nextra: 1\n");
        assert!(m.contains("unknown field `extra`"), "{m}");
    }

    /// The label's span over `text`.
    fn underlined(text: &str) -> String {
        match parse(text) {
            Err(InventoryError::Invalid { labels, .. }) => {
                let label = labels.first().expect("a label");
                text[label.offset()..label.offset() + label.len()].to_string()
            }
            other => panic!("expected an invalid inventory, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_sslmode_is_refused_at_the_value() {
        // The error used to point at the target's first key (`database`).
        let text = "targets:\n  a:\n    database: a\n    sslmode: sometimes\n    host: h\n";
        let (m, line, column) = message(text);
        assert!(m.contains("unknown sslmode `sometimes`"), "{m}");
        assert_eq!((line, column), (4, 14));
        assert_eq!(underlined(text), "sometimes");
        let flow = "targets: {a: {database: a, sslmode: bogus}}\n";
        assert!(message(flow).0.contains("bogus"));
        assert_eq!(underlined(flow), "bogus");
        let text = "targets:\n  a:\n    host: h\n    database: \"\"\n";
        assert_eq!(message(text).1, 4);
        assert!(
            message("targets:\n  a:\n    database: a\n    sslmode: 3\n")
                .0
                .contains("sslmode")
        );
    }

    #[test]
    fn tls_settings_are_read_and_paths_are_beside_the_inventory() {
        let inventory = Inventory::parse(
            "/srv/inv/targets.yaml",
            "targets:\n  a:\n    database: a\n    sslmode: verify-full\n    sslrootcert: certs/root.crt\n    sslcert: /etc/erp/client.crt\n    sslkey: client.key\n",
        )
        .unwrap();
        let a = inventory.target("a").unwrap();
        assert_eq!(a.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(
            a.sslrootcert.as_deref(),
            Some(Path::new("/srv/inv/certs/root.crt"))
        );
        assert_eq!(a.sslcert.as_deref(), Some(Path::new("/etc/erp/client.crt")));
        assert_eq!(a.sslkey.as_deref(), Some(Path::new("/srv/inv/client.key")));
        let (m, line, _) = message("targets:\n  a:\n    database: a\n    sslmode: sometimes\n");
        assert!(m.contains("unknown sslmode `sometimes`"), "{m}");
        assert!(line > 0);
    }

    #[test]
    fn bad_types_name_the_field() {
        let (m, line, column) = message("targets:\n  a:\n    database: a\n    port: 99999\n");
        assert!(m.starts_with("targets.a.port: invalid value"), "{m}");
        assert_eq!((line, column), (4, 11));
        let (m, _, _) = message("targets:\n  a:\n    database: a\n    production: yes\n");
        assert!(m.contains("expected a boolean"), "{m}");
        let (m, _, _) = message("targets:\n  a:\n    database: \"\"\n");
        assert!(m.contains("`database` is empty"), "{m}");
    }

    #[test]
    fn empty_file_says_what_is_missing() {
        let (m, _, _) = message("");
        assert!(m.contains("missing field `targets`"), "{m}");
    }

    #[test]
    fn unknown_target_lists_the_known_ones_with_a_suggestion() {
        let inventory =
            parse("targets:\n  acme:\n    database: a\n  beta:\n    database: b\n").unwrap();
        match inventory.target("acmee") {
            Err(InventoryError::UnknownTarget { name, help, .. }) => {
                assert_eq!(name, "acmee");
                assert_eq!(help, "did you mean `acme`? the targets are `acme`, `beta`");
            }
            other => panic!("{other:?}"),
        }
        match inventory.target("zzz") {
            Err(InventoryError::UnknownTarget { help, .. }) => {
                assert_eq!(help, "the targets are `acme`, `beta`");
            }
            other => panic!("{other:?}"),
        }
        let empty = parse("targets: {}\n").unwrap();
        match empty.target("acme") {
            Err(InventoryError::UnknownTarget { help, .. }) => {
                assert_eq!(help, "the inventory defines no target");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_source_masks_passwords() {
        let text = "targets:\n  a:\n    database: a\n    password: hunter2\n    pot: 1\n";
        match parse(text) {
            Err(InventoryError::Invalid { src, .. }) => {
                let shown = miette::SourceCode::read_span(&*src, &(0, text.len()).into(), 0, 0)
                    .map(|c| String::from_utf8_lossy(c.data()).into_owned())
                    .unwrap();
                assert!(!shown.contains("hunter2"), "{shown}");
                assert_eq!(shown.len(), text.len());
                assert!(shown.contains("pot: 1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn redaction_covers_flow_and_block_scalars() {
        assert_eq!(
            redact_passwords("  a: {password: x1, host: h}\n"),
            "  a: {password: *** ***** **\n"
        );
        assert_eq!(
            redact_passwords("    password: |\n      line1\n      line2\n    host: h\n"),
            "    password: *\n      *****\n      *****\n    host: h\n"
        );
        assert_eq!(
            redact_passwords("host: passwordless\n"),
            "host: passwordless\n"
        );
    }

    #[test]
    fn labels_are_read_as_written() {
        let inventory =
            parse("targets:\n  a:\n    database: a\n    labels: {tier: gold, wave: 2}\n").unwrap();
        let a = inventory.target("a").unwrap();
        assert_eq!(a.labels.get("tier").map(String::as_str), Some("gold"));
        assert_eq!(a.labels.get("wave").map(String::as_str), Some("2"));
    }

    #[test]
    fn a_bad_label_name_points_at_its_line() {
        let (text, line, _) =
            message("targets:\n  a:\n    database: a\n    labels:\n      Tier: gold\n");
        assert!(text.contains("`Tier` is not a label name"), "{text}");
        assert_eq!(line, 5, "{text}");
        let (text, line, _) = message("targets:\n  a:\n    database: a\n    lables: {}\n");
        assert!(text.contains("unknown field `lables`"), "{text}");
        assert_eq!(line, 4);
    }
}
