//! What the runner reads from an OpenERP/Odoo database's module registry
//! (`ir_module_module`): whether the database is one, its release (the
//! `base` module's `latest_version`), the modules an update left
//! unsettled, and the installed modules' versions. Read-only: the ERP
//! server alone writes the registry.

use std::collections::BTreeMap;

use postgres::Client;

/// The release of an OpenERP/Odoo database, when the plan gives no
/// `release_query`.
pub const BASE_RELEASE_QUERY: &str =
    "select latest_version from ir_module_module where name = 'base'";

/// The states a module is left in by an update that did not finish it.
pub const PENDING_STATES: [&str; 3] = ["to install", "to upgrade", "to remove"];

/// Whether the database has the ERP's module registry, as every OpenERP
/// and Odoo release since 5.0 does (in the schema its server uses, the
/// first of the search path).
pub fn is_erp(client: &mut Client) -> Result<bool, postgres::Error> {
    Ok(client
        .query_one("select to_regclass('ir_module_module') is not null", &[])?
        .get(0))
}

/// The `base` module's `latest_version`; `None` when the database has no
/// registry or no `base` row.
pub fn base_release(client: &mut Client) -> Result<Option<String>, postgres::Error> {
    if !is_erp(client)? {
        return Ok(None);
    }
    Ok(client
        .query_opt(BASE_RELEASE_QUERY, &[])?
        .and_then(|row| row.get::<_, Option<String>>(0)))
}

/// A module an update left unsettled, with its state (`absent` for a
/// named module that is not in the registry at all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsettled {
    pub name: String,
    pub state: String,
}

/// The modules left `to install`, `to upgrade` or `to remove`, and those
/// of `named` that are not `installed`, by name. `None` when the database
/// has no registry.
pub fn unsettled(
    client: &mut Client,
    named: &[String],
) -> Result<Option<Vec<Unsettled>>, postgres::Error> {
    if !is_erp(client)? {
        return Ok(None);
    }
    let pending: Vec<String> = PENDING_STATES.iter().map(|s| s.to_string()).collect();
    let rows = client.query(
        "select name::text, state::text from ir_module_module where state::text = any($1)
         union
         select n.name, coalesce(m.state::text, 'absent')
           from unnest($2::text[]) as n(name)
           left join ir_module_module m on m.name::text = n.name
          where m.state is distinct from 'installed'
         order by 1",
        &[&pending, &named],
    )?;
    Ok(Some(
        rows.into_iter()
            .map(|row| Unsettled {
                name: row.get(0),
                state: row.get(1),
            })
            .collect(),
    ))
}

/// The installed modules and their `latest_version`; empty when the
/// database has no registry.
pub fn installed_versions(
    client: &mut Client,
) -> Result<BTreeMap<String, String>, postgres::Error> {
    if !is_erp(client)? {
        return Ok(BTreeMap::new());
    }
    Ok(client
        .query(
            "select name::text, coalesce(latest_version::text, '') from ir_module_module
              where state = 'installed'",
            &[],
        )?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// The modules whose version differs between `before` and `after`, with
/// both sides (`None`: not installed on that side), by name.
pub fn changed_versions(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<(String, Option<String>, Option<String>)> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|name| before.get(*name) != after.get(*name))
        .map(|name| {
            (
                name.clone(),
                before.get(name).cloned(),
                after.get(name).cloned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn changed_versions_names_upgrades_installs_and_removals() {
        let before = map(&[("base", "16.0.1.3"), ("sale", "16.0.1.1"), ("gone", "1.0")]);
        let after = map(&[
            ("base", "17.0.1.3"),
            ("sale", "16.0.1.1"),
            ("new", "17.0.1.0"),
        ]);
        assert_eq!(
            changed_versions(&before, &after),
            vec![
                (
                    "base".into(),
                    Some("16.0.1.3".into()),
                    Some("17.0.1.3".into())
                ),
                ("gone".into(), Some("1.0".into()), None),
                ("new".into(), None, Some("17.0.1.0".into())),
            ]
        );
    }
}
