//! Splitting `run = "..."` into arguments the way a POSIX shell splits words
//! (quotes and backslashes), with no shell: a substituted value is inserted
//! into the word being built and is never split or interpreted.

use crate::plan::Text;

/// One piece of a string after interpolation.
#[derive(Clone, Debug)]
pub enum Seg {
    /// Text written in the plan: subject to word splitting.
    Lit(String),
    /// A variable's value: opaque.
    Value(Text),
}

/// Why a command could not be split.
#[derive(Debug, PartialEq, Eq)]
pub enum WordError {
    UnclosedQuote(char),
    ShellSyntax(String),
}

#[derive(Clone, Copy, PartialEq)]
enum Quote {
    None,
    Single,
    Double,
}

/// Splits segments into arguments.
pub fn split(segs: &[Seg]) -> Result<Vec<Text>, WordError> {
    let mut words = Vec::new();
    let mut word = Word::default();
    let mut quote = Quote::None;
    for seg in segs {
        let text = match seg {
            Seg::Value(value) => {
                // An empty value still makes an argument: `extend` marks
                // the word as started.
                word.extend(value);
                continue;
            }
            Seg::Lit(text) => text,
        };
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match quote {
                Quote::Single => {
                    if c == '\'' {
                        quote = Quote::None;
                    } else {
                        word.push(c);
                    }
                }
                Quote::Double => match c {
                    '"' => quote = Quote::None,
                    '\\' => match chars.peek() {
                        Some(&next @ ('"' | '\\' | '$' | '`')) => {
                            chars.next();
                            word.push(next);
                        }
                        Some('\n') => {
                            chars.next();
                        }
                        _ => word.push('\\'),
                    },
                    c => word.push(c),
                },
                Quote::None => match c {
                    c if c.is_whitespace() => {
                        if let Some(done) = word.take() {
                            words.push(done);
                        }
                    }
                    '\'' => {
                        word.start();
                        quote = Quote::Single;
                    }
                    '"' => {
                        word.start();
                        quote = Quote::Double;
                    }
                    '\\' => match chars.next() {
                        Some('\n') | None => {}
                        Some(next) => word.push(next),
                    },
                    '|' | ';' | '&' | '<' | '>' | '`' => {
                        return Err(WordError::ShellSyntax(c.to_string()));
                    }
                    '$' if chars.peek() == Some(&'(') => {
                        return Err(WordError::ShellSyntax("$(".into()));
                    }
                    c => word.push(c),
                },
            }
        }
    }
    match quote {
        Quote::Single => return Err(WordError::UnclosedQuote('\'')),
        Quote::Double => return Err(WordError::UnclosedQuote('"')),
        Quote::None => {}
    }
    words.extend(word.take());
    Ok(words)
}

/// The argument being built. Plain characters collect in `pending` and
/// join the text a run at once: one `Text` operation per character cost
/// more than the rest of resolving a step.
#[derive(Default)]
struct Word {
    /// `None` until something (even an empty quote) starts the argument.
    text: Option<Text>,
    pending: String,
}

impl Word {
    fn start(&mut self) {
        self.text.get_or_insert_with(Text::default);
    }

    fn push(&mut self, c: char) {
        self.start();
        self.pending.push(c);
    }

    fn flush(&mut self) {
        if let Some(text) = &mut self.text {
            text.push_lit(&self.pending);
        }
        self.pending.clear();
    }

    fn extend(&mut self, value: &Text) {
        self.start();
        self.flush();
        if let Some(text) = &mut self.text {
            text.extend(value);
        }
    }

    fn take(&mut self) -> Option<Text> {
        self.flush();
        self.text.take()
    }
}

/// `value` as one single-quoted `sh` word.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `value` as one SQL string literal (standard_conforming_strings on, the
/// default since PostgreSQL 9.1).
pub fn sql_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Joins segments into one text, quoting each value with `quote`.
pub fn join_quoted(segs: &[Seg], quote: fn(&str) -> String) -> Text {
    let mut out = Text::default();
    for seg in segs {
        match seg {
            Seg::Lit(text) => out.push_lit(text),
            Seg::Value(value) => out.extend(&value.quoted(quote)),
        }
    }
    out
}

/// Joins segments into one text as they are.
pub fn join(segs: &[Seg]) -> Text {
    let mut out = Text::default();
    for seg in segs {
        match seg {
            Seg::Lit(text) => out.push_lit(text),
            Seg::Value(value) => out.extend(value),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(segs: &[Seg]) -> Vec<String> {
        split(segs)
            .unwrap()
            .iter()
            .map(|w| w.expose().unwrap())
            .collect()
    }

    fn lit(s: &str) -> Seg {
        Seg::Lit(s.into())
    }

    fn val(s: &str) -> Seg {
        Seg::Value(Text::lit(s))
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            words(&[lit(r#"python3  'a b' "c \"d\"" e\ f"#)]),
            ["python3", "a b", "c \"d\"", "e f"]
        );
    }

    #[test]
    fn values_stay_inside_their_argument() {
        let nasty = "a b; rm -rf / $(x) 'q' \"\n";
        assert_eq!(
            words(&[lit("run -d "), val(nasty), lit(" --x=")]),
            ["run", "-d", nasty, "--x="]
        );
        assert_eq!(words(&[lit("--db="), val("a b")]), ["--db=a b"]);
    }

    #[test]
    fn an_empty_value_is_an_empty_argument() {
        assert_eq!(words(&[lit("a "), val(""), lit(" b")]), ["a", "", "b"]);
        assert_eq!(words(&[lit("a '' b")]), ["a", "", "b"]);
    }

    #[test]
    fn shell_syntax_and_open_quotes_are_refused() {
        assert_eq!(
            split(&[lit("a | b")]),
            Err(WordError::ShellSyntax("|".into()))
        );
        assert_eq!(split(&[lit("a 'b")]), Err(WordError::UnclosedQuote('\'')));
        // Quoted, the same characters are plain text.
        assert_eq!(words(&[lit("a '|' \";\"")]), ["a", "|", ";"]);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(sql_quote("it's"), "'it''s'");
    }
}
