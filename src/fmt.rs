//! The canonical layout of a plan, from its AST: two-space indents, `=`
//! aligned within each run of attributes (runs break at blank lines),
//! consecutive `var`s grouped and aligned, one blank line between blocks,
//! every comment kept. Formatting its own output changes nothing.

use crate::ast::*;
use crate::source::{Source, Span};

/// Lists and maps longer than this go one entry per line.
const WIDTH: usize = 100;

/// Formats a file that parsed without errors. Lines end as the file's
/// first line does (`\r\n` or `\n`): a formatter that turned a Windows
/// file's every line into a change would bury the changes that matter.
pub fn format(file: &File, source: &Source) -> String {
    let text = source.text();
    let crlf = first_line_ends_in_crlf(text);
    let mut printer = Printer {
        out: String::new(),
        newline: if crlf { "\r\n" } else { "\n" },
        text,
        comments: &file.comments,
        used: vec![false; file.comments.len()],
        first_unused: 0,
    };
    printer.file(file);
    printer.out
}

/// Whether the first line break outside a string literal is `\r\n`. A
/// break inside a string is the string's content, copied as written: it
/// must not decide (the formatted file may start with a multi-line string,
/// and formatting it again must give the same file).
fn first_line_ends_in_crlf(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (mut in_string, mut in_comment, mut escaped) = (false, false, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'\n' => return i > 0 && bytes[i - 1] == b'\r',
            b'#' => in_comment = true,
            b'"' if !in_comment => in_string = true,
            _ => {}
        }
    }
    false
}

struct Printer<'a> {
    out: String,
    /// What ends a line the printer writes (strings and comments are
    /// copied as written).
    newline: &'static str,
    text: &'a str,
    comments: &'a [Comment],
    used: Vec<bool>,
    first_unused: usize,
}

impl Printer<'_> {
    fn newline(&mut self) {
        self.out.push_str(self.newline);
    }

    fn file(&mut self, file: &File) {
        let mut prev: Option<&Item> = None;
        let mut k = 0;
        while k < file.items.len() {
            let item = &file.items[k];
            if prev.is_some() {
                self.newline();
            }
            if let Item::Var(_) = item {
                // A group: consecutive vars with no blank line between them.
                let mut end = k + 1;
                while end < file.items.len()
                    && matches!(file.items[end], Item::Var(_))
                    && !self
                        .blank_between(file.items[end - 1].span().end, file.items[end].span().start)
                {
                    end += 1;
                }
                let group: Vec<&VarDecl> = file.items[k..end]
                    .iter()
                    .filter_map(|i| match i {
                        Item::Var(v) => Some(v),
                        _ => None,
                    })
                    .collect();
                self.vars(&group);
                prev = Some(&file.items[end - 1]);
                k = end;
                continue;
            }
            // Blank lines between the comments at the top of a file are
            // kept too (a header, then a note on the plan); leading never
            // starts the file with one.
            self.leading(item.span().start, "", true);
            match item {
                Item::Plan(p) => self.plan_block(p),
                Item::Step(s) => self.step(s, ""),
                Item::OnFailure(o) => self.on_failure(o),
                Item::Var(_) => {}
            }
            prev = Some(item);
            k += 1;
        }
        let rest: Vec<usize> = (0..self.comments.len())
            .filter(|i| !self.used[*i])
            .collect();
        if !rest.is_empty() && !self.out.is_empty() {
            self.newline();
        }
        self.leading(usize::MAX, "", true);
    }

    /// Whether the source has an empty line between two offsets (a line
    /// holding a comment is not empty).
    fn blank_between(&self, from: usize, to: usize) -> bool {
        let (from, to) = (from.min(self.text.len()), to.min(self.text.len()));
        if from >= to {
            return false;
        }
        // The lines strictly between the one `from` is on and the one `to`
        // is on.
        let mut lines = self.text[from..to].split('\n').skip(1);
        let Some(mut line) = lines.next() else {
            return false;
        };
        for next in lines {
            if line.trim().is_empty() {
                return true;
            }
            line = next;
        }
        false
    }

    /// Prints the unused comments that start before `pos`, each on its own
    /// line; keeps one blank line where the source had one between two
    /// comments or between a comment and what follows.
    fn leading(&mut self, pos: usize, indent: &str, blank_ok: bool) {
        let mut last_end: Option<usize> = None;
        // Comments are in source order, and every one before `first_unused`
        // is printed: a 5,000-step plan must not rescan them all per line.
        for i in self.first_unused..self.comments.len() {
            let comment = &self.comments[i];
            if comment.span.start >= pos {
                break;
            }
            if self.used[i] {
                continue;
            }
            if let Some(end) = last_end
                && blank_ok
                && self.blank_between(end, comment.span.start)
            {
                self.newline();
            }
            self.used[i] = true;
            self.out.push_str(indent);
            self.out.push_str(&comment.text);
            self.newline();
            last_end = Some(comment.span.end);
        }
        while self.used.get(self.first_unused) == Some(&true) {
            self.first_unused += 1;
        }
        if let Some(end) = last_end
            && pos != usize::MAX
            && blank_ok
            && self.blank_between(end, pos)
        {
            self.newline();
        }
    }

    /// The index of the first comment that starts at or after `pos`.
    fn first_from(&self, pos: usize) -> usize {
        self.comments.partition_point(|c| c.span.start < pos)
    }

    /// Appends ` # comment` when an unused comment follows `end` on the
    /// same source line; then ends the line.
    fn end_line(&mut self, end: usize) {
        let line_end = self.text[end.min(self.text.len())..]
            .find('\n')
            .map(|n| end + n)
            .unwrap_or(self.text.len());
        // Only the first comment not yet printed may trail the line: one
        // left behind (inside a header or a value) must come out before it,
        // or fmt would reorder the file's comments.
        while self.used.get(self.first_unused) == Some(&true) {
            self.first_unused += 1;
        }
        let i = self.first_unused;
        if i < self.comments.len()
            && self.comments[i].span.start >= end
            && self.comments[i].span.start < line_end
        {
            self.used[i] = true;
            self.out.push(' ');
            self.out.push_str(&self.comments[i].text);
        }
        self.newline();
    }

    fn has_comment_in(&self, span: Span) -> bool {
        (self.first_from(span.start + 1)..self.comments.len())
            .take_while(|&i| self.comments[i].span.start < span.end)
            .any(|i| !self.used[i])
    }

    fn vars(&mut self, group: &[&VarDecl]) {
        let width = group
            .iter()
            .map(|v| v.name.name.chars().count())
            .max()
            .unwrap_or(0);
        for (n, var) in group.iter().enumerate() {
            self.leading(var.span.start, "", n == 0);
            let expr = expr_text(&var.expr);
            let pad = width - var.name.name.chars().count();
            self.out.push_str(&format!(
                "var {}{} = {}",
                var.name.name,
                " ".repeat(pad),
                expr
            ));
            self.end_line(var.span.end);
        }
    }

    fn plan_block(&mut self, plan: &PlanBlock) {
        self.out.push_str(&format!("plan {} {{", plan.name.raw));
        self.body(&plan.attrs, plan.body, "  ");
    }

    fn step(&mut self, step: &Step, indent: &str) {
        self.out
            .push_str(&format!("{indent}{} {} {{", step.kind.name, step.name.name));
        let inner = format!("{indent}  ");
        self.body(&step.attrs, step.body, &inner);
    }

    fn on_failure(&mut self, block: &OnFailure) {
        self.out.push_str("on_failure {");
        if block.steps.is_empty() && !self.has_comment_in(block.body) {
            self.out.push('}');
            self.end_line(block.body.end);
            return;
        }
        self.end_line(block.body.start + 1);
        for (n, step) in block.steps.iter().enumerate() {
            if n > 0 {
                self.newline();
            }
            self.leading(step.span.start, "  ", n > 0);
            self.step(step, "  ");
        }
        self.leading(block.body.end.saturating_sub(1), "  ", true);
        self.out.push('}');
        self.end_line(block.body.end);
    }

    /// `{`, the attributes, `}`; the opening brace is already printed
    /// without a newline; `indent` is the attributes' indentation.
    fn body(&mut self, attrs: &[Attr], body: Span, indent: &str) {
        let outer = &indent[..indent.len().saturating_sub(2)];
        if attrs.is_empty() && !self.has_comment_in(body) {
            self.out.push('}');
            self.end_line(body.end);
            return;
        }
        self.end_line(body.start + 1);
        let mut start = 0;
        while start < attrs.len() {
            let mut end = start + 1;
            while end < attrs.len()
                && !self.blank_between(attrs[end - 1].span.end, attrs[end].span.start)
            {
                end += 1;
            }
            if start > 0 {
                self.newline();
            }
            let width = attrs[start..end]
                .iter()
                .map(|a| a.key.name.chars().count())
                .max()
                .unwrap_or(0);
            for attr in &attrs[start..end] {
                // No blank line inside a run: a comment written inside the
                // previous attribute (`from =\n# c\n\n"5.0"`) would
                // otherwise bring one, and the next run would split there.
                self.leading(attr.span.start, indent, false);
                let pad = width - attr.key.name.chars().count();
                let head = format!("{indent}{}{} = ", attr.key.name, " ".repeat(pad));
                self.out.push_str(&head);
                self.value(&attr.value, indent, head.chars().count());
                self.end_line(attr.span.end);
            }
            start = end;
        }
        self.leading(body.end.saturating_sub(1), indent, true);
        self.out.push_str(outer);
        self.out.push('}');
        self.end_line(body.end);
    }

    /// Prints a value; `column` is where it starts on the line.
    fn value(&mut self, value: &Value, indent: &str, column: usize) {
        match value {
            Value::List(list) => {
                let items: Vec<String> = list.items.iter().map(scalar_text).collect();
                let one_line = format!("[{}]", items.join(", "));
                if !self.has_comment_in(list.span)
                    && !one_line.contains('\n')
                    && column + one_line.chars().count() <= WIDTH
                {
                    self.out.push_str(&one_line);
                    return;
                }
                self.out.push('[');
                self.newline();
                let inner = format!("{indent}  ");
                for (item, text) in list.items.iter().zip(&items) {
                    self.leading(item.span().start, &inner, true);
                    self.out.push_str(&format!("{inner}{text},"));
                    self.end_line(item.span().end);
                }
                self.leading(list.span.end.saturating_sub(1), &inner, true);
                self.out.push_str(indent);
                self.out.push(']');
            }
            Value::Map(map) => {
                let text = self.text;
                let entries: Vec<(String, String)> = map
                    .entries
                    .iter()
                    .map(|e| {
                        // A quoted key is printed as written, like every
                        // string: re-quoting its decoded text would turn
                        // `"$${"` into `"${"`, which does not parse.
                        let key = if e.quoted {
                            text.get(e.key.span.start..e.key.span.end)
                                .map_or_else(|| quote(&e.key.name), str::to_string)
                        } else {
                            e.key.name.clone()
                        };
                        (key, scalar_text(&e.value))
                    })
                    .collect();
                if entries.is_empty() && !self.has_comment_in(map.span) {
                    self.out.push_str("{}");
                    return;
                }
                let one_line = format!(
                    "{{ {} }}",
                    entries
                        .iter()
                        .map(|(k, v)| format!("{k} = {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if !self.has_comment_in(map.span)
                    && !one_line.contains('\n')
                    && column + one_line.chars().count() <= WIDTH
                {
                    self.out.push_str(&one_line);
                    return;
                }
                self.out.push('{');
                self.newline();
                let inner = format!("{indent}  ");
                let width = entries
                    .iter()
                    .map(|(k, _)| k.chars().count())
                    .max()
                    .unwrap_or(0);
                for (entry, (key, text)) in map.entries.iter().zip(&entries) {
                    self.leading(entry.span.start, &inner, true);
                    let pad = width - key.chars().count();
                    self.out
                        .push_str(&format!("{inner}{key}{} = {text}", " ".repeat(pad)));
                    self.end_line(entry.span.end);
                }
                self.leading(map.span.end.saturating_sub(1), &inner, true);
                self.out.push_str(indent);
                self.out.push('}');
            }
            other => self.out.push_str(&scalar_text(other)),
        }
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Str(s) => s.raw.clone(),
        Value::Number(n) => n.text.clone(),
        Value::Bool(b, _) => b.to_string(),
        Value::Name(i) => i.name.clone(),
        // Lists and maps hold only scalars (the grammar says so).
        Value::List(_) | Value::Map(_) => String::new(),
    }
}

fn expr_text(expr: &Expr) -> String {
    match expr {
        Expr::Str(s) => s.raw.clone(),
        Expr::Number(n) => n.text.clone(),
        Expr::Env { name, default, .. } => match default {
            Some(d) => format!("env({}, {})", name.raw, d.raw),
            None => format!("env({})", name.raw),
        },
        Expr::Secret { name, .. } => format!("secret({})", name.raw),
        Expr::Target { field, .. } => format!("target.{}", field.name),
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn format_text(text: &str) -> String {
        let source = Source::new("t.plan", text);
        let parsed = parse(&source);
        assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
        format(&parsed.file, &source)
    }

    fn assert_stable(text: &str) -> String {
        let once = format_text(text);
        assert_eq!(
            format_text(&once),
            once,
            "not idempotent; first pass:\n{once}"
        );
        once
    }

    #[test]
    fn blank_lines_between_the_first_comments_are_kept() {
        let text = "# header\n\n# about the plan\n\nplan \"p\" {}\n";
        assert_eq!(assert_stable(text), text);
    }

    #[test]
    fn a_crlf_file_keeps_crlf_and_strings_keep_what_they_hold() {
        let lf = "# header\nplan \"p\" { from = \"5.0\"\n to = \"6.0\" } # end\nvar a = \"1\"\nvar bb = \"2\"\nsql s { sql = \"select\n 1\" env = { A = \"x\" }\n after = [a,\n b] }\non_failure {\nstart up { run = \"x\" }\n}\n";
        let crlf = lf.replace('\n', "\r\n");
        let once = assert_stable(&crlf);
        assert_eq!(once, format_text(lf).replace('\n', "\r\n"));
        assert!(!once.replace("\r\n", "").contains('\n'), "{once:?}");
        // Formatted already: nothing to change.
        assert_eq!(format_text(&once), once);
        // The first line decides; a string's own line break is kept as is.
        let mixed = "plan \"p\" {}\r\n\r\nsql s {\r\n  sql = \"a\nb\"\r\n}\r\n";
        assert_eq!(assert_stable(mixed), mixed);
    }

    #[test]
    fn a_comment_inside_an_attribute_does_not_split_the_run() {
        let once = assert_stable("plan \"p\" { from =\n# c\n\n\"5.0\"\nto = \"6.0\" }\n");
        assert_eq!(
            once,
            "plan \"p\" {\n  from = \"5.0\"\n  # c\n  to   = \"6.0\"\n}\n"
        );
    }

    #[test]
    fn a_multi_line_string_first_does_not_decide_the_line_ending() {
        // Found by fmt_props: the first break of the formatted file was
        // inside a string, and formatting it again turned CRLF into LF.
        let text = "var db = env(\"X\", \"\n  a\n\")\r\nplan \"p\" {\r\n  from = \"5.0\"\r\n  to   = \"6.0\"\r\n}\r\n";
        let once = assert_stable(text);
        assert!(once.contains(")\r\n"), "{once:?}");
    }
}
