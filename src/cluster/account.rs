//! The unprivileged system account a throwaway cluster's server runs as
//! when plan-runner runs as root (PostgreSQL refuses to run as root).

use std::path::Path;
use std::process::{Command, Stdio};

use nix::unistd::{User, geteuid};

use super::{ClusterError, combined_output, take_lock};

/// The system account the server runs as when we are root.
pub const SERVER_ACCOUNT: &str = "plan-runner-pg";

/// The account the server's programs run as, when not as ourselves.
#[derive(Clone, Copy, Debug)]
pub(super) struct Account {
    pub uid: u32,
    pub gid: u32,
}

/// `None` when we may run the server ourselves; as root, the unprivileged
/// account to run it as, created if needed.
pub(super) fn server_account() -> Result<Option<Account>, ClusterError> {
    if !geteuid().is_root() {
        return Ok(None);
    }
    ensure_system_user(SERVER_ACCOUNT).map(Some)
}

fn ensure_system_user(name: &str) -> Result<Account, ClusterError> {
    let problem = |detail: String| ClusterError::ServerUser {
        user: name.to_string(),
        detail,
    };
    if let Some(account) = lookup_account(name).map_err(problem)? {
        return Ok(account);
    }
    // useradd checks that the name is free before it takes its own lock:
    // two at once both succeed, the second rewriting the first's entry with
    // another uid, and the first process then runs initdb as a uid that no
    // longer exists (seen with three test binaries started together). So
    // creators take turns through a lock of their own, and look again once
    // they hold it.
    let lock_path = ["/run/lock", "/var/lock", "/tmp"]
        .into_iter()
        .map(Path::new)
        .find(|dir| dir.is_dir())
        .unwrap_or(Path::new("/tmp"))
        .join("plan-runner-pg-useradd.lock");
    let _turn = take_lock(&lock_path)
        .map_err(|error| problem(format!("cannot lock `{}`: {error}", lock_path.display())))?;
    if let Some(account) = lookup_account(name).map_err(problem)? {
        return Ok(account);
    }
    let useradd = ["/usr/sbin/useradd", "/sbin/useradd"]
        .into_iter()
        .map(Path::new)
        .find(|path| path.exists())
        .unwrap_or(Path::new("useradd"));
    let shell = ["/usr/sbin/nologin", "/sbin/nologin"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or("/bin/false");
    let output = Command::new(useradd)
        .args(["--system", "--user-group", "--no-create-home"])
        .args(["--home-dir", "/nonexistent", "--shell", shell])
        .args(["--comment", "plan-runner throwaway PostgreSQL clusters"])
        .arg(name)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| problem(format!("cannot run `{}`: {error}", useradd.display())))?;
    match lookup_account(name).map_err(problem)? {
        Some(account) => Ok(account),
        None => Err(problem(format!(
            "`useradd` said: {}",
            combined_output(&output).trim()
        ))),
    }
}

fn lookup_account(name: &str) -> Result<Option<Account>, String> {
    match User::from_name(name) {
        Ok(Some(user)) if user.uid.is_root() => Err(format!("`{name}` has uid 0")),
        Ok(Some(user)) => Ok(Some(Account {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })),
        Ok(None) => Ok(None),
        Err(error) => Err(format!("cannot look it up: {error}")),
    }
}
