//! Running a step as another system user (`user =`): the account's ids,
//! groups and a folder it may enter, switched to in the child before exec.

use super::*;

/// Who the child becomes, computed before the fork: between fork and exec
/// only async-signal-safe calls are allowed, so no user database lookups
/// (`initgroups` reads /etc/group) and no allocation happen there.
#[derive(Debug)]
pub(super) struct Identity {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    /// Entered after switching, so the user must be able to reach it (as
    /// with `runuser`), not only root.
    cwd: CString,
}

impl Identity {
    pub(super) fn enter(&self) -> io::Result<()> {
        setgroups(&self.groups)?;
        setgid(self.gid)?;
        setuid(self.uid)?;
        chdir(self.cwd.as_c_str())?;
        Ok(())
    }
}

/// When `name` is another user than the runner's: who to become, and its
/// home. `None` when the runner already is that user.
pub(super) fn switch_to(
    name: &str,
    cwd: &Path,
) -> Result<Option<(Identity, PathBuf)>, ProcessError> {
    let lookup_error = |source: nix::Error| ProcessError::UserLookup {
        user: name.to_string(),
        source: source.into(),
    };
    let user = User::from_name(name)
        .map_err(lookup_error)?
        .ok_or_else(|| ProcessError::UnknownUser {
            user: name.to_string(),
        })?;
    let me = geteuid();
    if user.uid == me {
        return Ok(None);
    }
    if !me.is_root() {
        let current = User::from_uid(me)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| me.to_string());
        return Err(ProcessError::NotRoot {
            user: name.to_string(),
            current,
        });
    }
    let c_name = CString::new(name).map_err(|_| ProcessError::UnknownUser {
        user: name.to_string(),
    })?;
    let groups = getgrouplist(&c_name, user.gid).map_err(lookup_error)?;
    let cwd = CString::new(cwd.as_os_str().as_bytes()).map_err(|_| ProcessError::Spawn {
        program: cwd.display().to_string(),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            "the folder name holds a NUL byte",
        ),
    })?;
    Ok(Some((
        Identity {
            uid: user.uid,
            gid: user.gid,
            groups,
            cwd,
        },
        user.dir,
    )))
}
