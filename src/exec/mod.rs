//! Running a plan for real: child processes and the redaction of what is
//! shown from them. Reached only once a plan has no lint error.

pub mod process;
pub mod redact;
