//! Identifiers sent to PostgreSQL go through `quote_ident`; values never
//! are spliced into SQL: they go as bind parameters.

/// `name` as a double-quoted identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as an SQL string literal, for the few statements that take no
/// bind parameters (`COMMENT ON`, `ALTER DATABASE ... SET`).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// PostgreSQL truncates identifiers longer than this many bytes, silently.
pub const MAX_IDENT_BYTES: usize = 63;

/// `base` followed by `suffix`, with `base` shortened (on a character
/// boundary) so that the whole fits PostgreSQL's limit: a name the server
/// would truncate could collide with another run's.
pub fn fit_name(base: &str, suffix: &str) -> String {
    let room = MAX_IDENT_BYTES.saturating_sub(suffix.len());
    let mut end = base.len().min(room);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &base[..end], suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn names_fit_in_63_bytes_on_char_boundaries() {
        let name = fit_name(&"é".repeat(40), "_pr_2611242318014a2f");
        assert!(name.len() <= MAX_IDENT_BYTES);
        assert!(name.ends_with("_pr_2611242318014a2f"));
        assert_eq!(fit_name("acme", "_pr_x"), "acme_pr_x");
    }
}
