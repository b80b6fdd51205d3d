//! Lint findings as SARIF 2.1.0, the format code-review tools read: one
//! run, every code of the product as a rule, one result per finding, with
//! columns counted in Unicode code points (`columnKind`).

use serde_json::{Value, json};

use super::region;
use crate::diagnostic::{Code, Diagnostic, Severity};
use crate::lint::FileReport;
use crate::source::Source;

const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// Where the docs are published, from the package's `repository`; SARIF
/// wants an absolute `helpUri`, so without one the rules name the doc's
/// path in their help text only.
pub fn docs_base() -> Option<String> {
    let repository = env!("CARGO_PKG_REPOSITORY").trim_end_matches('/');
    (!repository.is_empty()).then(|| format!("{repository}/blob/main/"))
}

/// The SARIF log, pretty-printed, with a final newline.
pub fn render(reports: &[FileReport], docs_base: Option<&str>) -> String {
    let rules: Vec<Value> = Code::ALL.iter().map(|c| rule(*c, docs_base)).collect();
    let results: Vec<Value> = reports
        .iter()
        .flat_map(|r| r.diagnostics.iter().map(|d| result(d, &r.source)))
        .collect();
    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "plan",
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    });
    let mut out = serde_json::to_string_pretty(&log).unwrap_or_else(|_| "{}".into());
    out.push('\n');
    out
}

/// The doc section of a code: lint rules in docs/lints.md, the language's
/// errors in docs/diagnostics.md; anchors as Markdown renderers make them
/// from `## W101 missing-backup`.
pub fn doc_path(code: Code) -> String {
    let page = if code.severity() == Severity::Warning || code == Code::MissingFile {
        "docs/lints.md"
    } else {
        "docs/diagnostics.md"
    };
    format!("{page}#{}-{}", code.as_str().to_lowercase(), code.name())
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn rule(code: Code, docs_base: Option<&str>) -> Value {
    let doc = doc_path(code);
    let mut rule = json!({
        "id": code.as_str(),
        "name": code.name(),
        "shortDescription": { "text": code.summary() },
        "help": { "text": format!("see {doc}") },
        "defaultConfiguration": { "level": level(code.severity()) },
    });
    if let Some(base) = docs_base {
        rule["helpUri"] = json!(format!("{base}{doc}"));
    }
    rule
}

fn result(d: &Diagnostic, source: &Source) -> Value {
    let uri = uri(source);
    let location = |span, text: Option<&String>| {
        let (start, end) = region(source, span);
        let mut location = json!({
            "physicalLocation": {
                "artifactLocation": { "uri": uri },
                "region": {
                    "startLine": start.line,
                    "startColumn": start.column,
                    "endLine": end.line,
                    "endColumn": end.column,
                }
            }
        });
        if let Some(text) = text {
            location["message"] = json!({ "text": text });
        }
        location
    };
    let mut text = d.message.clone();
    if let Some(help) = &d.help {
        text.push_str("\nhelp: ");
        text.push_str(help);
    }
    let index = Code::ALL.iter().position(|c| *c == d.code).unwrap_or(0);
    let mut result = json!({
        "ruleId": d.code.as_str(),
        "ruleIndex": index,
        "level": level(d.severity()),
        "message": { "text": text },
        "locations": [location(d.primary.span, d.primary.text.as_ref())],
    });
    if !d.secondary.is_empty() {
        result["relatedLocations"] = d
            .secondary
            .iter()
            .enumerate()
            .map(|(id, label)| {
                let mut l = location(label.span, label.text.as_ref());
                l["id"] = json!(id);
                l
            })
            .collect();
    }
    result
}

/// The file's path as a URI reference: `/` separators, and every byte
/// outside the unreserved set and `/` percent-encoded.
fn uri(source: &Source) -> String {
    let path = source.name().replace('\\', "/");
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::*;

    #[test]
    fn anchors_follow_the_doc_headings() {
        assert_eq!(
            doc_path(Code::MissingBackup),
            "docs/lints.md#w101-missing-backup"
        );
        assert_eq!(
            doc_path(Code::MissingFile),
            "docs/lints.md#e027-missing-file"
        );
        assert_eq!(
            doc_path(Code::Syntax),
            "docs/diagnostics.md#e001-syntax-error"
        );
    }

    #[test]
    fn paths_become_uri_references() {
        let source = Source::new("plans/my plan%.plan", "");
        assert_eq!(uri(&source), "plans/my%20plan%25.plan");
    }

    #[test]
    fn results_point_at_their_rule() {
        let report = lint_text(&plan_with(&CLEAN_STEPS.replace("  timeout = \"2h\"\n", "")));
        let log: Value = serde_json::from_str(&render(&[report], None)).expect("valid JSON");
        let run = &log["runs"][0];
        let result = &run["results"][0];
        let index = result["ruleIndex"].as_u64().expect("an index") as usize;
        assert_eq!(run["tool"]["driver"]["rules"][index]["id"], "W105");
        assert_eq!(result["ruleId"], "W105");
        assert_eq!(run["columnKind"], "unicodeCodePoints");
    }
}
