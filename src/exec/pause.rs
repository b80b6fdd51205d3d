//! Test-only pause points: a named place in a run where a test needs the
//! runner to stand still while it injects a fault (restarts the server in
//! the middle of a rollback). With `PLAN_RUNNER_PAUSE_AT=NAME` set, the
//! first time the run reaches the point `NAME` it writes the file
//! `paused-at-NAME` in its run folder and waits until the test removes it
//! (three minutes at most). Never set outside the tests; unset, a point
//! costs one environment lookup.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Names the environment switch.
pub const PAUSE_AT_VAR: &str = "PLAN_RUNNER_PAUSE_AT";

/// After the databases are renamed into place, before their properties
/// and connection setting are given back (`exec::backup::restore`).
pub const ROLLBACK_RENAMED: &str = "rollback_renamed";

/// After a rehearsal's copy of the database is made, before its trees
/// are copied (`exec::rehearsal::make`).
pub const REHEARSAL_COPIED: &str = "rehearsal_copied";

/// Waits at `point` when the switch names it, once per process: a retry
/// that passes the point again goes on.
pub fn point(point: &str, run_folder: &Path) {
    static PAUSED: AtomicBool = AtomicBool::new(false);
    if std::env::var(PAUSE_AT_VAR).ok().as_deref() != Some(point)
        || PAUSED.swap(true, Ordering::SeqCst)
    {
        return;
    }
    let marker = run_folder.join(format!("paused-at-{point}"));
    if crate::private::write(&marker, b"").is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while marker.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&marker);
}
