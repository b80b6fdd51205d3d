//! E027 missing-file: a file the plan names that is not there: the `file`
//! of an `sql` step, and each `run` argument that is a relative path to a
//! script (`.py`, `.sh`, `.sql`, ...) once the variables lint can resolve
//! are substituted. Relative paths start from the plan's folder (or the
//! step's `cwd`). A path that still holds a placeholder (`<env.X>`,
//! `<target.database>`), a variable that did not resolve or a secret
//! cannot be checked and is left alone;
//! so are absolute paths, which name the server's machine, not the
//! reviewer's.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Code, Diagnostic};
use crate::lint::Context;
use crate::plan::{Action, Command, Piece, Sql, Step, Text};

use super::command;

/// Extensions that mark an argument as a script the plan ships.
const SCRIPT_EXTENSIONS: &[&str] = &[
    "py", "sh", "bash", "zsh", "ksh", "sql", "pl", "rb", "php", "js", "lua",
];

pub fn check(cx: &Context<'_>) -> Vec<Diagnostic> {
    let folder = cx.folder;
    let mut findings = Vec::new();
    for step in cx.all_steps() {
        if let Action::Sql(Sql::File(file)) = &step.action
            && let Some(name) = file.as_literal()
        {
            let span = step.attr_span("file").unwrap_or(step.name_span);
            if let Some(d) = missing(step, &name, folder, span, "the plan's folder") {
                findings.push(d);
            }
        }
        let Some(Command::Argv(args)) = command(step) else {
            continue;
        };
        // Relative paths in `run` start from where the step runs.
        let cwd = match &step.cwd {
            None => None,
            Some(cwd) => match literal(cwd) {
                Some(cwd) => Some(cwd),
                None => continue,
            },
        };
        let span = step.attr_span("run").unwrap_or(step.name_span);
        for arg in args.iter().filter_map(literal) {
            if !is_script(&arg) {
                continue;
            }
            let (base, from) = match &cwd {
                None => (Cow::Borrowed(folder), "the plan's folder"),
                Some(cwd) => (Cow::Owned(folder.join(cwd.as_ref())), "the step's `cwd`"),
            };
            if let Some(d) = missing(step, &arg, &base, span, from) {
                findings.push(d);
            }
        }
    }
    findings
}

/// The text of a value with no secret and no placeholder in it, borrowed
/// when it is one piece (nearly every argument): most arguments are not
/// scripts, and copying each to find out cost more than the rule.
fn literal(text: &Text) -> Option<Cow<'_, str>> {
    match text.0.as_slice() {
        [] => Some(Cow::Borrowed("")),
        [Piece::Lit(one)] => Some(Cow::Borrowed(one)),
        _ => text.as_literal().map(Cow::Owned),
    }
}

/// Whether an argument reads as a relative path to a script.
fn is_script(arg: &str) -> bool {
    let has_extension = arg.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty()
            && !stem.ends_with('/')
            && SCRIPT_EXTENSIONS
                .iter()
                .any(|e| e.eq_ignore_ascii_case(ext))
    });
    has_extension
        && !arg.starts_with('-')
        && !arg.contains('=')
        && !arg.contains("://")
        && Path::new(arg).is_relative()
}

fn missing(
    step: &Step,
    name: &str,
    base: &Path,
    span: crate::source::Span,
    from: &str,
) -> Option<Diagnostic> {
    let path = Path::new(name);
    if path.is_absolute() {
        return None;
    }
    let full: PathBuf = base.join(path);
    if full.is_file() {
        return None;
    }
    let what = if full.exists() {
        "is not a file"
    } else {
        "does not exist"
    };
    Some(
        Diagnostic::new(
            Code::MissingFile,
            span,
            format!("`{name}`, named by step `{}`, {what}", step.name),
        )
        .label(format!("looked for `{}`", full.display()))
        .help(format!(
            "relative paths start from {from}: add the file to the plan's repository, or correct the path"
        )),
    )
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::Code;
    use crate::lint::testing::*;

    /// A plan in the fixtures folder, which holds `scripts/pre.py` and
    /// `scripts/fix.sql`.
    const NAME: &str = "tests/fixtures/lint/migration.plan";

    fn steps(extra: &str) -> String {
        plan_with(&format!("{CLEAN_STEPS}\n{extra}"))
    }

    #[test]
    fn triggers_on_missing_scripts_and_sql_files() {
        let text = steps(
            "script pre {\n  after   = settled\n  run     = \"python3 ${dir}/pre.py -d ${db}\"\n  timeout = \"5m\"\n}\n\nsql fix {\n  after = pre\n  file  = \"scripts/missing.sql\"\n}\n\nvar dir = \"scripts/missing\"\n",
        );
        let report = lint_named(NAME, &text);
        assert_eq!(with_code(&report, Code::MissingFile).len(), 2);
        insta::assert_snapshot!("missing_file_human", human(&report));
        insta::assert_snapshot!("missing_file_json", json(&report));
    }

    #[test]
    fn present_files_placeholders_and_absolute_paths_are_clean() {
        let text = steps(
            "script pre {\n  after   = settled\n  run     = \"python3 ${dir}/pre.py -d ${db} --log=x.py ./${other}.sh /opt/x.sh\"\n  timeout = \"5m\"\n}\n\nsql fix {\n  after = pre\n  file  = \"scripts/fix.sql\"\n}\n\nscript elsewhere {\n  after   = fix\n  cwd     = \"scripts\"\n  run     = \"python3 pre.py\"\n  timeout = \"5m\"\n}\n\nvar dir = \"scripts\"\nvar other = env(\"OTHER\")\n",
        );
        let report = lint_named(NAME, &text);
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }

    #[test]
    fn the_same_text_elsewhere_misses_its_files() {
        let text = steps("sql fix {\n  after = settled\n  file  = \"scripts/fix.sql\"\n}\n");
        let report = lint_named("elsewhere/migration.plan", &text);
        assert_eq!(with_code(&report, Code::MissingFile).len(), 1);
    }
}
