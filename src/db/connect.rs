//! Opening connections to one server for one run: every connection
//! carries `application_name = plan-runner/<run id>`, so other runners and
//! `pg_stat_activity` can name it.

use postgres::{Client, NoTls};

use crate::db::conninfo::{Host, Target};

/// Makes the run's connections to databases of the target's server.
#[derive(Clone, Debug)]
pub struct Connector {
    target: Target,
    /// What a child process needs to reach the same server (PGHOST,
    /// PGPORT, PGUSER, PGSSLMODE, PGPASSFILE); never a password.
    child_env: Vec<(String, String)>,
}

impl Connector {
    pub fn new(target: Target, run_id: &str, child_env: Vec<(String, String)>) -> Self {
        Connector {
            target: target.for_run(run_id),
            child_env,
        }
    }

    pub fn connect(&self, database: &str) -> Result<Client, postgres::Error> {
        self.target.config_for(database).connect(NoTls)
    }

    /// Where the server is: whether its disk can be seen from here.
    pub fn host(&self) -> &Host {
        &self.target.host
    }

    /// The child environment for a process working on `database`.
    pub fn env_for(&self, database: &str) -> Vec<(String, String)> {
        let mut env = self.child_env.clone();
        env.retain(|(k, _)| k != "PGDATABASE");
        env.push(("PGDATABASE".into(), database.into()));
        env
    }
}
