//! W108 secret-in-argv: a `secret()` value placed in a command's arguments
//! (`run`, or the script of `shell`, which `sh -c` receives as one).
//! Arguments are in the process list, readable by every local user while
//! the step runs; the environment is not.

use crate::ast::{Ident, StrPart, Value};
use crate::diagnostic::{Code, Diagnostic};
use crate::lint::Context;
use crate::plan::{Command, Step};

use super::command;

pub fn check(cx: &Context<'_>) -> Vec<Diagnostic> {
    let secrets: Vec<&str> = cx
        .vars
        .iter()
        .filter(|(_, value)| value.has_secret())
        .map(|(name, _)| name.as_str())
        .collect();
    let mut findings = Vec::new();
    for step in cx.all_steps() {
        let leaks = match command(step) {
            Some(Command::Argv(args)) => args.iter().any(|a| a.has_secret()),
            Some(Command::Shell(script)) => script.has_secret(),
            None => false,
        };
        if !leaks {
            continue;
        }
        let uses = secret_uses(cx, step, &secrets);
        if uses.is_empty() {
            findings.push(finding(step, step.name_span, None));
        }
        for ident in uses {
            findings.push(finding(step, ident.span, Some(&ident.name)));
        }
    }
    findings
}

/// The `${name}`s of secrets in the command as written: the step's `run`
/// or `shell`, else the plan's `update_command`.
fn secret_uses<'a>(cx: &Context<'a>, step: &Step, secrets: &[&str]) -> Vec<&'a Ident> {
    let own = cx
        .ast_step(step)
        .and_then(|s| s.attr("run").or(s.attr("shell")));
    let template = || {
        cx.plan_block()?
            .attrs
            .iter()
            .find(|a| a.key.name == "update_command")
    };
    let Some(attr) = own.or_else(template) else {
        return Vec::new();
    };
    let Value::Str(s) = &attr.value else {
        return Vec::new();
    };
    s.parts
        .iter()
        .filter_map(|p| match p {
            StrPart::Var(ident) if secrets.contains(&ident.name.as_str()) => Some(ident),
            _ => None,
        })
        .collect()
}

fn finding(step: &Step, span: crate::source::Span, var: Option<&str>) -> Diagnostic {
    let what = var.map_or("a secret".to_string(), |v| format!("secret `{v}`"));
    Diagnostic::new(
        Code::SecretInArgv,
        span,
        format!("{what} is passed on the command line of `{}`", step.name),
    )
    .label("visible to every local user in the process list")
    .help(format!(
        "pass it through the environment instead: env = {{ NAME = \"${{{}}}\" }}, and let the program read NAME",
        var.unwrap_or("secret")
    ))
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::Code;
    use crate::lint::testing::*;

    #[test]
    fn triggers_on_a_secret_in_run() {
        let steps = format!(
            "{CLEAN_STEPS}\nstart up {{\n  after = settled\n  run   = \"/opt/odoo/bin/notify --admin-password ${{admin_pw}}\"\n}}\n"
        );
        let text = format!(
            "{}\nvar admin_pw = secret(\"ADMIN_PW\")\n",
            plan_with(&steps)
        );
        let report = lint_text(&text);
        assert_eq!(with_code(&report, Code::SecretInArgv).len(), 1);
        insta::assert_snapshot!("secret_in_argv_human", human(&report));
        insta::assert_snapshot!("secret_in_argv_json", json(&report));
    }

    #[test]
    fn a_secret_through_a_variable_and_update_command_is_found() {
        let text = plan_with(CLEAN_STEPS).replace(
            "update_command = \"odoo -d ${db}",
            "update_command = \"odoo --db_password ${dsn} -d ${db}",
        );
        let text = format!("{text}\nvar pw = secret(\"PW\")\nvar dsn = \"x${{pw}}\"\n");
        let report = lint_text(&text);
        let found = with_code(&report, Code::SecretInArgv);
        assert_eq!(found.len(), 1, "{:#?}", report.diagnostics);
        assert_eq!(report.source.slice(found[0].primary.span), "dsn");
    }

    #[test]
    fn a_secret_in_env_is_clean() {
        let steps = format!(
            "{CLEAN_STEPS}\nstart up {{\n  after = settled\n  run   = \"/opt/odoo/bin/notify\"\n  env   = {{ ADMIN_PW = \"${{admin_pw}}\" }}\n}}\n"
        );
        let text = format!(
            "{}\nvar admin_pw = secret(\"ADMIN_PW\")\n",
            plan_with(&steps)
        );
        let report = lint_text(&text);
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }
}
