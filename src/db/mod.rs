//! Everything the runner says to PostgreSQL itself (not the steps' SQL):
//! fingerprints, sessions, the lock, the history, quoting.

pub mod connect;
pub mod fingerprint;
pub mod history;
pub mod kept;
pub mod lock;
pub mod quote;
pub mod runs;
pub mod sessions;
