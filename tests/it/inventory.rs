//! Inventories as a partner writes them: what resolves, and what the user
//! sees when one is wrong (rendered exactly as `plan` prints it, no colour).

use std::fs;
use std::os::unix::fs::PermissionsExt;

use miette::{GraphicalReportHandler, GraphicalTheme};
use plan_runner::cli::TargetArgs;
use plan_runner::db::Host;
use plan_runner::target::inventory::{Inventory, InventoryError};
use plan_runner::target::{Env, resolve_wanted};

fn render(error: &dyn miette::Diagnostic) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    handler
        .render_report(&mut out, error)
        .expect("rendering into a String cannot fail");
    out
}

fn invalid(text: &str) -> InventoryError {
    match Inventory::parse("inventory.yaml", text) {
        Err(error) => error,
        Ok(inventory) => panic!("expected an error, got {inventory:?}"),
    }
}

const GOOD: &str = "\
targets:
  acme:
    production: true
    host: db.acme.example
    port: 5433
    user: erp
    database: acme
    step_user: openerp
    vars:
      new_server: /opt/openerp-6.0/bin/openerp-server
      release: 6.10
  acme-test:
    database: acme_test
";

#[test]
fn inventory_target_resolves_with_environment_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    fs::write(&path, GOOD).unwrap();
    let args = TargetArgs {
        target: Some("acme".to_string()),
        inventory: Some(path.clone()),
        ..TargetArgs::default()
    };
    let env = Env::empty()
        .with_os_user("alice")
        .with_var("PGHOST", "ignored.example")
        .with_var("PGPASSWORD", "from-env");
    let resolved = resolve_wanted(&args.wanted(), &env).unwrap();
    assert_eq!(resolved.name.as_deref(), Some("acme"));
    assert!(resolved.production);
    assert_eq!(
        resolved.target.host,
        Host::Tcp("db.acme.example".to_string())
    );
    assert_eq!(resolved.target.port, 5433);
    assert_eq!(resolved.target.user, "erp");
    assert_eq!(resolved.target.database, "acme");
    assert_eq!(
        resolved.target.password.as_ref().map(|p| p.expose()),
        Some("from-env")
    );
    assert_eq!(resolved.step_user.as_deref(), Some("openerp"));
    assert_eq!(resolved.vars["release"], "6.10");
    assert_eq!(resolved.maintenance_db, "postgres");

    let test = resolve_wanted(
        &TargetArgs {
            target: Some("acme-test".to_string()),
            inventory: Some(path),
            ..TargetArgs::default()
        }
        .wanted(),
        &env,
    )
    .unwrap();
    assert!(!test.production);
    assert_eq!(test.target.host, Host::Tcp("ignored.example".to_string()));
    assert_eq!(test.target.user, "alice");
}

#[test]
fn unknown_target_suggests_and_lists() {
    let inventory = Inventory::parse("inventory.yaml", GOOD).unwrap();
    let error = inventory.target("acm").unwrap_err();
    insta::assert_snapshot!(render(&error));
}

#[test]
fn bad_yaml_is_shown_at_its_line_and_column() {
    let error = invalid("targets:\n  acme:\n    host: 'db.acme.example\n    database: acme\n");
    let rendered = render(&error);
    assert!(rendered.contains("[inventory.yaml:"), "{rendered}");
    insta::assert_snapshot!(rendered);
}

#[test]
fn unknown_field_is_underlined_with_a_suggestion() {
    let error = invalid("targets:\n  acme:\n    database: acme\n    hots: db.acme.example\n");
    let rendered = render(&error);
    assert!(rendered.contains("[inventory.yaml:4:5]"), "{rendered}");
    assert!(rendered.contains("did you mean `host`?"), "{rendered}");
    insta::assert_snapshot!(rendered);
}

#[test]
fn wrong_type_in_vars_is_located() {
    let error =
        invalid("targets:\n  acme:\n    database: acme\n    vars:\n      modules: [sale, stock]\n");
    let rendered = render(&error);
    assert!(rendered.contains("[inventory.yaml:5:16]"), "{rendered}");
    insta::assert_snapshot!(rendered);
}

#[test]
fn an_unknown_sslmode_is_underlined_where_it_is_written() {
    // It pointed at the target's first key, `production`, three lines up.
    let text = "targets:\n  acme:\n    production: true\n    database: acme\n    host: db.acme.example\n    sslmode: sometimes\n";
    let rendered = render(&invalid(text));
    assert!(rendered.contains("[inventory.yaml:6:14]"), "{rendered}");
    insta::assert_snapshot!(rendered);
    // And so `plan` itself shows it.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("inventory.yaml"), text).unwrap();
    let output = assert_cmd::Command::cargo_bin("plan")
        .unwrap()
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .args([
            "status",
            "--inventory",
            "inventory.yaml",
            "--target",
            "acme",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("[inventory.yaml:6:14]"), "{stderr}");
    assert!(stderr.contains(" 6 │     sslmode: sometimes"), "{stderr}");
}

#[test]
fn column_counts_characters_on_non_ascii_lines() {
    let error = invalid("targets:\n  société: {database: acme, hots: x}\n");
    let rendered = render(&error);
    // `hots` starts at the 31st character, 32nd byte of line 2.
    assert!(rendered.contains("[inventory.yaml:2:31]"), "{rendered}");
}

#[test]
fn password_near_an_error_is_not_printed() {
    let error =
        invalid("targets:\n  acme:\n    database: acme\n    password: hunter2\n    prot: 1\n");
    let rendered = render(&error);
    assert!(!rendered.contains("hunter2"), "{rendered}");
    insta::assert_snapshot!(rendered);
}

#[test]
fn unreadable_inventory_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.yaml");
    let error = Inventory::load(&path).unwrap_err();
    assert!(error.to_string().contains("missing.yaml"));
}

#[test]
fn inventory_errors_reach_the_resolver_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    fs::write(&path, GOOD).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let args = TargetArgs {
        target: Some("nope".to_string()),
        inventory: Some(path),
        ..TargetArgs::default()
    };
    let error = resolve_wanted(&args.wanted(), &Env::empty().with_os_user("alice")).unwrap_err();
    let rendered = render(&error);
    assert!(rendered.contains("no target `nope`"), "{rendered}");
    assert!(
        rendered.contains("the targets are `acme`, `acme-test`"),
        "{rendered}"
    );
}

#[test]
fn tab_indentation_gets_a_hint() {
    let error = invalid("targets:\n  acme:\n\tdatabase: acme\n");
    let rendered = render(&error);
    assert!(rendered.contains("[inventory.yaml:3:1]"), "{rendered}");
    assert!(rendered.contains("replace the tab"), "{rendered}");
}

#[test]
fn top_level_of_the_wrong_shape_says_what_to_write() {
    let rendered = render(&invalid("- acme\n"));
    assert!(
        rendered.contains("expected a map with `targets`"),
        "{rendered}"
    );
    assert!(!rendered.contains("RawInventory"), "{rendered}");
}

/// An inventory's `vars` set only what the plan declares (and `db`): its
/// `modules` does not replace an update's modules, and a name the plan
/// uses without declaring stays an error.
#[test]
fn inventory_vars_set_only_declared_variables() {
    use plan_runner::analysis;
    use plan_runner::diagnostic::Code;
    use plan_runner::plan::{Action, Command};
    use plan_runner::resolve::Context;
    use plan_runner::source::Source;

    let ctx = Context {
        inventory: [("modules", "evil"), ("tools", "/srv/tools"), ("stray", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Context::default()
    };
    let plan = "plan \"p\" {\n  from = \"1.0\"\n  to = \"2.0\"\n}\n\nvar tools = \"/opt/tools\"\n\nbackup b {\n}\n\nupdate u {\n  after = b\n  modules = [\"sale\"]\n  run = \"${tools}/server --update=${modules}\"\n}\n";
    let analysis = analysis::analyse(Source::new("p.plan", plan), &ctx);
    assert!(!analysis.has_errors(), "{:?}", analysis.diagnostics);
    let resolved = analysis.plan.expect("a plan");
    let Action::Update {
        command: Command::Argv(argv),
        ..
    } = &resolved.steps[1].action
    else {
        panic!("an update with an argv: {:?}", resolved.steps[1].action);
    };
    let words: Vec<String> = argv
        .iter()
        .map(|w| w.expose().unwrap_or_default())
        .collect();
    assert_eq!(words, ["/srv/tools/server", "--update=sale"]);

    let undeclared = plan.replace("${tools}/server", "${stray}/server");
    let analysis = analysis::analyse(Source::new("p.plan", undeclared.as_str()), &ctx);
    assert!(
        analysis
            .diagnostics
            .iter()
            .any(|d| d.code == Code::UndefinedVariable),
        "{:?}",
        analysis.diagnostics
    );
}
