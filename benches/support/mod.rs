//! Generated plans for the benchmarks: the shape of a real migration (one
//! plan block, a dozen variables, every step kind, chains, fan-outs and
//! fan-ins of `after`, comments), scaled to any number of steps. Shared by
//! the benches (`mod support;`) and by the test that keeps it valid.
//!
//! Deterministic: the same count always gives the same text, so figures
//! taken on different days measure the same input.

use std::fmt::Write as _;

/// Module names of the ERP, made unique per group with a number.
const MODULES: &[&str] = &[
    "account",
    "sale",
    "stock",
    "purchase",
    "mrp",
    "hr_timesheet",
    "project",
    "crm",
    "point_of_sale",
    "l10n_fr",
];

/// Steps per group: one ERP module migrated with its pre and post scripts,
/// fixes, backup or compile, checks and a server restart.
const GROUP: usize = 10;

/// A plan with exactly `steps` steps in its main graph (and two more in
/// `on_failure`), laid out as `plan fmt` lays it out.
pub fn plan(steps: usize) -> String {
    let mut out = String::with_capacity(steps * 260);
    header(&mut out);
    for n in 0..steps {
        step(&mut out, n / GROUP, n % GROUP);
    }
    footer(&mut out);
    out
}

fn header(out: &mut String) {
    out.push_str(
        r#"# Generated for the benchmarks: a long OpenERP 5.0 -> 6.0 migration, one
# group of ten steps per module.
plan "openerp 5.0.0 to 6.0.0 (generated)" {
  from           = "5.0.0"
  to             = "6.0.0"
  update_command = "${new_server} -d ${db} --update=${modules} --stop-after-init --addons-path=${addons_path} --log-level=${log_level}"
  release_query  = "select latest_version from ir_module_module where name = 'base'"
  description    = "every module migrated on its own, with checks in between"
}

# Connection and servers.
var db          = target.database
var host        = target.host
var port        = target.port
var pg_user     = target.user
var old_server  = env("OLD_SERVER", "/opt/openerp-5.0/bin/openerp-server")
var new_server  = env("NEW_SERVER", "/opt/openerp-6.0/bin/openerp-server")
var addons_path = env("ADDONS_PATH", "/opt/openerp-6.0/addons")
var admin_pass  = secret("ERP_ADMIN_PASSWORD")
var scripts     = "migrate/5.0.0-6.0.0"
var filestore   = "/var/lib/openerp/filestore/${db}"
var log_level   = "info"
var workers     = 4
var conn        = "host=${host} port=${port} user=${pg_user} dbname=${db}"
"#,
    );
}

fn footer(out: &mut String) {
    out.push_str(
        r#"
# Only after a proved rollback.
on_failure {
  start old_server_up {
    run = "systemctl start openerp-5.0"
  }

  script notify_failure {
    after = old_server_up
    run   = "python3 ${scripts}/notify.py --db ${db} --status rolled-back"
  }
}
"#,
    );
}

/// The module migrated by group `g`: `sale_0042`.
fn module(g: usize) -> String {
    format!("{}_{g:04}", MODULES[g % MODULES.len()])
}

/// One step: position `p` of group `g`.
fn step(out: &mut String, g: usize, p: usize) {
    let m = module(g);
    let prev = g.checked_sub(1).map(module);
    let mut attrs: Vec<(&str, String)> = Vec::new();
    let (kind, name) = match p {
        0 => {
            let _ = write!(out, "\n# --- {m} ---\n");
            // Each group waits for the one before; every tenth also waits
            // for the previous module's check, a long edge across groups.
            match &prev {
                Some(prev) if g.is_multiple_of(10) => {
                    attrs.push(("after", format!("[post_{prev}, {prev}_installed]")))
                }
                Some(prev) => attrs.push(("after", format!("post_{prev}"))),
                None => {}
            }
            attrs.push((
                "run",
                format!(r#""python3 ${{scripts}}/pre.py -d ${{db}} --module {m} --log-level=${{log_level}}""#),
            ));
            attrs.push(("timeout", r#""15m""#.into()));
            attrs.push((
                "env",
                r#"{ PGOPTIONS = "-c statement_timeout=0", ERP_ADDONS = "${addons_path}" }"#.into(),
            ));
            attrs.push(("cwd", r#""${scripts}""#.into()));
            ("script", format!("pre_{m}"))
        }
        1 => {
            attrs.push(("after", format!("pre_{m}")));
            attrs.push((
                "sql",
                format!(
                    "\"update ir_model_data set module = '{m}'\n       where module = '{m}_old' and name not like '%\\\\_bak' -- \\\"kept\\\" # not a comment\""
                ),
            ));
            attrs.push(("timeout", r#""10m""#.into()));
            ("sql", format!("fix_{m}"))
        }
        2 => {
            attrs.push(("after", format!("pre_{m}")));
            attrs.push(("file", format!(r#""${{scripts}}/sql/{m}.sql""#)));
            attrs.push(("retries", "2".into()));
            ("sql", format!("load_{m}"))
        }
        3 if g.is_multiple_of(10) => {
            attrs.push(("after", format!("[fix_{m}, load_{m}]")));
            attrs.push((
                "method",
                if g.is_multiple_of(20) {
                    r#""dump""#
                } else {
                    r#""snapshot""#
                }
                .into(),
            ));
            attrs.push((
                "paths",
                r#"["${filestore}", "/var/lib/openerp/sessions"]"#.into(),
            ));
            attrs.push(("keep", "false".into()));
            ("backup", format!("before_{m}"))
        }
        3 => {
            attrs.push(("after", format!("[fix_{m}, load_{m}]")));
            attrs.push((
                "shell",
                format!(r#""python3 -m compileall -q ${{scripts}}/{m} > /dev/null 2>&1""#),
            ));
            attrs.push((
                "description",
                format!(r#""byte-compile the scripts of {m}""#),
            ));
            ("script", format!("before_{m}"))
        }
        4 => {
            attrs.push(("after", format!("before_{m}")));
            attrs.push(("run", r#""systemctl stop openerp-6.0""#.into()));
            attrs.push(("timeout", r#""90s""#.into()));
            ("stop", format!("server_{m}_down"))
        }
        5 => {
            attrs.push(("after", format!("server_{m}_down")));
            let modules = if g.is_multiple_of(50) {
                r#""all""#.to_string()
            } else {
                format!(r#"["{m}", "{m}_extra"]"#)
            };
            attrs.push(("modules", modules));
            attrs.push(("timeout", r#""2h""#.into()));
            attrs.push(("retries", "1".into()));
            if g.is_multiple_of(4) {
                attrs.push(("fail_on_output", r#"" (ERROR|CRITICAL) ""#.into()));
            }
            ("update", m.clone())
        }
        6 => {
            attrs.push(("after", m.clone()));
            attrs.push((
                "sql",
                format!(r#""select state from ir_module_module where name = '{m}'""#),
            ));
            attrs.push(("expect", r#""installed""#.into()));
            ("check", format!("{m}_installed"))
        }
        7 => {
            attrs.push(("after", m.clone()));
            attrs.push(("run", format!(r#""test -d ${{filestore}}/{m}""#)));
            ("check", format!("{m}_files"))
        }
        8 => {
            attrs.push(("after", format!("[{m}_installed, {m}_files]")));
            attrs.push(("run", r#""systemctl start openerp-6.0""#.into()));
            attrs.push(("timeout", r#""2m""#.into()));
            ("start", format!("server_{m}_up"))
        }
        _ => {
            attrs.push(("after", format!("[server_{m}_up, fix_{m}]")));
            attrs.push((
                "run",
                format!(r#""python3 ${{scripts}}/post.py -d ${{db}} --module {m} --note 'checked by ops'""#),
            ));
            attrs.push(("user", r#""openerp""#.into()));
            attrs.push((
                "env",
                r#"{ PGAPPNAME = "plan-runner", ERP_PASSWORD = "${admin_pass}" }"#.into(),
            ));
            attrs.push(("description", format!(r#""post-migration of {m}""#)));
            ("script", format!("post_{m}"))
        }
    };
    if p > 0 {
        out.push('\n');
    }
    let width = attrs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let _ = writeln!(out, "{kind} {name} {{");
    for (n, (key, value)) in attrs.iter().enumerate() {
        let _ = write!(out, "  {key:width$} = {value}");
        // A trailing comment now and then, as reviewers leave them.
        if n == 0 && p == 5 {
            out.push_str(" # the server must be down");
        }
        out.push('\n');
    }
    out.push_str("}\n");
}
