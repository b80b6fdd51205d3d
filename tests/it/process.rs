//! Steps' commands run as real child processes: arguments, environment,
//! folders, logs, timeouts, retries, secrets.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plan_runner::analysis;
use plan_runner::exec::process::{
    self, Failure, Outcome, ProcessError, ProcessSpec, Spawned, StepRun, Stopper, Termination,
};
use plan_runner::plan::{Command, Piece, Plan, Secret, Text};
use plan_runner::resolve::{Context, Live};
use plan_runner::source::Source;
use regex::Regex;
use tempfile::TempDir;

/// A value a shell would take apart in every way it can.
const TRICKY: &str = "a b 'c' \"d\" ; $(touch pwned) `touch pwned2` | > out\nsecond line $HOME";

const GRACE: Duration = Duration::from_millis(200);

fn folder() -> TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

fn spec(dir: &TempDir, command: Command) -> ProcessSpec {
    let mut spec = ProcessSpec::new(command, dir.path(), dir.path().join("step.log"));
    spec.grace = GRACE;
    spec
}

fn sh(script: &str) -> Command {
    Command::Shell(Text::lit(script))
}

fn argv(words: &[&str]) -> Command {
    Command::Argv(words.iter().map(|w| Text::lit(*w)).collect())
}

fn run(spec: &ProcessSpec) -> StepRun {
    process::run(spec, &Stopper::new(), |_| {}).expect("the step can be run")
}

/// Runs and records what `on_spawn` heard.
fn run_recording(spec: &ProcessSpec) -> (StepRun, Vec<Spawned>) {
    let mut spawned = Vec::new();
    let run =
        process::run(spec, &Stopper::new(), |s| spawned.push(*s)).expect("the step can be run");
    (run, spawned)
}

fn log(dir: &TempDir) -> String {
    fs::read_to_string(dir.path().join("step.log")).expect("the step log exists")
}

fn failure(run: &StepRun) -> (&Failure, Option<Termination>, u32) {
    match &run.outcome {
        Outcome::Failed {
            reason,
            termination,
            attempts,
            ..
        } => (reason, *termination, *attempts),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Resolves a plan written into `dir`, as `apply` would.
fn resolve(dir: &TempDir, text: &str, vars: &[(&str, &str)], env: &[(&str, &str)]) -> Plan {
    let ctx = Context {
        overrides: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        live: Some(Live {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            target: HashMap::new(),
            erp_config: None,
        }),
        ..Context::default()
    };
    let path = dir.path().join("t.plan");
    fs::write(&path, text).unwrap();
    let analysis = analysis::analyse(Source::new(path, text), &ctx);
    assert!(!analysis.has_errors(), "{:?}", analysis.diagnostics);
    analysis.plan.expect("a resolved plan")
}

fn step_spec(dir: &TempDir, plan: &Plan) -> ProcessSpec {
    let mut spec = ProcessSpec::for_step(&plan.steps[0], &plan.folder, dir.path().join("step.log"))
        .expect("a valid step")
        .expect("a step with a command");
    spec.grace = GRACE;
    spec
}

fn write_script(dir: &TempDir, name: &str, body: &str) {
    let path = dir.path().join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The pids a step wrote, one a line.
fn pids(dir: &TempDir) -> Vec<i32> {
    fs::read_to_string(dir.path().join("pids"))
        .expect("the step wrote its pids")
        .lines()
        .map(|l| l.trim().parse().expect("a pid"))
        .collect()
}

/// Whether `pid` is a live (not zombie) process of group `pgid`; a pid
/// reused by another process does not count.
fn alive_in_group(pid: i32, pgid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(close) = stat.rfind(')') else {
        return false;
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    fields[0] != "Z" && fields[0] != "X" && fields[2] == pgid.to_string()
}

/// A killed process dies when next scheduled, a moment after `kill`
/// returns: wait for that, with a bound far above any real delay.
fn gone(pid: i32, pgid: u32) -> bool {
    let until = Instant::now() + Duration::from_secs(20);
    while alive_in_group(pid, pgid) {
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn argv_value_arrives_as_one_literal_argument() {
    let dir = folder();
    write_script(
        &dir,
        "argv.sh",
        r#"for a in "$@"; do printf '%s\0' "$a"; done > args.bin"#,
    );
    let plan = resolve(
        &dir,
        "plan \"t\" {\n  from = \"1.0\"\n  to = \"2.0\"\n}\nvar v = \"x\"\nscript s {\n  run = \"./argv.sh ${v} end\"\n  timeout = \"1m\"\n}\n",
        &[("v", TRICKY)],
        &[],
    );
    let run = run(&step_spec(&dir, &plan));
    assert!(run.outcome.succeeded(), "{:?}\n{}", run.outcome, log(&dir));
    let args = fs::read(dir.path().join("args.bin")).unwrap();
    assert_eq!(args, format!("{TRICKY}\0end\0").into_bytes());
    assert!(!dir.path().join("pwned").exists());
    assert!(!dir.path().join("pwned2").exists());
    assert!(!dir.path().join("out").exists());
}

#[test]
fn shell_value_arrives_as_one_quoted_word() {
    let dir = folder();
    let plan = resolve(
        &dir,
        "plan \"t\" {\n  from = \"1.0\"\n  to = \"2.0\"\n}\nvar v = \"x\"\nscript s {\n  shell = \"printf '%s\\\\0' ${v} > args.bin\"\n  timeout = \"1m\"\n}\n",
        &[("v", TRICKY)],
        &[],
    );
    let run = run(&step_spec(&dir, &plan));
    assert!(run.outcome.succeeded(), "{:?}\n{}", run.outcome, log(&dir));
    let args = fs::read(dir.path().join("args.bin")).unwrap();
    assert_eq!(args, format!("{TRICKY}\0").into_bytes());
    assert!(!dir.path().join("pwned").exists());
}

#[test]
fn stdin_is_dev_null() {
    let dir = folder();
    let run = run(&spec(
        &dir,
        sh(
            "if read line; then echo got input; else echo stdin at eof; fi; readlink /proc/self/fd/0",
        ),
    ));
    assert!(run.outcome.succeeded());
    let log = log(&dir);
    assert!(log.contains("stdin at eof\n/dev/null\n"), "{log}");
}

#[test]
fn a_non_zero_exit_fails_the_step() {
    let dir = folder();
    let run = run(&spec(&dir, sh("echo about to fail; exit 3")));
    let (reason, termination, attempts) = failure(&run);
    assert_eq!(reason, &Failure::Exit(3));
    assert_eq!(termination, Some(Termination::Code(3)));
    assert_eq!(attempts, 1);
    let last = run.last_lines(2).unwrap();
    assert_eq!(last[0], "about to fail");
    assert!(last[1].contains("exit code 3"), "{last:?}");
}

#[test]
fn timeout_ends_a_group_that_ignores_sigterm() {
    let dir = folder();
    let mut spec = spec(
        &dir,
        sh(
            "trap '' TERM; sleep 1000 & echo $! > pids; sleep 1000 & echo $! >> pids; echo $$ >> pids; wait",
        ),
    );
    // Long enough for the shell to set its trap first, even on a busy
    // machine.
    spec.timeout = Some(Duration::from_secs(2));
    let (run, spawned) = run_recording(&spec);
    let (reason, termination, attempts) = failure(&run);
    assert_eq!(reason, &Failure::Timeout(Duration::from_secs(2)));
    // The leader ignored SIGTERM: only SIGKILL ended it.
    assert_eq!(termination, Some(Termination::Signal(9)));
    assert_eq!(attempts, 1);

    assert_eq!(spawned.len(), 1);
    let child = spawned[0];
    assert_eq!(child.pgid, child.pid, "the child leads its own group");
    assert!(child.start_time.is_some());
    let pids = pids(&dir);
    assert_eq!(pids.len(), 3);
    assert_eq!(pids[2], child.pid as i32);
    for pid in pids {
        assert!(
            gone(pid, child.pgid),
            "process {pid} of the step is still alive"
        );
    }
}

#[test]
fn children_left_by_a_leader_that_obeys_sigterm_are_killed() {
    let dir = folder();
    let fifo = dir.path().join("ready");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // The background sleep inherits the ignored SIGTERM; the leader then
    // exits on SIGTERM at once, leaving it behind in the group. The fifo
    // says when all that is in place, so the stop cannot come earlier.
    let mut spec = spec(
        &dir,
        sh(
            "trap '' TERM; sleep 1000 & echo $! > pids; trap 'exit 0' TERM; echo ready > ready; wait",
        ),
    );
    spec.grace = Duration::from_secs(600);
    let stopper = Stopper::new();
    let remote = stopper.clone();
    let mut spawned = Vec::new();
    let run = process::run(&spec, &stopper, |s| {
        spawned.push(*s);
        let (remote, fifo) = (remote.clone(), fifo.clone());
        std::thread::spawn(move || {
            let _ = fs::read(&fifo);
            remote.stop();
        });
    })
    .unwrap();
    let (reason, termination, _) = failure(&run);
    assert_eq!(reason, &Failure::Interrupted);
    assert_eq!(termination, Some(Termination::Code(0)), "{}", log(&dir));
    let pids = pids(&dir);
    assert_eq!(pids.len(), 1);
    for pid in pids {
        assert!(
            gone(pid, spawned[0].pgid),
            "process {pid} outlived its step"
        );
    }
}

#[test]
fn children_left_by_a_failed_step_are_killed() {
    let dir = folder();
    let (run, spawned) = run_recording(&spec(&dir, sh("sleep 1000 & echo $! > pids; exit 1")));
    assert_eq!(failure(&run).0, &Failure::Exit(1));
    for pid in pids(&dir) {
        assert!(
            gone(pid, spawned[0].pgid),
            "process {pid} outlived its step"
        );
    }
}

#[test]
fn children_of_a_successful_step_are_left_running() {
    // A `start` step may leave a server behind, in its group or not.
    let dir = folder();
    let (run, spawned) = run_recording(&spec(
        &dir,
        sh("sleep 1000 >/dev/null 2>&1 & echo $! > pids; exit 0"),
    ));
    assert!(run.outcome.succeeded());
    let pids = pids(&dir);
    let alive = alive_in_group(pids[0], spawned[0].pgid);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(alive, "the server a successful step started was killed");
}

#[test]
fn retries_run_a_failing_step_again() {
    let dir = folder();
    let mut spec = spec(&dir, sh("echo try >> count; exit 1"));
    spec.retries = 2;
    let run = run(&spec);
    let (reason, _, attempts) = failure(&run);
    assert_eq!(reason, &Failure::Exit(1));
    assert_eq!(attempts, 3);
    assert_eq!(
        fs::read_to_string(dir.path().join("count")).unwrap(),
        "try\n".repeat(3)
    );
    let log = log(&dir);
    for n in 1..=3 {
        assert!(log.contains(&format!("attempt {n} of 3")), "{log}");
    }
}

#[test]
fn a_step_that_succeeds_on_retry_succeeds() {
    let dir = folder();
    let mut spec = spec(
        &dir,
        sh("if [ -e flag ]; then exit 0; fi; touch flag; exit 1"),
    );
    spec.retries = 5;
    let run = run(&spec);
    assert!(
        matches!(run.outcome, Outcome::Succeeded { attempts: 2, .. }),
        "{:?}",
        run.outcome
    );
}

#[test]
fn a_timed_out_step_is_not_retried() {
    let dir = folder();
    let mut spec = spec(&dir, sh("echo try >> count; exec sleep 1000"));
    spec.retries = 3;
    spec.timeout = Some(Duration::from_secs(1));
    let run = run(&spec);
    let (reason, termination, attempts) = failure(&run);
    assert!(matches!(reason, Failure::Timeout(_)));
    assert_eq!(termination, Some(Termination::Signal(15)));
    assert_eq!(attempts, 1);
    assert_eq!(
        fs::read_to_string(dir.path().join("count")).unwrap(),
        "try\n"
    );
}

#[test]
fn fail_on_output_fails_a_step_that_exits_zero() {
    let dir = folder();
    let mut spec = spec(
        &dir,
        sh(
            "echo 'INFO loading'; echo '2024-01-01 12 ERROR db odoo.modules: module sale failed' >&2; exit 0",
        ),
    );
    spec.fail_on_output = Some(Regex::new(" (ERROR|CRITICAL) ").unwrap());
    let run = run(&spec);
    let (reason, termination, _) = failure(&run);
    assert_eq!(
        reason,
        &Failure::Output("2024-01-01 12 ERROR db odoo.modules: module sale failed".into())
    );
    assert_eq!(termination, Some(Termination::Code(0)));
}

#[test]
fn fail_on_output_reads_only_this_attempt() {
    let dir = folder();
    fs::write(dir.path().join("step.log"), "an earlier run: 12 ERROR x\n").unwrap();
    let mut spec = spec(&dir, sh("echo all fine"));
    spec.fail_on_output = Some(Regex::new(" (ERROR|CRITICAL) ").unwrap());
    let run = run(&spec);
    assert!(run.outcome.succeeded(), "{:?}", run.outcome);
    assert!(
        log(&dir).starts_with("an earlier run"),
        "the log is appended to"
    );
}

#[test]
fn the_log_is_private_and_holds_stdout_and_stderr() {
    let dir = folder();
    let path = dir.path().join("step.log");
    fs::write(&path, "").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let run = run(&spec(
        &dir,
        sh("echo to stdout; echo to stderr >&2; printf 'no newline'"),
    ));
    assert!(run.outcome.succeeded());
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let log = log(&dir);
    assert!(
        log.contains("to stdout\nto stderr\nno newline\n--- "),
        "{log}"
    );

    let fresh = folder();
    run_fresh(&fresh);
    let mode = fs::metadata(fresh.path().join("step.log"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

fn run_fresh(dir: &TempDir) {
    assert!(run(&spec(dir, argv(&["true"]))).outcome.succeeded());
}

#[test]
fn secrets_reach_the_child_but_never_the_header_or_last_lines() {
    let dir = folder();
    let secret = "s3cr3t pa'ss";
    let plan = resolve(
        &dir,
        "plan \"t\" {\n  from = \"1.0\"\n  to = \"2.0\"\n}\nvar pw = secret(\"PW\")\nscript s {\n  shell = \"echo arg=${pw}; echo env=$PW\"\n  env = { PW = \"${pw}\" }\n  timeout = \"1m\"\n}\n",
        &[],
        &[("PW", secret)],
    );
    let run = run(&step_spec(&dir, &plan));
    assert!(run.outcome.succeeded(), "{:?}", run.outcome);
    let log = log(&dir);
    // The child got the real value, twice; the log is 0600 and holds
    // what the child wrote.
    assert!(
        log.contains(&format!("arg={secret}\nenv={secret}\n")),
        "{log}"
    );
    let header = log.lines().next().unwrap();
    assert!(!header.contains("s3cr3t"), "{header}");
    assert!(header.contains("***"), "{header}");
    let last = run.last_lines(10).unwrap().join("\n");
    assert!(!last.contains("s3cr3t"), "{last}");
    assert!(last.contains("arg=***\nenv=***"), "{last}");

    assert!(run.redact_log().unwrap());
    let log = self::log(&dir);
    assert!(!log.contains("s3cr3t"), "{log}");
    assert!(log.contains("arg=***\nenv=***"), "{log}");
}

#[test]
fn a_secret_in_an_argument_is_hidden() {
    let dir = folder();
    let secret = Text(vec![Piece::Secret(Secret::new("TOKEN", "tok-123"))]);
    let command = Command::Argv(vec![Text::lit("echo"), Text::lit("token:"), secret]);
    let mut spec = spec(&dir, command);
    spec.fail_on_output = Some(Regex::new("token").unwrap());
    let run = run(&spec);
    let (reason, _, _) = failure(&run);
    assert_eq!(reason, &Failure::Output("token: ***".into()));
    assert!(
        log(&dir)
            .lines()
            .next()
            .unwrap()
            .ends_with("echo token: '***'")
    );
    assert!(!run.last_lines(5).unwrap().join("\n").contains("tok-123"));
}

#[test]
fn cwd_defaults_to_the_plan_folder() {
    let dir = folder();
    let run = run(&spec(&dir, argv(&["pwd"])));
    assert!(run.outcome.succeeded());
    let real = fs::canonicalize(dir.path()).unwrap();
    assert!(
        log(&dir).contains(&format!("\n{}\n", real.display())),
        "{}",
        log(&dir)
    );
}

#[test]
fn a_relative_cwd_is_relative_to_the_plan_folder() {
    let dir = folder();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let mut spec = spec(&dir, argv(&["pwd"]));
    spec.cwd = Some(Text::lit("sub"));
    assert!(run(&spec).outcome.succeeded());
    let real = fs::canonicalize(dir.path().join("sub")).unwrap();
    assert!(
        log(&dir).contains(&format!("\n{}\n", real.display())),
        "{}",
        log(&dir)
    );
}

#[test]
fn env_and_the_target_connection_are_passed() {
    let dir = folder();
    let mut spec = spec(&dir, sh("echo \"$GREETING $PGHOST:$PGPORT $PGDATABASE\""));
    spec.env = vec![("GREETING".into(), Text::lit("hello there"))];
    spec.target_env = vec![
        ("PGHOST".into(), "/tmp/sock".into()),
        ("PGPORT".into(), "5433".into()),
        ("PGDATABASE".into(), "acme".into()),
    ];
    assert!(run(&spec).outcome.succeeded());
    assert!(
        log(&dir).contains("\nhello there /tmp/sock:5433 acme\n"),
        "{}",
        log(&dir)
    );
}

#[test]
fn a_step_runs_as_its_user() {
    let dir = folder();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mut spec = spec(&dir, sh("id -un; echo \"home=$HOME\""));
    spec.user = Some(Text::lit("nobody"));
    let result = process::run(&spec, &Stopper::new(), |_| {});
    if nix::unistd::geteuid().is_root() {
        let run = result.expect("root can run a step as nobody");
        assert!(run.outcome.succeeded(), "{:?}\n{}", run.outcome, log(&dir));
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        let expected = format!("\nnobody\nhome={}\n", nobody.dir.display());
        assert!(log(&dir).contains(&expected), "{}", log(&dir));
    } else {
        assert!(
            matches!(result, Err(ProcessError::NotRoot { .. })),
            "{result:?}"
        );
    }
}

/// Switching users needs root (CI runs as root): this test fails, rather
/// than passes without checking anything, without it.
#[test]
fn a_user_enters_only_folders_it_may() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs a step as `nobody` in a folder it may not enter: run the tests as root (CI does)"
    );
    let dir = folder();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let mut spec = spec(&dir, argv(&["true"]));
    spec.user = Some(Text::lit("nobody"));
    let result = process::run(&spec, &Stopper::new(), |_| {});
    assert!(
        matches!(result, Err(ProcessError::Spawn { .. })),
        "{result:?}"
    );
}

#[test]
fn an_unknown_user_is_refused() {
    let dir = folder();
    let mut spec = spec(&dir, argv(&["true"]));
    spec.user = Some(Text::lit("no-such-user-here"));
    let result = process::run(&spec, &Stopper::new(), |_| {});
    assert!(
        matches!(result, Err(ProcessError::UnknownUser { .. })),
        "{result:?}"
    );
}

#[test]
fn a_missing_program_is_an_error() {
    let dir = folder();
    let result = process::run(
        &spec(&dir, argv(&["./no-such-program"])),
        &Stopper::new(),
        |_| {},
    );
    assert!(
        matches!(result, Err(ProcessError::Spawn { .. })),
        "{result:?}"
    );
    assert!(log(&dir).contains("--- cannot start"), "{}", log(&dir));
}

#[test]
fn a_stop_ends_the_running_step_and_its_retries() {
    let dir = folder();
    let mut spec = spec(&dir, sh("echo started; exec sleep 1000"));
    spec.retries = 3;
    let stopper = Stopper::new();
    let remote = stopper.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let run = process::run(&spec, &stopper, move |s| {
        record.lock().unwrap().push(*s);
        // As a Ctrl-C handler thread would, while the step runs.
        let remote = remote.clone();
        std::thread::spawn(move || remote.stop());
    })
    .unwrap();
    let (reason, termination, attempts) = failure(&run);
    assert_eq!(reason, &Failure::Interrupted);
    assert_eq!(termination, Some(Termination::Signal(15)));
    assert_eq!(attempts, 1);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn a_stopped_stopper_starts_nothing() {
    let dir = folder();
    let stopper = Stopper::new();
    stopper.stop();
    let run = process::run(&spec(&dir, sh("touch ran")), &stopper, |_| {}).unwrap();
    let (reason, termination, attempts) = failure(&run);
    assert_eq!(reason, &Failure::Interrupted);
    assert_eq!((termination, attempts), (None, 0));
    assert!(!dir.path().join("ran").exists());
}

#[test]
fn a_relative_program_is_found_from_the_plan_folder_whatever_the_cwd() {
    let dir = folder();
    fs::create_dir(dir.path().join("elsewhere")).unwrap();
    write_script(&dir, "hello.sh", "echo hello from script");
    let mut spec = spec(&dir, argv(&["./hello.sh"]));
    spec.cwd = Some(Text::lit("elsewhere"));
    assert!(run(&spec).outcome.succeeded(), "{}", log(&dir));
    assert!(log(&dir).contains("\nhello from script\n"));
}

// A bare program name is looked up by the runner itself (so the child can
// be started without copying the runner's memory): the lookup must use the
// step's PATH, keep the name as `argv[0]`, and leave relative PATH entries
// to the child's folder, as `execvp` does.

#[test]
fn a_program_found_in_path_keeps_its_name_as_argv0() {
    let dir = folder();
    let run = run(&spec(&dir, argv(&["cat", "/proc/self/cmdline"])));
    assert!(run.outcome.succeeded(), "{:?}", run.outcome);
    assert!(
        log(&dir).contains("cat\0/proc/self/cmdline\0"),
        "{:?}",
        log(&dir)
    );
}

#[test]
fn a_bare_name_is_looked_up_in_the_steps_path() {
    let dir = folder();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    write_script(&dir, "bin/greet-from-path", "echo found in the step PATH");
    let mut spec = spec(&dir, argv(&["greet-from-path"]));
    let path = format!("{}:/usr/bin:/bin", bin.display());
    spec.env = vec![("PATH".into(), Text::lit(&path))];
    let run = run(&spec);
    assert!(run.outcome.succeeded(), "{:?}\n{}", run.outcome, log(&dir));
    assert!(
        log(&dir).contains("\nfound in the step PATH\n"),
        "{}",
        log(&dir)
    );
}

#[test]
fn a_relative_path_entry_is_relative_to_the_steps_folder() {
    let dir = folder();
    fs::create_dir(dir.path().join("tools")).unwrap();
    write_script(&dir, "tools/true", "echo the folder own true");
    let mut spec = spec(&dir, argv(&["true"]));
    // `tools` comes before /usr/bin: the folder's script wins.
    spec.env = vec![("PATH".into(), Text::lit("tools:/usr/bin:/bin"))];
    let run = run(&spec);
    assert!(run.outcome.succeeded(), "{:?}\n{}", run.outcome, log(&dir));
    assert!(
        log(&dir).contains("\nthe folder own true\n"),
        "{}",
        log(&dir)
    );
}

#[test]
fn a_program_missing_from_path_still_fails_to_start() {
    let dir = folder();
    let result = process::run(
        &spec(&dir, argv(&["no-such-program-plan-runner"])),
        &Stopper::new(),
        |_| {},
    );
    assert!(
        matches!(result, Err(ProcessError::Spawn { .. })),
        "{:?}",
        result.map(|r| r.outcome)
    );
}
