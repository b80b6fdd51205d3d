//! `apply`'s side of the ERP configuration (`erp_config`): the file read,
//! compared with the resolved target, and described before anything runs.

use std::path::{Path, PathBuf};

use crate::erp_config::{Connection, ErpConfig, ErpConfigError, Setting};
use crate::plan::Plan;
use crate::target::ResolvedTarget;

/// The file the inventory's target or the plan names (the target's
/// wins: each machine keeps it in its own place), as a run sees it;
/// `None` when neither names one.
/// `original`: a rehearsal's target before it was pointed at the copy;
/// the file is compared with it, while the server is given the copy.
pub fn setting(
    plan: &Plan,
    resolved: &ResolvedTarget,
    original: Option<&ResolvedTarget>,
    run_folder: &Path,
    overridden: bool,
) -> Result<Option<Setting>, ErpConfigError> {
    let named = plan.erp_config.as_ref().and_then(|t| t.expose());
    let path = match (&resolved.erp_config, named) {
        (Some(path), _) => path.clone(),
        (None, Some(path)) => plan.folder.join(path),
        (None, None) => return Ok(None),
    };
    let config = ErpConfig::read(&path)?;
    let target = connection(resolved);
    let home = server_home(resolved.step_user.as_deref());
    let mut setting = Setting::new(
        &config,
        &target,
        run_folder,
        &home,
        &plan.folder,
        overridden,
    );
    if let Some(original) = original {
        setting.compare_with(&config, &connection(original));
    }
    Ok(Some(setting))
}

/// How the ERP server is to reach the target.
pub fn connection(resolved: &ResolvedTarget) -> Connection {
    let t = &resolved.target;
    Connection {
        host: t.host.to_string(),
        port: t.port,
        user: t.user.clone(),
        database: t.database.clone(),
    }
}

/// The home of the user the server runs as (the inventory's step `user`,
/// else the user running `plan`): Odoo's default `data_dir` is under it.
fn server_home(user: Option<&str>) -> PathBuf {
    use nix::unistd::{User, geteuid};
    let account = match user {
        Some(name) => User::from_name(name).ok().flatten(),
        None => None,
    };
    if let Some(account) = account {
        return account.dir;
    }
    if user.is_none()
        && let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty())
    {
        return PathBuf::from(home);
    }
    User::from_uid(geteuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .unwrap_or_else(|| PathBuf::from("/"))
}
