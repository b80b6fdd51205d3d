//! W112 erp-config-bypassed: the plan names the ERP configuration
//! (`erp_config`), and a step passes that very file to a command (`-c
//! /etc/odoo/odoo.conf`) instead of `${erp_config}`. The server then reads
//! the original: it connects where the file says, which may not be the
//! database the runner backs up and proves, and logs where `logfile` says,
//! out of `fail_on_output`'s sight.

use crate::diagnostic::{Code, Diagnostic};
use crate::lint::Context;
use crate::plan::Command;

use super::command;
use super::erp_config_connection::configured;

pub fn check(cx: &Context<'_>) -> Vec<Diagnostic> {
    let Some((path, _)) = configured(cx) else {
        return Vec::new();
    };
    let absolute = cx.folder.join(&path).display().to_string();
    let names_it = |word: &str| {
        // `-c FILE`, `--config FILE`, `--config=FILE`, `-cFILE`.
        let file = word
            .strip_prefix("--config=")
            .or_else(|| word.strip_prefix("-c"))
            .filter(|rest| !rest.is_empty() && !rest.starts_with('-'))
            .unwrap_or(word);
        file == path || file == absolute
    };
    cx.all_steps()
        .filter_map(|step| {
            let passes = match command(step)? {
                Command::Argv(args) => args
                    .iter()
                    .filter_map(|a| a.as_literal())
                    .any(|a| names_it(&a)),
                Command::Shell(script) => script.to_string().contains(&path),
            };
            passes.then(|| {
                let span = step
                    .attr_span("run")
                    .or_else(|| step.attr_span("shell"))
                    .unwrap_or(step.name_span);
                Diagnostic::new(
                    Code::ErpConfigBypassed,
                    span,
                    format!("step `{}` gives the server `{path}` itself", step.name),
                )
                .label("the original configuration")
                .help("write `-c ${erp_config}`: the file the runner derives from it connects to the target and logs to the step's log")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::diagnostic::Code;
    use crate::lint::testing::*;

    fn plan(update: &str) -> String {
        plan_with(CLEAN_STEPS)
            .replacen(
                "  to   = \"2.0\"\n",
                "  to   = \"2.0\"\n  erp_config = \"/etc/odoo/odoo.conf\"\n",
                1,
            )
            .replacen("odoo -d ${db} -u ${modules} --stop-after-init", update, 1)
    }

    #[test]
    fn triggers_on_the_original_file() {
        for update in [
            "odoo -c /etc/odoo/odoo.conf -d ${db} -u ${modules} --stop-after-init",
            "odoo --config=/etc/odoo/odoo.conf -d ${db} -u ${modules} --stop-after-init",
        ] {
            let report = lint_text(&plan(update));
            assert_eq!(
                with_code(&report, Code::ErpConfigBypassed).len(),
                1,
                "{update}: {:#?}",
                report.diagnostics
            );
        }
        let report = lint_text(&plan(
            "odoo -c /etc/odoo/odoo.conf -d ${db} -u ${modules} --stop-after-init",
        ));
        insta::assert_snapshot!("erp_config_bypassed_human", human(&report));
    }

    #[test]
    fn the_derived_file_is_clean() {
        let report = lint_text(&plan(
            "odoo -c ${erp_config} -d ${db} -u ${modules} --stop-after-init",
        ));
        assert!(report.diagnostics.is_empty(), "{:#?}", report.diagnostics);
    }
}
