//! The plan `benches/lint.rs` lints: every kind of step, `after` chains
//! that join, and no finding, so every rule walks the whole plan and none
//! stops early. Included with `#[path = "support/clean.rs"] mod clean;`.

use std::fmt::Write as _;

/// A plan of `steps` steps that lints clean: a stop and a backup, then a
/// mix of every kind, each step after the one before it and every tenth
/// also after a step further up (so paths join, as in real plans).
pub fn plan(steps: usize) -> String {
    let mut text = String::from(
        "plan \"generated\" {\n  from = \"5.0.0\"\n  to   = \"6.0.0\"\n\n  update_command = \"${new_server} -d ${db} --update=${modules} --stop-after-init\"\n}\n\nvar new_server = env(\"NEW_SERVER\", \"/opt/openerp-6.0/bin/openerp-server\")\nvar tools      = \"/opt/migrate\"\n\nstop old_down {\n  run = \"systemctl stop openerp-5.0\"\n}\n\nbackup before {\n  after = old_down\n  paths = [\"/var/lib/openerp/filestore/${db}\"]\n}\n",
    );
    let mut previous = "before".to_string();
    for i in 0..steps.saturating_sub(2) {
        let name = format!("step_{i}");
        let after = if i % 10 == 9 {
            format!("[{previous}, step_{}]", i - 7)
        } else {
            previous.clone()
        };
        let body = match i % 4 {
            0 => format!(
                "script {name} {{\n  after   = {after}\n  run     = \"python3 ${{tools}}/fix_{i}.py -d ${{db}} --batch 500\"\n  timeout = \"15m\"\n}}\n"
            ),
            1 => format!(
                "sql {name} {{\n  after = {after}\n  sql   = \"update res_partner set ref = 'p{i}' where id = {i}\"\n}}\n"
            ),
            2 => format!(
                "update {name} {{\n  after   = {after}\n  modules = [\"sale\", \"stock\"]\n  timeout = \"2h\"\n}}\n"
            ),
            _ => format!(
                "check {name} {{\n  after  = {after}\n  sql    = \"select count(*) from ir_module_module where state like 'to %'\"\n  expect = \"0\"\n}}\n"
            ),
        };
        let _ = write!(text, "\n{body}");
        previous = name;
    }
    text.push_str(
        "\non_failure {\n  start old_up {\n    run = \"systemctl start openerp-5.0\"\n  }\n}\n",
    );
    text
}
