//! TLS against real servers: a cluster of its own with `ssl = on` and
//! certificates made here (rcgen), and the shared cluster, which has no
//! TLS. `verify-full` connects and a step's `psql` connects with the same
//! settings; a wrong host name fails naming it; `require` against a server
//! without TLS fails as libpq does; an open key is refused with its path.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use plan_runner::cluster::Cluster;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tempfile::TempDir;

use crate::support::{self, plan, shared_cluster, start_cluster, test_options};

/// A server with TLS on, and the files a client needs.
struct TlsServer {
    cluster: Cluster,
    /// `ca.crt` (the authority that signed the server's certificate, for
    /// `sslrootcert`), `client.crt` and `client.key` (signed by it too).
    client: TempDir,
}

impl TlsServer {
    fn ca(&self) -> PathBuf {
        self.client.path().join("ca.crt")
    }

    /// A `-d` connection string for `database` through `host`.
    fn conninfo(&self, host: &str, database: &str, extra: &str) -> String {
        format!(
            "host={host} port={} user={} dbname={database} sslrootcert={} {extra}",
            self.cluster.port(),
            self.cluster.user(),
            self.ca().display()
        )
    }
}

/// The certificate of an authority, and that authority.
fn authority(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("a CA key");
    let cert = params.self_signed(&key).expect("the CA certificate");
    (cert.pem(), Issuer::new(params, key))
}

/// A certificate for `names` signed by `issuer`, with its key.
fn signed(names: &[&str], issuer: &Issuer<'static, KeyPair>) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("certificate parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, "postgres");
    let key = KeyPair::generate().expect("a key");
    let cert = params
        .signed_by(&key, issuer)
        .expect("a signed certificate");
    (cert.pem(), key.serialize_pem())
}

fn write_private(path: &Path, text: &str, owner: Option<(u32, u32)>) {
    fs::write(path, text).expect("writing a certificate file");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to the server's user");
    }
}

/// The TLS server shared by this file's tests, started on first use.
fn tls_server() -> &'static TlsServer {
    static SERVER: OnceLock<TlsServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let cluster = start_cluster(test_options());
        let (ca_pem, ca) = authority("plan-runner test CA");
        // For `localhost` only: 127.0.0.1 is the wrong name.
        let (server_crt, server_key) = signed(&["localhost"], &ca);
        let (client_crt, client_key) = signed(&["postgres"], &ca);
        // The server reads its files as its own user (as root, the
        // cluster runs as another account, which owns its folder), and
        // refuses a key others may read.
        let folder = cluster.folder();
        let meta = fs::metadata(folder).expect("the cluster's folder");
        let owner = Some((meta.uid(), meta.gid()));
        write_private(&folder.join("server.crt"), &server_crt, owner);
        write_private(&folder.join("server.key"), &server_key, owner);
        write_private(&folder.join("ca.crt"), &ca_pem, owner);
        let client = tempfile::Builder::new()
            .prefix("tls-test-client-")
            .tempdir()
            .expect("a folder for the client's files");
        write_private(&client.path().join("ca.crt"), &ca_pem, None);
        write_private(&client.path().join("client.crt"), &client_crt, None);
        write_private(&client.path().join("client.key"), &client_key, None);

        // `certdb` admits only a client certificate (its CN is the role).
        let hba = folder.join("data/pg_hba.conf");
        let rules = fs::read_to_string(&hba).expect("pg_hba.conf");
        fs::write(
            &hba,
            format!(
                "hostssl certdb all 127.0.0.1/32 cert\nhostssl certdb all ::1/128 cert\n{rules}"
            ),
        )
        .expect("writing pg_hba.conf");
        cluster.create_database("certdb").expect("certdb");
        let mut admin = cluster.connect("postgres").expect("the new cluster");
        for sql in [
            format!(
                "alter system set ssl_cert_file = '{}'",
                folder.join("server.crt").display()
            ),
            format!(
                "alter system set ssl_key_file = '{}'",
                folder.join("server.key").display()
            ),
            format!(
                "alter system set ssl_ca_file = '{}'",
                folder.join("ca.crt").display()
            ),
            "alter system set ssl = on".to_string(),
            "select pg_reload_conf()".to_string(),
        ] {
            admin.batch_execute(&sql).expect(&sql);
        }
        // The postmaster reloads in its own time; a bad key or
        // certificate leaves `ssl` off and says why in the log.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let on = cluster
                .connect("postgres")
                .ok()
                .and_then(|mut c| c.query_one("show ssl", &[]).ok())
                .map(|row| row.get::<_, String>(0))
                .unwrap_or_default();
            if on == "on" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the test server did not turn TLS on; its log:\n{}",
                fs::read_to_string(cluster.log_path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        TlsServer { cluster, client }
    })
}

/// Exit code, stdout, and stderr with miette's wrapping undone (its lines
/// joined, the `│` gutter dropped), so a message can be searched whole.
fn output(cmd: &mut assert_cmd::Command) -> (Option<i32>, String, String) {
    let out = cmd.output().expect("plan runs");
    let err = String::from_utf8_lossy(&out.stderr)
        .split_whitespace()
        .filter(|word| *word != "│")
        .collect::<Vec<_>>()
        .join(" ");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

#[test]
fn verify_full_connects_and_a_step_connects_the_same_way() {
    let server = tls_server();
    server
        .cluster
        .create_database("tls_apply")
        .expect("a database for the plan");
    let psql = server.cluster.bin("psql");
    // The runner's own connection, then a step's psql, must each be
    // encrypted: the check's query, and a division by zero otherwise.
    let plan_text = format!(
        r#"plan "tls" {{
  from = "1.0"
  to   = "2.0"
}}

check runner_uses_tls {{
  sql    = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
  expect = "t"
}}

check step_uses_tls {{
  after = runner_uses_tls
  run   = "{} -X -A -t -c 'select 1 / ssl::int from pg_stat_ssl where pid = pg_backend_pid()'"
}}
"#,
        psql.display()
    );
    let folder = support::apply::PlanFolder::new(&plan_text);
    let state = support::apply::state_dir();
    let (code, _, err) = output(
        plan()
            .arg("apply")
            .arg(folder.plan())
            .arg("-d")
            .arg(server.conninfo("localhost", "tls_apply", "sslmode=verify-full"))
            .arg("--state-dir")
            .arg(state.path())
            .args(["--assume-release", "1.0"]),
    );
    assert_eq!(code, Some(0), "plan apply over verify-full:\n{err}");
}

#[test]
fn a_wrong_host_name_fails_naming_it() {
    let server = tls_server();
    let status = |extra: &str| {
        output(
            plan()
                .arg("status")
                .arg("-d")
                .arg(server.conninfo("127.0.0.1", "postgres", extra)),
        )
    };
    let (code, _, err) = status("sslmode=verify-full");
    assert_eq!(code, Some(2), "verify-full to 127.0.0.1:\n{err}");
    assert!(err.contains("plan::database"), "{err}");
    assert!(
        err.contains("not valid for name \"127.0.0.1\"") && err.contains("localhost"),
        "the message names the host and the certificate's name:\n{err}"
    );
    // verify-ca checks the chain only: the same address connects.
    let (code, _, err) = status("sslmode=verify-ca");
    assert_eq!(code, Some(0), "verify-ca to 127.0.0.1:\n{err}");
    // A root certificate that did not sign the server's: refused.
    let other = tempfile::tempdir().expect("a folder");
    let (pem, _) = authority("another CA");
    write_private(&other.path().join("other.crt"), &pem, None);
    let (code, _, err) = output(plan().arg("status").arg("-d").arg(format!(
        "host=localhost port={} user=postgres dbname=postgres sslmode=verify-ca sslrootcert={}",
        server.cluster.port(),
        other.path().join("other.crt").display()
    )));
    assert_eq!(code, Some(2), "verify-ca with another CA:\n{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[test]
fn a_client_certificate_is_presented() {
    let server = tls_server();
    let dir = server.client.path();
    let status = |extra: &str| {
        output(
            plan()
                .arg("status")
                .arg("-d")
                .arg(server.conninfo("localhost", "certdb", extra)),
        )
    };
    let (code, _, err) = status(&format!(
        "sslmode=verify-full sslcert={} sslkey={}",
        dir.join("client.crt").display(),
        dir.join("client.key").display()
    ));
    assert_eq!(code, Some(0), "status with a client certificate:\n{err}");
    // Without it, `cert` authentication turns the runner away.
    let (code, _, err) = status("sslmode=verify-full");
    assert_eq!(code, Some(2), "status without a client certificate:\n{err}");
    assert!(err.contains("certificate"), "{err}");
}

#[test]
fn require_against_a_server_without_tls_fails_as_libpq_does() {
    let cluster = shared_cluster();
    let conninfo = format!(
        "host={} port={} user={} dbname=postgres",
        cluster.tcp_host(),
        cluster.port(),
        cluster.user()
    );
    let (code, _, err) = output(
        plan()
            .arg("status")
            .arg("-d")
            .arg(format!("{conninfo} sslmode=require")),
    );
    assert_eq!(code, Some(2), "require without TLS on the server:\n{err}");
    assert!(err.contains("server does not support TLS"), "{err}");
    // libpq refuses the same settings.
    let psql = std::process::Command::new(cluster.bin("psql"))
        .arg(format!("{conninfo} sslmode=require"))
        .args(["-X", "-c", "select 1"])
        .env_remove("PGSERVICE")
        .output()
        .expect("psql runs");
    assert!(!psql.status.success());
    assert!(
        String::from_utf8_lossy(&psql.stderr).contains("SSL"),
        "{}",
        String::from_utf8_lossy(&psql.stderr)
    );
    // `prefer` falls back to a clear connection, as libpq's does.
    let (code, _, err) = output(
        plan()
            .arg("status")
            .arg("-d")
            .arg(format!("{conninfo} sslmode=prefer")),
    );
    assert_eq!(code, Some(0), "prefer without TLS on the server:\n{err}");
}

#[test]
fn an_open_key_and_a_missing_root_certificate_stop_before_connecting() {
    let dir = tempfile::tempdir().expect("a folder");
    let (_, ca) = authority("plan-runner test CA");
    let (crt, key) = signed(&["postgres"], &ca);
    fs::write(dir.path().join("c.crt"), crt).unwrap();
    fs::write(dir.path().join("c.key"), key).unwrap();
    fs::set_permissions(dir.path().join("c.key"), fs::Permissions::from_mode(0o644)).unwrap();
    // Port 1: nothing listens, and nothing must be tried.
    let (code, _, err) = output(plan().arg("status").arg("-d").arg(format!(
        "host=127.0.0.1 port=1 dbname=x sslmode=require sslcert={0}/c.crt sslkey={0}/c.key",
        dir.path().display()
    )));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plan::tls::key_permissions"), "{err}");
    assert!(
        err.contains(&format!("{}/c.key", dir.path().display())),
        "{err}"
    );
    // verify-full with no root certificate anywhere.
    let (code, _, err) = output(
        plan()
            .env("HOME", dir.path())
            .args(["status", "-h", "127.0.0.1", "-p", "1", "-d"])
            .arg("dbname=x sslmode=verify-full"),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plan::tls::no_root_cert"), "{err}");
    assert!(err.contains(".postgresql/root.crt"), "{err}");
}
