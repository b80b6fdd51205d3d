//! PostgreSQL as the runner sees it: which server and database a run is
//! about (`target`, resolved once from flags, the inventory and libpq's
//! environment), libpq's password file (`pgpass`), and identifier quoting
//! (`quote`). The connection settings are handed unchanged to the runner's
//! own connections and to every child process.

pub mod pgpass;
pub mod quote;
pub mod target;

pub use quote::{check_identifier, quote_ident};
pub use target::{Env, Host, ResolvedTarget, SslMode, Target, TargetError, env_for_child};
