//! Every quoting the runner does, each written once: SQL identifiers
//! ([`quote_ident`], with the check against PostgreSQL's identifier length
//! limit), SQL string literals ([`quote_literal`]), `sh` words
//! ([`shell_quote`], and [`shell_word`] to show an argument as a shell
//! reads it back) and libpq connection-string values ([`conninfo_quote`]).
//!
//! The runner's own SQL passes values as bind parameters (`$1`). A literal
//! is spliced only where there is no parameter to bind: utility statements
//! (`COMMENT ON DATABASE ... IS '...'`, `CREATE DATABASE ... ENCODING`) and
//! a plan's `${var}` inside its own `sql` text, where the value must stay
//! one literal. [`quote_literal`] means the same whatever
//! `standard_conforming_strings` is.

use miette::Diagnostic;
use thiserror::Error;

/// `NAMEDATALEN - 1`: the longest identifier PostgreSQL keeps, in bytes.
/// A longer one is truncated silently (only a NOTICE says so), so two
/// different long names can end up naming the same database.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Why a name cannot be used as an identifier as it is.
#[derive(Debug, Error, Diagnostic, PartialEq, Eq)]
pub enum IdentifierError {
    #[error("`{name}` is {bytes} bytes long; PostgreSQL keeps only the first {max}", max = MAX_IDENTIFIER_BYTES)]
    #[diagnostic(
        code(plan::identifier_too_long),
        help(
            "PostgreSQL would truncate it silently; use a shorter name (the limit counts bytes, and non-ASCII characters take 2 to 4)"
        )
    )]
    TooLong { name: String, bytes: usize },

    #[error("an identifier cannot be empty")]
    #[diagnostic(code(plan::identifier_empty))]
    Empty,

    #[error("`{}` holds a NUL character, which PostgreSQL identifiers cannot", name.escape_debug())]
    #[diagnostic(code(plan::identifier_nul))]
    Nul { name: String },
}

/// `name` as a quoted identifier: in double quotes, inner double quotes
/// doubled. Always quoted, so case and reserved words are kept as written.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Checks that PostgreSQL would keep `name` exactly as given.
pub fn check_identifier(name: &str) -> Result<(), IdentifierError> {
    if name.is_empty() {
        return Err(IdentifierError::Empty);
    }
    if name.contains('\0') {
        return Err(IdentifierError::Nul {
            name: name.to_string(),
        });
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(IdentifierError::TooLong {
            name: name.to_string(),
            bytes: name.len(),
        });
    }
    Ok(())
}

/// [`check_identifier`], then [`quote_ident`]: for names the runner makes
/// up (a snapshot's `<db>_pr_<run id>`), where truncation would be a bug.
pub fn quote_checked(name: &str) -> Result<String, IdentifierError> {
    check_identifier(name)?;
    Ok(quote_ident(name))
}

/// `value` as a SQL string literal, for the utility statements that take no
/// bind parameters. Backslashes make it an `E'...'` literal so the result
/// means the same whatever `standard_conforming_strings` is.
pub fn quote_literal(value: &str) -> String {
    let escape = value.contains('\\');
    let mut out = String::with_capacity(value.len() + 3);
    if escape {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `value` as one single-quoted `sh` word: nothing in it is syntax.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// An argument as a shell would need it to read it back as one word: as it
/// is when it holds only characters no shell treats specially, else
/// [`shell_quote`]d. Used wherever a command is shown (show, dry run, logs).
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=:,@%+".contains(c));
    if plain {
        word.to_string()
    } else {
        shell_quote(word)
    }
}

/// A value in a libpq `key=value` connection string.
pub fn conninfo_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_ident_doubles_inner_quotes() {
        assert_eq!(quote_ident("acme"), "\"acme\"");
        assert_eq!(quote_ident("Acme"), "\"Acme\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("\""), "\"\"\"\"");
        assert_eq!(
            quote_ident("x\"; drop table t; --"),
            "\"x\"\"; drop table t; --\""
        );
    }

    #[test]
    fn quote_ident_keeps_unicode_as_is() {
        assert_eq!(quote_ident("société"), "\"société\"");
        assert_eq!(quote_ident("日本\"語"), "\"日本\"\"語\"");
    }

    #[test]
    fn limit_counts_bytes_not_characters() {
        // 32 two-byte characters: 32 characters, 64 bytes.
        let name = "é".repeat(32);
        assert_eq!(name.chars().count(), 32);
        assert_eq!(
            check_identifier(&name),
            Err(IdentifierError::TooLong {
                name: name.clone(),
                bytes: 64
            })
        );
        let fits = "é".repeat(31) + "a";
        assert_eq!(fits.len(), 63);
        assert_eq!(check_identifier(&fits), Ok(()));
    }

    #[test]
    fn limit_is_63_bytes() {
        assert_eq!(check_identifier(&"a".repeat(63)), Ok(()));
        assert!(matches!(
            check_identifier(&"a".repeat(64)),
            Err(IdentifierError::TooLong { bytes: 64, .. })
        ));
        assert!(quote_checked(&"a".repeat(64)).is_err());
        assert_eq!(quote_checked("a\"b").as_deref(), Ok("\"a\"\"b\""));
    }

    #[test]
    fn empty_and_nul_names_are_refused() {
        assert_eq!(check_identifier(""), Err(IdentifierError::Empty));
        assert!(matches!(
            check_identifier("a\0b"),
            Err(IdentifierError::Nul { .. })
        ));
    }

    #[test]
    fn quote_literal_doubles_quotes_and_escapes_backslashes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
        assert_eq!(quote_literal(""), "''");
    }
}

/// `base` followed by `suffix`, with `base` shortened (on a character
/// boundary) so that the whole fits PostgreSQL's limit: a name the server
/// would truncate could collide with another run's.
pub fn fit_name(base: &str, suffix: &str) -> String {
    let room = MAX_IDENTIFIER_BYTES.saturating_sub(suffix.len());
    let mut end = base.len().min(room);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &base[..end], suffix)
}

#[cfg(test)]
mod fit_tests {
    use super::*;

    #[test]
    fn names_fit_in_63_bytes_on_char_boundaries() {
        let name = fit_name(&"é".repeat(40), "_pr_2611242318014a2f");
        assert!(name.len() <= MAX_IDENTIFIER_BYTES);
        assert!(check_identifier(&name).is_ok());
        assert!(name.ends_with("_pr_2611242318014a2f"));
        assert_eq!(fit_name("acme", "_pr_x"), "acme_pr_x");
    }

    #[test]
    fn plain_words_are_shown_bare_and_others_quoted() {
        assert_eq!(shell_word("--update=all"), "--update=all");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn conninfo_values_escape_quotes_and_backslashes() {
        assert_eq!(conninfo_quote(r"it's a \ path"), r"'it\'s a \\ path'");
    }
}
