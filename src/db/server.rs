//! The server's release: the one range of PostgreSQL majors the runner
//! supports, and each difference between majors that the runner's own SQL
//! depends on, named once. It reads `server_version_num` and decides
//! nothing else: refusing a server is the caller's.

use std::fmt;

use postgres::GenericClient;
use serde::{Deserialize, Serialize};

/// The oldest major the runner supports. 12 is not: it left upstream
/// support in November 2024, and the runner is tested on 13 and later.
pub const OLDEST: u32 = 13;
/// The newest major the runner is tested with. A later one may change
/// the catalogs the runner reads (`pg_database`, `pg_stat_activity`) or
/// what `CREATE DATABASE` copies: it is refused until tested.
pub const NEWEST: u32 = 18;

/// A server's `server_version_num` (`130023` is 13.23).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServerVersion(i32);

impl ServerVersion {
    pub fn from_num(num: i32) -> ServerVersion {
        ServerVersion(num)
    }

    pub fn num(self) -> i32 {
        self.0
    }

    /// The major release: 13, ..., 18 (the numbering since 10).
    pub fn major(self) -> u32 {
        u32::try_from(self.0 / 10000).unwrap_or(0)
    }

    fn minor(self) -> u32 {
        u32::try_from(self.0 % 10000).unwrap_or(0)
    }

    pub fn is_supported(self) -> bool {
        (OLDEST..=NEWEST).contains(&self.major())
    }

    /// Why this server is refused, or `None` when it is supported.
    pub fn refusal(self) -> Option<String> {
        let why = if self.major() < OLDEST {
            "older servers are out of upstream support and untested"
        } else if self.major() > NEWEST {
            "newer servers are not tested yet by this plan-runner"
        } else {
            return None;
        };
        Some(format!(
            "the server is PostgreSQL {self}: plan-runner supports {} ({why}; docs/apply.md#supported-postgresql)",
            supported_range()
        ))
    }

    /// `CREATE DATABASE ... STRATEGY` exists (15); the default, `WAL_LOG`,
    /// writes every block of the copy to the WAL.
    pub fn has_create_strategy(self) -> bool {
        self.major() >= 15
    }

    /// `hash_record_extended` exists (14); before, every table is hashed
    /// through its rows' text form.
    pub fn has_hash_record_extended(self) -> bool {
        self.major() >= 14
    }

    /// A database has its own locale provider (`datlocprovider`, 15): ICU
    /// from 15 (`daticulocale`), the builtin one from 17 (`datlocale`,
    /// which replaced `daticulocale`), ICU rules from 16 (`daticurules`).
    pub fn has_locale_provider(self) -> bool {
        self.major() >= 15
    }

    /// `CREATE DATABASE` takes `ICU_RULES` (16).
    pub fn has_icu_rules(self) -> bool {
        self.major() >= 16
    }

    /// `CREATE DATABASE` takes `BUILTIN_LOCALE` (17).
    pub fn has_builtin_locale(self) -> bool {
        self.major() >= 17
    }

    /// The `file_copy_method` setting exists (18): `clone` makes a
    /// `FILE_COPY` database copy share its blocks with the original on a
    /// file system with reflinks (XFS, Btrfs).
    pub fn has_file_copy_method(self) -> bool {
        self.major() >= 18
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major(), self.minor())
    }
}

/// `PostgreSQL 13 to 18`, as every message and the docs say it.
pub fn supported_range() -> String {
    format!("PostgreSQL {OLDEST} to {NEWEST}")
}

/// The version of the server `client` is connected to.
pub fn version(client: &mut impl GenericClient) -> Result<ServerVersion, postgres::Error> {
    let text: String = client.query_one("show server_version_num", &[])?.get(0);
    Ok(ServerVersion(text.trim().parse().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_to_eighteen_are_supported() {
        for (num, supported) in [
            (120022, false),
            (130000, true),
            (130023, true),
            (150018, true),
            (180006, true),
            (189999, true),
            (190000, false),
            (0, false),
        ] {
            let version = ServerVersion::from_num(num);
            assert_eq!(version.is_supported(), supported, "{num}");
            assert_eq!(version.refusal().is_none(), supported, "{num}");
        }
    }

    #[test]
    fn a_refusal_names_the_version_the_range_and_why() {
        let old = ServerVersion::from_num(120022)
            .refusal()
            .unwrap_or_default();
        assert!(old.contains("PostgreSQL 12.22"), "{old}");
        assert!(old.contains("PostgreSQL 13 to 18"), "{old}");
        assert!(old.contains("out of upstream support"), "{old}");
        let new = ServerVersion::from_num(190001)
            .refusal()
            .unwrap_or_default();
        assert!(new.contains("PostgreSQL 19.1"), "{new}");
        assert!(new.contains("not tested yet"), "{new}");
    }

    #[test]
    fn features_start_at_their_major() {
        let v = ServerVersion::from_num;
        assert!(!v(140023).has_create_strategy() && v(150000).has_create_strategy());
        assert!(!v(130023).has_hash_record_extended() && v(140000).has_hash_record_extended());
        assert!(!v(140023).has_locale_provider() && v(150000).has_locale_provider());
        assert!(!v(150018).has_icu_rules() && v(160000).has_icu_rules());
        assert!(!v(160014).has_builtin_locale() && v(170000).has_builtin_locale());
        assert!(!v(170010).has_file_copy_method() && v(180000).has_file_copy_method());
        assert_eq!(v(130023).to_string(), "13.23");
    }
}
