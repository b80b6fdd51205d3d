//! Turning pest's errors into diagnostics in a partner's words: what was
//! found and what could have come there, never the grammar's rule names.

use std::ops::Range;

use pest::error::{ErrorVariant, InputLocation};

use super::Rule;
use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

/// Where pest stopped, in the text it was given.
pub fn position(error: &pest::error::Error<Rule>) -> usize {
    match error.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    }
}

/// A diagnostic for a pest error from parsing `text[block]` on its own
/// (`block` is the whole file when the file was parsed whole). Spans are the
/// file's. A block parsed on its own ends where the next block starts: when
/// pest wanted more at its end, that is "the end of the block", not of the
/// file.
pub fn from_pest(error: &pest::error::Error<Rule>, text: &str, block: Range<usize>) -> Diagnostic {
    let pos = (block.start + position(error)).min(block.end);
    let content_end = block.start + content_len(&text[block.clone()]);
    let next_block = (pos >= content_end && block.end < text.len()).then_some(block.end);
    let (found, span) = match next_block {
        Some(_) => (
            "the end of the block".to_string(),
            Span::new(content_end, content_end),
        ),
        None => {
            let found = describe_found(text, pos);
            (found.text, Span::new(pos, pos + found.len))
        }
    };
    match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut expected: Vec<&str> = positives
                .iter()
                .filter_map(|r| expected_word(*r))
                // A block parsed on its own ends before the file does.
                .map(|w| match w {
                    END_OF_FILE if block.end < text.len() => "the end of the block",
                    w => w,
                })
                .collect();
            expected.sort_by_key(|word| rank(word));
            expected.dedup();
            let expected = collapse_values(expected);
            let message = if expected.is_empty() {
                format!("unexpected {found}")
            } else {
                format!("expected {}, found {found}", join_or(&expected))
            };
            let mut diagnostic =
                Diagnostic::new(Code::Syntax, span, message).label(label(&expected));
            if let Some(next) = next_block {
                let len = describe_found(text, next).len.max(1);
                diagnostic =
                    diagnostic.also(Span::new(next, next + len), "the next block starts here");
            }
            if let Some(help) = hint(&expected, text, pos) {
                diagnostic = diagnostic.help(help);
            }
            diagnostic
        }
        ErrorVariant::CustomError { .. } => Diagnostic::new(
            Code::Syntax,
            span,
            "the plan is too large or too deeply nested to read",
        )
        .help("split the plan into smaller files"),
    }
}

/// The length of `block` without what ends it after its last token:
/// whitespace, and comment lines (a comment above a block belongs to the
/// block before it, as block starts go).
pub fn content_len(block: &str) -> usize {
    let mut content = block.trim_end();
    loop {
        let last_line = content.rfind('\n').map_or(0, |n| n + 1);
        if !content[last_line..].trim_start().starts_with('#') {
            return content.len();
        }
        content = content[..last_line].trim_end();
    }
}

struct Found {
    text: String,
    len: usize,
}

fn describe_found(text: &str, pos: usize) -> Found {
    let rest = &text[pos..];
    let Some(c) = rest.chars().next() else {
        return Found {
            text: "the end of the file".into(),
            len: 0,
        };
    };
    if c.is_alphanumeric() || c == '_' {
        let len = rest
            .find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '-' || ch == '.'))
            .unwrap_or(rest.len());
        let word = &rest[..len];
        let shown: String = word.chars().take(40).collect();
        return Found {
            text: format!("`{shown}`"),
            len,
        };
    }
    let text = match c {
        '"' => "a string".to_string(),
        '\n' | '\r' => "the end of the line".to_string(),
        '`' => "a backquote".to_string(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    };
    Found {
        text,
        len: c.len_utf8(),
    }
}

fn expected_word(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::string | Rule::string_body => "a string",
        Rule::word => "a name",
        Rule::number => "a number",
        Rule::boolean => "`true` or `false`",
        Rule::list | Rule::lbracket => "`[`",
        Rule::map | Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::rbracket => "`]`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::equals => "`=`",
        Rule::comma => "`,`",
        Rule::kw_plan | Rule::plan_block => "`plan`",
        Rule::kw_var | Rule::var_decl => "`var`",
        Rule::kw_on_failure | Rule::on_failure => "`on_failure`",
        Rule::kw_env | Rule::env_call => "`env(...)`",
        Rule::kw_secret | Rule::secret_call => "`secret(...)`",
        Rule::kw_target | Rule::target_ref => "`target.NAME`",
        Rule::step => "a step",
        Rule::attr => "an attribute",
        Rule::map_entry => "`KEY = value`",
        Rule::EOI => END_OF_FILE,
        _ => return None,
    })
}

const END_OF_FILE: &str = "the end of the file";

/// What may start a value, in the order messages list them.
const SCALARS: [&str; 4] = ["a string", "a number", "a name", BOOLEAN];
const BOOLEAN: &str = "`true` or `false`";
const VALUE: &str = "a value";

/// Where `word` comes in a list of what was expected: values first, then
/// punctuation, so "expected a string or `]`" reads the same every time.
fn rank(word: &str) -> usize {
    const ORDER: [&str; 20] = [
        VALUE,
        "a string",
        "a number",
        "a name",
        BOOLEAN,
        "`[`",
        "`{`",
        "`=`",
        "`,`",
        "`]`",
        "`}`",
        "`(`",
        "`)`",
        "`plan`",
        "`var`",
        "`on_failure`",
        "a step",
        "`env(...)`",
        "`secret(...)`",
        "`target.NAME`",
    ];
    ORDER.iter().position(|w| *w == word).unwrap_or(ORDER.len())
}

/// Six alternatives that together mean "a value" are said in two words.
fn collapse_values(expected: Vec<&str>) -> Vec<&str> {
    let all = SCALARS
        .iter()
        .chain(&["`[`", "`{`"])
        .all(|w| expected.contains(w));
    if !all {
        return expected;
    }
    std::iter::once(VALUE)
        .chain(
            expected
                .into_iter()
                .filter(|w| !SCALARS.contains(w) && *w != "`[`" && *w != "`{`"),
        )
        .collect()
}

fn join_or(words: &[&str]) -> String {
    // "`true` or `false` or `]`" would read as a riddle.
    let words: Vec<&str> = if words.len() > 1 {
        words
            .iter()
            .map(|w| if *w == BOOLEAN { "`true`, `false`" } else { w })
            .collect()
    } else {
        words.to_vec()
    };
    match words.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

fn label(expected: &[&str]) -> String {
    match expected {
        [] => "not expected here".into(),
        [one] => format!("expected {one} here"),
        _ => "not valid here".into(),
    }
}

/// Where a common slip is recognisable, say how to fix it.
fn hint(expected: &[&str], text: &str, pos: usize) -> Option<String> {
    let rest = &text[pos..];
    if expected.contains(&"`=`") && rest.starts_with(':') {
        return Some("attributes are written `name = value`".into());
    }
    if (expected.contains(&"a string") || expected.contains(&VALUE)) && rest.starts_with('\'') {
        return Some("strings use double quotes: \"...\"".into());
    }
    if expected
        .iter()
        .any(|e| *e == "a string" || *e == "`env(...)`")
        && rest.starts_with(|c: char| c.is_ascii_digit())
    {
        return Some(
            "write releases and durations as strings, such as \"6.0.0\" or \"15m\"".into(),
        );
    }
    if expected.contains(&VALUE) {
        return Some(
            "a value is a string, a number, `true` or `false`, a name, a list `[...]` or a map `{ KEY = \"...\" }`".into(),
        );
    }
    let in_list_or_map =
        SCALARS.iter().all(|w| expected.contains(w)) || expected.contains(&"`KEY = value`");
    if in_list_or_map && rest.starts_with(['[', '{', '(']) {
        return Some(
            "lists and maps hold strings, numbers, names or `true`/`false`; they do not nest"
                .into(),
        );
    }
    if expected.contains(&"a name") && expected.contains(&"`}`") && rest.starts_with('"') {
        return Some(
            "an attribute takes one value: join the strings into one, or write a list `[...]`"
                .into(),
        );
    }
    if expected.contains(&"`target.NAME`") {
        return Some(
            "a variable is a string, a number, env(\"NAME\"), env(\"NAME\", \"default\"), secret(\"NAME\") or target.database|host|port|user".into(),
        );
    }
    None
}
