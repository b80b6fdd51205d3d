//! Running a plan against a real database: backups and their restore,
//! steps as processes or SQL, the run as a whole, its report.

pub mod backup;
pub mod paths;
pub mod report;
pub mod run;
pub mod sql;
pub mod steps;
