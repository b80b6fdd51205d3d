//! The run's journal: an append-only file `journal` in the run folder, one
//! record per line, each written before the run goes on and on disk
//! (fsynced) before the run launches anything after it: a step's process
//! and a step's end are made durable by the fsync of the record that
//! follows them (`Journal::note`), so a step costs one disk flush. It
//! lives outside the target database (which a rollback replaces), so that
//! after the runner's death `plan recover` knows what ran, which backups
//! exist and which process groups may be left. It records; it never
//! decides what to do with what it read.
//!
//! A line is `<checksum> <json>\n`, the checksum being the first 16 hex
//! digits of the SHA-256 of the JSON text. A power loss can leave the last
//! line torn (cut short, or with garbage from an unwritten block): reading
//! ignores a last line that has no newline or whose checksum does not
//! match, and counts any other bad line as damaged instead of failing.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::exec::backup::Taken;
use crate::exec::process::Spawned;

/// The journal's file name in a run folder.
pub const FILE_NAME: &str = "journal";

/// One event of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    RunStarted {
        run_id: String,
        plan: String,
        /// Absolute where it could be made so.
        plan_path: PathBuf,
        plan_sha256: String,
        /// How the target is shown: `acme (127.0.0.1:5432/acme)`.
        target: String,
        database: String,
        maintenance_db: String,
        from: String,
        to: String,
        host: String,
        pid: u32,
        /// The plan-runner version that wrote the journal.
        runner_version: String,
        /// Set when the run is a hop of a chain: each hop starts with its
        /// own `run_started`, in the chain's one journal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chain: Option<ChainMark>,
    },
    /// A backup is being made: if the runner dies now, a partial copy
    /// (`copy`, a snapshot name or a dump folder) may be left.
    BackupStarted {
        step: String,
        method: String,
        database: String,
        copy: String,
        /// The snapshot may block connections to `database` while it ends
        /// the other sessions (`--terminate-connections`): if the runner
        /// dies then, they stay blocked until a recovery allows them.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        blocks_connections: bool,
    },
    BackupTaken {
        taken: Taken,
    },
    StepStarted {
        step: String,
        kind: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        on_failure: bool,
    },
    /// A process of a step: its group is what a recovery ends, and only
    /// while the leader's start time still equals `start_time`.
    ProcessStarted {
        step: String,
        attempt: u32,
        pid: u32,
        pgid: u32,
        start_time: Option<u64>,
    },
    StepEnded {
        step: String,
        /// `succeeded`, `failed`; `interrupted` when another step running
        /// beside it failed (`--jobs`).
        status: String,
        seconds: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        on_failure: bool,
    },
    RollbackStarted {
        reason: String,
    },
    RollbackEnded {
        proved: bool,
        restored: Vec<String>,
        differences: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// `plan recover` took over this run.
    RecoveryStarted {
        host: String,
        pid: u32,
    },
    /// `plan apply --resume` took this run over from its dead (or
    /// `--no-rollback`-stopped) runner, and goes on with the steps not in
    /// `done`: those ended successfully, and are not run again.
    RunResumed {
        host: String,
        pid: u32,
        #[serde(default)]
        done: Vec<String>,
    },
    /// The run's cgroup (`exec::cgroup`): what is in it when the runner
    /// died is what its steps left, for a recovery to end. Journals from
    /// before it have none.
    Cgroup {
        path: PathBuf,
    },
    RunEnded {
        /// The report's outcome: `succeeded`, `rolled_back`, `stopped`
        /// (`--no-rollback`), `recovered`, ...
        outcome: String,
        exit_code: u8,
    },
}

/// Which hop of a chain a `run_started` begins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainMark {
    /// The chain's run id (the runs row, the journal's folder).
    pub chain_id: String,
    /// From 1.
    pub hop: usize,
    pub hops: usize,
    /// `--keep-reached`: each hop took its own backups, and those of the
    /// hops that passed are gone (such a chain is not resumed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_reached: bool,
}

/// A record as read back, with the time it was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// RFC 3339, milliseconds, UTC.
    pub at: String,
    #[serde(flatten)]
    pub record: Record,
}

/// A journal open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    /// Set when an append failed where it could not be reported at once
    /// (while a child was being spawned): the run must not go on.
    broken: AtomicBool,
}

impl Journal {
    /// Creates the journal of a new run in `folder` (which must exist),
    /// making the file's existence durable too.
    pub fn create(folder: &Path) -> io::Result<Journal> {
        let path = folder.join(FILE_NAME);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        file.sync_all()?;
        sync_dir(folder)?;
        // The run folder itself is new: its entry in `runs/` must last too.
        if let Some(parent) = folder.parent() {
            sync_dir(parent)?;
        }
        Ok(Journal {
            path,
            file: Mutex::new(file),
            broken: AtomicBool::new(false),
        })
    }

    /// Opens an existing journal to add records (a recovery). A torn last
    /// line is cut off first, so that the next record starts on a line of
    /// its own: it was never acknowledged, since its fsync did not return.
    pub fn open(folder: &Path) -> io::Result<Journal> {
        let path = folder.join(FILE_NAME);
        let mut file = OpenOptions::new().read(true).append(true).open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if bytes.last().is_some_and(|&b| b != b'\n') {
            let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            file.set_len(u64::try_from(keep).unwrap_or(0))?;
            file.seek(SeekFrom::End(0))?;
            file.sync_all()?;
        }
        Ok(Journal {
            path,
            file: Mutex::new(file),
            broken: AtomicBool::new(false),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one record and waits until it, and every record written
    /// before it, is on disk.
    pub fn append(&self, record: &Record) -> io::Result<()> {
        self.write(record, true)
    }

    /// Writes one record without waiting for the disk: the next `append`
    /// makes it durable, before the run does anything else. Written is
    /// enough for the runner's death (the kernel keeps the page); only a
    /// power loss could take it, and a power loss also ends every process
    /// such a record names. Each fsync costs a disk flush (milliseconds on
    /// a virtual disk), so a step pays for one, not three.
    pub fn note(&self, record: &Record) -> io::Result<()> {
        self.write(record, false)
    }

    /// Waits until every record written so far is on disk.
    pub fn sync(&self) -> io::Result<()> {
        let result = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .sync_data();
        if result.is_err() {
            self.broken.store(true, Ordering::SeqCst);
        }
        result
    }

    fn write(&self, record: &Record, sync: bool) -> io::Result<()> {
        let line = encode(&Entry {
            at: crate::units::now_millis(),
            record: record.clone(),
        })?;
        let result = {
            let mut file = self
                .file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // One write per line: with O_APPEND, records from several
            // threads never interleave.
            file.write_all(line.as_bytes())
                .and_then(|()| if sync { file.sync_data() } else { Ok(()) })
        };
        if result.is_err() {
            self.broken.store(true, Ordering::SeqCst);
        } else {
            abort_if_told();
        }
        result
    }

    /// Records a child process of `step` (for `exec::process`'s
    /// `on_spawn`, which cannot fail: a failure marks the journal broken).
    /// Noted, not synced: the group matters to `plan recover` after the
    /// runner's death, which the written page survives; after a power loss
    /// no group is left to end.
    pub fn process_started(&self, step: &str, spawned: &Spawned) {
        let _ = self.note(&Record::ProcessStarted {
            step: step.into(),
            attempt: spawned.attempt,
            pid: spawned.pid,
            pgid: spawned.pgid,
            start_time: spawned.start_time,
        });
    }

    /// Whether some record could not be written.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }
}

/// Names the environment switch of the crash tests: `N` makes the runner
/// abort (ended as by kill -9: no destructor, no further write) right after
/// its Nth journal record is written, so that a test can end a run at
/// every transition the journal has and check that `plan recover` ends
/// where an uninterrupted run would. Never set outside the tests.
pub const ABORT_AFTER_RECORD_VAR: &str = "PLAN_RUNNER_ABORT_AFTER_RECORD";

fn abort_if_told() {
    static AFTER: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    static WRITTEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let after = AFTER.get_or_init(|| std::env::var(ABORT_AFTER_RECORD_VAR).ok()?.parse().ok());
    if let Some(n) = after
        && WRITTEN.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        std::process::abort();
    }
}

fn checksum(json: &str) -> String {
    hex::encode(Sha256::digest(json.as_bytes()))
        .get(..16)
        .unwrap_or_default()
        .to_string()
}

fn encode(entry: &Entry) -> io::Result<String> {
    let json = serde_json::to_string(entry).map_err(io::Error::other)?;
    Ok(format!("{} {json}\n", checksum(&json)))
}

fn decode(line: &str) -> Option<Entry> {
    let (sum, json) = line.split_once(' ')?;
    if sum != checksum(json) {
        return None;
    }
    serde_json::from_str(json).ok()
}

/// What reading a journal found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contents {
    pub entries: Vec<Entry>,
    /// The last line was cut short or did not match its checksum: a record
    /// whose write never completed, ignored.
    pub torn_tail: bool,
    /// Line numbers (from 1) of bad lines before the last one: damage that
    /// a torn write cannot explain, skipped and reported.
    pub damaged: Vec<usize>,
}

/// Reads the journal in `folder`. Only I/O errors fail; bad lines are
/// reported in the result.
pub fn read(folder: &Path) -> io::Result<Contents> {
    let bytes = std::fs::read(folder.join(FILE_NAME))?;
    Ok(parse(&bytes))
}

/// Parses a journal's bytes.
pub fn parse(bytes: &[u8]) -> Contents {
    let mut read = Contents::default();
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // After the last newline: empty when the file ends cleanly, else the
    // start of a record whose write did not finish.
    let tail = lines.pop().unwrap_or_default();
    let count = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        match std::str::from_utf8(line).ok().and_then(decode) {
            Some(entry) => read.entries.push(entry),
            None if i + 1 == count && tail.is_empty() => read.torn_tail = true,
            None => read.damaged.push(i + 1),
        }
    }
    if !tail.is_empty() {
        read.torn_tail = true;
    }
    read
}

/// fsyncs a folder, so that a file created or renamed in it survives a
/// power loss.
pub fn sync_dir(folder: &Path) -> io::Result<()> {
    File::open(folder)?.sync_all()
}

/// A process group recorded in the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub step: String,
    pub pid: u32,
    pub pgid: u32,
    pub start_time: Option<u64>,
}

/// A run as its journal tells it.
#[derive(Clone, Debug, Default)]
pub struct Story {
    pub started: Option<Record>,
    /// Backups taken, in order.
    pub taken: Vec<Taken>,
    /// Backups started and never taken: (step, method, copy).
    pub unfinished_backups: Vec<(String, String, String)>,
    /// Of those, (step, database) where the backup may have left the
    /// database refusing connections.
    pub blocking: Vec<(String, String)>,
    /// Steps started and never ended, with when they started.
    pub running: Vec<(String, String, String)>,
    /// The process groups of the steps in `running`.
    pub groups: Vec<Group>,
    /// Steps that ended in failure, with why.
    pub failed: Vec<(String, String)>,
    pub rollback_started: bool,
    pub rollback_ended: Option<bool>,
    /// The outcome of `run_ended`, if the run got there.
    pub ended: Option<String>,
    /// `(plan_path, plan_sha256)` of `run_started`.
    pub plan: Option<(PathBuf, String)>,
    /// The host and pid of the runner that last drove the run (the one
    /// that started it, or the last to resume it).
    pub runner: Option<(String, u32)>,
    /// How many times the run was resumed.
    pub resumed: usize,
    /// Each main step's last status (`succeeded`, `failed`) and seconds,
    /// by name; in a chain's journal, the last hop's.
    pub ended_steps: Vec<(String, String, f64)>,
    /// The cgroups the run's runners made, as recorded (not yet checked:
    /// `exec::cgroup::trusted`).
    pub cgroups: Vec<PathBuf>,
}

impl Story {
    pub fn of(entries: &[Entry]) -> Story {
        let mut story = Story::default();
        let mut groups: Vec<Group> = Vec::new();
        for entry in entries {
            match &entry.record {
                r @ Record::RunStarted {
                    plan_path,
                    plan_sha256,
                    host,
                    pid,
                    ..
                } => {
                    story.plan = Some((plan_path.clone(), plan_sha256.clone()));
                    story.runner = Some((host.clone(), *pid));
                    story.started = Some(r.clone());
                    // A chain's next hop: its steps are its own, under
                    // names an earlier hop may have used too (a step of
                    // hop 1 is not done in hop 3). The hops before it all
                    // ended, so nothing of theirs is running or failed.
                    story.ended_steps.clear();
                    story.failed.clear();
                    story.running.clear();
                }
                Record::BackupStarted {
                    step,
                    method,
                    copy,
                    database,
                    blocks_connections,
                } => {
                    story
                        .unfinished_backups
                        .push((step.clone(), method.clone(), copy.clone()));
                    if *blocks_connections {
                        story.blocking.push((step.clone(), database.clone()));
                    }
                }
                Record::BackupTaken { taken } => {
                    story
                        .unfinished_backups
                        .retain(|(s, _, _)| s != &taken.step);
                    story.blocking.retain(|(s, _)| s != &taken.step);
                    story.taken.push(taken.clone());
                }
                Record::StepStarted { step, kind, .. } => {
                    story
                        .running
                        .push((step.clone(), kind.clone(), entry.at.clone()));
                }
                Record::ProcessStarted {
                    step,
                    pid,
                    pgid,
                    start_time,
                    ..
                } => groups.push(Group {
                    step: step.clone(),
                    pid: *pid,
                    pgid: *pgid,
                    start_time: *start_time,
                }),
                Record::StepEnded {
                    step,
                    status,
                    error,
                    seconds,
                    on_failure,
                } => {
                    if !on_failure {
                        story.ended_steps.retain(|(s, _, _)| s != step);
                        story
                            .ended_steps
                            .push((step.clone(), status.clone(), *seconds));
                    }
                    if status == "failed" {
                        story
                            .failed
                            .push((step.clone(), error.clone().unwrap_or_default()));
                    }
                    story.running.retain(|(s, _, _)| s != step);
                    story.unfinished_backups.retain(|(s, _, _)| s != step);
                    story.blocking.retain(|(s, _)| s != step);
                    // A step that ended has no process of its own left
                    // running, except what it meant to leave (a server
                    // that a `start` step launched).
                    groups.retain(|g| &g.step != step);
                }
                Record::RollbackStarted { .. } => story.rollback_started = true,
                Record::RollbackEnded { proved, .. } => story.rollback_ended = Some(*proved),
                Record::RecoveryStarted { .. } => {}
                Record::RunResumed { host, pid, .. } => {
                    // What the dead runner left was dealt with by the one
                    // resuming: its steps in flight run again, its groups
                    // were ended, its failure is behind.
                    story.runner = Some((host.clone(), *pid));
                    story.resumed += 1;
                    story.running.clear();
                    groups.clear();
                    story.failed.clear();
                    story.ended = None;
                }
                Record::Cgroup { path } => {
                    if !story.cgroups.contains(path) {
                        story.cgroups.push(path.clone());
                    }
                }
                Record::RunEnded { outcome, .. } => story.ended = Some(outcome.clone()),
            }
        }
        story.groups = groups;
        story
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started() -> Record {
        Record::StepStarted {
            step: "pre".into(),
            kind: "script".into(),
            on_failure: false,
        }
    }

    fn ended() -> Record {
        Record::StepEnded {
            step: "pre".into(),
            status: "succeeded".into(),
            seconds: 1.5,
            error: None,
            on_failure: false,
        }
    }

    fn write(records: &[Record]) -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(dir.path()).unwrap();
        for r in records {
            journal.append(r).unwrap();
        }
        let bytes = std::fs::read(journal.path()).unwrap();
        (dir, bytes)
    }

    fn hop_started(hop: usize) -> Record {
        Record::RunStarted {
            run_id: "c".into(),
            plan: format!("hop {hop}"),
            plan_path: format!("/plans/{hop}.plan").into(),
            plan_sha256: hop.to_string(),
            target: "acme".into(),
            database: "acme".into(),
            maintenance_db: "postgres".into(),
            from: hop.to_string(),
            to: (hop + 1).to_string(),
            host: "h".into(),
            pid: 1,
            runner_version: "0".into(),
            chain: Some(ChainMark {
                chain_id: "c".into(),
                hop,
                hops: 2,
                keep_reached: false,
            }),
        }
    }

    #[test]
    fn a_chains_story_has_the_steps_of_its_last_hop_only() {
        let entries: Vec<Entry> = [
            hop_started(1),
            started(),
            ended(),
            hop_started(2),
            started(),
        ]
        .into_iter()
        .map(|record| Entry {
            at: "2026-01-01T00:00:00.000Z".into(),
            record,
        })
        .collect();
        let story = Story::of(&entries);
        // Hop 1's `pre` ended; hop 2's is running, and not done.
        assert!(story.ended_steps.is_empty(), "{:?}", story.ended_steps);
        assert_eq!(story.running.len(), 1);
        assert_eq!(story.plan.as_ref().map(|(_, sha)| sha.as_str()), Some("2"));
    }

    #[test]
    fn records_read_back_in_order() {
        let (_dir, bytes) = write(&[started(), ended()]);
        let read = parse(&bytes);
        assert_eq!(read.entries.len(), 2);
        assert_eq!(read.entries[0].record, started());
        assert_eq!(read.entries[1].record, ended());
        assert!(!read.torn_tail);
        assert!(read.damaged.is_empty());
    }

    #[test]
    fn a_record_cut_short_is_ignored() {
        let (_dir, bytes) = write(&[started(), ended()]);
        // Every cut inside the last record: never a crash, the first
        // record always kept, the second never half-read.
        let first_end = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        for cut in first_end + 1..bytes.len() {
            let read = parse(&bytes[..cut]);
            assert_eq!(read.entries.len(), 1, "cut at {cut}");
            assert_eq!(read.entries[0].record, started());
            assert!(read.torn_tail, "cut at {cut}");
            assert!(read.damaged.is_empty());
        }
    }

    #[test]
    fn a_garbage_last_line_is_ignored() {
        let (_dir, mut bytes) = write(&[started()]);
        bytes.extend_from_slice(b"\0\0\0\xff\xfe garbage\n");
        let read = parse(&bytes);
        assert_eq!(read.entries.len(), 1);
        assert!(read.torn_tail);
        assert!(read.damaged.is_empty());
    }

    #[test]
    fn a_last_line_with_a_wrong_checksum_is_ignored() {
        let (_dir, bytes) = write(&[started(), ended()]);
        let mut text = String::from_utf8(bytes).unwrap();
        // Same length, one digit of the JSON changed (a torn block).
        text = text.replacen("1.5", "1.6", 1);
        let read = parse(text.as_bytes());
        assert_eq!(read.entries.len(), 1);
        assert!(read.torn_tail);
    }

    #[test]
    fn damage_before_the_last_line_is_reported_not_fatal() {
        let (_dir, bytes) = write(&[started(), ended()]);
        let mut damaged = b"xx not a record\n".to_vec();
        damaged.extend_from_slice(&bytes);
        let read = parse(&damaged);
        assert_eq!(read.entries.len(), 2);
        assert_eq!(read.damaged, vec![1]);
        assert!(!read.torn_tail);
    }

    #[test]
    fn an_empty_journal_has_no_record() {
        let read = parse(b"");
        assert!(read.entries.is_empty() && !read.torn_tail && read.damaged.is_empty());
    }

    #[test]
    fn reopening_cuts_a_torn_tail_so_new_records_stay_readable() {
        let (dir, mut bytes) = write(&[started()]);
        bytes.extend_from_slice(b"0123456789abcdef {\"at\":\"20");
        std::fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        journal.append(&ended()).unwrap();
        let read = read(dir.path()).unwrap();
        assert_eq!(read.entries.len(), 2);
        assert_eq!(read.entries[1].record, ended());
        assert!(!read.torn_tail && read.damaged.is_empty());
    }

    #[test]
    fn the_story_keeps_only_groups_of_steps_still_running() {
        let spawned = |step: &str, pid| Record::ProcessStarted {
            step: step.into(),
            attempt: 1,
            pid,
            pgid: pid,
            start_time: Some(42),
        };
        let (_dir, bytes) = write(&[
            Record::StepStarted {
                step: "start_db".into(),
                kind: "start".into(),
                on_failure: false,
            },
            spawned("start_db", 10),
            Record::StepEnded {
                step: "start_db".into(),
                status: "succeeded".into(),
                seconds: 0.1,
                error: None,
                on_failure: false,
            },
            started(),
            spawned("pre", 11),
        ]);
        let story = Story::of(&parse(&bytes).entries);
        assert_eq!(story.running.len(), 1);
        assert_eq!(story.running[0].0, "pre");
        assert_eq!(
            story.groups,
            vec![Group {
                step: "pre".into(),
                pid: 11,
                pgid: 11,
                start_time: Some(42)
            }]
        );
        assert_eq!(story.ended, None);
    }

    #[test]
    fn the_story_has_the_runs_cgroups_once_each_and_old_journals_none() {
        let cgroup = || Record::Cgroup {
            path: "/sys/fs/cgroup/plan-runner-r1".into(),
        };
        let (_dir, bytes) = write(&[cgroup(), started(), cgroup()]);
        let story = Story::of(&parse(&bytes).entries);
        assert_eq!(
            story.cgroups,
            vec![PathBuf::from("/sys/fs/cgroup/plan-runner-r1")]
        );
        let (_dir, bytes) = write(&[started(), ended()]);
        assert!(Story::of(&parse(&bytes).entries).cgroups.is_empty());
    }
}
