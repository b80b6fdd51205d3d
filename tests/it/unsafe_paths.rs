//! A backup's `paths` entry whose restore would wipe what is not the
//! ERP's files (empty, the root, the state folder, the plan's folder, the
//! server's data directory or an ancestor of them) is refused before any step: exit 4, outcome
//! `refused`, the database and the tree unchanged, no step run.

use crate::support::apply::{TREE, World, fingerprint, read_tree};

fn plan_with(root_default: &str) -> String {
    format!(
        r#"plan "unsafe paths" {{
  from          = "1.0"
  to            = "2.0"
  release_query = "select v from release"
}}

var root = env("UNSAFE_ROOT", "{root_default}")

stop server_down {{
  run = "touch stop.ran"
}}

backup before {{
  after  = server_down
  method = "snapshot"
  paths  = ["${{root}}"]
}}

script change {{
  after   = before
  run     = "sh steps/mutate.sh change ok"
  timeout = "1m"
}}

check done {{
  after  = change
  sql    = "select 1"
  expect = "1"
}}

on_failure {{
  start server_up {{
    run = "true"
  }}
}}
"#
    )
}

#[test]
fn a_paths_entry_that_would_restore_the_root_the_state_or_the_plan_is_refused() {
    let world = World::new("unsafe_paths");
    let plan = world.write_plan(&plan_with(TREE));
    let state = world.state.path().to_path_buf();
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "an empty path"),
        ("/".into(), "root of the file system"),
        (state.display().to_string(), "the state folder"),
        (
            state.parent().expect("a parent").display().to_string(),
            "the state folder",
        ),
        (".".into(), "the plan's folder"),
        (
            world.db.cluster.folder().display().to_string(),
            "the server's data directory",
        ),
    ];
    for (root, why) in cases {
        let db_before = fingerprint(&world.db);
        let tree_before = read_tree(&world.tree());
        let mut cmd =
            crate::support::apply::apply_command(&world.db, &plan, world.state.path(), &[]);
        cmd.env("UNSAFE_ROOT", &root);
        let applied = crate::support::apply::run(&mut cmd, world.state.path());
        assert_eq!(
            applied.code,
            Some(4),
            "root `{root}`:\n{}",
            applied.output()
        );
        assert_eq!(applied.outcome(), "refused", "root `{root}`");
        let words = applied
            .stderr
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(words.contains(why), "root `{root}`: {}", applied.stderr);
        assert!(
            !world.path("stop.ran").exists(),
            "root `{root}`: a step ran"
        );
        assert_eq!(fingerprint(&world.db), db_before, "root `{root}`");
        assert_eq!(read_tree(&world.tree()), tree_before, "root `{root}`");
    }

    // The same plan with its usual tree runs: the refusals were about
    // the entry, not the plan.
    let mut cmd = crate::support::apply::apply_command(&world.db, &plan, world.state.path(), &[]);
    cmd.env("UNSAFE_ROOT", TREE);
    let applied = crate::support::apply::run(&mut cmd, world.state.path());
    assert_eq!(applied.code, Some(0), "{}", applied.output());
    assert!(world.path("stop.ran").exists());
}
