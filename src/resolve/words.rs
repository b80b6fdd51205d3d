//! Splitting `run = "..."` into arguments the way a POSIX shell splits words
//! (quotes and backslashes), with no shell: a substituted value is inserted
//! into the word being built and is never split or interpreted.

use std::rc::Rc;

use crate::plan::Text;

/// One piece of a string after interpolation.
#[derive(Clone, Debug)]
pub enum Seg<'s> {
    /// Text written in the plan: subject to word splitting.
    Lit(&'s str),
    /// A variable's value: opaque.
    Value(Rc<Text>),
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
///
/// Plain text between two characters that mean something is copied into
/// the argument in one piece (`text[run..i]`): copying it a character at a
/// time cost more than the rest of resolving a step.
pub fn split(segs: &[Seg<'_>]) -> Result<Vec<Text>, WordError> {
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
            Seg::Lit(text) => *text,
        };
        // The start of the plain text not yet added to `word`.
        let mut run = 0;
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match quote {
                Quote::Single => {
                    if c == '\'' {
                        word.push_str(&text[run..i]);
                        run = i + 1;
                        quote = Quote::None;
                    }
                }
                Quote::Double => match c {
                    '"' => {
                        word.push_str(&text[run..i]);
                        run = i + 1;
                        quote = Quote::None;
                    }
                    '\\' => match chars.peek() {
                        // The escaped character starts the next run.
                        Some(&(next, '"' | '\\' | '$' | '`')) => {
                            word.push_str(&text[run..i]);
                            run = next;
                            chars.next();
                        }
                        Some(&(next, '\n')) => {
                            word.push_str(&text[run..i]);
                            run = next + 1;
                            chars.next();
                        }
                        // Any other backslash is itself: it stays in the run.
                        _ => {}
                    },
                    _ => {}
                },
                Quote::None => match c {
                    c if c.is_whitespace() => {
                        word.push_str(&text[run..i]);
                        run = i + c.len_utf8();
                        if let Some(done) = word.take() {
                            words.push(done);
                        }
                    }
                    '\'' | '"' => {
                        word.push_str(&text[run..i]);
                        run = i + 1;
                        word.start();
                        quote = if c == '"' {
                            Quote::Double
                        } else {
                            Quote::Single
                        };
                    }
                    '\\' => {
                        word.push_str(&text[run..i]);
                        run = match chars.next() {
                            Some((next, '\n')) => next + 1,
                            // The escaped character starts the next run.
                            Some((next, _)) => next,
                            None => text.len(),
                        };
                    }
                    '|' | ';' | '&' | '<' | '>' | '`' => {
                        return Err(WordError::ShellSyntax(c.to_string()));
                    }
                    '$' if chars.peek().map(|&(_, c)| c) == Some('(') => {
                        return Err(WordError::ShellSyntax("$(".into()));
                    }
                    _ => {}
                },
            }
        }
        word.push_str(&text[run..]);
    }
    match quote {
        Quote::Single => return Err(WordError::UnclosedQuote('\'')),
        Quote::Double => return Err(WordError::UnclosedQuote('"')),
        Quote::None => {}
    }
    words.extend(word.take());
    Ok(words)
}

/// The argument being built.
#[derive(Default)]
struct Word {
    /// `None` until something (even an empty quote) starts the argument.
    text: Option<Text>,
}

impl Word {
    fn start(&mut self) -> &mut Text {
        // Most arguments are one literal: one piece, one allocation.
        self.text.get_or_insert_with(|| Text(Vec::with_capacity(1)))
    }

    fn push_str(&mut self, run: &str) {
        if !run.is_empty() {
            self.start().push_lit(run);
        }
    }

    fn extend(&mut self, value: &Text) {
        self.start().extend(value);
    }

    fn take(&mut self) -> Option<Text> {
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
pub fn join_quoted(segs: &[Seg<'_>], quote: fn(&str) -> String) -> Text {
    let mut out = Text(Vec::with_capacity(1));
    for seg in segs {
        match seg {
            Seg::Lit(text) => out.push_lit(text),
            Seg::Value(value) => out.extend(&value.quoted(quote)),
        }
    }
    out
}

/// Joins segments into one text as they are.
pub fn join(segs: &[Seg<'_>]) -> Text {
    let mut out = Text(Vec::with_capacity(1));
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

    fn lit(s: &str) -> Seg<'_> {
        Seg::Lit(s)
    }

    fn val(s: &str) -> Seg<'static> {
        Seg::Value(Rc::new(Text::lit(s)))
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
