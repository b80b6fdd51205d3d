//! A lexical scan that pest cannot give: where top-level blocks start (so
//! that parsing can resume after a syntax error and report every broken
//! block, not only the first), where a string is left open, and which `{` is
//! never closed. It looks only at quotes, comments and braces.

use crate::source::Span;

/// What the scan found in a piece of text.
#[derive(Debug, Default)]
pub struct Scan {
    /// Byte offsets where top-level blocks start; the first is always 0.
    pub starts: Vec<usize>,
    /// The opening quote of a string that reaches the end of the text.
    pub open_string: Option<usize>,
    /// Each `{` (and `[`, `(`) still open at the end of the text.
    pub open_brackets: Vec<(usize, char)>,
}

/// Scans `text`. A line that starts in column 1 with what looks like a block
/// header (`plan "`, `var x`, `on_failure {`, `kind name {`) starts a block,
/// unless it lies inside a string; when a string is never closed, strings
/// are ignored for that purpose, since its true end is unknown.
pub fn scan(text: &str) -> Scan {
    let first = scan_with(text, true);
    if first.open_string.is_some() {
        let ignoring = scan_with(text, false);
        return Scan {
            starts: ignoring.starts,
            ..first
        };
    }
    first
}

fn scan_with(text: &str, respect_strings: bool) -> Scan {
    let bytes = text.as_bytes();
    let mut scan = Scan {
        starts: vec![0],
        ..Scan::default()
    };
    let mut in_string: Option<usize> = None;
    let mut i = 0;
    let mut line_start = true;
    while i < bytes.len() {
        let b = bytes[i];
        if line_start
            && (in_string.is_none() || !respect_strings)
            && i > 0
            && looks_like_header(&text[i..])
        {
            scan.starts.push(i);
        }
        line_start = b == b'\n';
        match (in_string, b) {
            (Some(_), b'\\') => i += 1,
            (Some(_), b'"') => in_string = None,
            (Some(_), _) => {}
            (None, b'"') => in_string = Some(i),
            (None, b'#') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                line_start = true;
            }
            (None, b'{' | b'[' | b'(') => scan.open_brackets.push((i, b as char)),
            (None, b'}' | b']' | b')') => {
                scan.open_brackets.pop();
            }
            _ => {}
        }
        i += 1;
    }
    scan.open_string = in_string;
    scan
}

fn looks_like_header(line: &str) -> bool {
    let line = line.split('\n').next().unwrap_or("");
    let mut words = line
        .split(|c: char| c.is_whitespace())
        .filter(|w| !w.is_empty());
    let first = words.next().unwrap_or("");
    let second = words.next().unwrap_or("");
    let is_word = |w: &str| {
        let mut chars = w.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    match first {
        "plan" => second.starts_with('"'),
        "var" => second
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_'),
        "on_failure" | "on_failure{" => true,
        _ => {
            let second = second.trim_end_matches('{');
            is_word(first) && is_word(second) && line.trim_end().ends_with('{')
        }
    }
}

/// Splits the text into the blocks' spans.
pub fn blocks(scan: &Scan, len: usize) -> Vec<Span> {
    scan.starts
        .iter()
        .enumerate()
        .map(|(n, &start)| Span::new(start, scan.starts.get(n + 1).copied().unwrap_or(len)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_block_starts_outside_strings() {
        let text = "plan \"x\" {\n}\nvar a = \"\nstop b {\n\"\nstop c {\n}\n";
        let scan = scan(text);
        assert_eq!(scan.starts, vec![0, 13, 34]);
        assert!(scan.open_string.is_none());
        assert!(scan.open_brackets.is_empty());
    }

    #[test]
    fn an_open_string_does_not_hide_later_blocks() {
        let text = "stop a {\n  run = \"x\n}\nstop b {\n}\n";
        let scan = scan(text);
        assert_eq!(scan.open_string, Some(17));
        assert_eq!(scan.starts, vec![0, 22]);
    }

    #[test]
    fn reports_unclosed_braces() {
        let scan = scan("stop a {\n  run = \"}\" # }\n");
        assert_eq!(scan.open_brackets, vec![(7, '{')]);
    }
}
