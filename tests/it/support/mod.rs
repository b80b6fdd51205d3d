//! What the database tests share: one throwaway cluster per run of the test
//! binary, and a fresh database for each test. Statics are never dropped:
//! the cluster's watchdog stops it when the test binary exits.

pub mod apply;
pub mod demo;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use plan_runner::cluster::{Cluster, Options};

/// The variable naming the folder of the server programs the tests' clusters
/// run (`scripts/test-matrix` sets it for each major); unset, the
/// machine's PostgreSQL.
pub const BINDIR_VAR: &str = "PLAN_RUNNER_TEST_PG_BINDIR";

/// Server settings for tests: fast, since nothing has to survive a crash,
/// from the programs [`BINDIR_VAR`] names.
pub fn test_options() -> Options {
    Options {
        fsync: false,
        bindir: std::env::var_os(BINDIR_VAR)
            .filter(|dir| !dir.is_empty())
            .map(std::path::PathBuf::from),
        ..Options::default()
    }
}

/// Starts a cluster of its own for a test about clusters, or fails loudly.
pub fn start_cluster(options: Options) -> Cluster {
    Cluster::start(options).unwrap_or_else(|error| {
        panic!(
            "the tests need PostgreSQL's server programs and could not start a cluster:\n{:?}",
            miette::Report::new(error)
        )
    })
}

/// The cluster shared by the whole run, started on first use.
pub fn shared_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    let started = CLUSTER.get_or_init(|| {
        Cluster::start(test_options()).map_err(|error| format!("{:?}", miette::Report::new(error)))
    });
    match started {
        Ok(cluster) => cluster,
        Err(report) => panic!(
            "the tests need PostgreSQL's server programs and could not start a cluster:\n{report}"
        ),
    }
}

/// The shared cluster's version: what a test expects can depend on its
/// major (`scripts/test-matrix` runs the tests on each).
pub fn server_version() -> plan_runner::db::server::ServerVersion {
    let mut client = shared_cluster()
        .connect("postgres")
        .unwrap_or_else(|error| panic!("cannot connect:\n{:?}", miette::Report::new(error)));
    plan_runner::db::server::version(&mut client).expect("reading server_version_num")
}

/// A database of the shared cluster that no other test uses.
pub struct TestDatabase {
    pub name: String,
    pub cluster: &'static Cluster,
}

impl TestDatabase {
    pub fn connect(&self) -> postgres::Client {
        self.cluster.connect(&self.name).unwrap_or_else(|error| {
            panic!(
                "cannot connect to `{}`:\n{:?}",
                self.name,
                miette::Report::new(error)
            )
        })
    }
}

/// Creates a fresh database for one test; `label` (the test's name) makes
/// it easy to find in the server log.
pub fn database(label: &str) -> TestDatabase {
    database_on(shared_cluster(), label)
}

/// A cluster of the test's own that lives until the test binary ends, for
/// a test that restarts or stops the server (its watchdog cleans it up).
pub fn private_cluster() -> &'static Cluster {
    Box::leak(Box::new(start_cluster(test_options())))
}

/// [`database`] on a given cluster.
pub fn database_on(cluster: &'static Cluster, label: &str) -> TestDatabase {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let label: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect();
    let name = format!("t{}_{label}", NEXT.fetch_add(1, Ordering::Relaxed));
    cluster.create_database(&name).unwrap_or_else(|error| {
        panic!(
            "cannot create test database `{name}`:\n{:?}",
            miette::Report::new(error)
        )
    });
    TestDatabase { name, cluster }
}

/// Whether `pid` is a live process; a zombie is not (an orphaned
/// postmaster may stay one where PID 1 does not reap).
pub fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            !matches!(state, None | Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

/// The built `plan`, as every test runs it: found by assert_cmd (cargo
/// builds it for the integration tests), with none of the developer's
/// `PG*` settings (a test sees only the server it names) and stdin from
/// /dev/null.
pub fn plan_process() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("plan"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&name);
        }
    }
    cmd.stdin(std::process::Stdio::null());
    cmd
}

/// [`plan_process`] for assert_cmd's checks (`.assert().success()`).
pub fn plan() -> assert_cmd::Command {
    assert_cmd::Command::from_std(plan_process())
}

/// [`plan_process`] aimed at `cluster` through `PGHOST`, `PGPORT` and
/// `PGUSER`.
pub fn plan_command(cluster: &Cluster) -> std::process::Command {
    let mut cmd = plan_process();
    cmd.env("PGHOST", cluster.host())
        .env("PGPORT", cluster.port().to_string())
        .env("PGUSER", cluster.user());
    cmd
}

/// Polls `probe` until it gives a value, and returns that value. Fails
/// the test if the runner ends first (with its stderr, when piped) or if
/// three minutes pass.
pub fn wait_for<T>(
    runner: &mut std::process::Child,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        if let Some(status) = runner.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = runner.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).unwrap();
            }
            panic!("the runner ended ({status}) before {what}:\n{err}");
        }
        assert!(std::time::Instant::now() < deadline, "never saw {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A free TCP port on the loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Ends, when dropped, the background stand-in server whose pid is in
/// the file it names.
pub struct Server(pub std::path::PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0)
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
}
