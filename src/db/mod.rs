//! PostgreSQL as the runner sees it: identifier quoting (`quote`).

pub mod quote;

pub use quote::{check_identifier, quote_ident};
