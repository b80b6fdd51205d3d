//! libpq's connection keywords that the runner honours, and what one
//! source (the command line, a connection string, the inventory, a
//! service, the environment) says of them: a [`Layer`]. Layers are merged
//! highest first by `crate::target`; this module only holds values and
//! where they came from, and parses nothing but keyword names.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// A connection keyword, by its libpq name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Keyword {
    Host,
    Port,
    User,
    Dbname,
    Password,
    Passfile,
    Sslmode,
    Sslrootcert,
    Sslcert,
    Sslkey,
    ConnectTimeout,
    Service,
}

impl Keyword {
    pub const ALL: [Keyword; 12] = [
        Keyword::Host,
        Keyword::Port,
        Keyword::User,
        Keyword::Dbname,
        Keyword::Password,
        Keyword::Passfile,
        Keyword::Sslmode,
        Keyword::Sslrootcert,
        Keyword::Sslcert,
        Keyword::Sslkey,
        Keyword::ConnectTimeout,
        Keyword::Service,
    ];

    /// The name in a connection string or a service file.
    pub fn name(self) -> &'static str {
        match self {
            Keyword::Host => "host",
            Keyword::Port => "port",
            Keyword::User => "user",
            Keyword::Dbname => "dbname",
            Keyword::Password => "password",
            Keyword::Passfile => "passfile",
            Keyword::Sslmode => "sslmode",
            Keyword::Sslrootcert => "sslrootcert",
            Keyword::Sslcert => "sslcert",
            Keyword::Sslkey => "sslkey",
            Keyword::ConnectTimeout => "connect_timeout",
            Keyword::Service => "service",
        }
    }

    /// The environment variable libpq reads for it.
    pub fn env_var(self) -> &'static str {
        match self {
            Keyword::Host => "PGHOST",
            Keyword::Port => "PGPORT",
            Keyword::User => "PGUSER",
            Keyword::Dbname => "PGDATABASE",
            Keyword::Password => "PGPASSWORD",
            Keyword::Passfile => "PGPASSFILE",
            Keyword::Sslmode => "PGSSLMODE",
            Keyword::Sslrootcert => "PGSSLROOTCERT",
            Keyword::Sslcert => "PGSSLCERT",
            Keyword::Sslkey => "PGSSLKEY",
            Keyword::ConnectTimeout => "PGCONNECT_TIMEOUT",
            Keyword::Service => "PGSERVICE",
        }
    }

    /// The keyword called `name`, or why it cannot be used.
    pub fn parse(name: &str) -> Result<Keyword, UnknownKeyword> {
        if let Some(found) = Keyword::ALL.into_iter().find(|k| k.name() == name) {
            return Ok(found);
        }
        // `ssl=true` is a URI's old spelling of `sslmode=require`; the
        // URI parser translates it before it gets here.
        if LIBPQ_ONLY.contains(&name) {
            Err(UnknownKeyword::NotHonoured(name.to_string()))
        } else {
            Err(UnknownKeyword::Unknown(name.to_string()))
        }
    }

    /// The supported names, for a help line.
    pub fn names() -> String {
        Keyword::ALL
            .iter()
            .map(|k| format!("`{}`", k.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Keywords libpq knows that the runner does not honour: it could not
/// hand them on to the tools a step starts through their environment, or
/// they would make those tools connect elsewhere than the runner does
/// (`hostaddr`, `target_session_attrs`). Refused rather than ignored.
const LIBPQ_ONLY: &[&str] = &[
    "hostaddr",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "client_encoding",
    "channel_binding",
    "requiressl",
    "sslcompression",
    "sslpassword",
    "sslcertmode",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "sslnegotiation",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "requirepeer",
    "require_auth",
    "gssencmode",
    "gsslib",
    "gssdelegation",
    "krbsrvname",
    "target_session_attrs",
    "load_balance_hosts",
    "replication",
];

/// A keyword that is not one of [`Keyword::ALL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnknownKeyword {
    /// libpq knows it; the runner does not honour it.
    NotHonoured(String),
    /// libpq does not know it either.
    Unknown(String),
}

impl fmt::Display for UnknownKeyword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnknownKeyword::NotHonoured(name) => write!(
                f,
                "`{name}` is a libpq setting plan-runner does not support: the tools a step starts could not be given it"
            ),
            UnknownKeyword::Unknown(name) => write!(f, "`{name}` is not a connection setting"),
        }
    }
}

/// Where a setting came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A flag, as the user typed it (`-p`, `--dbname`).
    Flag(&'static str),
    /// A keyword of the connection string given to `-d`.
    ConnString(&'static str),
    Inventory {
        target: String,
        field: &'static str,
    },
    /// A line of a `pg_service.conf`.
    Service {
        at: Box<ServiceLine>,
        key: &'static str,
    },
    Env(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "`{flag}`"),
            Origin::ConnString(key) => write!(f, "`{key}` in the connection string of `-d`"),
            Origin::Inventory { target, field } => {
                write!(f, "`{field}` of the inventory target `{target}`")
            }
            Origin::Service { at, key } => write!(
                f,
                "`{key}` of service `{}` ({}, line {})",
                at.service,
                at.file.display(),
                at.line
            ),
            Origin::Env(var) => write!(f, "`{var}`"),
        }
    }
}

/// Where in a service file a setting was read (boxed in [`Origin`], which
/// every connection error carries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceLine {
    pub service: String,
    pub file: PathBuf,
    pub line: usize,
}

/// One value and where it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Given {
    pub value: String,
    pub origin: Origin,
}

impl fmt::Debug for Given {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} from {}", self.value, self.origin)
    }
}

/// What one source says: a value per keyword, at most one each.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Layer {
    values: BTreeMap<Keyword, Given>,
}

impl Layer {
    /// Sets `keyword`; a later value replaces an earlier one, as when
    /// libpq reads a connection string.
    pub fn set(&mut self, keyword: Keyword, value: impl Into<String>, origin: Origin) {
        self.values.insert(
            keyword,
            Given {
                value: value.into(),
                origin,
            },
        );
    }

    pub fn get(&self, keyword: Keyword) -> Option<&Given> {
        self.values.get(&keyword)
    }

    pub fn iter(&self) -> impl Iterator<Item = (Keyword, &Given)> {
        self.values.iter().map(|(k, g)| (*k, g))
    }

    /// This layer, with `lower`'s values where this one has none.
    pub fn over(mut self, lower: &Layer) -> Layer {
        for (keyword, given) in &lower.values {
            self.values.entry(*keyword).or_insert_with(|| given.clone());
        }
        self
    }
}

impl fmt::Debug for Layer {
    /// Passwords as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (keyword, given) in &self.values {
            if *keyword == Keyword::Password {
                map.entry(&keyword.name(), &format_args!("*** from {}", given.origin));
            } else {
                map.entry(&keyword.name(), given);
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for keyword in Keyword::ALL {
            assert_eq!(Keyword::parse(keyword.name()), Ok(keyword));
        }
        assert_eq!(
            Keyword::parse("hostaddr"),
            Err(UnknownKeyword::NotHonoured("hostaddr".into()))
        );
        assert_eq!(
            Keyword::parse("hots"),
            Err(UnknownKeyword::Unknown("hots".into()))
        );
    }

    #[test]
    fn upper_layer_wins_and_debug_hides_passwords() {
        let mut upper = Layer::default();
        upper.set(Keyword::Port, "5433", Origin::Flag("-p"));
        let mut lower = Layer::default();
        lower.set(Keyword::Port, "5432", Origin::Env("PGPORT"));
        lower.set(Keyword::Password, "hunter2", Origin::Env("PGPASSWORD"));
        let merged = upper.over(&lower);
        assert_eq!(merged.get(Keyword::Port).unwrap().value, "5433");
        assert_eq!(merged.get(Keyword::Password).unwrap().value, "hunter2");
        let shown = format!("{merged:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("5433"), "{shown}");
    }
}
