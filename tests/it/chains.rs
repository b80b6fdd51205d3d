//! Chains (`plan apply DIR --to X`) against a real cluster: three pair
//! plans 1.0 -> 2.0 -> 3.0 -> 4.0 in one folder, each stopping, backing up
//! the database and its file tree, changing both, checking. A passing
//! chain leaves three hops in the history and one backup; a failure in
//! the third hop, or a kill -9 in the second then `plan recover`, leaves
//! the database and the tree equal to the start (fingerprint, tree);
//! `--keep-reached` stops at the last release reached. Paths that cannot
//! be taken (none, a tie, an unknown release) and folders that do not
//! lint clean (a duplicate pair, a cycle, a plan that does not parse)
//! change nothing.

use std::fs;
use std::process::Stdio;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::apply::{
    Applied, TREE, World, apply_command, assert_lints_clean, fingerprint, history, read_tree,
    related_databases, run, run_folders,
};
use crate::support::{self, wait_for};

/// A hop `from -> to` whose `change` step runs `change_run`.
fn hop(from: &str, to: &str, change_run: &str) -> String {
    format!(
        r#"plan "hop {from} to {to}" {{
  from          = "{from}"
  to            = "{to}"
  release_query = "select v from release"
}}

stop server_down {{
  run = "true"
}}

backup before {{
  after  = server_down
  method = "snapshot"
  paths  = ["{TREE}"]
}}

script change {{
  after   = before
  run     = "{change_run}"
  timeout = "3m"
}}

check settled {{
  after  = change
  sql    = "select 1"
  expect = "1"
}}

start server_up {{
  after = settled
  run   = "true"
}}

on_failure {{
  start old_server_up {{
    run = "touch on_failure.ran"
  }}
}}
"#
    )
}

fn mutate(tag: &str, how: &str) -> String {
    format!("sh steps/mutate.sh {tag} {how}")
}

/// A world whose folder holds the plans `(file, text)`, each linting
/// clean on its own, and no other plan.
fn chain_world(label: &str, plans: &[(&str, String)]) -> World {
    let world = World::new(label);
    fs::remove_file(world.folder.plan()).expect("the world's own plan file is removed");
    for (file, text) in plans {
        let path = world.path(file);
        fs::write(&path, text).expect("write a hop's plan");
        assert_lints_clean(&path);
    }
    world
}

/// The usual three hops; `third` is the third hop's change.
fn three_hops(label: &str, third: &str) -> World {
    chain_world(
        label,
        &[
            ("a-1.0-2.0.plan", hop("1.0", "2.0", &mutate("hopa", "ok"))),
            ("b-2.0-3.0.plan", hop("2.0", "3.0", &mutate("hopb", "ok"))),
            ("c-3.0-4.0.plan", hop("3.0", "4.0", third)),
        ],
    )
}

/// `plan apply FOLDER --to TO EXTRA...` on the world's database.
fn apply_chain(world: &World, to: &str, extra: &[&str]) -> Applied {
    let mut args = vec!["--to", to];
    args.extend_from_slice(extra);
    run(
        &mut apply_command(&world.db, world.folder.path(), world.state.path(), &args),
        world.state.path(),
    )
}

/// The chain's `chain.json`.
fn chain_json(applied: &Applied) -> serde_json::Value {
    let folder = applied
        .run_folder
        .as_ref()
        .unwrap_or_else(|| panic!("the chain made no run folder\n{}", applied.output()));
    let text = fs::read(folder.join("chain.json"))
        .unwrap_or_else(|e| panic!("no chain.json: {e}\n{}", applied.output()));
    serde_json::from_slice(&text).expect("chain.json is JSON")
}

/// The hop's own report.
fn hop_report(applied: &Applied, hop: usize) -> serde_json::Value {
    let folder = applied.run_folder.as_ref().expect("a run folder");
    let text = fs::read(folder.join(format!("hop-{hop}/report.json")))
        .unwrap_or_else(|e| panic!("no report for hop {hop}: {e}\n{}", applied.output()));
    serde_json::from_slice(&text).expect("report.json is JSON")
}

fn snapshots(world: &World) -> Vec<String> {
    related_databases(&world.db)
        .into_iter()
        .filter(|d| d.contains("_pr"))
        .collect()
}

fn tree_copies(world: &World) -> usize {
    fs::read_dir(world.folder.path())
        .expect("the plan folder")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!(".{TREE}.pr"))
        })
        .count()
}

fn chain_id_of(world: &World, run_id: &str) -> Option<String> {
    world
        .db
        .connect()
        .query_one(
            "select chain_id from plan_runner.history where run_id = $1",
            &[&run_id],
        )
        .expect("reading the hop's chain id")
        .get(0)
}

#[test]
fn a_chain_of_three_hops_passes_with_one_backup_and_three_history_rows() {
    let world = three_hops("chain_ok", &mutate("hopc", "ok"));
    let applied = apply_chain(&world, "4.0", &[]);
    applied.assert_code(0);
    let chain = chain_json(&applied);
    let id = chain["chain_id"].as_str().expect("a chain id").to_string();
    let rows = history(&world.db);
    let hops: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.run_id.as_str(),
                r.from_release.as_str(),
                r.to_release.as_str(),
                r.outcome.as_str(),
            )
        })
        .collect();
    let (h1, h2, h3) = (format!("{id}-1"), format!("{id}-2"), format!("{id}-3"));
    assert_eq!(
        hops,
        [
            (h1.as_str(), "1.0", "2.0", "succeeded"),
            (h2.as_str(), "2.0", "3.0", "succeeded"),
            (h3.as_str(), "3.0", "4.0", "succeeded"),
        ],
        "{}",
        applied.output()
    );
    for hop in [&h1, &h2, &h3] {
        assert_eq!(chain_id_of(&world, hop).as_deref(), Some(id.as_str()));
    }
    // One window, one backup: the first hop's copies; the later hops'
    // backup steps were covered by them.
    assert_eq!(snapshots(&world).len(), 1, "{:?}", snapshots(&world));
    assert_eq!(tree_copies(&world), 1);
    assert!(
        applied.stderr.contains("covered by the chain's backup"),
        "{}",
        applied.output()
    );
    for tag in ["hopa", "hopb", "hopc"] {
        assert!(
            world.witnessed(tag),
            "{tag} did not run\n{}",
            applied.output()
        );
    }
    assert_eq!(hop_report(&applied, 3)["outcome"], "succeeded");
    // `plan status` shows the hops tied to the chain.
    let status = support::plan_command(world.db.cluster)
        .args(["status", "--database", &world.db.name, "--format", "json"])
        .output()
        .expect("plan status runs");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["release"], "4.0", "{status}");
    let text = status.to_string();
    assert!(text.contains(&format!("\"chain_id\":\"{id}\"")), "{text}");
    // At the target: nothing to do.
    apply_chain(&world, "4.0", &[]).assert_code(0);
}

#[test]
fn a_failure_in_the_third_hop_rolls_the_whole_chain_back_to_its_start() {
    let world = three_hops("chain_fail", &mutate("hopc", "fail"));
    let before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());
    let applied = apply_chain(&world, "4.0", &[]);
    applied.assert_code(1);
    assert!(
        world.witnessed("hopc"),
        "the third hop changed nothing\n{}",
        applied.output()
    );
    assert_eq!(fingerprint(&world.db), before, "{}", applied.output());
    assert_eq!(read_tree(&world.tree()), tree_before);
    assert!(world.on_failure_ran(), "{}", applied.output());
    // The passed hops are undone, and so are their history rows: only the
    // failed hop's is written, after the restore.
    let rows = history(&world.db);
    assert!(
        rows.iter()
            .all(|r| r.outcome == "rolled_back" && r.from_release == "3.0"),
        "{rows:?}"
    );
    let chain = chain_json(&applied);
    assert_eq!(chain["failed"]["hop"], 3, "{chain}");
    assert_eq!(chain["failed"]["step"], "change", "{chain}");
    assert_eq!(hop_report(&applied, 3)["outcome"], "rolled_back");
    for line in ["hop 1: 1.0 -> 2.0", "hop 2: 2.0 -> 3.0"] {
        assert!(
            applied.stderr.contains(line) && applied.stderr.contains("undone by the rollback"),
            "{}",
            applied.output()
        );
    }
    assert!(
        applied.stderr.contains("at step `change`"),
        "{}",
        applied.output()
    );
    // A second try starts from the start again: the gate sees 1.0.
    assert_eq!(
        apply_chain(&world, "4.0", &["--dry-run"]).code,
        Some(0),
        "the database is not back at the chain's start"
    );
}

#[test]
fn keep_reached_stops_at_the_last_release_that_passed() {
    let world = three_hops("chain_keep", &mutate("hopc", "fail"));
    let start = fingerprint(&world.db);
    let applied = apply_chain(&world, "4.0", &["--keep-reached"]);
    applied.assert_code(1);
    let rows = history(&world.db);
    let outcomes: Vec<_> = rows
        .iter()
        .map(|r| (r.to_release.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("2.0", "succeeded"),
            ("3.0", "succeeded"),
            ("4.0", "rolled_back")
        ],
        "{}",
        applied.output()
    );
    assert_ne!(
        fingerprint(&world.db),
        start,
        "the reached hops were undone"
    );
    let status = support::plan_command(world.db.cluster)
        .args(["status", "--database", &world.db.name, "--format", "json"])
        .output()
        .expect("plan status runs");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["release"], "3.0", "{status}");
    // Every hop backed up for itself: the first two hops' snapshots are
    // kept, the third's was renamed back into place by its rollback.
    assert_eq!(snapshots(&world).len(), 2, "{:?}", snapshots(&world));
    assert_eq!(tree_copies(&world), 2);
    assert!(
        applied.stderr.contains("stopped at 3.0"),
        "{}",
        applied.output()
    );
}

#[test]
fn kill_9_in_the_second_hop_then_recover_ends_at_the_chain_start() {
    let held = "sh -c 'sh steps/mutate.sh hopb ok && touch held.started; i=0; while [ ! -e go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done'";
    let world = chain_world(
        "chain_kill",
        &[
            ("a-1.0-2.0.plan", hop("1.0", "2.0", &mutate("hopa", "ok"))),
            ("b-2.0-3.0.plan", hop("2.0", "3.0", held)),
            ("c-3.0-4.0.plan", hop("3.0", "4.0", &mutate("hopc", "ok"))),
        ],
    );
    let before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());
    kill_in_second_hop(&world);
    assert_ne!(
        fingerprint(&world.db),
        before,
        "nothing had changed before the kill"
    );
    // A new apply is refused while the chain is unfinished.
    apply_chain(&world, "4.0", &[]).assert_code(4);
    let recovered = support::plan_command(world.db.cluster)
        .args(["recover", "--database", &world.db.name, "--state-dir"])
        .arg(world.state.path())
        .output()
        .expect("plan recover runs");
    let stderr = String::from_utf8_lossy(&recovered.stderr);
    assert_eq!(recovered.status.code(), Some(0), "{stderr}");
    assert_eq!(fingerprint(&world.db), before, "{stderr}");
    assert_eq!(read_tree(&world.tree()), tree_before, "{stderr}");
    assert!(world.on_failure_ran(), "{stderr}");
    assert!(
        history(&world.db).iter().all(|r| r.outcome != "succeeded"),
        "{:?}",
        history(&world.db)
    );
    let _ = fs::write(world.path("go"), "");
}

/// Runs `plan apply DIR` with `args` and checks it refused with `code`
/// and `says`, changing nothing and leaving no run folder.
fn refused(world: &World, args: &[&str], code: i32, says: &[&str]) {
    let before = fingerprint(&world.db);
    let applied = run(
        &mut apply_command(&world.db, world.folder.path(), world.state.path(), args),
        world.state.path(),
    );
    applied.assert_code(code);
    for text in says {
        assert!(
            applied.stderr.contains(text),
            "missing {text:?}\n{}",
            applied.output()
        );
    }
    assert_eq!(fingerprint(&world.db), before);
    assert!(
        run_folders(world.state.path()).is_empty(),
        "{}",
        applied.output()
    );
    assert!(history(&world.db).is_empty());
}

#[test]
fn no_path_a_tie_and_an_unknown_release_are_refused_with_what_is_known() {
    let world = chain_world(
        "chain_paths",
        &[
            ("a.plan", hop("1.0", "2.0", &mutate("a", "ok"))),
            ("b.plan", hop("2.0", "4.0", &mutate("b", "ok"))),
            ("c.plan", hop("1.0", "3.0", &mutate("c", "ok"))),
            ("d.plan", hop("3.0", "4.0", &mutate("d", "ok"))),
            ("e.plan", hop("5.0", "6.0", &mutate("e", "ok"))),
        ],
    );
    refused(
        &world,
        &["--to", "4.0"],
        4,
        &[
            "two paths of 2 hop(s)",
            "a.plan, then b.plan",
            "c.plan, then d.plan",
            "--via",
        ],
    );
    refused(
        &world,
        &["--to", "6.0"],
        4,
        &[
            "no chain of plans",
            "from 1.0 to 6.0",
            "a plan from 4.0 to 5.0 is missing",
            "2.0, 3.0, 4.0",
        ],
    );
    refused(
        &world,
        &["--to", "7.0"],
        4,
        &[
            "no plan in",
            "mentions release 7.0",
            "1.0, 2.0, 3.0, 4.0, 5.0, 6.0",
        ],
    );
    // --via chooses; a dry run shows the path and changes nothing.
    let dry = apply_chain(&world, "4.0", &["--via", "3.0", "--dry-run"]);
    dry.assert_code(0);
    assert!(dry.stdout.contains("hop 1: 1.0 -> 3.0"), "{}", dry.output());
    assert!(dry.stdout.contains("hop 2: 3.0 -> 4.0"), "{}", dry.output());
    assert!(
        dry.stdout.contains("1 backup(s) copied, 1 covered"),
        "{}",
        dry.output()
    );
    assert!(run_folders(world.state.path()).is_empty());
}

#[test]
fn folders_that_do_not_lint_clean_run_nothing() {
    // A duplicate pair.
    let world = chain_world(
        "chain_dup",
        &[
            ("a.plan", hop("1.0", "2.0", &mutate("a", "ok"))),
            ("b.plan", hop("1.0", "2.0.0", &mutate("b", "ok"))),
        ],
    );
    refused(&world, &["--to", "2.0"], 1, &["E040", "a.plan"]);
    let lint = support::plan_process()
        .arg("lint")
        .arg(world.folder.path())
        .output()
        .expect("plan lint runs");
    assert_eq!(lint.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&lint.stdout).contains("duplicate-pair"));

    // A cycle (its backward plan also breaks E017).
    let world = chain_world(
        "chain_cycle",
        &[("up.plan", hop("1.0", "2.0", &mutate("a", "ok")))],
    );
    fs::write(
        world.path("down.plan"),
        hop("2.0", "1.0", &mutate("b", "ok")),
    )
    .unwrap();
    refused(
        &world,
        &["--to", "2.0"],
        1,
        &["E041", "E017", "up.plan", "down.plan"],
    );

    // A plan that does not parse: every plan's errors are shown.
    let world = chain_world(
        "chain_broken",
        &[("a.plan", hop("1.0", "2.0", &mutate("a", "ok")))],
    );
    fs::write(world.path("b.plan"), "plan \"b\" {\n  from = \"2.0\"\n").unwrap();
    fs::write(
        world.path("c.plan"),
        "plan \"c\" { from = \"3.0\" to = \"4.0\" }\nstep x {}\n",
    )
    .unwrap();
    refused(
        &world,
        &["--to", "2.0"],
        1,
        &["b.plan", "c.plan", "nothing was run"],
    );
}

#[test]
fn to_is_for_folders_and_folders_need_to() {
    let world = chain_world(
        "chain_usage",
        &[("a.plan", hop("1.0", "2.0", &mutate("a", "ok")))],
    );
    refused(&world, &[], 2, &["--to"]);
    let applied = run(
        &mut apply_command(
            &world.db,
            &world.path("a.plan"),
            world.state.path(),
            &["--to", "2.0"],
        ),
        world.state.path(),
    );
    applied.assert_code(2);
    assert!(
        applied.stderr.contains("needs a folder"),
        "{}",
        applied.output()
    );
}

#[test]
fn show_and_graph_draw_a_folder_as_releases_and_show_each_path() {
    let dir = tempfile::tempdir().expect("a folder");
    for (file, from, to) in [
        ("a.plan", "1.0", "2.0"),
        ("b.plan", "2.0", "3.0"),
        ("c.plan", "1.0", "3.0"),
        ("d.plan", "3.0", "4.0"),
        ("e.plan", "0.9", "1.0"),
        ("f.plan", "0.9", "2.0"),
    ] {
        fs::write(dir.path().join(file), hop(from, to, "true")).unwrap();
    }
    let show = support::plan_process()
        .arg("show")
        .arg(dir.path())
        .args(["--to", "4.0"])
        .output()
        .expect("plan show runs");
    let text = String::from_utf8_lossy(&show.stdout);
    assert_eq!(show.status.code(), Some(0), "{text}");
    assert!(text.contains("2.0 -> 3.0  b.plan"), "{text}");
    assert!(text.contains("releases: 0.9, 1.0, 2.0, 3.0, 4.0"), "{text}");
    assert!(
        text.contains("from 1.0 to 4.0: c.plan, then d.plan (2 hop(s))"),
        "{text}"
    );
    assert!(
        text.contains("from 2.0 to 4.0: b.plan, then d.plan (2 hop(s))"),
        "{text}"
    );
    assert!(text.contains("from 0.9 to 4.0: a tie: e.plan, then c.plan, then d.plan or f.plan, then b.plan, then d.plan"), "{text}");

    let json = support::plan_process()
        .arg("show")
        .arg(dir.path())
        .args(["--to", "4.0", "--format", "json"])
        .output()
        .expect("plan show runs");
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(doc["plans"].as_array().map(Vec::len), Some(6), "{doc}");
    assert_eq!(
        doc["paths"][1]["plans"],
        serde_json::json!(["c.plan", "d.plan"]),
        "{doc}"
    );

    let graph = support::plan_process()
        .arg("graph")
        .arg(dir.path())
        .args(["--format", "mermaid"])
        .output()
        .expect("plan graph runs");
    let text = String::from_utf8_lossy(&graph.stdout);
    assert_eq!(graph.status.code(), Some(0), "{text}");
    assert!(text.starts_with("flowchart LR\n"), "{text}");
    assert!(
        text.contains("r0([\"1.0\"])") && text.contains("r0 -->|\"a.plan\"| r1"),
        "{text}"
    );
    let dot = support::plan_process()
        .arg("graph")
        .arg(dir.path())
        .output()
        .expect("plan graph runs");
    let text = String::from_utf8_lossy(&dot.stdout);
    assert!(
        text.contains("\"3.0\" -> \"4.0\" [label=\"d.plan\"];"),
        "{text}"
    );

    // --to with one plan file is a usage error.
    let file = support::plan_process()
        .arg("show")
        .arg(dir.path().join("a.plan"))
        .args(["--to", "2.0"])
        .output()
        .expect("plan show runs");
    assert_eq!(file.status.code(), Some(2));
}

/// Hop 2 of three: its change (which cannot run twice: it creates a
/// table), then a step held until the file `go` exists.
fn held_second_hop() -> String {
    hop("2.0", "3.0", &mutate("hopb", "ok")).replace(
        "check settled {\n  after  = change\n",
        "script held {\n  after   = change\n  run     = \"sh -c 'touch held.started; i=0; while [ ! -e go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done'\"\n  timeout = \"3m\"\n}\n\ncheck settled {\n  after  = held\n",
    )
}

/// Starts the chain to 4.0 and kills its runner with SIGKILL while hop 2
/// is held.
fn kill_in_second_hop(world: &World) {
    let mut runner = apply_command(
        &world.db,
        world.folder.path(),
        world.state.path(),
        &["--to", "4.0"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("`plan apply` starts");
    wait_for(&mut runner, "the second hop's held step", || {
        world.path("held.started").is_file().then_some(())
    });
    kill(
        Pid::from_raw(i32::try_from(runner.id()).unwrap()),
        Signal::SIGKILL,
    )
    .unwrap();
    runner.wait().expect("the killed runner is reaped");
}

#[test]
fn resume_goes_on_with_the_hop_a_killed_chain_stopped_in_and_the_hops_after_it() {
    let world = chain_world(
        "chain_resume",
        &[
            ("a-1.0-2.0.plan", hop("1.0", "2.0", &mutate("hopa", "ok"))),
            ("b-2.0-3.0.plan", held_second_hop()),
            ("c-3.0-4.0.plan", hop("3.0", "4.0", &mutate("hopc", "ok"))),
        ],
    );
    kill_in_second_hop(&world);
    fs::write(world.path("go"), "").unwrap();
    let resumed = apply_chain(&world, "4.0", &["--resume"]);
    // hop 2's change ran once (a second run would fail: its table exists).
    resumed.assert_code(0);
    assert!(
        resumed.stderr.contains("resuming run"),
        "{}",
        resumed.output()
    );
    let rows = history(&world.db);
    let outcomes: Vec<_> = rows
        .iter()
        .map(|r| (r.from_release.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("1.0", "succeeded"),
            ("2.0", "succeeded"),
            ("3.0", "succeeded")
        ],
        "{}",
        resumed.output()
    );
    let id = rows[0].run_id.trim_end_matches("-1").to_string();
    assert_eq!(rows[1].run_id, format!("{id}-2"));
    assert_eq!(rows[2].run_id, format!("{id}-3"));
    // Still one window, one backup.
    assert_eq!(snapshots(&world).len(), 1, "{:?}", snapshots(&world));
    for tag in ["hopa", "hopb", "hopc"] {
        assert!(world.witnessed(tag), "{tag} did not run");
    }
    // The chain ended at its `to`: nothing is left to do.
    let again = apply_chain(&world, "4.0", &["--resume"]);
    again.assert_code(0);
    assert!(again.stderr.contains("nothing to do"), "{}", again.output());
}

#[test]
fn a_failure_after_a_chain_is_resumed_rolls_it_back_to_the_chain_start() {
    let world = chain_world(
        "chain_resume_fail",
        &[
            ("a-1.0-2.0.plan", hop("1.0", "2.0", &mutate("hopa", "ok"))),
            ("b-2.0-3.0.plan", held_second_hop()),
            ("c-3.0-4.0.plan", hop("3.0", "4.0", &mutate("hopc", "fail"))),
        ],
    );
    let before = fingerprint(&world.db);
    let tree_before = read_tree(&world.tree());
    kill_in_second_hop(&world);
    // A plan of the stopped hop that changed since is refused.
    let b = world.path("b-2.0-3.0.plan");
    let original = fs::read_to_string(&b).unwrap();
    fs::write(&b, original.replace("timeout = \"3m\"", "timeout = \"4m\"")).unwrap();
    let refused = apply_chain(&world, "4.0", &["--resume"]);
    refused.assert_code(4);
    assert!(
        refused
            .stderr
            .contains("--resume goes on with the plans the chain ran"),
        "{}",
        refused.output()
    );
    fs::write(&b, original).unwrap();

    fs::write(world.path("go"), "").unwrap();
    let resumed = apply_chain(&world, "4.0", &["--resume"]);
    resumed.assert_code(1);
    assert!(
        resumed.stderr.contains(
            "hop 3 failed: the whole chain was rolled back to where it started (before hop 1)"
        ),
        "{}",
        resumed.output()
    );
    // The chain's own folder (a resume makes none) says which hop failed.
    let folders = run_folders(world.state.path());
    assert_eq!(folders.len(), 1, "{folders:?}");
    let chain: serde_json::Value = serde_json::from_slice(
        &fs::read(folders.iter().next().unwrap().join("chain.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(chain["failed"]["hop"], 3, "{chain}");
    assert_eq!(chain["outcome"], "rolled_back", "{chain}");
    assert_eq!(fingerprint(&world.db), before, "{}", resumed.output());
    assert_eq!(
        read_tree(&world.tree()),
        tree_before,
        "{}",
        resumed.output()
    );
    assert!(world.on_failure_ran());
    assert!(
        history(&world.db).iter().all(|r| r.outcome != "succeeded"),
        "{:?}",
        history(&world.db)
    );
}

/// After a chain, as after a run, more than three copies of the target
/// kept are pointed out, with the command that prunes them.
#[test]
fn a_chain_that_leaves_more_than_three_copies_says_how_to_prune_them() {
    let world = chain_world(
        "chain_hint",
        &[
            ("a-1.0-2.0.plan", hop("1.0", "2.0", &mutate("hopa", "ok"))),
            ("b-2.0-3.0.plan", hop("2.0", "3.0", &mutate("hopb", "ok"))),
            ("c-3.0-4.0.plan", hop("3.0", "4.0", &mutate("hopc", "ok"))),
            ("d-4.0-5.0.plan", hop("4.0", "5.0", &mutate("hopd", "ok"))),
        ],
    );
    // Three hops each keep their own snapshot: no note yet at three.
    let three = apply_chain(&world, "4.0", &["--keep-reached"]);
    three.assert_code(0);
    assert_eq!(snapshots(&world).len(), 3, "{:?}", snapshots(&world));
    assert!(
        !three.stderr.contains("plan backups --prune"),
        "{}",
        three.output()
    );
    let four = apply_chain(&world, "5.0", &[]);
    four.assert_code(0);
    assert_eq!(snapshots(&world).len(), 4, "{:?}", snapshots(&world));
    assert!(
        four.stderr.contains("note: 4 copies of")
            && four.stderr.contains("plan backups --prune --keep 3"),
        "{}",
        four.output()
    );
}
