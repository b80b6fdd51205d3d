//! A throwaway PostgreSQL cluster for `plan apply --sandbox` and the tests:
//! `initdb` and `pg_ctl` from the machine's binaries, in a temporary folder,
//! on 127.0.0.1 and a socket in that folder. It is stopped and removed by a
//! guard, or by a watchdog process when its owner dies without dropping it.
//! It never touches a cluster it did not create.

mod account;
mod watchdog;

use std::env;
use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use miette::Diagnostic;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use thiserror::Error;

use account::{Account, server_account};
use watchdog::Watchdog;

/// The superuser `initdb` creates; every connection uses it.
const SUPERUSER: &str = "postgres";

/// How often a free port is picked again after another process took it
/// between our probe and the server's bind.
const PORT_ATTEMPTS: usize = 8;

/// How long a stopping postmaster may take before it is signalled harder.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// Lines of a failed program's output or of the server log kept in errors.
const TAIL_LINES: usize = 20;

/// The longest temporary base folder used: the socket path
/// (`<base>/plan-runner-pg-XXXXXX/.s.PGSQL.NNNNN`) must fit the 107 bytes
/// of `sun_path`.
const MAX_BASE_LEN: usize = 64;

/// Why a throwaway cluster could not be started, used or stopped.
#[derive(Debug, Error, Diagnostic)]
pub enum ClusterError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    NoBinaries(#[from] crate::pg_programs::NotFound),

    #[error("cannot find or create the system user `{user}` to run the server as")]
    #[diagnostic(
        code(plan::cluster::server_user),
        help(
            "PostgreSQL refuses to run as root, so as root the server runs as `{user}`; \
             create it with `useradd --system --no-create-home --shell /usr/sbin/nologin {user}`, \
             or run as an ordinary user ({detail})"
        )
    )]
    ServerUser { user: String, detail: String },

    #[error("cannot prepare the cluster's folder `{}`", path.display())]
    #[diagnostic(code(plan::cluster::folder))]
    Folder {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot run `{}`", program.display())]
    #[diagnostic(code(plan::cluster::spawn))]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("`{program}` failed ({status})")]
    #[diagnostic(code(plan::cluster::failed), help("its output ends with:\n{output}"))]
    Failed {
        program: String,
        status: String,
        output: String,
    },

    #[error("the server did not start")]
    #[diagnostic(code(plan::cluster::start), help("its log ends with:\n{log}"))]
    Start { log: String },

    #[error("no free port for the server after {PORT_ATTEMPTS} attempts")]
    #[diagnostic(
        code(plan::cluster::port),
        help("other processes keep taking the ports picked; its log ends with:\n{log}")
    )]
    NoFreePort { log: String },

    #[error("cannot connect to database `{database}` of the throwaway cluster")]
    #[diagnostic(code(plan::cluster::connect))]
    Connect {
        database: String,
        #[source]
        source: postgres::Error,
    },

    #[error("`{name}` cannot be a database name")]
    #[diagnostic(
        code(plan::cluster::database_name),
        help("use 1 to 63 bytes and no NUL character: PostgreSQL cuts longer names silently")
    )]
    DatabaseName { name: String },

    #[error("cannot create database `{name}`")]
    #[diagnostic(code(plan::cluster::create_database))]
    CreateDatabase {
        name: String,
        #[source]
        source: postgres::Error,
    },

    #[error("the postmaster (pid {pid}) did not stop")]
    #[diagnostic(
        code(plan::cluster::stop),
        help("end it with `kill -KILL {pid}` and remove `{}`", folder.display())
    )]
    Stop { pid: u32, folder: PathBuf },
}

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct Options {
    /// Whether the server syncs to disk. `false` (tests only) also turns off
    /// `full_page_writes` and `synchronous_commit` and makes `initdb` skip
    /// its final sync: a crash loses the cluster, which is thrown away anyway.
    pub fsync: bool,
    /// The folder holding `initdb`, `pg_ctl` and `postgres`; found on the
    /// machine when `None`.
    pub bindir: Option<PathBuf>,
    /// More server settings, passed as `-c name=value`.
    pub settings: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            fsync: true,
            bindir: None,
            settings: Vec::new(),
        }
    }
}

/// A running throwaway cluster. Dropping it stops the server and removes its
/// folder; so does its watchdog if this process ends without dropping it.
#[derive(Debug)]
pub struct Cluster {
    folder: Option<TempDir>,
    /// The folder's canonical path: the socket folder and the watchdog's
    /// reference for the data directory.
    root: PathBuf,
    host: String,
    data: PathBuf,
    log: PathBuf,
    bindir: PathBuf,
    account: Option<Account>,
    port: u16,
    postmaster: Option<u32>,
    /// The postmaster's options (`pg_ctl -o`), to start it again.
    server_line: String,
    watchdog: Option<Watchdog>,
}

impl Cluster {
    /// Creates and starts a cluster; blocks until it accepts connections.
    pub fn start(options: Options) -> Result<Cluster, ClusterError> {
        let bindir = crate::pg_programs::find_bindir(options.bindir.as_deref())?;
        let account = server_account()?;
        let folder = make_folder(account)?;
        let root = fs::canonicalize(folder.path()).map_err(|source| ClusterError::Folder {
            path: folder.path().to_path_buf(),
            source,
        })?;
        let data = root.join("data");
        // Armed before anything runs in the folder, so that an owner killed
        // during `initdb` or the start still leaves nothing behind.
        let watchdog = Watchdog::spawn(&root, &data)?;
        let mut cluster = Cluster {
            folder: Some(folder),
            host: root.to_string_lossy().into_owned(),
            log: root.join("server.log"),
            root,
            data,
            bindir,
            account,
            port: 0,
            postmaster: None,
            server_line: String::new(),
            watchdog: Some(watchdog),
        };
        cluster.init(&options)?;
        cluster.launch(&options)?;
        Ok(cluster)
    }

    /// The socket folder, usable as libpq's `host` (a path) or `PGHOST`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The address the server also listens on.
    pub fn tcp_host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser every connection uses (trust authentication).
    pub fn user(&self) -> &'static str {
        SUPERUSER
    }

    /// The cluster's folder: data directory, socket and `server.log`.
    pub fn folder(&self) -> &Path {
        &self.root
    }

    /// The server's log, for a failure message.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The process id of the running postmaster.
    pub fn postmaster_pid(&self) -> Option<u32> {
        self.postmaster
    }

    /// The path of a program of the same installation (`psql`, `pg_dump`,
    /// `pg_restore`), so client and server versions match; from another
    /// installation when this one has only the server (the npm packages
    /// the test matrix uses).
    pub fn bin(&self, name: &str) -> PathBuf {
        let own = self.bindir.join(name);
        if own.is_file() {
            own
        } else {
            crate::pg_programs::client(name)
        }
    }

    /// A libpq connection string for `database`, values quoted.
    pub fn connection_string(&self, database: &str) -> String {
        format!(
            "host={} port={} user={} dbname={}",
            crate::quote::conninfo_quote(&self.host),
            self.port,
            crate::quote::conninfo_quote(SUPERUSER),
            crate::quote::conninfo_quote(database)
        )
    }

    /// The libpq environment for a child program (`pg_dump`, `psql`, ...)
    /// connecting to `database`.
    pub fn libpq_env(&self, database: &str) -> [(&'static str, String); 4] {
        [
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", SUPERUSER.to_string()),
            ("PGDATABASE", database.to_string()),
        ]
    }

    /// Settings for a connection to `database` through the socket.
    pub fn config(&self, database: &str) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host_path(&self.root)
            .port(self.port)
            .user(SUPERUSER)
            .dbname(database)
            .application_name("plan-runner-cluster")
            .connect_timeout(Duration::from_secs(10));
        config
    }

    pub fn connect(&self, database: &str) -> Result<postgres::Client, ClusterError> {
        self.config(database)
            .connect(postgres::NoTls)
            .map_err(|source| ClusterError::Connect {
                database: database.to_string(),
                source,
            })
    }

    /// Creates an empty database (from `template1`) owned by the superuser.
    pub fn create_database(&self, name: &str) -> Result<(), ClusterError> {
        if name.is_empty() || name.len() > 63 || name.contains('\0') {
            return Err(ClusterError::DatabaseName {
                name: name.to_string(),
            });
        }
        let mut client = self.connect("postgres")?;
        client
            .batch_execute(&format!("CREATE DATABASE {}", crate::db::quote_ident(name)))
            .map_err(|source| ClusterError::CreateDatabase {
                name: name.to_string(),
                source,
            })
    }

    /// Stops the server and removes the folder, saying what went wrong.
    pub fn stop(mut self) -> Result<(), ClusterError> {
        self.shutdown()
    }

    /// Stops the server (a fast shutdown: sessions are ended) and keeps
    /// the cluster, for tests of a server that goes away mid-run.
    pub fn take_server_down(&self) -> Result<(), ClusterError> {
        self.pg_ctl(&["stop", "-m", "fast"])
    }

    /// Starts the server again on the same port and socket, after
    /// [`Cluster::take_server_down`].
    pub fn bring_server_up(&self) -> Result<(), ClusterError> {
        let log = self.log.display().to_string();
        self.pg_ctl(&["start", "-l", &log, "-o", &self.server_line])
    }

    /// Restarts the server (a fast shutdown, then a start): every session
    /// is ended, as in a failover or a package upgrade.
    pub fn restart_server(&self) -> Result<(), ClusterError> {
        let log = self.log.display().to_string();
        self.pg_ctl(&["restart", "-m", "fast", "-l", &log, "-o", &self.server_line])
    }

    /// `pg_ctl` on this cluster; a start or restart must name the log (`-l`):
    /// without one the postmaster keeps pg_ctl's output open, and waiting
    /// for it never ends.
    fn pg_ctl(&self, args: &[&str]) -> Result<(), ClusterError> {
        let mut pg_ctl = self.tool("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "60", "-s"])
            .args(args);
        let output = run(&mut pg_ctl)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(failed("pg_ctl", &output))
        }
    }

    fn init(&self, options: &Options) -> Result<(), ClusterError> {
        let mut initdb = self.tool("initdb");
        initdb
            .arg("-D")
            .arg(&self.data)
            .args(["-E", "UTF8", "--locale=C.UTF-8", "-U", SUPERUSER])
            // Nobody else can reach the socket folder, and the TCP listener
            // is on 127.0.0.1 only: good enough for a cluster that lives
            // for one run.
            .arg("--auth=trust");
        if !options.fsync {
            initdb.arg("--no-sync");
        }
        let output = run(&mut initdb)?;
        if output.status.success() {
            Ok(())
        } else {
            Err(failed("initdb", &output))
        }
    }

    fn launch(&mut self, options: &Options) -> Result<(), ClusterError> {
        let mut log_tail = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port().map_err(|source| ClusterError::Folder {
                path: self.root.clone(),
                source,
            })?;
            let seen = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
            let mut pg_ctl = self.tool("pg_ctl");
            pg_ctl
                .arg("start")
                .arg("-D")
                .arg(&self.data)
                // Without a log file the postmaster inherits pg_ctl's
                // stdout and stderr, and whoever reads them (a test harness,
                // CI) waits for an end-of-file that never comes.
                .arg("-l")
                .arg(&self.log)
                .args(["-w", "-t", "60", "-s", "-o"])
                .arg(server_options(&self.root, port, options));
            let output = run(&mut pg_ctl)?;
            if output.status.success() {
                self.port = port;
                self.server_line = server_options(&self.root, port, options);
                self.postmaster = Some(self.read_postmaster_pid()?);
                return Ok(());
            }
            let log = fs::read(&self.log).unwrap_or_default();
            let fresh = String::from_utf8_lossy(log.get(seen as usize..).unwrap_or_default());
            log_tail = tail(&fresh);
            // Another process took the port between our probe and the
            // server's bind: pick again. Any other failure is final.
            if !fresh.contains("Address already in use") {
                return Err(ClusterError::Start {
                    log: if log_tail.is_empty() {
                        tail(&combined_output(&output))
                    } else {
                        log_tail
                    },
                });
            }
        }
        Err(ClusterError::NoFreePort { log: log_tail })
    }

    fn read_postmaster_pid(&self) -> Result<u32, ClusterError> {
        let text = fs::read_to_string(self.data.join("postmaster.pid")).map_err(|source| {
            ClusterError::Folder {
                path: self.data.join("postmaster.pid"),
                source,
            }
        })?;
        text.lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| ClusterError::Start {
                log: format!("`postmaster.pid` does not start with a pid: {text:?}"),
            })
    }

    /// A server program of the installation, run as the server's account,
    /// in the cluster's folder (the account may not enter our working
    /// directory, and PostgreSQL programs look it up), without the caller's
    /// `PG*` variables, which would point them at another cluster.
    fn tool(&self, name: &str) -> Command {
        let mut command = Command::new(self.bindir.join(name));
        command.current_dir(&self.root).stdin(Stdio::null());
        for (key, _) in env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                command.env_remove(key);
            }
        }
        if let Some(account) = self.account {
            // std's `uid`/`gid` switch in the forked child before exec (and
            // drop root's supplementary groups): no `runuser` or `su` (PAM
            // sessions, a login shell the system account does not have) and
            // no shell quoting, so it works the same on Debian 12 and in
            // minimal containers.
            command.uid(account.uid).gid(account.gid);
        }
        command
    }

    fn shutdown(&mut self) -> Result<(), ClusterError> {
        let mut result = Ok(());
        // A failed start may have left a postmaster we never learned of.
        let pid = self
            .postmaster
            .take()
            .or_else(|| self.read_postmaster_pid().ok());
        if let Some(pid) = pid {
            result = self.stop_server(pid);
        }
        if let Some(folder) = self.folder.take() {
            let path = folder.path().to_path_buf();
            if let Err(source) = folder.close() {
                result = result.and(Err(ClusterError::Folder { path, source }));
            }
        }
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.release();
        }
        result
    }

    fn stop_server(&self, pid: u32) -> Result<(), ClusterError> {
        // `immediate`: nothing in a throwaway cluster needs a checkpoint.
        let mut pg_ctl = self.tool("pg_ctl");
        pg_ctl
            .arg("stop")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-s"]);
        let _ = run(&mut pg_ctl);
        // pg_ctl waits for the pid file to go, which the postmaster removes
        // just before it exits: wait for the process itself, and signal it
        // ourselves if pg_ctl could not.
        let escalation = [Some(Signal::SIGQUIT), Some(Signal::SIGKILL), None];
        for signal in escalation {
            if wait_gone(pid, SHUTDOWN_WAIT) {
                return Ok(());
            }
            if let (Some(signal), Ok(raw)) = (signal, i32::try_from(pid)) {
                let _ = kill(Pid::from_raw(raw), signal);
            }
        }
        Err(ClusterError::Stop {
            pid,
            folder: self.root.clone(),
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            // Drop has no caller to tell: say it where a person may see it.
            let _ = writeln!(
                io::stderr(),
                "warning: throwaway PostgreSQL cluster not cleaned up: {error}"
            );
        }
    }
}

/// An exclusive lock held until the file is dropped. The file is never
/// followed through a symbolic link: as root, in a world-writable folder,
/// that would let anyone choose which file we create.
fn take_lock(path: &Path) -> io::Result<fs::File> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    file.lock()?;
    Ok(file)
}

/// A private folder for the cluster; as root, owned by the server's account.
fn make_folder(account: Option<Account>) -> Result<TempDir, ClusterError> {
    let base = folder_base(account.is_some());
    let folder = tempfile::Builder::new()
        .prefix("plan-runner-pg-")
        .tempdir_in(&base)
        .map_err(|source| ClusterError::Folder {
            path: base.clone(),
            source,
        })?;
    if let Some(account) = account {
        std::os::unix::fs::chown(folder.path(), Some(account.uid), Some(account.gid)).map_err(
            |source| ClusterError::Folder {
                path: folder.path().to_path_buf(),
                source,
            },
        )?;
    }
    Ok(folder)
}

/// The system's temporary folder when it suits, else `/tmp`: the socket path
/// must be short, pg_ctl passes server options through a shell (so the path
/// stays plain), and as root the server's account must be able to enter it.
fn folder_base(for_other_account: bool) -> PathBuf {
    let base = env::temp_dir();
    let plain = base.to_str().is_some_and(|text| {
        text.len() <= MAX_BASE_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    });
    let enterable = !for_other_account
        || base.ancestors().all(|dir| {
            fs::metadata(dir)
                .map(|meta| meta.permissions().mode() & 0o001 != 0)
                .unwrap_or(false)
        });
    if plain && enterable {
        base
    } else {
        PathBuf::from("/tmp")
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// The postmaster's options, as one string that pg_ctl hands to `sh -c`.
fn server_options(socket_folder: &Path, port: u16, options: &Options) -> String {
    let mut settings = vec![("listen_addresses".to_string(), "127.0.0.1".to_string())];
    if !options.fsync {
        for name in ["fsync", "full_page_writes", "synchronous_commit"] {
            settings.push((name.to_string(), "off".to_string()));
        }
    }
    settings.extend(options.settings.iter().cloned());
    let mut line = format!(
        "-p {port} -k {}",
        crate::quote::shell_quote(&socket_folder.to_string_lossy())
    );
    for (name, value) in settings {
        line.push_str(" -c ");
        line.push_str(&crate::quote::shell_quote(&format!("{name}={value}")));
    }
    line
}

fn run(command: &mut Command) -> Result<Output, ClusterError> {
    command.output().map_err(|source| ClusterError::Spawn {
        program: PathBuf::from(command.get_program()),
        source,
    })
}

fn failed(program: &str, output: &Output) -> ClusterError {
    ClusterError::Failed {
        program: program.to_string(),
        status: output.status.to_string(),
        output: tail(&combined_output(output)),
    }
}

fn combined_output(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

/// Waits until `pid` has exited (a zombie counts as exited); `false` when it
/// still runs after `limit`.
fn wait_gone(pid: u32, limit: Duration) -> bool {
    let start = Instant::now();
    while process_running(pid) {
        if start.elapsed() >= limit {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Whether `pid` is a live process. Zombies are not: an orphaned postmaster
/// may never be reaped where PID 1 does not reap.
fn process_running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            !matches!(state, None | Some('Z' | 'X'))
        }
        Err(_) if Path::new("/proc/self").exists() => false,
        Err(_) => i32::try_from(pid).is_ok_and(|raw| kill(Pid::from_raw(raw), None).is_ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_survive_the_shell() {
        let options = Options {
            fsync: false,
            bindir: None,
            settings: vec![("application_name".into(), "it's".into())],
        };
        let line = server_options(Path::new("/tmp/a b"), 5433, &options);
        assert_eq!(
            line,
            "-p 5433 -k '/tmp/a b' -c 'listen_addresses=127.0.0.1' -c 'fsync=off' \
             -c 'full_page_writes=off' -c 'synchronous_commit=off' \
             -c 'application_name=it'\\''s'"
        );
    }

    #[test]
    fn durable_by_default() {
        let line = server_options(Path::new("/tmp/x"), 5433, &Options::default());
        assert!(!line.contains("fsync"), "{line}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (0..30).map(|n| format!("{n}\n")).collect();
        let kept = tail(&text);
        assert!(kept.starts_with("10\n") && kept.ends_with("29"), "{kept}");
    }

    #[test]
    fn this_process_runs_and_a_zombie_does_not() {
        assert!(process_running(std::process::id()));
        let mut child = Command::new("true").spawn().expect("spawn `true`");
        let pid = child.id();
        // Unreaped, the exited child stays a zombie.
        thread::sleep(Duration::from_millis(200));
        assert!(!process_running(pid));
        let _ = child.wait();
    }
}
