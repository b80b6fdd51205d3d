//! W111 erp-config-connection: the plan's `erp_config` names a file that
//! lint can read, and that file sets `db_host`, `db_port`, `db_user` or
//! `db_name`. `plan apply` compares them with the target and refuses a
//! target they do not name (exit 4): the review hears of it before the
//! maintenance window. A file lint cannot read (a path on the server, a
//! value only known at apply time) is left alone; one that is not an
//! `[options]` file is reported too, since apply refuses it.

use crate::diagnostic::{Code, Diagnostic};
use crate::erp_config::{CONNECTION_KEYS, ErpConfig, ErpConfigError};
use crate::lint::Context;
use crate::source::Span;

pub fn check(cx: &Context<'_>) -> Vec<Diagnostic> {
    let Some((path, span)) = configured(cx) else {
        return Vec::new();
    };
    let config = match ErpConfig::read(&cx.folder.join(&path)) {
        Ok(config) => config,
        Err(ErpConfigError::Io { .. }) => return Vec::new(),
        Err(e) => {
            let what = match &e {
                ErpConfigError::Syntax { message, .. } => message.clone(),
                other => other.to_string(),
            };
            return vec![
                Diagnostic::new(
                    Code::ErpConfigConnection,
                    span,
                    format!("`plan apply` refuses this ERP configuration: {what}"),
                )
                .label("not an `[options]` file the server reads")
                .help("fix the file: `plan apply` reads it as the server does (docs/odoo.md)"),
            ];
        }
    };
    let set: Vec<String> = CONNECTION_KEYS
        .iter()
        .filter_map(|key| config.option(key).map(|v| format!("{key} = {v}")))
        .collect();
    if set.is_empty() {
        return Vec::new();
    }
    vec![
        Diagnostic::new(
            Code::ErpConfigConnection,
            span,
            format!(
                "`{path}` sets {}: `plan apply` refuses a target it does not name",
                set.join(", ")
            ),
        )
        .label("names a database server of its own")
        .help("leave db_host, db_port, db_user and db_name out of the file (or set them to False): the runner gives the server the target's; or keep them, and apply compares them with the target (--erp-config-override runs anyway)"),
    ]
}

/// The `erp_config` the plan names, when lint knows its value (no
/// placeholder, no secret), and where it is written.
pub(super) fn configured(cx: &Context<'_>) -> Option<(String, Span)> {
    let path = cx.erp_config?.as_literal()?;
    let span = cx.ast.items.iter().find_map(|item| match item {
        crate::ast::Item::Plan(block) => block
            .attrs
            .iter()
            .find(|a| a.key.name == "erp_config")
            .map(|a| a.value.span()),
        _ => None,
    })?;
    Some((path, span))
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::Code;
    use crate::lint::testing::*;

    fn plan(config: &str) -> String {
        plan_with(CLEAN_STEPS).replacen(
            "  to   = \"2.0\"\n",
            &format!("  to   = \"2.0\"\n  erp_config = \"{config}\"\n"),
            1,
        )
    }

    #[test]
    fn triggers_on_a_file_naming_its_server() {
        let report = lint_named("plans/t.plan", &plan("odoo-conf/production.conf"));
        let found = with_code(&report, Code::ErpConfigConnection);
        assert_eq!(found.len(), 1, "{:#?}", report.diagnostics);
        assert!(found[0].message.contains("db_host = db1.example.com"));
        insta::assert_snapshot!("erp_config_connection_human", human(&report));
    }

    #[test]
    fn a_file_without_connection_or_out_of_reach_is_clean() {
        for config in ["odoo-conf/odoo.conf", "/etc/odoo/not-on-this-machine.conf"] {
            let report = lint_named("plans/t.plan", &plan(config));
            assert!(
                report.diagnostics.is_empty(),
                "{config}: {:#?}",
                report.diagnostics
            );
        }
    }
}
