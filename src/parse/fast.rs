//! A direct reader for well-formed plans, tried before pest because pest
//! costs several combinator calls (each with a stack probe) per character:
//! pest alone took several times the 10 ms budget for parsing and resolving
//! a 5,000-step plan (docs/performance.md).
//!
//! It gives exactly the AST and diagnostics that the pest path gives, or
//! nothing: at anything it is not sure of (any syntax error, anything
//! unusual) it returns `None` and `parse` falls back to pest, which stays
//! the definition of the language and the source of every syntax error.
//! Each choice below follows the PEG rule of `grammar/plan.pest` it names;
//! the tests compare both paths on thousands of damaged plans.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::source::Span;

use super::strings;

/// The AST and the diagnostics of string decoding, or `None` when the
/// pest path must decide.
pub fn parse(text: &str) -> Option<(File, Vec<Diagnostic>)> {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        comments: Vec::new(),
        diagnostics: Vec::new(),
    };
    // file = { SOI ~ item* ~ EOI }
    let mut items = Vec::new();
    loop {
        reader.skip()?;
        if reader.pos == reader.bytes.len() {
            break;
        }
        items.push(reader.item()?);
    }
    let file = File {
        items,
        comments: reader.comments,
    };
    Some((file, reader.diagnostics))
}

struct Reader<'t> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
    comments: Vec<Comment>,
    diagnostics: Vec<Diagnostic>,
}

/// word_char = _{ ASCII_ALPHANUMERIC | "_" | "-" }
fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> Option<Span> {
        (self.peek() == Some(b)).then(|| {
            self.pos += 1;
            Span::new(self.pos - 1, self.pos)
        })
    }

    /// The implicit WHITESPACE and COMMENT between tokens; comments are
    /// kept. Never backtracked over: every caller decides before skipping.
    fn skip(&mut self) -> Option<()> {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\n' | b'\t' | b'\r' => self.pos += 1,
                b'#' => {
                    let start = self.pos;
                    let end = self.bytes[start..]
                        .iter()
                        .position(|&c| c == b'\n')
                        .map_or(self.bytes.len(), |n| start + n);
                    self.pos = end;
                    self.comments.push(Comment {
                        text: self.text.get(start..end)?.trim_end().to_string(),
                        span: Span::new(start, end),
                    });
                }
                _ => break,
            }
        }
        Some(())
    }

    /// The span of the word at the cursor, without moving.
    /// word = @{ (ASCII_ALPHA | "_") ~ word_char* }
    fn peek_word(&self) -> Option<Span> {
        let first = self.peek()?;
        if !(first.is_ascii_alphabetic() || first == b'_') {
            return None;
        }
        let len = self.bytes[self.pos + 1..]
            .iter()
            .position(|&b| !is_word_char(b))
            .unwrap_or(self.bytes.len() - self.pos - 1);
        Some(Span::new(self.pos, self.pos + 1 + len))
    }

    fn word(&mut self) -> Option<Ident> {
        let span = self.peek_word()?;
        self.pos = span.end;
        Some(Ident {
            name: self.text.get(span.start..span.end)?.to_string(),
            span,
        })
    }

    fn slice(&self, span: Span) -> Option<&str> {
        self.text.get(span.start..span.end)
    }

    /// What follows the cursor after whitespace and comments, without
    /// moving and without keeping those comments.
    fn peek_after_skip(&self, from: usize) -> Option<u8> {
        let mut at = from;
        while let Some(&b) = self.bytes.get(at) {
            match b {
                b' ' | b'\n' | b'\t' | b'\r' => at += 1,
                b'#' => {
                    at += self.bytes[at..]
                        .iter()
                        .position(|&c| c == b'\n')
                        .unwrap_or(self.bytes.len() - at)
                }
                _ => return Some(b),
            }
        }
        None
    }

    /// item = _{ plan_block | var_decl | on_failure | step }, in that
    /// order: a keyword not followed by its block's shape is a step's kind.
    fn item(&mut self) -> Option<Item> {
        let head = self.peek_word()?;
        let after = self.peek_after_skip(head.end);
        match self.slice(head)? {
            "plan" if after == Some(b'"') => self.plan_block().map(Item::Plan),
            "var" if self.looks_like_var(head.end) => self.var_decl().map(Item::Var),
            "on_failure" if after == Some(b'{') => self.on_failure().map(Item::OnFailure),
            _ => self.step().map(Item::Step),
        }
    }

    /// `var NAME =`: the start of a var_decl. Anything else after `var` is
    /// only a var_decl if pest would find one, which it would not.
    fn looks_like_var(&self, from: usize) -> bool {
        let mut probe = Reader {
            text: self.text,
            bytes: self.bytes,
            pos: from,
            comments: Vec::new(),
            diagnostics: Vec::new(),
        };
        probe.skip().is_some()
            && probe.word().is_some()
            && probe.skip().is_some()
            && probe.peek() == Some(b'=')
    }

    /// plan_block = { kw_plan ~ string ~ lbrace ~ attr* ~ rbrace }
    fn plan_block(&mut self) -> Option<PlanBlock> {
        let start = self.pos;
        let keyword = self.word()?.span;
        self.skip()?;
        let name = self.string()?;
        self.skip()?;
        let (attrs, body) = self.attrs()?;
        Some(PlanBlock {
            keyword,
            name,
            attrs,
            body,
            span: Span::new(start, body.end),
        })
    }

    /// var_decl = { kw_var ~ word ~ equals ~ expr }
    fn var_decl(&mut self) -> Option<VarDecl> {
        let start = self.pos;
        self.word()?;
        self.skip()?;
        let name = self.word()?;
        self.skip()?;
        self.eat(b'=')?;
        self.skip()?;
        let expr = self.expr()?;
        Some(VarDecl {
            name,
            span: Span::new(start, expr.span().end),
            expr,
        })
    }

    /// on_failure = { kw_on_failure ~ lbrace ~ step* ~ rbrace }
    fn on_failure(&mut self) -> Option<OnFailure> {
        let start = self.pos;
        let keyword = self.word()?.span;
        self.skip()?;
        let open = self.eat(b'{')?;
        let mut steps = Vec::new();
        loop {
            self.skip()?;
            if let Some(close) = self.eat(b'}') {
                let body = open.to(close);
                return Some(OnFailure {
                    steps,
                    keyword,
                    body,
                    span: Span::new(start, close.end),
                });
            }
            steps.push(self.step()?);
        }
    }

    /// step = { word ~ word ~ lbrace ~ attr* ~ rbrace }
    fn step(&mut self) -> Option<Step> {
        let kind = self.word()?;
        self.skip()?;
        let name = self.word()?;
        self.skip()?;
        let (attrs, body) = self.attrs()?;
        Some(Step {
            span: Span::new(kind.span.start, body.end),
            kind,
            name,
            attrs,
            body,
        })
    }

    /// lbrace ~ attr* ~ rbrace, with attr = { word ~ equals ~ value }.
    fn attrs(&mut self) -> Option<(Vec<Attr>, Span)> {
        let open = self.eat(b'{')?;
        let mut attrs = Vec::new();
        loop {
            self.skip()?;
            if let Some(close) = self.eat(b'}') {
                return Some((attrs, open.to(close)));
            }
            let key = self.word()?;
            self.skip()?;
            self.eat(b'=')?;
            self.skip()?;
            let value = self.value()?;
            attrs.push(Attr {
                span: Span::new(key.span.start, value.span().end),
                key,
                value,
            });
        }
    }

    /// expr = _{ env_call | secret_call | target_ref | string | number }
    fn expr(&mut self) -> Option<Expr> {
        match self.peek()? {
            b'"' => return self.string().map(Expr::Str),
            b'-' | b'0'..=b'9' => return self.number().map(Expr::Number),
            _ => {}
        }
        let head = self.peek_word()?;
        let start = self.pos;
        match self.slice(head)? {
            // env_call = { kw_env ~ lparen ~ string ~ (comma ~ string)? ~ rparen }
            "env" => {
                self.pos = head.end;
                self.skip()?;
                self.eat(b'(')?;
                self.skip()?;
                let name = self.string()?;
                self.skip()?;
                let default = if self.eat(b',').is_some() {
                    self.skip()?;
                    let default = self.string()?;
                    self.skip()?;
                    Some(default)
                } else {
                    None
                };
                let close = self.eat(b')')?;
                Some(Expr::Env {
                    name,
                    default,
                    span: Span::new(start, close.end),
                })
            }
            // secret_call = { kw_secret ~ lparen ~ string ~ rparen }
            "secret" => {
                self.pos = head.end;
                self.skip()?;
                self.eat(b'(')?;
                self.skip()?;
                let name = self.string()?;
                self.skip()?;
                let close = self.eat(b')')?;
                Some(Expr::Secret {
                    name,
                    span: Span::new(start, close.end),
                })
            }
            // target_ref = ${ kw_target ~ "." ~ word }: no space inside.
            "target" => {
                self.pos = head.end;
                self.eat(b'.')?;
                let field = self.word()?;
                Some(Expr::Target {
                    span: Span::new(start, field.span.end),
                    field,
                })
            }
            _ => None,
        }
    }

    /// value = _{ string | number | boolean | list | map | word }
    fn value(&mut self) -> Option<Value> {
        match self.peek()? {
            b'[' => self.list().map(Value::List),
            b'{' => self.map().map(Value::Map),
            _ => self.scalar(),
        }
    }

    /// scalar = _{ string | number | boolean | word }
    fn scalar(&mut self) -> Option<Value> {
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            b'-' | b'0'..=b'9' => self.number().map(Value::Number),
            _ => {
                // boolean = @{ ("true" | "false") ~ !word_char }: the whole
                // word, since word and word_char share their characters.
                let word = self.word()?;
                Some(match word.name.as_str() {
                    "true" => Value::Bool(true, word.span),
                    "false" => Value::Bool(false, word.span),
                    _ => Value::Name(word),
                })
            }
        }
    }

    /// list = { lbracket ~ (scalar ~ (comma ~ scalar)* ~ comma?)? ~ rbracket }
    fn list(&mut self) -> Option<List> {
        let open = self.eat(b'[')?;
        let mut items = Vec::new();
        loop {
            self.skip()?;
            if let Some(close) = self.eat(b']') {
                return Some(List {
                    items,
                    span: open.to(close),
                });
            }
            items.push(self.scalar()?);
            self.skip()?;
            if self.eat(b',').is_none() && self.peek() != Some(b']') {
                return None;
            }
        }
    }

    /// map = { lbrace ~ (map_entry ~ comma?)* ~ rbrace }, with
    /// map_entry = { (word | string) ~ equals ~ scalar }.
    fn map(&mut self) -> Option<Map> {
        let open = self.eat(b'{')?;
        let mut entries = Vec::new();
        loop {
            self.skip()?;
            if let Some(close) = self.eat(b'}') {
                return Some(Map {
                    entries,
                    span: open.to(close),
                });
            }
            let start = self.pos;
            let (key, quoted) = if self.peek() == Some(b'"') {
                let s = self.string()?;
                (
                    Ident {
                        name: s.literal(),
                        span: s.span,
                    },
                    true,
                )
            } else {
                (self.word()?, false)
            };
            self.skip()?;
            self.eat(b'=')?;
            self.skip()?;
            let value = self.scalar()?;
            entries.push(MapEntry {
                key,
                quoted,
                span: Span::new(start, value.span().end),
                value,
            });
            self.skip()?;
            self.eat(b',');
        }
    }

    /// number = @{ "-"? ~ ASCII_DIGIT+ ~ ("." ~ ASCII_DIGIT+)* ~ !word_char }
    fn number(&mut self) -> Option<Number> {
        let start = self.pos;
        let digits = |at: usize| {
            self.bytes[at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let mut end = start + usize::from(self.peek() == Some(b'-'));
        let first = digits(end);
        if first == 0 {
            return None;
        }
        end += first;
        while self.bytes.get(end) == Some(&b'.') {
            let more = digits(end + 1);
            if more == 0 {
                break;
            }
            end += 1 + more;
        }
        if self.bytes.get(end).is_some_and(|&b| is_word_char(b)) {
            return None;
        }
        self.pos = end;
        let span = Span::new(start, end);
        Some(Number {
            text: self.slice(span)?.to_string(),
            span,
        })
    }

    /// string = ${ "\"" ~ string_body ~ "\"" }; a backslash takes the
    /// character after it, whatever it is.
    fn string(&mut self) -> Option<Str> {
        let start = self.pos;
        self.eat(b'"')?;
        let mut at = self.pos;
        loop {
            let n = self.bytes[at..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\')?;
            at += n;
            if self.bytes[at] == b'"' {
                break;
            }
            // The escaped character may take several bytes.
            let escaped = self.text.get(at + 1..)?.chars().next()?;
            at += 1 + escaped.len_utf8();
        }
        let body = Span::new(self.pos, at);
        self.pos = at + 1;
        let span = Span::new(start, self.pos);
        let text = self.text;
        let parts = strings::decode(
            text.get(body.start..body.end)?,
            body.start,
            &mut self.diagnostics,
        );
        Some(Str {
            raw: self.slice(span)?.to_string(),
            parts,
            span,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Parsed, parse_with_pest};
    use super::*;

    /// Every construct of the language, with comments and odd spacing in
    /// every place the grammar allows them.
    const TRICKY: &str = "# head\r\nplan \"p \\\"q\\\" ${db} $${x}\" { # c\n  from = \"1\" to=\"2.0\"\n}\nvar a = env(\"A\" , \"d\") # t\nvar b=secret( \"B\" )\nvar c = target.database\nvar n = -1.5\nvar s = \"x\\ty\\q\"\nvar e=env(\"E\")\n\nbackup b1 {\n  after = [a, \"b\", ]\n  keep = false\n  paths = [\"/x\" # in list\n  ]\n  env = { A = \"1\", \"B C\" = 2 D = true }\n  n = 1.2.3\n}\nvar x {\n}\nplan x { t = true_ish }\non_failure y { }\non_failure # c\n{ stop z { run = \"é\" } # e\n}\n# tail";

    fn pest(text: &str) -> Parsed {
        let mut parsed = Parsed {
            file: File::default(),
            diagnostics: Vec::new(),
        };
        parse_with_pest(text, &mut parsed);
        parsed
    }

    /// `None`, or exactly what pest gives (spans included).
    fn agrees(text: &str) -> bool {
        let Some((file, diagnostics)) = parse(text) else {
            return false;
        };
        let expected = pest(text);
        assert_eq!(
            format!("{:?}", (&file, &diagnostics)),
            format!("{:?}", (&expected.file, &expected.diagnostics)),
            "the fast path differs from pest on {text:?}"
        );
        true
    }

    #[test]
    fn valid_plans_take_the_fast_path_and_match_pest() {
        for text in [
            TRICKY,
            include_str!("../../plans/openerp-5.0.0-to-6.0.0.plan"),
            "plan \"p\" {}",
            "  # only a comment and a plan\nplan \"p\" {from=\"1\"to=\"2\"}",
        ] {
            assert!(agrees(text), "not taken: {text:?}");
        }
    }

    #[test]
    fn damaged_plans_either_fall_back_or_match_pest() {
        let inserts = [
            "", "{", "}", "\"", "#", "=", "[", "]", "(", ")", ",", "\n", ".", "\\", "-", "1", "x",
        ];
        let mut taken = 0;
        let mut total = 0;
        for (i, _) in TRICKY.char_indices() {
            for insert in inserts {
                let mut text = TRICKY.to_string();
                if insert.is_empty() {
                    // Deletes the character instead.
                    let c = text[i..].chars().next().map_or(1, char::len_utf8);
                    text.replace_range(i..i + c, "");
                } else {
                    text.insert_str(i, insert);
                }
                total += 1;
                taken += usize::from(agrees(&text));
            }
        }
        // Both kinds were exercised: damage that still parses, and not.
        assert!(taken > total / 10 && taken < total, "{taken} of {total}");
    }
}
