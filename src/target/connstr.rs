//! The connection strings `-d` takes, read as libpq reads them: a URI
//! (`postgresql://user@host:5433/db?sslmode=verify-full`, or
//! `postgres://`) or a `key=value` list (`host=db dbname='my db'`). What
//! it reads becomes a [`Layer`]; which value wins is `crate::target`'s
//! business. Like [`recognized`], the rule for telling a connection string
//! from a database name is libpq's: a URI prefix, or an `=` anywhere.

use std::fmt;

use super::params::{Keyword, Layer, Origin, UnknownKeyword};

const URI_PREFIXES: [&str; 2] = ["postgresql://", "postgres://"];

/// Whether libpq would read `text` as a connection string rather than a
/// database name.
pub fn recognized(text: &str) -> bool {
    URI_PREFIXES.iter().any(|p| text.starts_with(p)) || text.contains('=')
}

/// Why a connection string cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnStringError {
    /// `key=value`: a key with no `=` after it.
    MissingEquals(String),
    /// A value opened with `'` and never closed.
    Unterminated,
    Keyword(UnknownKeyword),
    /// The URI is malformed; says where.
    Uri(String),
    /// Several hosts (`a,b` or `host1:5432,host2`), which libpq would try
    /// in turn.
    SeveralHosts,
}

impl fmt::Display for ConnStringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnStringError::MissingEquals(key) => write!(f, "missing `=` after `{key}`"),
            ConnStringError::Unterminated => f.write_str("a quoted value is not closed with `'`"),
            ConnStringError::Keyword(error) => error.fmt(f),
            ConnStringError::Uri(what) => f.write_str(what),
            ConnStringError::SeveralHosts => f.write_str(
                "it names several hosts; plan-runner connects to one server, and so must every tool a step starts",
            ),
        }
    }
}

/// Reads a URI or a `key=value` connection string.
pub fn parse(text: &str) -> Result<Layer, ConnStringError> {
    let pairs = match URI_PREFIXES.iter().find_map(|p| text.strip_prefix(p)) {
        Some(rest) => uri_pairs(rest)?,
        None => key_value_pairs(text)?,
    };
    let mut layer = Layer::default();
    for (key, value) in pairs {
        let keyword = Keyword::parse(&key).map_err(ConnStringError::Keyword)?;
        if keyword == Keyword::Host && value.contains(',') {
            return Err(ConnStringError::SeveralHosts);
        }
        layer.set(keyword, value, Origin::ConnString(keyword.name()));
    }
    Ok(layer)
}

/// `key=value ...` as libpq's `conninfo_parse` reads it: blanks around
/// `=` allowed; a value is either bare (up to a blank) or in single
/// quotes; in both, a backslash takes the next character literally.
fn key_value_pairs(text: &str) -> Result<Vec<(String, String)>, ConnStringError> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(ConnStringError::MissingEquals(key));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(ConnStringError::Unterminated),
                    Some('\\') => {
                        if let Some(c) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        value.push(next);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// The part of a URI after `postgresql://`, as libpq's
/// `conninfo_uri_parse_options` reads it:
/// `[user[:password]@][host][:port][/dbname][?key=value&...]`, each part
/// percent-decoded, a host in `[]` for an IPv6 address, `ssl=true` for
/// `sslmode=require`.
fn uri_pairs(rest: &str) -> Result<Vec<(String, String)>, ConnStringError> {
    let mut pairs = Vec::new();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let hostspec = match authority.split_once('@') {
        Some((userspec, hostspec)) => {
            let (user, password) = match userspec.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userspec, None),
            };
            if !user.is_empty() {
                pairs.push(("user".to_string(), decode(user)?));
            }
            if let Some(password) = password {
                pairs.push(("password".to_string(), decode(password)?));
            }
            hostspec
        }
        None => authority,
    };
    if hostspec.contains(',') {
        return Err(ConnStringError::SeveralHosts);
    }
    let (host, port) = if let Some(bracketed) = hostspec.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(ConnStringError::Uri(format!(
                "the IPv6 address in `[{bracketed}` is not closed with `]`"
            )));
        };
        if host.is_empty() {
            return Err(ConnStringError::Uri(
                "the IPv6 host address in `[]` is empty".to_string(),
            ));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => {
                    return Err(ConnStringError::Uri(format!(
                        "unexpected `{after}` after the IPv6 address `[{host}]`"
                    )));
                }
            },
        }
    } else {
        match hostspec.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostspec, None),
        }
    };
    if !host.is_empty() {
        pairs.push(("host".to_string(), decode(host)?));
    }
    if let Some(port) = port.filter(|p| !p.is_empty()) {
        pairs.push(("port".to_string(), decode(port)?));
    }
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    if let Some(dbname) = path.strip_prefix('/').filter(|d| !d.is_empty()) {
        pairs.push(("dbname".to_string(), decode(dbname)?));
    }
    for param in query.into_iter().flat_map(|q| q.split('&')) {
        if param.is_empty() {
            continue;
        }
        let Some((key, value)) = param.split_once('=') else {
            return Err(ConnStringError::Uri(format!(
                "the query parameter `{param}` has no `=`"
            )));
        };
        let (key, value) = (decode(key)?, decode(value)?);
        // libpq's spelling from before `sslmode`, still accepted in URIs.
        if key == "ssl" {
            if value != "true" {
                return Err(ConnStringError::Uri(format!(
                    "`ssl={value}`: only `ssl=true` (which means `sslmode=require`) is accepted"
                )));
            }
            pairs.push(("sslmode".to_string(), "require".to_string()));
        } else {
            pairs.push((key, value));
        }
    }
    Ok(pairs)
}

/// Percent-decoding, refusing `%00` and malformed escapes as libpq does.
fn decode(text: &str) -> Result<String, ConnStringError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| {
                    ConnStringError::Uri(format!("invalid percent-encoded token in `{text}`"))
                })?;
            if byte == 0 {
                return Err(ConnStringError::Uri(format!(
                    "forbidden value `%00` in `{text}`"
                )));
            }
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ConnStringError::Uri(format!("`{text}` does not decode to UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(&'static str, String)> {
        parse(text)
            .unwrap()
            .iter()
            .map(|(k, g)| (k.name(), g.value.clone()))
            .collect()
    }

    fn v(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut out: Vec<_> = pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        out.sort_by_key(|(k, _)| Keyword::parse(k).unwrap());
        out
    }

    #[test]
    fn recognizes_what_libpq_recognizes() {
        assert!(recognized("postgresql://h/db"));
        assert!(recognized("postgres://"));
        assert!(recognized("dbname=acme"));
        assert!(!recognized("acme"));
        assert!(!recognized("postgresql:/acme"));
    }

    #[test]
    fn key_values_follow_libpq_quoting() {
        assert_eq!(
            values(r"host = db.example  port=5433 dbname='my \'db\'' user=a\ b"),
            v(&[
                ("host", "db.example"),
                ("port", "5433"),
                ("dbname", "my 'db'"),
                ("user", "a b"),
            ])
        );
        // As in libpq, a blank after `=` is skipped, so the next word is
        // the value.
        assert_eq!(values("host= port=5"), v(&[("host", "port=5")]));
        assert_eq!(values("dbname=''"), v(&[("dbname", "")]));
        // A later value wins.
        assert_eq!(values("port=1 port=2"), v(&[("port", "2")]));
        assert_eq!(
            parse("host"),
            Err(ConnStringError::MissingEquals("host".into()))
        );
        assert_eq!(parse("dbname='x"), Err(ConnStringError::Unterminated));
    }

    #[test]
    fn unknown_and_unhonoured_keywords_are_refused() {
        assert!(matches!(
            parse("hostaddr=10.0.0.1"),
            Err(ConnStringError::Keyword(UnknownKeyword::NotHonoured(_)))
        ));
        assert!(matches!(
            parse("dbnmae=x"),
            Err(ConnStringError::Keyword(UnknownKeyword::Unknown(_)))
        ));
        assert_eq!(parse("host=a,b"), Err(ConnStringError::SeveralHosts));
    }

    #[test]
    fn uris_follow_libpq() {
        assert_eq!(
            values("postgresql://erp:s%40cret@db.example:5433/acme?sslmode=verify-full"),
            v(&[
                ("user", "erp"),
                ("password", "s@cret"),
                ("host", "db.example"),
                ("port", "5433"),
                ("dbname", "acme"),
                ("sslmode", "verify-full"),
            ])
        );
        assert_eq!(
            values("postgres://[::1]:6000/x"),
            v(&[("host", "::1"), ("port", "6000"), ("dbname", "x")])
        );
        assert_eq!(
            values("postgresql://%2Fvar%2Frun%2Fpostgresql/acme"),
            v(&[("host", "/var/run/postgresql"), ("dbname", "acme")])
        );
        assert_eq!(
            values("postgresql:///acme?host=/tmp&ssl=true"),
            v(&[("host", "/tmp"), ("dbname", "acme"), ("sslmode", "require")])
        );
        assert_eq!(values("postgresql://"), v(&[]));
        assert_eq!(
            parse("postgresql://a,b/x"),
            Err(ConnStringError::SeveralHosts)
        );
        assert!(matches!(
            parse("postgresql://h/x?sslmode"),
            Err(ConnStringError::Uri(_))
        ));
        assert!(matches!(
            parse("postgresql://h/x%zz"),
            Err(ConnStringError::Uri(_))
        ));
        assert!(matches!(
            parse("postgresql://h/x%00"),
            Err(ConnStringError::Uri(_))
        ));
        assert!(matches!(
            parse("postgresql://[::1/x"),
            Err(ConnStringError::Uri(_))
        ));
    }
}
