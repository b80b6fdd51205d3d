//! The proof that a restore put a database back exactly: a fingerprint of
//! its content and of its database-level properties, taken when a backup is
//! taken and again after it is restored.
//!
//! Per user table (the runner's own `plan_runner` schema aside): the row
//! count and an order-independent SUM of `hash_record_extended(row, 0)`
//! (a sum, not xor: xor cancels duplicate rows). Tables whose columns have
//! no extended hash (json, xml, point, money...) are hashed through the
//! rows' text form. Sequences' values. A schema hash built from names and
//! definitions, never OIDs or column numbers, which a restore changes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use postgres::GenericClient;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::quote::quote_ident;

/// Schemas that are not the customer's data (a literal, so that the SQL
/// below can be assembled with `concat!`).
macro_rules! skip_schemas {
    () => {
        "n.nspname not in ('pg_catalog', 'information_schema', 'plan_runner') \
         and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'"
    };
}
const SKIP_SCHEMAS: &str = skip_schemas!();

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSum {
    pub rows: i64,
    /// The sum of the rows' hashes, as PostgreSQL's numeric text.
    pub sum: String,
    /// Hashed through the rows' text form (a column type without an
    /// extended hash).
    pub text_form: bool,
}

/// Properties of the database itself, which a copy must carry over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseProps {
    pub owner: String,
    /// `datacl` as text, its items sorted (granting the same privileges
    /// again may list them in another order); `None` means the default
    /// privileges.
    pub acl: Option<String>,
    /// Per-database settings (`ALTER DATABASE ... SET`), and per-role ones
    /// in this database, as `role:name=value` (role empty for all).
    pub settings: Vec<String>,
    pub connection_limit: i32,
    pub comment: Option<String>,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    /// The locale provider, from 15: `c` (libc), `i` (ICU), `b` (builtin,
    /// 17). `None` before 15, and in fingerprints recorded before the
    /// runner read it (the proof then leaves the three out).
    #[serde(default)]
    pub locale_provider: Option<String>,
    /// The ICU locale (`daticulocale`, 15 and 16) or the ICU or builtin
    /// one (`datlocale`, which replaced it in 17).
    #[serde(default)]
    pub locale: Option<String>,
    /// ICU tailoring rules (`daticurules`, 16).
    #[serde(default)]
    pub icu_rules: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub tables: BTreeMap<String, TableSum>,
    pub sequences: BTreeMap<String, String>,
    /// SHA-256 of the schema's description.
    pub schema: String,
    pub database: DatabaseProps,
}

/// How long it took and how much it read, for the report.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Cost {
    pub elapsed: Duration,
    pub bytes: i64,
}

/// Reads the database-level properties of `database` from any connection
/// to the same server (the catalog is shared).
pub fn database_props(
    client: &mut impl GenericClient,
    database: &str,
) -> Result<Option<DatabaseProps>, postgres::Error> {
    let row = client.query_opt(
        "select pg_get_userbyid(d.datdba),
                case when d.datacl is not null then
                  coalesce((select array_agg(a order by a::text) from unnest(d.datacl) a), '{}')::text
                end,
                d.datconnlimit,
                shobj_description(d.oid, 'pg_database'),
                pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text,
                coalesce((select array_agg(coalesce(r.rolname, '') || ':' || cfg
                                           order by coalesce(r.rolname, ''), cfg)
                          from pg_db_role_setting s
                          left join pg_roles r on r.oid = s.setrole
                          cross join lateral unnest(s.setconfig) cfg
                          where s.setdatabase = d.oid), '{}'),
                -- Columns that exist from some major on, read by name
                -- through the row's JSON so that one query fits 13 to 18.
                to_jsonb(d) ->> 'datlocprovider',
                coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale'),
                to_jsonb(d) ->> 'daticurules'
         from pg_database d where d.datname = $1",
        &[&database],
    )?;
    Ok(row.map(|row| DatabaseProps {
        owner: row.get(0),
        acl: row.get(1),
        connection_limit: row.get(2),
        comment: row.get(3),
        encoding: row.get(4),
        collate: row.get(5),
        ctype: row.get(6),
        settings: row.get(7),
        locale_provider: row.get(8),
        locale: row.get(9),
        icu_rules: row.get(10),
    }))
}

/// Fingerprints the content of the database `client` is connected to, in
/// whatever transaction the caller holds (a dump's fingerprint is taken in
/// the snapshot the dump reads). `props` come from `database_props`.
pub fn take(
    client: &mut impl GenericClient,
    props: DatabaseProps,
) -> Result<(Fingerprint, Cost), postgres::Error> {
    let started = Instant::now();
    let bytes: i64 = client
        .query_one("select pg_database_size(current_database())", &[])?
        .get(0);
    let tables = client.query(
        &format!(
            "select n.nspname::text, c.relname::text from pg_class c
             join pg_namespace n on n.oid = c.relnamespace
             where c.relkind = 'r' and c.relpersistence <> 't' and {SKIP_SCHEMAS}
             order by 1, 2"
        ),
        &[],
    )?;
    let mut sums = BTreeMap::new();
    for row in tables {
        let (schema, table): (String, String) = (row.get(0), row.get(1));
        let name = format!("{}.{}", quote_ident(&schema), quote_ident(&table));
        sums.insert(name.clone(), table_sum(client, &name)?);
    }
    let mut sequences = BTreeMap::new();
    for row in client.query(
        &format!(
            "select n.nspname::text, c.relname::text from pg_class c
             join pg_namespace n on n.oid = c.relnamespace
             where c.relkind = 'S' and {SKIP_SCHEMAS} order by 1, 2"
        ),
        &[],
    )? {
        let (schema, seq): (String, String) = (row.get(0), row.get(1));
        let name = format!("{}.{}", quote_ident(&schema), quote_ident(&seq));
        let value: String = client
            .query_one(
                &format!("select last_value::text || '/' || is_called::text from {name}"),
                &[],
            )?
            .get(0);
        sequences.insert(name, value);
    }
    let description: Option<String> = client.query_one(SCHEMA_DESCRIPTION, &[])?.get(0);
    let schema = hex::encode(Sha256::digest(description.unwrap_or_default().as_bytes()));
    Ok((
        Fingerprint {
            tables: sums,
            sequences,
            schema,
            database: props,
        },
        Cost {
            elapsed: started.elapsed(),
            bytes,
        },
    ))
}

fn table_sum(client: &mut impl GenericClient, name: &str) -> Result<TableSum, postgres::Error> {
    // `only`: rows of inheritance children are counted in their own table.
    let fast = format!(
        "select count(*), coalesce(sum(hash_record_extended(t.*, 0)), 0)::text from only {name} t"
    );
    let mut tx = client.transaction()?;
    match tx.query_one(&fast, &[]) {
        Ok(row) => {
            tx.commit()?;
            return Ok(TableSum {
                rows: row.get(0),
                sum: row.get(1),
                text_form: false,
            });
        }
        // 42883: a column type with no extended hash function (json, xml,
        // point, money), or a server without hash_record_extended (< 14).
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_FUNCTION) => {
            tx.rollback()?
        }
        Err(e) => return Err(e),
    }
    let slow = format!(
        "select count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)::text from only {name} t"
    );
    let row = client.query_one(&slow, &[])?;
    Ok(TableSum {
        rows: row.get(0),
        sum: row.get(1),
        text_form: true,
    })
}

/// One line per schema object, by name and definition, sorted.
const SCHEMA_DESCRIPTION: &str = concat!(
    "
select string_agg(line, E'\\n' order by line) from (
  select 'schema ' || n.nspname as line from pg_namespace n where ",
    skip_schemas!(),
    "
  union all
  select 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || case when a.attnotnull then ' not null' else '' end
         || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
  from pg_attribute a
  join pg_class c on c.oid = a.attrelid
  join pg_namespace n on n.oid = c.relnamespace
  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
  where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p', 'v', 'm', 'f') and c.relpersistence <> 't'
    and ",
    skip_schemas!(),
    "
  union all
  select 'constraint ' || n.nspname || '.' || c.relname || '.' || co.conname || ' ' || pg_get_constraintdef(co.oid)
  from pg_constraint co
  join pg_class c on c.oid = co.conrelid
  join pg_namespace n on n.oid = c.relnamespace
  where ",
    skip_schemas!(),
    "
  union all
  select 'index ' || n.nspname || '.' || c.relname || ' ' || pg_get_indexdef(i.indexrelid)
  from pg_index i
  join pg_class c on c.oid = i.indexrelid
  join pg_namespace n on n.oid = c.relnamespace
  where ",
    skip_schemas!(),
    "
  union all
  select 'view ' || n.nspname || '.' || c.relname || ' ' || pg_get_viewdef(c.oid)
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('v', 'm')
    and ",
    skip_schemas!(),
    "
  union all
  select 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || md5(coalesce(p.prosrc, ''))
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
  where ",
    skip_schemas!(),
    "
  union all
  select 'trigger ' || pg_get_triggerdef(t.oid)
  from pg_trigger t
  join pg_class c on c.oid = t.tgrelid
  join pg_namespace n on n.oid = c.relnamespace
  where not t.tgisinternal
    and ",
    skip_schemas!(),
    "
  union all
  select 'extension ' || e.extname || ' ' || e.extversion from pg_extension e
) s"
);

/// What differs between two fingerprints, in words; empty when equal.
pub fn differences(before: &Fingerprint, after: &Fingerprint) -> Vec<String> {
    let mut out = Vec::new();
    for (name, was) in &before.tables {
        match after.tables.get(name) {
            None => out.push(format!("table {name} is missing")),
            Some(now) if now.rows != was.rows => out.push(format!(
                "table {name}: {} rows before, {} after",
                was.rows, now.rows
            )),
            Some(now) if now.sum != was.sum => out.push(format!(
                "table {name}: same number of rows ({}), different content",
                now.rows
            )),
            Some(_) => {}
        }
    }
    for name in after
        .tables
        .keys()
        .filter(|n| !before.tables.contains_key(*n))
    {
        out.push(format!("table {name} was not there before"));
    }
    for (name, was) in &before.sequences {
        match after.sequences.get(name) {
            None => out.push(format!("sequence {name} is missing")),
            Some(now) if now != was => {
                out.push(format!("sequence {name}: {was} before, {now} after"))
            }
            Some(_) => {}
        }
    }
    for name in after
        .sequences
        .keys()
        .filter(|n| !before.sequences.contains_key(*n))
    {
        out.push(format!("sequence {name} was not there before"));
    }
    if before.schema != after.schema {
        out.push(
            "the schema (tables, columns, constraints, indexes, views, functions) differs".into(),
        );
    }
    let (b, a) = (&before.database, &after.database);
    let mut prop = |what: &str, was: String, now: String| {
        if was != now {
            out.push(format!("database {what}: {was} before, {now} after"));
        }
    };
    prop("owner", b.owner.clone(), a.owner.clone());
    prop("privileges", format!("{:?}", b.acl), format!("{:?}", a.acl));
    // Sorted here too: fingerprints recorded before the query sorted them
    // (`order by 1` in an aggregate orders by the constant 1, so they came
    // in the catalog's order, which a copy may change: seen on 13).
    let sorted = |settings: &[String]| {
        let mut settings = settings.to_vec();
        settings.sort();
        format!("{settings:?}")
    };
    prop("settings", sorted(&b.settings), sorted(&a.settings));
    prop(
        "connection limit",
        b.connection_limit.to_string(),
        a.connection_limit.to_string(),
    );
    prop(
        "comment",
        format!("{:?}", b.comment),
        format!("{:?}", a.comment),
    );
    prop("encoding", b.encoding.clone(), a.encoding.clone());
    prop(
        "collation",
        format!("{}/{}", b.collate, b.ctype),
        format!("{}/{}", a.collate, a.ctype),
    );
    if b.locale_provider.is_some() {
        prop(
            "locale",
            locale_words(b.locale_provider.as_deref(), b.locale.as_deref()),
            locale_words(a.locale_provider.as_deref(), a.locale.as_deref()),
        );
        prop(
            "ICU rules",
            format!("{:?}", b.icu_rules),
            format!("{:?}", a.icu_rules),
        );
    }
    out
}

/// `ICU und-x-icu`, `builtin C.UTF-8`, `libc`.
fn locale_words(provider: Option<&str>, locale: Option<&str>) -> String {
    let provider = match provider {
        Some("c") => "libc",
        Some("i") => "ICU",
        Some("b") => "builtin",
        Some(other) => other,
        None => "unknown",
    };
    match locale {
        Some(locale) => format!("{provider} {locale}"),
        None => provider.to_string(),
    }
}
