//! W107 literal-secret: a password written into the plan, which is
//! reviewed, committed and copied around. Found in the text of every string
//! literal (`password=...`, `PGPASSWORD=...`, `postgres://user:pw@host`,
//! SQL's `PASSWORD '...'`), and in the literal value of an `env` entry or a
//! variable whose name says it holds one. A value that comes from `${...}`
//! or a shell `$VAR` is not literal. The finding never repeats the value.

use std::sync::LazyLock;

use regex::Regex;

use crate::ast::{Expr, Item, Str, StrPart, Value};
use crate::diagnostic::{Code, Diagnostic};
use crate::lint::Context;
use crate::source::Span;

/// `NAME=value` where NAME says password: the value is literal text that
/// does not start with `$` (a shell variable).
static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?:^|[^a-z0-9_-])([a-z0-9_-]*(?:passw(?:or)?d|secret|token|api[_-]?key))\s*=\s*(?:'[^'$]+'|"[^"$]+"|[^\s'"$&;,)][^\s'"&;,)]*)"#,
    )
    .unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
});

/// `scheme://user:password@host`.
static URI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[a-z][a-z0-9+.-]*://[^\s:/@]+:[^\s@/$][^\s@/]*@")
        .unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
});

/// SQL's `PASSWORD 'value'` (`CREATE ROLE`, `ALTER USER`).
static SQL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bpassword\s+'[^']+'").unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
});

/// What every pattern above needs somewhere: a literal search that rules
/// out nearly every string before the patterns run.
static HINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)passw|secret|token|api[_-]?key|://")
        .unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
});

/// A name that says its value is a secret.
static SECRET_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(passw(or)?d|api[_-]?key|secret$|token$)")
        .unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
});

pub fn check(cx: &Context<'_>) -> Vec<Diagnostic> {
    let mut findings = Vec::new();
    for item in &cx.ast.items {
        match item {
            Item::Plan(p) => {
                for attr in &p.attrs {
                    value(&attr.value, &mut findings);
                }
            }
            Item::Var(v) => match &v.expr {
                Expr::Str(s) => {
                    text(s, &mut findings);
                    named(&v.name.name, s, &mut findings);
                }
                Expr::Env {
                    name,
                    default: Some(default),
                    ..
                } => {
                    text(default, &mut findings);
                    if !named(&v.name.name, default, &mut findings) {
                        named(&name.literal(), default, &mut findings);
                    }
                }
                _ => {}
            },
            Item::Step(s) => {
                for attr in &s.attrs {
                    value(&attr.value, &mut findings);
                }
            }
            Item::OnFailure(o) => {
                for attr in o.steps.iter().flat_map(|s| &s.attrs) {
                    value(&attr.value, &mut findings);
                }
            }
        }
    }
    findings
}

fn value(value: &Value, findings: &mut Vec<Diagnostic>) {
    match value {
        Value::Str(s) => text(s, findings),
        Value::List(list) => {
            for item in &list.items {
                self::value(item, findings);
            }
        }
        Value::Map(map) => {
            for entry in &map.entries {
                self::value(&entry.value, findings);
                match &entry.value {
                    Value::Str(s) => {
                        named(&entry.key.name, s, findings);
                    }
                    Value::Number(n) if SECRET_NAME.is_match(&entry.key.name) => {
                        findings.push(finding(n.span, &entry.key.name));
                    }
                    _ => {}
                }
            }
        }
        Value::Number(_) | Value::Bool(..) | Value::Name(_) => {}
    }
}

/// The literal parts of a string, searched for passwords in the text.
fn text(s: &Str, findings: &mut Vec<Diagnostic>) {
    for part in &s.parts {
        let StrPart::Lit(lit) = part else { continue };
        if !HINT.is_match(lit) {
            continue;
        }
        let mut found: Vec<(usize, usize, String)> = ASSIGNMENT
            .captures_iter(lit)
            .filter_map(|c| {
                let (all, key) = (c.get(0)?, c.get(1)?);
                Some((key.start(), all.end(), key.as_str().to_string()))
            })
            .collect();
        for (pattern, what) in [(&*URI, "password in a URL"), (&*SQL, "PASSWORD")] {
            found.extend(
                pattern
                    .find_iter(lit)
                    .map(|m| (m.start(), m.end(), what.to_string())),
            );
        }
        found.sort_unstable();
        found.dedup_by(|b, a| b.0 < a.1);
        let mut from = 0;
        for (start, end, what) in found {
            let span = locate(s, &lit[start..end], from);
            from = span.end.saturating_sub(s.span.start);
            findings.push(finding(span, &what));
        }
    }
}

/// A literal value given to a name that says it is a secret; whether one
/// was found.
fn named(name: &str, s: &Str, findings: &mut Vec<Diagnostic>) -> bool {
    // Without `${}`, the text is the parts end to end: it is blank when
    // every part is.
    let literal = !s.has_vars()
        && s.parts
            .iter()
            .any(|p| matches!(p, StrPart::Lit(text) if !text.trim().is_empty()));
    if literal && SECRET_NAME.is_match(name) {
        findings.push(finding(s.span, name));
        return true;
    }
    false
}

/// Where `matched` (decoded text) is in the string as written, searching
/// from byte `from` of it; the whole string when escapes make the two
/// differ.
fn locate(s: &Str, matched: &str, from: usize) -> Span {
    match s.raw.get(from..).and_then(|rest| rest.find(matched)) {
        Some(at) => {
            let start = s.span.start + from + at;
            Span::new(start, start + matched.len())
        }
        None => s.span,
    }
}

fn finding(span: Span, what: &str) -> Diagnostic {
    Diagnostic::new(
        Code::LiteralSecret,
        span,
        format!("a secret is written into the plan (`{what}`)"),
    )
    .label("literal secret")
    .help("declare var NAME = secret(\"ENV_NAME\") and use ${NAME}: the value is then read from the environment at apply time and shown as `***`; the target's own password reaches each step through PGPASSFILE")
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::Code;
    use crate::lint::testing::*;

    #[test]
    fn triggers_on_passwords_in_strings() {
        let steps = format!(
            "{CLEAN_STEPS}\nstart up {{\n  after = settled\n  run   = \"/opt/odoo/bin/notify --password=hunter2\"\n  env   = {{ PGPASSWORD = \"hunter2\" }}\n}}\n\nsql reset {{\n  after = up\n  sql   = \"alter role erp password 'hunter2'\"\n}}\n"
        );
        let steps = steps.replace("--password=hunter2", "--password=hunter2 --api-key=k3y");
        let text = plan_with(&steps).replacen(
            "\n}\n",
            "\n  description = \"db at postgres://erp:hunter2@db.local/acme\"\n}\n",
            1,
        );
        let report = lint_text(&text);
        let found = with_code(&report, Code::LiteralSecret);
        assert_eq!(found.len(), 5, "{:#?}", report.diagnostics);
        for d in &report.diagnostics {
            let said = format!("{} {:?} {:?}", d.message, d.primary.text, d.help);
            assert!(
                !said.contains("hunter2"),
                "the value is never repeated: {said}"
            );
        }
        insta::assert_snapshot!("literal_secret_human", human(&report));
        insta::assert_snapshot!("literal_secret_json", json(&report));
    }

    #[test]
    fn the_same_text_twice_is_two_places() {
        let steps = format!(
            "{CLEAN_STEPS}\nstart up {{\n  after = settled\n  run   = \"/opt/x token=abc token=abc\"\n}}\n"
        );
        let report = lint_text(&plan_with(&steps));
        let found = with_code(&report, Code::LiteralSecret);
        assert_eq!(found.len(), 2, "{:#?}", report.diagnostics);
        assert!(found[0].primary.span.end <= found[1].primary.span.start);
        assert_eq!(report.source.slice(found[1].primary.span), "token=abc");
    }

    #[test]
    fn values_from_variables_are_clean() {
        let steps = format!(
            "{CLEAN_STEPS}\nstart up {{\n  after = settled\n  shell = \"PGPASSWORD=$ADMIN_PW /opt/odoo/bin/notify\"\n  env   = {{ PGPASSWORD = \"${{admin_pw}}\" }}\n}}\n"
        );
        let text = format!(
            "# lint: allow(shell-step)\n{}\nvar admin_pw = secret(\"ADMIN_PW\")\nvar url = \"postgres://erp:${{admin_pw}}@db.local/acme\"\nvar login = \"--password=${{admin_pw}}\"\n",
            plan_with(&steps)
        );
        let report = lint_text(&text);
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }
}
