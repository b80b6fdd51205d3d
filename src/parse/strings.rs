//! Decoding a string literal's body: escapes, `$${` and `${name}`. Spans of
//! interpolated names point into the original text.

use crate::ast::{Ident, StrPart};
use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

/// Decodes `body` (the text between the quotes), which starts at byte
/// `offset` of the file.
pub fn decode(body: &str, offset: usize, diagnostics: &mut Vec<Diagnostic>) -> Vec<StrPart> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    // Only `\` and `$` mean anything: the runs between them are copied whole.
    while let Some(n) = body.as_bytes()[i..]
        .iter()
        .position(|&b| b == b'\\' || b == b'$')
    {
        text.push_str(&body[i..i + n]);
        i += n;
        if body.as_bytes()[i] == b'\\' {
            let Some(other) = body[i + 1..].chars().next() else {
                // A lone backslash at the end (the grammar never gives one).
                i += 1;
                break;
            };
            match other {
                '"' => text.push('"'),
                '\\' => text.push('\\'),
                'n' => text.push('\n'),
                't' => text.push('\t'),
                other => {
                    let span = Span::new(offset + i, offset + i + 1 + other.len_utf8());
                    diagnostics.push(
                        Diagnostic::new(Code::BadString, span, format!("unknown escape `\\{other}`"))
                            .label("not an escape")
                            .help(r#"the escapes are `\"`, `\\`, `\n` and `\t`; write `\\` for a backslash"#),
                    );
                }
            }
            i += 1 + other.len_utf8();
        } else if body[i..].starts_with("$${") {
            text.push_str("${");
            i += 3;
        } else if body[i..].starts_with("${") {
            let name_start = i + 2;
            let rest = &body[name_start..];
            let close = rest.find(['}', '"', '\n']);
            match close.filter(|&end| rest[end..].starts_with('}')) {
                Some(len) => {
                    let name = &rest[..len];
                    let span = Span::new(offset + name_start, offset + name_start + len);
                    if !is_var_name(name) {
                        diagnostics.push(
                            Diagnostic::new(
                                Code::BadString,
                                span,
                                format!("`${{{name}}}` does not name a variable"),
                            )
                            .label("not a variable name")
                            .help("variable names use lower-case letters, digits and `_`; write `$${` for a literal `${`"),
                        );
                    }
                    if !text.is_empty() {
                        parts.push(StrPart::Lit(std::mem::take(&mut text)));
                    }
                    parts.push(StrPart::Var(Ident {
                        name: name.to_string(),
                        span,
                    }));
                    // Past the name and the closing brace.
                    i = name_start + len + 1;
                }
                None => {
                    let span = Span::new(offset + i, offset + i + 2);
                    diagnostics.push(
                        Diagnostic::new(Code::BadString, span, "`${` is not closed by `}`")
                            .label("opened here")
                            .help("write `${name}` to use a variable, or `$${` for a literal `${`"),
                    );
                    text.push_str("${");
                    i += 2;
                }
            }
        } else {
            text.push('$');
            i += 1;
        }
    }
    text.push_str(&body[i..]);
    if !text.is_empty() || parts.is_empty() {
        parts.push(StrPart::Lit(text));
    }
    parts
}

/// The naming rule shared by steps and variables: `[a-z_][a-z0-9_]*`.
pub fn is_var_name(name: &str) -> bool {
    // Byte-wise: a byte of a character outside ASCII matches no arm.
    let bytes = name.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z' | b'_'))
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(body: &str) -> (Vec<String>, usize) {
        let mut diagnostics = Vec::new();
        let parts = decode(body, 0, &mut diagnostics)
            .into_iter()
            .map(|p| match p {
                StrPart::Lit(t) => format!("lit:{t}"),
                StrPart::Var(i) => format!("var:{}@{}", i.name, i.span.start),
            })
            .collect();
        (parts, diagnostics.len())
    }

    #[test]
    fn escapes_and_interpolation() {
        assert_eq!(
            parts(r#"a \"b\" ${db}\n$${x}"#),
            (
                vec![
                    "lit:a \"b\" ".into(),
                    "var:db@10".into(),
                    "lit:\n${x}".into()
                ],
                0
            )
        );
    }

    #[test]
    fn empty_string_is_one_empty_literal() {
        assert_eq!(parts(""), (vec!["lit:".into()], 0));
    }

    #[test]
    fn malformed_interpolations_are_reported() {
        assert_eq!(parts("${Bad}").1, 1);
        assert_eq!(parts("${open").1, 1);
        assert_eq!(parts("${}").1, 1);
        assert_eq!(parts(r"\q").1, 1);
    }
}
