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
    // Where a `${` at or after `i` is closed, or stopped by a `"` or a line
    // break: searched once per stretch, not once per `${`, which made a
    // string of many unclosed `${` quadratic (200 KB took seconds).
    let mut stops = Stops::default();
    // The last unclosed `${` reported: its diagnostic, the stop it ran to,
    // and how many more ran to the same stop (reported with it, not each
    // on its own: they are one mistake, and 100,000 of them would flood
    // the terminal).
    let mut unclosed: Option<(usize, Option<usize>, usize)> = None;
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
            let stop = stops.from(body, name_start);
            match stop
                .map(|end| end - name_start)
                .filter(|&len| rest[len..].starts_with('}'))
            {
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
                    match &mut unclosed {
                        Some((_, same, more)) if *same == stop => *more += 1,
                        _ => {
                            more_unclosed(unclosed, diagnostics);
                            let span = Span::new(offset + i, offset + i + 2);
                            diagnostics.push(
                                Diagnostic::new(Code::BadString, span, "`${` is not closed by `}`")
                                    .label("opened here")
                                    .help("write `${name}` to use a variable, or `$${` for a literal `${`"),
                            );
                            unclosed = Some((diagnostics.len() - 1, stop, 0));
                        }
                    }
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
    more_unclosed(unclosed, diagnostics);
    parts
}

/// The next `}`, `"` or line break of a string's body, remembered from one
/// `${` to the next.
#[derive(Default)]
struct Stops {
    /// The last one found.
    next: Option<usize>,
    /// From here on there is none.
    none_from: Option<usize>,
}

impl Stops {
    /// The first stop at or after `from`; `from` never goes back.
    fn from(&mut self, body: &str, from: usize) -> Option<usize> {
        if self.none_from.is_some_and(|none| from >= none) {
            return None;
        }
        if let Some(next) = self.next.filter(|&next| next >= from) {
            return Some(next);
        }
        let found = body
            .as_bytes()
            .get(from..)
            .and_then(|rest| memchr::memchr3(b'}', b'"', b'\n', rest))
            .map(|n| from + n);
        match found {
            Some(at) => self.next = Some(at),
            None => self.none_from = Some(from),
        }
        found
    }
}

/// Says in the report of an unclosed `${` how many more followed it to the
/// same stop (its label is not shown when the line is too long).
fn more_unclosed(unclosed: Option<(usize, Option<usize>, usize)>, diagnostics: &mut [Diagnostic]) {
    if let Some((at, _, more @ 1..)) = unclosed
        && let Some(d) = diagnostics.get_mut(at)
    {
        d.message = format!(
            "`${{` is not closed by `}}`, and neither {} the {more} after it on this line",
            if more == 1 { "is" } else { "are" }
        );
    }
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
    fn many_unclosed_interpolations_are_one_report_found_in_linear_time() {
        // 300,000 `${` with no `}`: a search to the end of the string from
        // each one took minutes; now one search serves them all.
        let body = "${x ".repeat(300_000);
        let mut diagnostics = Vec::new();
        let parts = decode(&body, 10, &mut diagnostics);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
        assert_eq!(diagnostics[0].primary.span, Span::new(10, 12));
        assert_eq!(
            diagnostics[0].message,
            "`${` is not closed by `}`, and neither are the 299999 after it on this line"
        );
        assert!(matches!(parts.as_slice(), [StrPart::Lit(t)] if t.as_str() == body));
        // Each line is its own report; a closed one in between is read.
        let mut diagnostics = Vec::new();
        let parts = decode("${a\n${b ${c\n${d} ${e", 0, &mut diagnostics);
        let starts: Vec<usize> = diagnostics.iter().map(|d| d.primary.span.start).collect();
        assert_eq!(starts, [0, 4, 17]);
        assert!(
            diagnostics[1]
                .message
                .ends_with("neither is the 1 after it on this line")
        );
        assert_eq!(diagnostics[0].message, "`${` is not closed by `}`");
        assert!(
            parts
                .iter()
                .any(|p| matches!(p, StrPart::Var(i) if i.name == "d"))
        );
    }

    #[test]
    fn malformed_interpolations_are_reported() {
        assert_eq!(parts("${Bad}").1, 1);
        assert_eq!(parts("${open").1, 1);
        assert_eq!(parts("${}").1, 1);
        assert_eq!(parts(r"\q").1, 1);
    }
}
