//! PostgreSQL as the runner sees it: which server and database a run is
//! about (`target`, resolved once from flags, the inventory and libpq's
//! environment), libpq's password file (`pgpass`), identifier quoting
//! (`quote`), and everything the runner itself says to the server (not the
//! steps' SQL): fingerprints, sessions, the lock, the history, the runs
//! table, kept snapshots.

pub mod connect;
pub mod fingerprint;
pub mod history;
pub mod kept;
pub mod lock;
pub mod pgpass;
pub mod quote;
pub mod runs;
pub mod sessions;
pub mod target;

pub use quote::{check_identifier, quote_ident};
pub use target::{Env, Host, ResolvedTarget, SslMode, Target, TargetError, env_for_child};
