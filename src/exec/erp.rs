//! What the runner checks once an ERP step's command has ended: after an
//! `update`, that the modules settled; after a `start` with `ready`, that
//! the server answers; after a `stop`, that the server's sessions on the
//! target are gone. It only reads (the registry, `pg_stat_activity`, a
//! socket); it never changes the database or the server.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use postgres::Client;

use crate::db::odoo::{self, Unsettled};
use crate::db::sessions::{self, Session};
use crate::exec::process::Stopper;
use crate::plan::{Modules, Ready};

/// How long `ready` is waited for when the step gives no `timeout`.
pub const DEFAULT_READY_WAIT: Duration = Duration::from_secs(60);

/// How often a server that is not ready yet is asked again.
const POLL: Duration = Duration::from_millis(200);

/// The modules named in an update that must end `installed`: those it
/// upgrades by name and those it installs.
pub fn named_modules(modules: &Modules, install: &[String]) -> Vec<String> {
    let mut named = match modules {
        Modules::All => Vec::new(),
        Modules::Named(names) => names.clone(),
    };
    named.extend(install.iter().cloned());
    named
}

/// `Err` names the modules an update left unsettled, with their states.
/// A database with no module registry has nothing to settle.
pub fn modules_settled(client: &mut Client, named: &[String]) -> Result<(), String> {
    match odoo::unsettled(client, named) {
        Ok(None) => Ok(()),
        Ok(Some(left)) if left.is_empty() => Ok(()),
        Ok(Some(left)) => Err(unsettled_message(&left)),
        Err(e) => Err(format!(
            "cannot read the module registry: {}",
            crate::exec::sql::SqlError::from(e).describe()
        )),
    }
}

fn unsettled_message(left: &[Unsettled]) -> String {
    let shown: Vec<String> = left
        .iter()
        .take(20)
        .map(|m| format!("`{}` ({})", m.name, m.state))
        .collect();
    let more = left.len().saturating_sub(shown.len());
    format!(
        "the update left {} module{} unsettled: {}{}",
        left.len(),
        if left.len() == 1 { "" } else { "s" },
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

/// Waits until `ready` answers, until `deadline`; `Err` says what it last
/// answered. `stopper` ends the wait at once (a signal, a failed sibling).
pub fn wait_ready(ready: &Ready, deadline: Instant, stopper: &Stopper) -> Result<(), ReadyError> {
    let started = Instant::now();
    loop {
        let last = match probe(ready) {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if stopper.is_stopped() {
            return Err(ReadyError::Interrupted);
        }
        if Instant::now() + POLL > deadline {
            return Err(ReadyError::NotReady(format!(
                "the server was not ready at {ready} after {}: {last}",
                crate::units::duration(started.elapsed())
            )));
        }
        std::thread::sleep(POLL);
    }
}

#[derive(Debug)]
pub enum ReadyError {
    NotReady(String),
    Interrupted,
}

/// One attempt: a connection accepted, and for HTTP a 2xx status line.
fn probe(ready: &Ready) -> Result<(), String> {
    let (host, port) = match ready {
        Ready::Http { host, port, .. } | Ready::Tcp { host, port } => (host, *port),
        // A plan that runs has every value: never asked, but not a panic.
        Ready::Later(text) => return Err(format!("`{text}` is not known until the plan runs")),
    };
    // Every address of the name in turn: `localhost` may give ::1 first
    // to a server that listens on 127.0.0.1 only.
    let mut last = format!("{host} has no address");
    let mut connected = None;
    for addr in (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
    {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(stream) => {
                connected = Some(stream);
                break;
            }
            Err(e) => last = format!("connection to {addr}: {e}"),
        }
    }
    let Some(mut stream) = connected else {
        return Err(last);
    };
    let Ready::Http { path, .. } = ready else {
        return Ok(());
    };
    let timeout = Some(Duration::from_secs(5));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| e.to_string())?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("request: {e}"))?;
    // The status line is all that is read: a health page's body is not
    // the runner's business.
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() {
        match stream.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(format!("answer: {e}")),
        }
        if head[..len].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&head[..len]);
    let line = line.lines().next().unwrap_or("").trim();
    let status = line.split_whitespace().nth(1).unwrap_or("");
    if line.starts_with("HTTP/") && status.starts_with('2') && status.len() == 3 {
        Ok(())
    } else if line.is_empty() {
        Err("no answer".into())
    } else {
        Err(format!("it answered `{line}`"))
    }
}

/// Waits up to `wait` for the sessions on `database` other than the
/// runner's own to end; returns those still there.
pub fn wait_sessions_gone(
    maintenance: &mut Client,
    database: &str,
    wait: Duration,
    stopper: &Stopper,
) -> Result<Vec<Session>, postgres::Error> {
    let deadline = Instant::now() + wait;
    loop {
        let left: Vec<Session> = sessions::list(maintenance, database)?
            .into_iter()
            .filter(|s| {
                !s.application
                    .as_deref()
                    .is_some_and(|a| a.starts_with("plan-runner/"))
            })
            .collect();
        if left.is_empty() || Instant::now() >= deadline || stopper.is_stopped() {
            return Ok(left);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_each_unsettled_module_with_its_state() {
        let left = [
            Unsettled {
                name: "sale".into(),
                state: "to upgrade".into(),
            },
            Unsettled {
                name: "sale_stock".into(),
                state: "uninstalled".into(),
            },
        ];
        assert_eq!(
            unsettled_message(&left),
            "the update left 2 modules unsettled: `sale` (to upgrade), `sale_stock` (uninstalled)"
        );
    }

    #[test]
    fn named_modules_are_the_upgraded_and_the_installed() {
        let named = named_modules(
            &Modules::Named(vec!["sale".into()]),
            &["sale_stock".to_string()],
        );
        assert_eq!(named, ["sale", "sale_stock"]);
        assert_eq!(named_modules(&Modules::All, &[]), Vec::<String>::new());
    }

    #[test]
    fn a_closed_port_is_not_ready_in_time() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let ready = Ready::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let result = wait_ready(
            &ready,
            Instant::now() + Duration::from_millis(500),
            &Stopper::new(),
        );
        assert!(matches!(result, Err(ReadyError::NotReady(_))), "{result:?}");
    }
}
