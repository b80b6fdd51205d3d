//! What a run needs its role to be allowed, against what the server
//! grants it: read from the catalogs of the maintenance database, before
//! anything runs. `--dry-run` lists every need; `apply` refuses on a
//! missing one that would make the run fail half-way. Each missing need
//! comes with the one line a superuser runs to grant it. It decides
//! nothing about what runs: the caller says what the plan needs.

use postgres::Client;

use crate::db::runs;

/// One thing the run needs its role to be allowed.
#[derive(Clone, Debug)]
pub struct Need {
    /// What the role may do, and why the run needs it.
    pub what: String,
    pub granted: bool,
    /// The line that grants it, to copy (shown when not granted).
    pub grant: String,
    /// Without it the run would fail after changing something: `apply`
    /// refuses before it starts. When `false`, the run goes on with less
    /// (`limit` says what).
    pub blocks: bool,
    /// What the run does without it, for a need that does not block.
    pub limit: String,
}

/// What a run asks of its role.
pub struct Wanted<'a> {
    /// The databases backup steps copy (the snapshot, the restore and the
    /// renames of a rollback).
    pub backed_up: &'a [String],
    /// A snapshot backup's room is checked from this machine (the server
    /// is local): the data directory must be readable.
    pub snapshot_room: bool,
    /// `--terminate-connections` was given.
    pub terminate: bool,
}

/// The needs of a run, from a session on the maintenance database.
pub fn needs(maintenance: &mut Client, wanted: &Wanted<'_>) -> Result<Vec<Need>, postgres::Error> {
    let row = maintenance.query_one(
        "select quote_ident(current_user), rolsuper, rolcreatedb,
                pg_has_role(current_user, 'pg_signal_backend', 'MEMBER'),
                pg_has_role(current_user, 'pg_read_all_settings', 'MEMBER'),
                quote_ident(current_database())
         from pg_roles where rolname = current_user",
        &[],
    )?;
    let (user, superuser): (String, bool) = (row.get(0), row.get(1));
    let (create_db, signal, settings): (bool, bool, bool) = (row.get(2), row.get(3), row.get(4));
    let maintenance_db: String = row.get(5);
    let mut needs = Vec::new();
    let record = runs::access(maintenance)?;
    needs.push(Need {
        what: format!(
            "{} the runs record `plan_runner.runs` in `{maintenance_db}` (every runner sees an unfinished run there)",
            if record == runs::Access::Creatable {
                "may create"
            } else {
                "may write its rows of"
            }
        ),
        granted: !matches!(record, runs::Access::Missing { .. }),
        grant: match record {
            runs::Access::Missing { grant } => grant,
            _ => String::new(),
        },
        blocks: true,
        limit: String::new(),
    });
    if !wanted.backed_up.is_empty() {
        needs.push(Need {
            what: "may create databases (CREATEDB): a backup's copy, and the database a rollback renames into place".into(),
            granted: superuser || create_db,
            grant: format!("ALTER ROLE {user} CREATEDB;"),
            blocks: true,
            limit: String::new(),
        });
    }
    let mut seen = Vec::new();
    for database in wanted.backed_up {
        if seen.contains(&database) {
            continue;
        }
        seen.push(database);
        // A database that does not exist fails its backup step, which
        // says so; the need is for one that does.
        let owner = maintenance.query_opt(
            "select pg_has_role(current_user, datdba, 'USAGE'), quote_ident(datname)
             from pg_database where datname = $1",
            &[database],
        )?;
        let Some(owner) = owner else { continue };
        let quoted: String = owner.get(1);
        needs.push(Need {
            what: format!(
                "owns `{database}`: a snapshot copies it, and a rollback renames it aside and drops it"
            ),
            granted: superuser || owner.get::<_, bool>(0),
            grant: format!("ALTER DATABASE {quoted} OWNER TO {user};"),
            blocks: true,
            limit: String::new(),
        });
    }
    needs.push(Need {
        what: "may end other roles' sessions (pg_signal_backend): --terminate-connections, and a rollback's sessions on the target".into(),
        granted: superuser || signal,
        grant: format!("GRANT pg_signal_backend TO {user};"),
        blocks: false,
        limit: if wanted.terminate {
            "only this role's own sessions can be ended".into()
        } else {
            "only this role's own sessions can be ended (needed only with --terminate-connections)".into()
        },
    });
    if wanted.snapshot_room {
        needs.push(Need {
            what: "may read the server's data directory (pg_read_all_settings): a snapshot's free space is checked there".into(),
            granted: superuser || settings,
            grant: format!("GRANT pg_read_all_settings TO {user};"),
            blocks: false,
            limit: "the snapshot's free space is not checked".into(),
        });
    }
    Ok(needs)
}

/// The needs as lines: one per need, with the line to copy under a
/// missing one. `--dry-run` shows them all; a refusal, the missing.
pub fn describe(needs: &[Need]) -> String {
    let mut out = String::new();
    for need in needs {
        let status = if need.granted {
            "present"
        } else if need.blocks {
            "MISSING"
        } else {
            "not granted"
        };
        out.push_str(&format!("  {status}: {}\n", need.what));
        if !need.granted {
            if !need.blocks {
                out.push_str(&format!("    without it: {}\n", need.limit));
            }
            out.push_str(&format!(
                "    to grant it, as a superuser: {}\n",
                need.grant
            ));
        }
    }
    out
}

/// The missing needs that make `apply` refuse, described; `None` when
/// there are none.
pub fn refusal(user: &str, needs: &[Need]) -> Option<String> {
    let missing: Vec<Need> = needs
        .iter()
        .filter(|n| n.blocks && !n.granted)
        .cloned()
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "the role `{user}` lacks what this run needs; nothing was changed\n{}",
            describe(&missing).trim_end()
        )
    })
}

/// The refusal when the server would not let `user` connect to the
/// maintenance database `database` (which takes CONNECT on it; every role
/// has it unless it was revoked from PUBLIC); `None` for another error.
pub fn connect_refusal(e: &postgres::Error, user: &str, database: &str) -> Option<String> {
    (e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)).then(|| {
        let need = Need {
            what: format!(
                "may connect to `{database}`, the maintenance database (the lock and the runs record live there)"
            ),
            granted: false,
            grant: format!(
                "GRANT CONNECT ON DATABASE {} TO {};",
                crate::quote::quote_ident(database),
                crate::quote::quote_ident(user)
            ),
            blocks: true,
            limit: String::new(),
        };
        refusal(user, &[need]).unwrap_or_default()
    })
}

/// The role of the session, as the messages name it.
pub fn user(client: &mut Client) -> Result<String, postgres::Error> {
    Ok(client.query_one("select current_user::text", &[])?.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(what: &str, granted: bool, blocks: bool) -> Need {
        Need {
            what: what.into(),
            granted,
            grant: format!("GRANT {what};"),
            blocks,
            limit: "less".into(),
        }
    }

    #[test]
    fn a_missing_need_shows_its_line_to_copy_and_a_present_one_does_not() {
        let text = describe(&[need("a", true, true), need("b", false, true)]);
        assert_eq!(
            text,
            "  present: a\n  MISSING: b\n    to grant it, as a superuser: GRANT b;\n"
        );
    }

    #[test]
    fn only_a_missing_blocking_need_refuses() {
        let limited = [need("a", true, true), need("settings", false, false)];
        assert!(refusal("odoo", &limited).is_none());
        assert!(describe(&limited).contains("not granted: settings\n    without it: less"));
        let blocked = [need("a", true, true), need("createdb", false, true)];
        let refusal = refusal("odoo", &blocked).expect("refused");
        assert!(refusal.starts_with("the role `odoo` lacks"), "{refusal}");
        assert!(refusal.contains("GRANT createdb;"), "{refusal}");
        assert!(
            !refusal.contains("present"),
            "only what is missing: {refusal}"
        );
    }
}
