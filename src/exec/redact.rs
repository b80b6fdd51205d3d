//! The one place that hides secret values in text the runner shows or
//! records (log excerpts, failure lines, reports). It knows values, not
//! where they came from; it never prints.

use std::borrow::Cow;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use regex::{NoExpand, Regex, bytes};

use crate::plan::{Piece, Text};

/// What stands for a hidden value.
pub const MASK: &str = "***";

/// Replaces every known secret value by `***`. Its Debug shows how many
/// values it knows, never which.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret holding another is hidden whole.
    values: Vec<String>,
    /// The values as one alternation, longest first: one pass over the
    /// text, and the longest secret wins where two start together.
    text: Option<Regex>,
    bytes: Option<bytes::Regex>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} values)", self.values.len())
    }
}

impl Redactor {
    pub fn new() -> Self {
        Redactor::default()
    }

    /// Learns the secrets a text holds. A secret substituted into `shell =`
    /// or SQL is held in its quoted form (`'pa''ss'`), but a child echoes
    /// it unquoted: the unquoted form is learnt too.
    pub fn learn_text(&mut self, text: &Text) {
        for piece in &text.0 {
            if let Piece::Secret(secret) = piece {
                let value = secret.expose();
                self.learn(value);
                for unquoted in [unquote_shell(value), unquote_sql(value)]
                    .into_iter()
                    .flatten()
                {
                    self.learn(&unquoted);
                }
            }
        }
    }

    /// Learns one value. An empty value is ignored: it would match
    /// everywhere, and hides nothing.
    pub fn learn(&mut self, value: &str) {
        if value.is_empty() || self.values.iter().any(|v| v == value) {
            return;
        }
        self.values.push(value.to_string());
        self.values
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        let pattern = self
            .values
            .iter()
            .map(|v| regex::escape(v))
            .collect::<Vec<_>>()
            .join("|");
        // Escaped literals always compile; only a size limit could refuse
        // them, and then the plain replacements below still hide them.
        self.text = Regex::new(&pattern).ok();
        self.bytes = bytes::Regex::new(&pattern).ok();
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every known value replaced by `***`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if let Some(regex) = &self.text {
            return regex.replace_all(text, NoExpand(MASK));
        }
        let mut out = Cow::Borrowed(text);
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), MASK));
            }
        }
        out
    }

    /// `bytes` with every known value replaced by `***`; bytes that are not
    /// UTF-8 are kept as they are.
    pub fn redact_bytes<'a>(&self, data: &'a [u8]) -> Cow<'a, [u8]> {
        match &self.bytes {
            Some(regex) => regex.replace_all(data, bytes::NoExpand(MASK.as_bytes())),
            None if self.values.is_empty() => Cow::Borrowed(data),
            None => {
                let text = String::from_utf8_lossy(data);
                Cow::Owned(self.redact(&text).into_owned().into_bytes())
            }
        }
    }

    /// Rewrites a file (a step's log, which the child wrote itself) with
    /// every known value hidden, through a 0600 temporary file renamed over
    /// it; says whether anything was hidden. Line by line, so a value that
    /// spans lines is not found. A process still holding the old file open
    /// (a server a step started) goes on writing to the replaced copy.
    pub fn redact_file(&self, path: &Path) -> io::Result<bool> {
        if self.is_empty() {
            return Ok(false);
        }
        let mut reader = BufReader::new(File::open(path)?);
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".redacting");
        let temporary = path.with_file_name(name);
        let mut writer = BufWriter::new(
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?,
        );
        let mut changed = false;
        let mut line = Vec::new();
        let copied = loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break Ok(()),
                Ok(_) => {
                    let redacted = self.redact_bytes(&line);
                    changed |= matches!(redacted, Cow::Owned(_));
                    if let Err(e) = writer.write_all(&redacted) {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        let finished = copied.and_then(|()| writer.flush()).and_then(|()| {
            if changed {
                writer.get_ref().sync_all()?;
                std::fs::rename(&temporary, path)
            } else {
                Ok(())
            }
        });
        if finished.is_err() || !changed {
            let _ = std::fs::remove_file(&temporary);
        }
        finished.map(|()| changed)
    }
}

/// The value of a word quoted by [`crate::quote::shell_quote`], when
/// `quoted` is exactly such a word.
fn unquote_shell(quoted: &str) -> Option<String> {
    let inner = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
    let value = inner.replace(r"'\''", "'");
    (crate::quote::shell_quote(&value) == quoted).then_some(value)
}

/// The value of a literal quoted by [`crate::quote::quote_literal`], when
/// `quoted` is exactly such a literal.
fn unquote_sql(quoted: &str) -> Option<String> {
    let inner = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
    let value = inner.replace("''", "'");
    (crate::quote::quote_literal(&value) == quoted).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Secret;
    use crate::quote::{quote_literal, shell_quote};

    fn secret_text(value: &str) -> Text {
        Text(vec![
            Piece::Lit("--password=".into()),
            Piece::Secret(Secret::new("PW", value)),
        ])
    }

    #[test]
    fn every_occurrence_is_hidden() {
        let mut r = Redactor::new();
        r.learn_text(&secret_text("hunter2"));
        assert_eq!(r.redact("a hunter2 b hunter2"), "a *** b ***");
        assert_eq!(
            r.redact("--password= is not secret"),
            "--password= is not secret"
        );
    }

    #[test]
    fn a_longer_secret_is_hidden_whole() {
        let mut r = Redactor::new();
        r.learn("abc");
        r.learn("abcdef");
        assert_eq!(r.redact("xabcdefx abc"), "x***x ***");
    }

    #[test]
    fn quoted_secrets_are_hidden_unquoted_too() {
        let raw = "it's s3cret";
        for quoted in [shell_quote(raw), quote_literal(raw)] {
            let mut r = Redactor::new();
            r.learn_text(&Text(vec![Piece::Secret(Secret::new(
                "PW",
                quoted.clone(),
            ))]));
            assert_eq!(r.redact(&format!("echo {quoted}")), "echo ***");
            assert_eq!(r.redact(&format!("got {raw}!")), "got ***!");
        }
    }

    #[test]
    fn debug_never_shows_a_value() {
        let mut r = Redactor::new();
        r.learn("hunter2");
        assert_eq!(format!("{r:?}"), "Redactor(1 values)");
    }

    #[test]
    fn a_file_is_rewritten_hidden_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("step.log");
        std::fs::write(&path, b"pw=hunter2 \xff\nclean\nhunter2").unwrap();
        let mut r = Redactor::new();
        r.learn("hunter2");
        assert!(r.redact_file(&path).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"pw=*** \xff\nclean\n***");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!r.redact_file(&path).unwrap(), "nothing left to hide");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_empty_secret_hides_nothing() {
        let mut r = Redactor::new();
        r.learn_text(&secret_text(""));
        assert!(r.is_empty());
        assert_eq!(r.redact("text"), "text");
    }
}
