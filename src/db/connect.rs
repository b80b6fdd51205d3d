//! Opening connections to one server: every connection of a run carries
//! `application_name = plan-runner/<run id>` so other runners can name it.

use std::time::Duration;

use postgres::{Client, Config, NoTls};

/// Makes connections to databases of one server.
#[derive(Clone, Debug)]
pub struct Connector {
    base: Config,
    /// The variables a child process needs to reach the same server
    /// (PGHOST, PGPORT, PGUSER, PGPASSFILE).
    pub child_env: Vec<(String, String)>,
}

impl Connector {
    pub fn new(mut base: Config, run_id: &str, child_env: Vec<(String, String)>) -> Self {
        base.application_name(&format!("plan-runner/{run_id}"));
        base.keepalives(true);
        base.keepalives_idle(Duration::from_secs(30));
        if base.get_connect_timeout().is_none() {
            base.connect_timeout(Duration::from_secs(10));
        }
        Connector { base, child_env }
    }

    pub fn connect(&self, database: &str) -> Result<Client, postgres::Error> {
        let mut config = self.base.clone();
        config.dbname(database);
        config.connect(NoTls)
    }

    /// The child environment for a process working on `database`.
    pub fn env_for(&self, database: &str) -> Vec<(String, String)> {
        let mut env = self.child_env.clone();
        env.retain(|(k, _)| k != "PGDATABASE");
        env.push(("PGDATABASE".into(), database.into()));
        env
    }
}
