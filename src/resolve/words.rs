//! Splitting `run = "..."` into arguments the way a POSIX shell splits words
//! (quotes and backslashes), with no shell: a substituted value is inserted
//! into the word being built and is never split or interpreted.

use std::rc::Rc;

use crate::plan::{Piece, Text};

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
pub fn split(segs: &[Seg<'_>]) -> Result<Vec<Text>, WordError> {
    Builder::default().split(segs)
}

/// Joins segments into one text, quoting each value with `quote`.
pub fn join_quoted(segs: &[Seg<'_>], quote: fn(&str) -> String) -> Text {
    Builder::default().join_quoted(segs, quote)
}

/// Joins segments into one text as they are.
pub fn join(segs: &[Seg<'_>]) -> Text {
    Builder::default().join(segs)
}

/// Builds texts. Literal text collects in `pending` and becomes a piece
/// only when a secret or a placeholder follows or the text is done, so
/// each piece is allocated once, at its final size; the buffers are reused
/// from one text to the next (one builder serves a whole plan).
#[derive(Default)]
pub struct Builder {
    /// Whether something (even an empty quote) has started the text.
    started: bool,
    pieces: Vec<Piece>,
    pending: String,
    /// The arguments of the command being split.
    words: Vec<Text>,
}

impl Builder {
    /// Splits segments into arguments.
    ///
    /// Plain text between two characters that mean something is copied in
    /// one piece (`text[run..i]`): copying it a character at a time cost
    /// more than the rest of resolving a step. Every index is at an ASCII
    /// byte or moved past a whole character, so every slice is on a
    /// character boundary.
    pub fn split(&mut self, segs: &[Seg<'_>]) -> Result<Vec<Text>, WordError> {
        self.clear();
        let result = self.split_into_words(segs);
        let words = self.words.drain(..).collect();
        self.clear();
        result.map(|()| words)
    }

    fn split_into_words(&mut self, segs: &[Seg<'_>]) -> Result<(), WordError> {
        let mut quote = Quote::None;
        for seg in segs {
            let text = match seg {
                Seg::Value(value) => {
                    // An empty value still makes an argument: `extend`
                    // marks the word as started.
                    self.extend(value);
                    continue;
                }
                Seg::Lit(text) => *text,
            };
            let bytes = text.as_bytes();
            // The start of the plain text not yet added to the word.
            let mut run = 0;
            let mut i = 0;
            while let Some(&b) = bytes.get(i) {
                match quote {
                    Quote::Single => {
                        if b == b'\'' {
                            self.push_str(&text[run..i]);
                            run = i + 1;
                            quote = Quote::None;
                        }
                        i += 1;
                    }
                    Quote::Double => match b {
                        b'"' => {
                            self.push_str(&text[run..i]);
                            run = i + 1;
                            quote = Quote::None;
                            i += 1;
                        }
                        b'\\' => match bytes.get(i + 1) {
                            // The escaped character starts the next run.
                            Some(b'"' | b'\\' | b'$' | b'`') => {
                                self.push_str(&text[run..i]);
                                run = i + 1;
                                i += 2;
                            }
                            Some(b'\n') => {
                                self.push_str(&text[run..i]);
                                run = i + 2;
                                i += 2;
                            }
                            // Any other backslash is itself: it stays in the run.
                            _ => i += 1,
                        },
                        // No other byte, and no byte of a multi-byte
                        // character, means anything inside double quotes.
                        _ => i += 1,
                    },
                    Quote::None if b >= 0x80 => {
                        // Outside ASCII, only whitespace means anything.
                        let c = text[i..].chars().next().unwrap_or(' ');
                        if c.is_whitespace() {
                            self.end_word(&text[run..i]);
                            run = i + c.len_utf8();
                        }
                        i += c.len_utf8();
                    }
                    Quote::None => {
                        match b {
                            // ASCII whitespace, as `char::is_whitespace`.
                            b' ' | b'\t'..=b'\r' => {
                                self.end_word(&text[run..i]);
                                run = i + 1;
                            }
                            b'\'' | b'"' => {
                                self.push_str(&text[run..i]);
                                run = i + 1;
                                self.started = true;
                                quote = if b == b'"' {
                                    Quote::Double
                                } else {
                                    Quote::Single
                                };
                            }
                            b'\\' => {
                                self.push_str(&text[run..i]);
                                let next = text[i + 1..].chars().next();
                                run = match next {
                                    Some('\n') => i + 2,
                                    // The escaped character starts the next run.
                                    Some(_) => i + 1,
                                    None => text.len(),
                                };
                                i += 1 + next.map_or(0, char::len_utf8);
                                continue;
                            }
                            b'|' | b';' | b'&' | b'<' | b'>' | b'`' => {
                                return Err(WordError::ShellSyntax(char::from(b).to_string()));
                            }
                            b'$' if bytes.get(i + 1) == Some(&b'(') => {
                                return Err(WordError::ShellSyntax("$(".into()));
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                }
            }
            self.push_str(&text[run..]);
        }
        match quote {
            Quote::Single => return Err(WordError::UnclosedQuote('\'')),
            Quote::Double => return Err(WordError::UnclosedQuote('"')),
            Quote::None => {}
        }
        self.end_word("");
        Ok(())
    }

    /// Joins segments into one text, quoting each value with `quote`.
    pub fn join_quoted(&mut self, segs: &[Seg<'_>], quote: fn(&str) -> String) -> Text {
        self.clear();
        for seg in segs {
            match seg {
                Seg::Lit(text) => self.push_str(text),
                Seg::Value(value) => self.quoted(value, quote),
            }
        }
        self.take().unwrap_or_default()
    }

    /// Joins segments into one text as they are.
    pub fn join(&mut self, segs: &[Seg<'_>]) -> Text {
        self.clear();
        for seg in segs {
            match seg {
                Seg::Lit(text) => self.push_str(text),
                Seg::Value(value) => self.extend(value),
            }
        }
        self.take().unwrap_or_default()
    }

    fn clear(&mut self) {
        self.started = false;
        self.pieces.clear();
        self.pending.clear();
        self.words.clear();
    }

    fn push_str(&mut self, text: &str) {
        if !text.is_empty() {
            self.started = true;
            self.pending.push_str(text);
        }
    }

    fn push(&mut self, piece: &Piece) {
        match piece {
            Piece::Lit(text) => self.pending.push_str(text),
            other => {
                self.flush();
                self.pieces.push(other.clone());
            }
        }
    }

    fn extend(&mut self, value: &Text) {
        self.started = true;
        for piece in &value.0 {
            self.push(piece);
        }
    }

    /// `value` quoted as one unit, as `Text::quoted` does; a plain
    /// literal (most values) is quoted without building a text first.
    fn quoted(&mut self, value: &Text, quote: fn(&str) -> String) {
        self.started = true;
        match value.0.as_slice() {
            [Piece::Lit(text)] => self.pending.push_str(&quote(text)),
            _ => {
                for piece in &value.quoted(quote).0 {
                    self.push(piece);
                }
            }
        }
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.pieces
                .push(Piece::Lit(self.pending.as_str().to_owned()));
            self.pending.clear();
        }
    }

    /// The text built, if anything started it; the builder is then empty.
    fn take(&mut self) -> Option<Text> {
        self.flush();
        let started = std::mem::take(&mut self.started);
        let text = Text(self.pieces.drain(..).collect());
        started.then_some(text)
    }

    /// Ends the argument being built after adding `run` to it.
    fn end_word(&mut self, run: &str) {
        self.push_str(run);
        if let Some(word) = self.take() {
            self.words.push(word);
        }
    }
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
        assert_eq!(crate::quote::shell_quote("it's"), r"'it'\''s'");
        assert_eq!(crate::quote::quote_literal("it's"), "'it''s'");
    }
    #[test]
    fn unicode_whitespace_separates_and_escapes_keep_whole_characters() {
        assert_eq!(
            words(&[lit("a\u{a0}b\u{3000}c é\\é \"ü\\ü\" '\u{a0}'")]),
            ["a", "b", "c", "éé", "ü\\ü", "\u{a0}"]
        );
        assert_eq!(words(&[lit("a\\\u{a0}b")]), ["a\u{a0}b"]);
    }

    #[test]
    fn one_builder_serves_many_texts() {
        let mut b = Builder::default();
        let secret = Seg::Value(Rc::new(Text(vec![Piece::Secret(
            crate::plan::Secret::new("S", "s"),
        )])));
        let first = b
            .split(&[lit("a 'b"), secret.clone(), lit("c' d")])
            .unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(first[1].expose().as_deref(), Some("bsc"));
        assert!(first[1].has_secret() && !first[2].has_secret());
        assert!(b.split(&[lit("x 'y")]).is_err());
        // Nothing of the failed split is left behind.
        let words: Vec<_> = b.split(&[lit("z")]).unwrap();
        assert_eq!(words.len(), 1);
        assert_eq!(words[0].as_literal().as_deref(), Some("z"));
        assert_eq!(
            b.join(&[lit("p"), val("q")]).as_literal().as_deref(),
            Some("pq")
        );
        assert_eq!(
            b.join_quoted(&[lit("x = "), val("it's")], crate::quote::quote_literal)
                .as_literal()
                .as_deref(),
            Some("x = 'it''s'")
        );
    }

    /// Word splitting one character at a time, as the resolver did before
    /// it copied runs: the reference the fast version must agree with.
    fn reference(segs: &[Seg<'_>]) -> Result<Vec<Text>, WordError> {
        let mut words = Vec::new();
        let mut word: Option<Text> = None;
        let mut quote = Quote::None;
        let push = |word: &mut Option<Text>, c: char| {
            word.get_or_insert_with(Text::default)
                .push_lit(c.encode_utf8(&mut [0; 4]));
        };
        for seg in segs {
            let text = match seg {
                Seg::Value(value) => {
                    word.get_or_insert_with(Text::default).extend(value);
                    continue;
                }
                Seg::Lit(text) => *text,
            };
            let mut chars = text.chars().peekable();
            while let Some(c) = chars.next() {
                match quote {
                    Quote::Single if c == '\'' => quote = Quote::None,
                    Quote::Single => push(&mut word, c),
                    Quote::Double => match c {
                        '"' => quote = Quote::None,
                        '\\' => match chars.peek() {
                            Some(&next @ ('"' | '\\' | '$' | '`')) => {
                                chars.next();
                                push(&mut word, next);
                            }
                            Some('\n') => {
                                chars.next();
                            }
                            _ => push(&mut word, '\\'),
                        },
                        c => push(&mut word, c),
                    },
                    Quote::None => match c {
                        c if c.is_whitespace() => words.extend(word.take()),
                        '\'' | '"' => {
                            word.get_or_insert_with(Text::default);
                            quote = if c == '"' {
                                Quote::Double
                            } else {
                                Quote::Single
                            };
                        }
                        '\\' => match chars.next() {
                            Some('\n') | None => {}
                            Some(next) => push(&mut word, next),
                        },
                        '|' | ';' | '&' | '<' | '>' | '`' => {
                            return Err(WordError::ShellSyntax(c.to_string()));
                        }
                        '$' if chars.peek() == Some(&'(') => {
                            return Err(WordError::ShellSyntax("$(".into()));
                        }
                        c => push(&mut word, c),
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

    proptest::proptest! {
        #[test]
        fn runs_split_as_characters_do(
            parts in proptest::collection::vec(
                (
                    proptest::string::string_regex(
                        "[a-c \\t\\n\\r'\"\\\\$(|;é\u{a0}\u{3000}\u{2028}`]{0,12}",
                    )
                    .unwrap(),
                    proptest::option::of("[a b'\"]{0,3}"),
                ),
                1..4,
            )
        ) {
            let values: Vec<Option<Rc<Text>>> = parts
                .iter()
                .map(|(_, v)| v.as_ref().map(|v| Rc::new(Text::lit(v.as_str()))))
                .collect();
            let mut segs = Vec::new();
            for ((text, _), value) in parts.iter().zip(&values) {
                segs.push(Seg::Lit(text));
                if let Some(value) = value {
                    segs.push(Seg::Value(Rc::clone(value)));
                }
            }
            let fast = Builder::default().split(&segs);
            let slow = reference(&segs);
            proptest::prop_assert_eq!(fast, slow);
        }
    }
}
