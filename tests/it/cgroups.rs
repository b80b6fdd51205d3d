//! A cgroup per run and per step (docs/apply.md, "Processes a step leaves
//! behind"), against a real cluster and the machine's cgroup2 hierarchy:
//! a step's daemon is in its step's cgroup however it detached, and is
//! ended with it; after the runner itself is killed (kill -9), `plan
//! recover` finds the daemon through the run's cgroup, which the journal
//! recorded, and ends it before it restores.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::strays::{named, plan, settled, sh, write_daemon};
use crate::support::apply::{World, apply_command, fingerprint, pids, read_tree, run_folders};
use crate::support::{plan_command, process_running, wait_for};

/// The cgroup2 mount, read from /proc/self/mountinfo, after checking that
/// a cgroup can be made in it: these tests are about that, and fail
/// loudly where the machine has none.
fn cgroup2(label: &str) -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let mount = mountinfo
        .lines()
        .find_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            if after.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            before.split_whitespace().nth(4).map(PathBuf::from)
        })
        .unwrap_or_else(|| {
            panic!(
                "these tests need a cgroup2 hierarchy mounted (mount -t cgroup2 none /sys/fs/cgroup): none in /proc/self/mountinfo"
            )
        });
    let probe = mount.join(format!("plan-runner-test-{label}-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir(&probe) {
        panic!(
            "these tests need a writable cgroup2 hierarchy: cannot make {}: {e}",
            probe.display()
        );
    }
    std::fs::remove_dir(&probe).expect("remove the probe cgroup");
    mount
}

/// `pid`'s cgroup, from its `0::` line, as a path under `mount`.
fn cgroup_of(mount: &Path, pid: u32) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let relative = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no cgroup2 line for {pid}: {text}"));
    mount.join(relative.trim_start_matches('/'))
}

/// The run's cgroup among `cgroup`'s ancestors (itself included).
fn run_cgroup(cgroup: &Path) -> PathBuf {
    cgroup
        .ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("plan-runner-"))
        })
        .unwrap_or_else(|| panic!("{} is not in a run's cgroup", cgroup.display()))
        .to_path_buf()
}

/// A step's script: starts `steps/daemon.sh TAG` the way `how` says
/// (`setsid`, else a double fork into a new session), waits until it wrote, touches
/// `spawned`, waits for `go` (2 minutes at most), exits 1.
fn held_spawn(how: &str) -> String {
    let daemon = format!("sh steps/daemon.sh {how} </dev/null >/dev/null 2>&1");
    let start = match how {
        "setsid" => format!("setsid {daemon} & "),
        // A double fork in a session of its own: neither the step's
        // process group nor its parent leads to it.
        _ => format!("( ( setsid {daemon} & ) & ); "),
    };
    // Until this step's daemon recorded its pid and wrote: a step run
    // again (--resume) finds the first daemon's mark already there.
    sh(&format!(
        "n=$(cat daemons.pids 2>/dev/null | wc -l); {start}i=0; while {{ [ ! -e daemon.{how}.wrote ] || [ $(cat daemons.pids 2>/dev/null | wc -l) -le $n ]; }} && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; touch spawned; i=0; while [ ! -e go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; exit 1"
    ))
}

fn held_plan(world: &World, how: &str) -> PathBuf {
    write_daemon(world);
    let spawn = held_spawn(how);
    world.write_plan(&plan(&format!(
        r#"
script spawn {{
  after   = before
  run     = "{spawn}"
  timeout = "3m"
}}
"#
    )))
}

/// The daemon's pid, once the step said it started.
fn daemon_pid(world: &World, runner: &mut std::process::Child) -> u32 {
    wait_for(runner, "the daemon", || {
        world.path("spawned").is_file().then_some(())
    });
    let daemons = pids(&world.path("daemons.pids"));
    assert_eq!(daemons.len(), 1, "{daemons:?}");
    daemons[0]
}

/// Starts `plan apply PLAN ARGS...` and waits until its held step's
/// daemon runs: the runner, the daemon's pid and the run's cgroup.
fn until_daemon(
    world: &World,
    mount: &Path,
    plan: &Path,
    args: &[&str],
) -> (std::process::Child, u32, PathBuf) {
    let mut runner = apply_command(&world.db, plan, world.state.path(), args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`plan apply` starts");
    let pid = daemon_pid(world, &mut runner);
    let run = run_cgroup(&cgroup_of(mount, pid));
    (runner, pid, run)
}

/// kill -9 the runner; its daemon outlives it (the fault these tests
/// are about).
fn kill_runner(mut runner: std::process::Child, pid: u32) {
    runner.kill().expect("kill -9 the runner");
    runner.wait().expect("reaped");
    std::thread::sleep(Duration::from_millis(300));
    assert!(process_running(pid), "the daemon {pid} outlives its runner");
}

#[test]
fn a_setsid_daemon_is_in_its_steps_cgroup_and_ended_with_it() {
    let mount = cgroup2("step");
    let world = World::new("cgroups_step");
    let plan_path = held_plan(&world, "setsid");
    let fingerprint_before = fingerprint(&world.db);
    let tree_before = format!("{:?}", read_tree(&world.tree()));

    let mut runner = apply_command(&world.db, &plan_path, world.state.path(), &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`plan apply` starts");
    let pid = daemon_pid(&world, &mut runner);
    let cgroup = cgroup_of(&mount, pid);
    let run = run_cgroup(&cgroup);
    assert_eq!(cgroup.parent(), Some(run.as_path()), "{}", cgroup.display());
    assert!(
        cgroup
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("step-")),
        "{}",
        cgroup.display()
    );
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).expect("cgroup.procs");
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "the kernel lists {pid} in {}: {procs}",
        cgroup.display()
    );

    std::fs::write(world.path("go"), "").expect("touch go");
    let output = runner.wait_with_output().expect("the run ends");
    let applied = crate::support::apply::finish(
        output,
        Duration::ZERO,
        world.state.path(),
        &std::collections::BTreeSet::new(),
    );
    applied.assert_code(1);
    assert_eq!(applied.outcome(), "rolled_back", "{}", applied.output());
    assert_eq!(applied.report()["rollback"]["proved"], true);
    assert!(!process_running(pid), "daemon {pid} is still alive");
    let strays = crate::strays::strays(&applied);
    let entry =
        named(&strays, pid).unwrap_or_else(|| panic!("daemon {pid} is not named: {strays:?}"));
    assert_eq!(entry["step"], "spawn", "{entry}");
    assert_eq!(entry["when"], "step_end", "{entry}");
    assert_eq!(entry["ended"], true, "{entry}");
    assert_eq!(
        run.file_name().map(|n| n.to_string_lossy().into_owned()),
        Some(format!("plan-runner-{}", applied.run_id()))
    );
    assert!(!run.exists(), "{} is left after the run", run.display());

    let (fingerprint_after, tree_after) = settled(&world);
    assert_eq!(fingerprint_after, fingerprint_before);
    assert_eq!(tree_after, tree_before);
}

#[test]
fn recover_ends_a_double_forked_daemon_of_a_killed_runner() {
    let mount = cgroup2("recover");
    let world = World::new("cgroups_recover");
    let plan_path = held_plan(&world, "forked");
    let fingerprint_before = fingerprint(&world.db);
    let tree_before = format!("{:?}", read_tree(&world.tree()));

    let (runner, pid, run) = until_daemon(&world, &mount, &plan_path, &[]);
    let folder = run_folders(world.state.path())
        .into_iter()
        .next()
        .expect("the run folder");
    let journal = std::fs::read_to_string(folder.join("journal")).expect("the journal");
    assert!(
        journal.contains(&run.display().to_string()),
        "the journal records {}: {journal}",
        run.display()
    );

    kill_runner(runner, pid);
    assert_ne!(fingerprint(&world.db), fingerprint_before, "it writes");

    let recovered = plan_command(world.db.cluster)
        .args(["recover", "--database", &world.db.name, "--state-dir"])
        .arg(world.state.path())
        .output()
        .expect("plan recover runs");
    let err = String::from_utf8_lossy(&recovered.stderr);
    assert_eq!(recovered.status.code(), Some(0), "{err}");
    assert!(!process_running(pid), "daemon {pid} is still alive");
    assert!(
        err.contains(&format!("left process {pid} running")),
        "recover names the daemon: {err}"
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(folder.join("report.json")).expect("the recovery's report"),
    )
    .expect("a json report");
    assert_eq!(report["outcome"], "recovered", "{report}");
    let strays = report["strays"].as_array().cloned().unwrap_or_default();
    let entry =
        named(&strays, pid).unwrap_or_else(|| panic!("daemon {pid} is not named: {strays:?}"));
    assert_eq!(entry["when"], "recovery", "{entry}");
    assert_eq!(entry["step"], "spawn", "{entry}");
    assert_eq!(entry["ended"], true, "{entry}");
    assert!(!run.exists(), "{} is left after recover", run.display());

    let (fingerprint_after, tree_after) = settled(&world);
    assert_eq!(fingerprint_after, fingerprint_before);
    assert_eq!(tree_after, tree_before);
    assert!(world.on_failure_ran());
}

#[test]
fn a_start_steps_server_outlives_the_run_outside_its_cgroups() {
    let mount = cgroup2("start");
    let world = World::new("cgroups_start");
    write_daemon(&world);
    let start = sh(&crate::strays::spawn_run(&["setsid"], 0));
    let plan_path = world.write_plan(&plan(&format!(
        r#"
start server_new {{
  after   = before
  run     = "{start}"
  timeout = "2m"
}}
"#
    )));

    let applied = world.apply(&plan_path, &[]);
    let daemons = pids(&world.path("daemons.pids"));
    let server = daemons.first().copied();
    let server_cgroup = server.map(|pid| cgroup_of(&mount, pid));
    let server_alive = server.is_some_and(process_running);
    // The test's own cleanup first: the server must not outlive it.
    if let Some(pid) = server {
        // SAFETY: kill(2) on a pid this test's run started.
        unsafe {
            libc::kill(i32::try_from(pid).expect("a pid"), libc::SIGKILL);
        }
    }
    applied.assert_code(0);
    assert_eq!(daemons.len(), 1, "{daemons:?}");
    assert!(server_alive, "the start step's server was ended");
    let own = cgroup_of(&mount, std::process::id());
    assert_eq!(
        server_cgroup,
        Some(own.clone()),
        "the server is moved to the runner's own cgroup"
    );
    let run = own.join(format!("plan-runner-{}", applied.run_id()));
    assert!(!run.exists(), "{} is left after the run", run.display());
}

#[test]
fn resume_ends_a_killed_runners_daemon_before_it_runs_the_step_again() {
    let mount = cgroup2("resume");
    let world = World::new("cgroups_resume");
    let plan_path = held_plan(&world, "forked");
    let fingerprint_before = fingerprint(&world.db);
    let tree_before = format!("{:?}", read_tree(&world.tree()));

    let (runner, pid, run) = until_daemon(&world, &mount, &plan_path, &[]);
    kill_runner(runner, pid);

    // The step runs again, starts a second daemon and fails at once.
    std::fs::write(world.path("go"), "").expect("touch go");
    std::fs::remove_file(world.path("spawned")).expect("rm spawned");
    let output = apply_command(&world.db, &plan_path, world.state.path(), &["--resume"])
        .output()
        .expect("`plan apply --resume` runs");
    // The run keeps its folder: read its report there.
    let resumed = crate::support::apply::finish(
        output,
        Duration::ZERO,
        world.state.path(),
        &std::collections::BTreeSet::new(),
    );
    resumed.assert_code(1);
    assert_eq!(resumed.outcome(), "rolled_back", "{}", resumed.output());
    assert!(!process_running(pid), "daemon {pid} is still alive");
    assert!(
        resumed
            .stderr
            .contains(&format!("left process {pid} running")),
        "--resume names the dead run's daemon: {}",
        resumed.output()
    );
    let strays = crate::strays::strays(&resumed);
    let entry =
        named(&strays, pid).unwrap_or_else(|| panic!("daemon {pid} is not named: {strays:?}"));
    assert_eq!(entry["when"], "recovery", "{entry}");
    let daemons = pids(&world.path("daemons.pids"));
    assert_eq!(daemons.len(), 2, "{daemons:?}");
    assert!(!process_running(daemons[1]), "the second daemon is alive");
    assert!(!run.exists(), "{} is left after the run", run.display());

    let (fingerprint_after, tree_after) = settled(&world);
    assert_eq!(fingerprint_after, fingerprint_before);
    assert_eq!(tree_after, tree_before);
}

#[test]
fn resume_keeps_the_server_of_a_start_step_it_does_not_run_again() {
    let mount = cgroup2("resume_start");
    let world = World::new("cgroups_resume_start");
    write_daemon(&world);
    let start = sh(&crate::strays::spawn_run(&["setsid"], 0));
    let held = sh(
        "touch held.started; i=0; while [ ! -e go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done",
    );
    let plan_path = world.write_plan(&plan(&format!(
        r#"
start server_new {{
  after   = before
  run     = "{start}"
  timeout = "2m"
}}

script held {{
  after   = server_new
  run     = "{held}"
  timeout = "3m"
}}
"#
    )));

    let mut runner = apply_command(&world.db, &plan_path, world.state.path(), &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`plan apply` starts");
    wait_for(&mut runner, "the held step", || {
        world.path("held.started").is_file().then_some(())
    });
    let daemons = pids(&world.path("daemons.pids"));
    assert_eq!(daemons.len(), 1, "{daemons:?}");
    let server = daemons[0];
    let run = run_cgroup(&cgroup_of(&mount, server));
    runner.kill().expect("kill -9 the runner");
    runner.wait().expect("reaped");

    std::fs::write(world.path("go"), "").expect("touch go");
    let output = apply_command(&world.db, &plan_path, world.state.path(), &["--resume"])
        .output()
        .expect("`plan apply --resume` runs");
    let resumed = crate::support::apply::finish(
        output,
        Duration::ZERO,
        world.state.path(),
        &std::collections::BTreeSet::new(),
    );
    let server_alive = process_running(server);
    let server_cgroup = cgroup_of(&mount, server);
    // SAFETY: kill(2) on a pid this test's run started.
    unsafe {
        libc::kill(i32::try_from(server).expect("a pid"), libc::SIGKILL);
    }
    resumed.assert_code(0);
    assert_eq!(resumed.outcome(), "succeeded", "{}", resumed.output());
    assert!(
        server_alive,
        "the done start step's server was ended: {}",
        resumed.output()
    );
    let strays = crate::strays::strays(&resumed);
    assert!(named(&strays, server).is_none(), "{strays:?}");
    assert_eq!(server_cgroup, cgroup_of(&mount, std::process::id()));
    assert!(!run.exists(), "{} is left after the run", run.display());
}

/// A chain has one cgroup, handed from hop to hop: a daemon that a step
/// of its second hop double-forked is in it, and after the runner is
/// killed `plan recover` ends it through the cgroup the chain's journal
/// recorded, then takes the chain back to its start.
#[test]
fn recover_ends_the_daemon_a_killed_chains_second_hop_left() {
    let mount = cgroup2("chain");
    let world = World::new("cgroups_chain");
    write_daemon(&world);
    std::fs::remove_file(world.folder.plan()).expect("the world's own plan is removed");
    let hop = |from: &str, to: &str, steps: &str| {
        plan(steps)
            .replace(
                "from          = \"1.0\"",
                &format!("from          = \"{from}\""),
            )
            .replace(
                "to            = \"2.0\"",
                &format!("to            = \"{to}\""),
            )
            .replace("plan \"strays\"", &format!("plan \"hop {from}\""))
    };
    let first = hop(
        "1.0",
        "1.5",
        "\nsql to_one_five {\n  after = before\n  sql   = \"update release set v = '1.5'\"\n}\n",
    );
    let spawn = held_spawn("forked");
    let second = hop(
        "1.5",
        "2.0",
        &format!(
            "\nscript spawn {{\n  after   = before\n  run     = \"{spawn}\"\n  timeout = \"3m\"\n}}\n"
        ),
    );
    for (file, text) in [("a.plan", first), ("b.plan", second)] {
        std::fs::write(world.path(file), text).expect("write a hop");
        crate::support::apply::assert_lints_clean(&world.path(file));
    }
    let fingerprint_before = fingerprint(&world.db);
    let tree_before = format!("{:?}", read_tree(&world.tree()));

    let (runner, pid, run) = until_daemon(&world, &mount, world.folder.path(), &["--to", "2.0"]);
    let folder = run_folders(world.state.path())
        .into_iter()
        .next()
        .expect("the chain's folder");
    let chain_id = folder.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        run.file_name().map(|n| n.to_string_lossy().into_owned()),
        Some(format!("plan-runner-{chain_id}")),
        "the second hop's step is in the chain's cgroup"
    );
    kill_runner(runner, pid);

    let recovered = plan_command(world.db.cluster)
        .args(["recover", "--database", &world.db.name, "--state-dir"])
        .arg(world.state.path())
        .output()
        .expect("plan recover runs");
    let err = String::from_utf8_lossy(&recovered.stderr);
    assert_eq!(recovered.status.code(), Some(0), "{err}");
    assert!(!process_running(pid), "daemon {pid} is still alive: {err}");
    assert!(!run.exists(), "{} is left after recover", run.display());
    let (fingerprint_after, tree_after) = settled(&world);
    assert_eq!(fingerprint_after, fingerprint_before);
    assert_eq!(tree_after, tree_before);
}
