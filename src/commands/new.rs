//! `plan new FROM TO`: writes the published procedure for a version pair as
//! a plan (stop, back up with the filestore, pre script, update all, post
//! script, check, start; restart the old server on failure), for the
//! OpenERP, Odoo or OpenUpgrade way of updating, with comments saying what
//! to fill in. What it writes lints clean and is laid out as `plan fmt`
//! lays it out; it reads no environment and touches no database.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use thiserror::Error;

use crate::cli::{Flavor, NewArgs};
use crate::commands::{UsageError, eprint, print};
use crate::exit::Ending;
use crate::version::Version;

/// Why `plan new` wrote nothing.
#[derive(Debug, Error, Diagnostic)]
pub enum NewError {
    #[error("`{}` exists already", path.display())]
    #[diagnostic(
        code(plan::new::exists),
        help("give --force to replace it, or another file with --output (`-o -` prints the plan)")
    )]
    Exists { path: PathBuf },

    #[error("`{from}` is not before `{to}`: a plan takes a database to a later release")]
    #[diagnostic(
        code(plan::new::release_order),
        help(
            "give the release the database is at, then the one to reach: `plan new 16.0 17.0` \
             (releases compare segment by segment, `6.0` equals `6.0.0`)"
        )
    )]
    ReleaseOrder { from: String, to: String },
}

pub fn run(args: &NewArgs) -> Result<Ending, UsageError> {
    if args.from >= args.to {
        return Err(NewError::ReleaseOrder {
            from: args.from.to_string(),
            to: args.to.to_string(),
        }
        .into());
    }
    let flavor = args.flavor.unwrap_or_else(|| default_flavor(&args.to));
    let text = plan_text(flavor, &args.from, &args.to);
    let path = match &args.output {
        Some(path) if path.as_os_str() == "-" => {
            print(&text);
            notes(flavor, &args.from, &args.to);
            return Ok(Ending::checked(false));
        }
        Some(path) => path.clone(),
        None => PathBuf::from(default_file_name(flavor, &args.from, &args.to)),
    };
    write(&path, &text, args.force)?;
    eprint(&format!(
        "wrote `{0}`: fill in what its comments say, then `plan lint {0}` and `plan show {0}`\n",
        path.display()
    ));
    notes(flavor, &args.from, &args.to);
    Ok(Ending::checked(false))
}

/// OpenERP became Odoo with 8.0.
fn default_flavor(to: &Version) -> Flavor {
    if *to < Version::parse("8.0").unwrap_or_else(|| to.clone()) {
        Flavor::Openerp
    } else {
        Flavor::Odoo
    }
}

/// `openerp-5.0.0-to-6.0.0.plan`: the releases as the user wrote them.
pub fn default_file_name(flavor: Flavor, from: &Version, to: &Version) -> String {
    format!("{}-{from}-to-{to}.plan", flavor_name(flavor))
}

fn flavor_name(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Openerp => "openerp",
        Flavor::Odoo => "odoo",
        Flavor::Openupgrade => "openupgrade",
    }
}

/// Creates the file, or with `force` replaces it; never replaces a file
/// silently.
fn write(path: &Path, text: &str, force: bool) -> Result<(), UsageError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        // Checked by the system call itself: no window between a test and
        // the write in which another file could appear.
        options.create_new(true);
    }
    let written = options
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()));
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(NewError::Exists {
            path: path.to_path_buf(),
        }
        .into()),
        Err(source) => Err(UsageError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// What the plan cannot say for itself about this pair, on stderr.
fn notes(flavor: Flavor, from: &Version, to: &Version) {
    if flavor != Flavor::Openupgrade {
        return;
    }
    if major(to) > major(from) + 1 {
        eprint(&format!(
            "note: OpenUpgrade migrates one release at a time: {from} -> {to} is a plan per \
             release, each run and checked before the next\n"
        ));
    }
    if major(to) < 14 {
        eprint(
            "note: before 14.0, OpenUpgrade is a fork of Odoo rather than a module: point \
             `odoo_bin` at its checkout and drop --upgrade-path and --load from \
             `update_command`\n",
        );
    }
}

fn major(version: &Version) -> u64 {
    version
        .as_str()
        .split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `5.0` for `5.0.0`, `16.0` for `16.0`, `17.0` for `17`: how install
/// folders and services name a release.
fn series(version: &Version) -> String {
    let mut parts = version.as_str().split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    format!("{major}.{minor}")
}

/// The values that differ from one flavor to another.
struct Shape {
    title: String,
    header: &'static str,
    update_command: &'static str,
    /// `var` lines (with their comments) for the programs the update runs.
    programs: String,
    service: (String, String),
    user: &'static str,
    /// Where the filestore is, with the comment that says so; `None` when
    /// the plan names the server's configuration (`erp_config`), whose
    /// `data_dir` says it and whose filestore joins every backup.
    filestore: Option<(&'static str, &'static str)>,
}

fn shape(flavor: Flavor, from: &Version, to: &Version) -> Shape {
    let (old, new) = (series(from), series(to));
    match flavor {
        Flavor::Openerp => Shape {
            title: format!("openerp {from} to {to}"),
            header: "\
# The new server is OpenERP's `openerp-server`: `update_command` runs it once
# with --update and --stop-after-init.",
            update_command: "${new_server} -d ${db} --update=${modules} --stop-after-init",
            programs: format!(
                "\
# The new release's server program, as installed on this machine.
var new_server = env(\"NEW_SERVER\", \"/opt/openerp-{new}/bin/openerp-server\")
"
            ),
            service: (format!("openerp-{old}"), format!("openerp-{new}")),
            user: "openerp",
            filestore: Some((
                "/var/lib/openerp/filestore",
                "\
# Before 7.0, OpenERP keeps attachments in the database unless the
# customer moved them to disk: with no filestore, remove `paths`.",
            )),
        },
        Flavor::Odoo => Shape {
            title: format!("odoo {from} to {to}"),
            header: "\
# The new server is `odoo-bin` with the customer's configuration file
# (`odoo.py` or `openerp-server` before 10.0): `update_command` runs it once
# with --update and --stop-after-init. The plan names that file
# (`erp_config`): the server is given a copy of it with the target's
# connection (`${erp_config}`), a file naming another server or database is
# refused, and the filestore of its `data_dir` is in every backup.",
            update_command: "${odoo_bin} -c ${erp_config} -d ${db} --update=${modules} --stop-after-init",
            programs: format!(
                "\
# The new release's server program and configuration, on this machine.
var odoo_bin  = env(\"ODOO_BIN\", \"/opt/odoo-{new}/odoo-bin\")
var odoo_conf = env(\"ODOO_CONF\", \"/etc/odoo/odoo-{new}.conf\")
"
            ),
            service: (format!("odoo-{old}"), format!("odoo-{new}")),
            user: "odoo",
            filestore: None,
        },
        Flavor::Openupgrade => Shape {
            title: format!("openupgrade {from} to {to}"),
            header: "\
# The update is OCA's OpenUpgrade: the new `odoo-bin` loads
# openupgrade_framework and runs the migration scripts of
# openupgrade_scripts for each module. The configuration's addons_path must
# hold the OpenUpgrade checkout (for openupgrade_framework) besides the
# customer's addons. The plan names that file (`erp_config`): the server is
# given a copy of it with the target's connection (`${erp_config}`), and
# the filestore of its `data_dir` is in every backup.",
            update_command: "${odoo_bin} -c ${erp_config} -d ${db} --upgrade-path=${openupgrade}/openupgrade_scripts/scripts --load=base,web,openupgrade_framework --update=${modules} --stop-after-init",
            programs: format!(
                "\
# The new release's server program and configuration, on this machine.
var odoo_bin  = env(\"ODOO_BIN\", \"/opt/odoo-{new}/odoo-bin\")
var odoo_conf = env(\"ODOO_CONF\", \"/etc/odoo/odoo-{new}.conf\")

# A checkout of OpenUpgrade's {new} branch.
var openupgrade = env(\"OPENUPGRADE\", \"/opt/openupgrade-{new}\")
"
            ),
            service: (format!("odoo-{old}"), format!("odoo-{new}")),
            user: "odoo",
            filestore: None,
        },
    }
}

/// The plan, as `plan fmt` lays it out.
pub fn plan_text(flavor: Flavor, from: &Version, to: &Version) -> String {
    let shape = shape(flavor, from, to);
    let Shape {
        title,
        header,
        update_command,
        programs,
        service: (old_service, new_service),
        user,
        filestore,
    } = shape;
    // With `erp_config`, the configuration says where the filestore is.
    let (erp_config, files, paths, copied) = match filestore {
        Some((path, note)) => (
            String::new(),
            format!("{note}\nvar filestore = env(\"FILESTORE\", \"{path}\")\n\n"),
            "\n  paths  = [\"${filestore}/${db}\"]",
            "machine. The filestore is copied beside it and restored with it.",
        ),
        None => (
            "\n  erp_config     = \"${odoo_conf}\"".to_string(),
            String::new(),
            "",
            "machine. The filestore (the configuration's data_dir) is copied beside\n# it and restored with it.",
        ),
    };
    format!(
        r#"# {title}
#
# The published procedure for a version migration, written by `plan new`.
# Before it runs on a customer's machine, make each value below theirs: the
# defaults are the usual install paths. Every ALL_CAPS name is an environment
# variable that overrides its default, and an inventory's `vars` or
# `--var NAME=VALUE` override any variable. Then `plan lint` it (it must stay
# clean) and `plan show` it: the commands exactly as they will run.
#
{header}
plan "{title}" {{
  from = "{from}"
  to   = "{to}"

  update_command = "{update_command}"
  release_query  = "select latest_version from ir_module_module where name = 'base'"{erp_config}
}}

var db = target.database

{programs}
# The systemd services of the old and the new server.
var old_service = env("OLD_SERVICE", "{old_service}")
var new_service = env("NEW_SERVICE", "{new_service}")

# The system user the server runs as: when plan runs as root, the scripts and
# the update run as this user, so that what they write into the filestore
# keeps its owner. Run as that user yourself, or remove the `user` lines.
var erp_user = env("ERP_USER", "{user}")

{files}# The pair's own scripts: pre.py runs before the update, post.py after it.
# Keep them beside this plan (say in migrate/{from}-{to}/) and write that
# relative path here: `plan lint` then checks that both exist.
var scripts = env("MIGRATION_SCRIPTS", "/opt/migrations/{from}-{to}")

stop old_server_down {{
  run     = "systemctl stop ${{old_service}}"
  timeout = "2m"
}}

# A snapshot is a copy the server makes of the database (fast, restored by a
# rename); method = "dump" (pg_dump) is for a backup that must leave the
# {copied}
backup before_upgrade {{
  after  = old_server_down
  method = "snapshot"{paths}
}}

script pre {{
  after   = before_upgrade
  run     = "python3 ${{scripts}}/pre.py -d ${{db}}"
  timeout = "15m"
  user    = "${{erp_user}}"
}}

# Fails on a non-zero exit and on an ERROR or CRITICAL line in the server's
# output. Make the timeout a few times what a rehearsal's update took.
update all_modules {{
  after   = pre
  modules = "all"
  timeout = "2h"
  user    = "${{erp_user}}"
}}

script post {{
  after   = all_modules
  run     = "python3 ${{scripts}}/post.py -d ${{db}}"
  timeout = "15m"
  user    = "${{erp_user}}"
}}

# No module may be left `to install`, `to upgrade` or `to remove`.
check modules_settled {{
  after  = post
  sql    = "select count(*) from ir_module_module where state like 'to %'"
  expect = "0"
}}

start new_server_up {{
  after   = modules_settled
  run     = "systemctl start ${{new_service}}"
  timeout = "2m"
}}

# After any failure the database and the filestore are restored and the
# restore proved; then the old server comes back.
on_failure {{
  start old_server_up {{
    run     = "systemctl start ${{old_service}}"
    timeout = "2m"
  }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyse;
    use crate::resolve::Context;
    use crate::source::Source;

    const FLAVORS: [Flavor; 3] = [Flavor::Openerp, Flavor::Odoo, Flavor::Openupgrade];

    fn v(text: &str) -> Version {
        Version::parse(text).expect("a release")
    }

    #[test]
    fn every_flavor_lints_with_no_finding() {
        for flavor in FLAVORS {
            for (from, to) in [("5.0.0", "6.0.0"), ("16.0", "17.0"), ("7", "8.0.1")] {
                let text = plan_text(flavor, &v(from), &v(to));
                let report = crate::lint::lint(&analyse(
                    Source::new("new.plan", text.as_str()),
                    &Context::default(),
                ));
                assert!(
                    report.diagnostics.is_empty(),
                    "{flavor:?} {from} {to}: {:#?}\n{text}",
                    report.diagnostics
                );
            }
        }
    }

    #[test]
    fn every_flavor_is_laid_out_as_fmt_lays_it_out() {
        for flavor in FLAVORS {
            let text = plan_text(flavor, &v("16.0"), &v("17.0"));
            let source = Source::new("new.plan", text.as_str());
            let parsed = crate::parse::parse(&source);
            assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
            assert_eq!(
                crate::fmt::format(&parsed.file, &source),
                text,
                "{flavor:?}"
            );
        }
    }

    #[test]
    fn each_flavor_updates_its_own_way() {
        let (from, to) = (v("16.0"), v("17.0"));
        let openerp = plan_text(Flavor::Openerp, &v("5.0.0"), &v("6.0.0"));
        assert!(openerp.contains("/opt/openerp-6.0/bin/openerp-server"));
        assert!(openerp.contains("\"OLD_SERVICE\", \"openerp-5.0\""));
        let odoo = plan_text(Flavor::Odoo, &from, &to);
        assert!(odoo.contains("${odoo_bin} -c ${erp_config} -d ${db} --update=${modules}"));
        assert!(odoo.contains("erp_config     = \"${odoo_conf}\""));
        assert!(
            !odoo.contains("paths  ="),
            "the configuration names the filestore"
        );
        assert!(openerp.contains("paths  = [\"${filestore}/${db}\"]"));
        assert!(odoo.contains("env(\"ODOO_BIN\", \"/opt/odoo-17.0/odoo-bin\")"));
        assert!(!odoo.contains("openupgrade"));
        let ou = plan_text(Flavor::Openupgrade, &from, &to);
        assert!(ou.contains(
            "--upgrade-path=${openupgrade}/openupgrade_scripts/scripts \
             --load=base,web,openupgrade_framework --update=${modules}"
        ));
    }

    #[test]
    fn openerp_until_7_odoo_from_8() {
        assert_eq!(default_flavor(&v("6.1")), Flavor::Openerp);
        assert_eq!(default_flavor(&v("7.0.0")), Flavor::Openerp);
        assert_eq!(default_flavor(&v("8.0")), Flavor::Odoo);
        assert_eq!(default_flavor(&v("17.0")), Flavor::Odoo);
    }

    #[test]
    fn releases_name_their_series() {
        assert_eq!(series(&v("5.0.0")), "5.0");
        assert_eq!(series(&v("16.0")), "16.0");
        assert_eq!(series(&v("17")), "17.0");
        assert_eq!(
            default_file_name(Flavor::Openerp, &v("5.0.0"), &v("6.0.0")),
            "openerp-5.0.0-to-6.0.0.plan"
        );
    }
}
