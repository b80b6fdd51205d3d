//! The `[options]` INI format of the ERP server's configuration file, read
//! as the server reads it (Python's `ConfigParser`, from OpenERP 5 to Odoo
//! 18): sections, `key = value` or `key: value`, keys in any case,
//! indented lines continuing a value, `#` and `;` comment lines. Never
//! panics on input: a line it cannot read is an error with its span.

use std::ops::Range;

/// One `key = value` of a section. Not Debug: a value may be a secret.
#[derive(Clone)]
pub struct Entry {
    /// Lower-cased, as the server compares keys.
    pub key: String,
    /// Stripped; the lines of a continued value joined with `\n`.
    pub value: String,
    /// The whole entry, its continuation lines included.
    pub span: Range<usize>,
}

/// A `[name]` section and its entries, in file order.
#[derive(Clone)]
pub struct Section {
    pub name: String,
    pub span: Range<usize>,
    pub entries: Vec<Entry>,
}

/// Why a line cannot be read: what, where, and how to fix it.
#[derive(Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub label: String,
    pub span: Range<usize>,
    pub help: String,
    /// An earlier line the error is about (a duplicate's first place).
    pub first: Option<Range<usize>>,
}

/// Reads the whole text into its sections.
pub fn parse(text: &str) -> Result<Vec<Section>, SyntaxError> {
    let mut sections: Vec<Section> = Vec::new();
    let mut offset = 0;
    // Whether the line before may be continued by an indented line.
    let mut open = false;
    for raw in text.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let span = start..start + line.len();
        let trimmed = line.trim();
        if trimmed.is_empty() {
            open = false;
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        if indented
            && open
            && let Some(entry) = sections.last_mut().and_then(|s| s.entries.last_mut())
        {
            entry.value.push('\n');
            entry.value.push_str(trimmed);
            entry.span.end = span.end;
            continue;
        }
        if trimmed.starts_with(['#', ';']) {
            continue;
        }
        open = false;
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(SyntaxError {
                    message: "a section header that is not closed".into(),
                    label: "no `]` at the end of the line".into(),
                    span,
                    help: "write the section as `[options]`".into(),
                    first: None,
                });
            };
            if let Some(first) = sections.iter().find(|s| s.name == name) {
                return Err(SyntaxError {
                    message: format!("section `[{name}]` appears twice"),
                    label: "second `[{name}]`".replace("{name}", name),
                    span,
                    help: "the server refuses a repeated section: merge the two".into(),
                    first: Some(first.span.clone()),
                });
            }
            sections.push(Section {
                name: name.to_string(),
                span,
                entries: Vec::new(),
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            return Err(SyntaxError {
                message: "a setting before any section".into(),
                label: "not inside a section".into(),
                span,
                help:
                    "the server reads its settings from a section: start the file with `[options]`"
                        .into(),
                first: None,
            });
        };
        // The first of `=` and `:` separates, as in ConfigParser.
        let Some(at) = trimmed.find(['=', ':']) else {
            return Err(SyntaxError {
                message: "a line that is neither a section, a setting nor a comment".into(),
                label: "no `=` on this line".into(),
                span,
                help: "write settings as `key = value`, comments after `#` or `;`".into(),
                first: None,
            });
        };
        let key = trimmed[..at].trim().to_lowercase();
        let value = trimmed[at + 1..].trim().to_string();
        if key.is_empty() {
            return Err(SyntaxError {
                message: "a setting with no name".into(),
                label: "nothing before the `=`".into(),
                span,
                help: "write settings as `key = value`".into(),
                first: None,
            });
        }
        if let Some(first) = section.entries.iter().find(|e| e.key == key) {
            return Err(SyntaxError {
                message: format!("`{key}` is set twice in `[{}]`", section.name),
                label: "set again here".into(),
                span,
                help: "the server refuses a setting given twice: keep one".into(),
                first: Some(first.span.clone()),
            });
        }
        section.entries.push(Entry { key, value, span });
        open = true;
    }
    Ok(sections)
}

/// What the server makes of a value: `False`, `false`, `None` and nothing
/// at all mean the setting is not set (the server's own default applies).
pub fn is_unset(value: &str) -> bool {
    matches!(value, "" | "False" | "false" | "None")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_options_as_the_server_does() {
        let text = "; written by hand\n[options]\nDB_Host = 10.0.0.5\ndb_port: 5433\naddons_path = /a,\n   /b\n# a comment\n\n[misc]\nx =\n";
        let sections = parse(text).expect("valid");
        assert_eq!(sections.len(), 2);
        let options = &sections[0];
        let pairs: Vec<(&str, &str)> = options
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("db_host", "10.0.0.5"),
                ("db_port", "5433"),
                ("addons_path", "/a,\n/b")
            ]
        );
        assert_eq!(
            &text[options.entries[2].span.clone()],
            "addons_path = /a,\n   /b"
        );
        assert_eq!(sections[1].entries[0].value, "");
        assert!(is_unset(&sections[1].entries[0].value));
    }

    #[test]
    fn every_mistake_has_its_line() {
        for (text, message, at) in [
            (
                "db_host = x\n",
                "a setting before any section",
                "db_host = x",
            ),
            (
                "[options\n",
                "a section header that is not closed",
                "[options",
            ),
            (
                "[options]\njust words\n",
                "a line that is neither",
                "just words",
            ),
            ("[options]\n= 5\n", "a setting with no name", "= 5"),
            ("[options]\na = 1\nA = 2\n", "`a` is set twice", "A = 2"),
            (
                "[options]\n[options]\n",
                "section `[options]` appears twice",
                "[options]",
            ),
        ] {
            let Err(e) = parse(text) else {
                panic!("{text:?} parses");
            };
            assert!(e.message.starts_with(message), "{text:?}: {e:?}");
            assert_eq!(&text[e.span.clone()], at, "{text:?}");
        }
    }

    #[test]
    fn no_input_panics() {
        for text in [
            "",
            "\n",
            "[",
            "]",
            "[]\n=",
            "[o]\n \u{e9}=\u{e9}\n  \u{1F600}",
            "\r\n[o]\r\n a\r\n",
        ] {
            let _ = parse(text);
        }
    }
}
