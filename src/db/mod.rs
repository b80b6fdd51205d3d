//! PostgreSQL as the runner sees it: a connection's settings (`conninfo`),
//! libpq's password file (`pgpass`), TLS (`tls`), and
//! everything the runner itself says to the server (not the steps' SQL):
//! fingerprints, sessions, the lock, the history, the runs table, kept
//! snapshots. Which target a run is about is decided above, in
//! `crate::target`; nothing here imports it.

pub mod connect;
pub mod conninfo;
pub mod fingerprint;
pub mod history;
pub mod kept;
pub mod lock;
pub mod odoo;
pub mod pgpass;
pub mod privileges;
pub mod runs;
pub mod server;
pub mod sessions;
pub mod tls;

pub use crate::quote::{check_identifier, quote_ident};
pub use conninfo::{Host, SslMode, Target, env_for_child};
