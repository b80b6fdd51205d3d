//! Running a plan against a real database: backups and their restore,
//! steps as child processes or SQL, the redaction of what is shown from
//! them, the run as a whole (its journal, its signals, its rollback, the
//! recovery of a run whose runner died), its report. Reached only once a plan has no
//! lint error.

pub mod backup;
pub mod cgroup;
pub mod erp;
pub mod journal;
pub mod owners;
pub mod paths;
pub mod pause;
pub mod process;
pub mod progress;
pub mod redact;
pub mod rehearsal;
pub mod report;
pub mod rollback;
pub mod run;
pub mod signals;
pub mod space;
pub mod sql;
pub mod steps;
pub mod strays;
