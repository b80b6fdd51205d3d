//! TLS for the runner's own connections, with libpq's meaning of each
//! `sslmode` and certificate file: rustls (with ring, so no system
//! library) behind the `postgres` client through tokio-postgres-rustls.
//!
//! What is checked, as libpq checks it:
//! - `require`, `prefer`, `allow`: the connection is encrypted; the server's
//!   certificate is checked only when a root certificate file exists (the
//!   given `sslrootcert`, else `~/.postgresql/root.crt`), and then as with
//!   `verify-ca`.
//! - `verify-ca`: the server's certificate chains to a root certificate of
//!   that file (or is one of them), and is within its dates.
//! - `verify-full`: that, and the host name the runner connects to is in
//!   the certificate: in its subject alternative names or, when it has
//!   none, its common name (`CN`), a leading `*.` matching one label.
//!
//! This module builds the client configuration from files and says why it
//! cannot ([`TlsError`], before any connection is tried); which mode tries
//! what, and the fall-backs of `prefer` and `allow`, are in `db::connect`.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::Diagnostic;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use thiserror::Error;
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
use x509_cert::ext::pkix::SubjectAltName;

/// Why the TLS settings cannot be used (exit 2, before connecting).
#[derive(Debug, Error, Diagnostic)]
pub enum TlsError {
    #[error("sslmode `{mode}` needs the server's root certificate, and `{}` does not exist", path.display())]
    #[diagnostic(
        code(plan::tls::no_root_cert),
        help(
            "give the certificate of the authority that signed the server's certificate with `sslrootcert` (inventory, `-d`) or `PGSSLROOTCERT`, or put it in `~/.postgresql/root.crt`; or choose `sslmode=require` to encrypt without checking the server"
        )
    )]
    NoRootCert { mode: &'static str, path: PathBuf },

    #[error("`sslrootcert=system` is not supported")]
    #[diagnostic(
        code(plan::tls::system_roots),
        help(
            "give the path of a file of trusted certificates instead, such as `/etc/ssl/certs/ca-certificates.crt`"
        )
    )]
    SystemRoots,

    #[error("cannot read the {what} `{}`", path.display())]
    #[diagnostic(
        code(plan::tls::read),
        help("check that the file exists and that the user running `plan` may read it")
    )]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the private key `{}` can be read by others (mode {mode:04o})", path.display())]
    #[diagnostic(
        code(plan::tls::key_permissions),
        help(
            "libpq refuses such a key, and so does plan-runner: `chmod 0600 {}` (0640 is allowed for a key owned by root)",
            path.display()
        )
    )]
    KeyPermissions { path: PathBuf, mode: u32 },

    #[error("`{}` holds no {what} in PEM form", path.display())]
    #[diagnostic(
        code(plan::tls::pem),
        help(
            "a PEM file has `-----BEGIN ...-----` lines; convert a DER file with `openssl x509 -inform der`"
        )
    )]
    NoPem { what: &'static str, path: PathBuf },

    #[error("the client certificate `{}` has no private key: `{}` does not exist", cert.display(), key.display())]
    #[diagnostic(
        code(plan::tls::no_key),
        help("give the key with `sslkey` (inventory, `-d`) or `PGSSLKEY`")
    )]
    NoKey { cert: PathBuf, key: PathBuf },

    #[error("the client certificate `{}` cannot be used with its key `{}`: {detail}", cert.display(), key.display())]
    #[diagnostic(
        code(plan::tls::client_cert),
        help("check that the key is the certificate's (an RSA, ECDSA or Ed25519 key in PEM form)")
    )]
    ClientCert {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
}

/// The certificate files of a target, as resolved (defaults included
/// only when their file exists, as libpq uses them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub rootcert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// A client configuration, built once per target and shared by its
/// connections.
#[derive(Clone)]
pub struct Tls(Arc<ClientConfig>);

impl Tls {
    /// What `postgres::Config::connect` takes.
    pub fn connector(&self) -> tokio_postgres_rustls::MakeRustlsConnect {
        tokio_postgres_rustls::MakeRustlsConnect::new(ClientConfig::clone(&self.0))
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tls(..)")
    }
}

impl PartialEq for Tls {
    fn eq(&self, other: &Tls) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Tls {}

/// How much of the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Nothing (encryption only): `require`, `prefer`, `allow` without a
    /// root certificate file.
    Nothing,
    /// The chain to a root certificate: `verify-ca`, and the weaker modes
    /// when a root certificate file exists.
    Chain,
    /// The chain and the host name: `verify-full`.
    ChainAndName,
}

/// Builds the configuration: reads the root certificates (when `check`
/// needs them), the client certificate and its key (when there is one).
pub fn build(check: Check, files: &TlsFiles) -> Result<Tls, TlsError> {
    // ring rather than aws-lc-rs: it builds with a C compiler alone (no
    // cmake, no nasm). rustls marks it deprecated for lacking post-quantum
    // key exchange, which no PostgreSQL server offers yet anyway.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match (&files.rootcert, check) {
        (_, Check::Nothing) | (None, _) => None,
        (Some(path), _) => Some(read_roots(path)?),
    };
    let verifier = Verifier {
        roots,
        check_name: check == Check::ChainAndName,
        algorithms: provider.signature_verification_algorithms,
    };
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::ClientCert {
            cert: PathBuf::new(),
            key: PathBuf::new(),
            detail: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "client certificate")?;
            let private = read_key(key)?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| TlsError::ClientCert {
                    cert: cert.clone(),
                    key: key.clone(),
                    detail: e.to_string(),
                })?
        }
        (Some(cert), None) => {
            return Err(TlsError::NoKey {
                cert: cert.clone(),
                key: PathBuf::from("(none given)"),
            });
        }
        (None, _) => builder.with_no_client_auth(),
    };
    Ok(Tls(Arc::new(config)))
}

/// Checks a private key file as libpq does before reading it: a regular
/// file, not readable by group or others (group-readable allowed when
/// root owns it, for keys shared through a group).
pub fn check_key_permissions(path: &Path) -> Result<(), TlsError> {
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Read {
        what: "private key",
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    let allowed = if meta.uid() == 0 { 0o7640 } else { 0o7600 };
    if meta.is_file() && mode & !allowed & 0o777 != 0 {
        return Err(TlsError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, what)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoPem {
            what: "certificate",
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    check_key_permissions(path)?;
    let bytes = read(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::NoPem {
        what: "private key",
        path: path.to_path_buf(),
    })
}

/// The root certificates: a store for chains, and the certificates
/// themselves, since a self-signed server certificate is commonly trusted
/// directly (PostgreSQL's own recipe puts the server's certificate in
/// `root.crt`), which OpenSSL accepts and webpki, for a CA certificate
/// used as a server's, does not.
struct Roots {
    store: RootCertStore,
    certs: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Roots({} certificates)", self.certs.len())
    }
}

fn read_roots(path: &Path) -> Result<Roots, TlsError> {
    let certs = read_certs(path, "root certificate file")?;
    let mut store = RootCertStore::empty();
    // A certificate webpki cannot take as an anchor may still be trusted
    // directly (see `Roots`); one that is neither fails the handshake.
    let _ = store.add_parsable_certificates(certs.iter().cloned());
    Ok(Roots { store, certs })
}

#[derive(Debug)]
struct Verifier {
    /// `None`: nothing is checked but the handshake's signatures.
    roots: Option<Roots>,
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let parsed = ParsedCertificate::try_from(end_entity)?;
        if roots
            .certs
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            within_dates(end_entity, now)?;
        } else {
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &parsed,
                &roots.store,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        // libpq reads the common name when the certificate has no subject
        // alternative name at all.
        if self.check_name
            && let Err(error) = rustls::client::verify_server_name(&parsed, server_name)
            && !common_name_matches(end_entity, server_name)
        {
            return Err(error);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// For a certificate trusted directly: its validity period holds `now`.
fn within_dates(der: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let cert = Certificate::from_der(der.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let validity = &cert.tbs_certificate.validity;
    let now = now.as_secs();
    if now < validity.not_before.to_unix_duration().as_secs() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    if now > validity.not_after.to_unix_duration().as_secs() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

/// Whether a certificate without subject alternative names has `name` as
/// its common name (libpq's rule, wildcards included).
fn common_name_matches(der: &CertificateDer<'_>, name: &ServerName<'_>) -> bool {
    let Ok(cert) = Certificate::from_der(der.as_ref()) else {
        return false;
    };
    if !matches!(cert.tbs_certificate.get::<SubjectAltName>(), Ok(None)) {
        return false;
    }
    let host = match name {
        ServerName::DnsName(dns) => dns.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => return false,
    };
    common_names(&cert).iter().any(|cn| host_matches(cn, &host))
}

fn common_names(cert: &Certificate) -> Vec<String> {
    let cn = x509_cert::der::oid::db::rfc4519::CN;
    let mut out = Vec::new();
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter().filter(|atv| atv.oid == cn) {
            let text = atv
                .value
                .decode_as::<Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_string())
                .or_else(|_| {
                    atv.value
                        .decode_as::<PrintableStringRef<'_>>()
                        .map(|s| s.as_str().to_string())
                })
                .or_else(|_| {
                    atv.value
                        .decode_as::<Ia5StringRef<'_>>()
                        .map(|s| s.as_str().to_string())
                });
            if let Ok(text) = text {
                out.push(text);
            }
        }
    }
    out
}

/// libpq's name match: case-insensitive; `*.example.com` matches one
/// label in front of `example.com`, never several, never none.
fn host_matches(pattern: &str, host: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix('*') {
        if suffix.starts_with('.') && host.len() > suffix.len() {
            let (label, rest) = host.split_at(host.len() - suffix.len());
            return rest.eq_ignore_ascii_case(suffix) && !label.contains('.');
        }
        return false;
    }
    pattern.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn wildcards_match_one_label() {
        assert!(host_matches("db.example.com", "DB.example.com"));
        assert!(host_matches("*.example.com", "db.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "a.db.example.com"));
        assert!(!host_matches("*.example.com", ".example.com"));
        assert!(!host_matches("db.example.com", "db.example.org"));
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key");
        fs::write(&key, "not a key").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let owned_by_root = fs::metadata(&key).unwrap().uid() == 0;
        match check_key_permissions(&key) {
            Err(TlsError::KeyPermissions { path, mode }) => {
                assert_eq!(path, key);
                assert_eq!(mode, 0o644);
            }
            other => panic!("{other:?}"),
        }
        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(check_key_permissions(&key).is_ok(), owned_by_root);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        check_key_permissions(&key).unwrap();
        // Readable by its owner but not a key: said so, with the path.
        let files = TlsFiles {
            cert: Some(key.clone()),
            key: Some(key.clone()),
            ..TlsFiles::default()
        };
        match build(Check::Nothing, &files) {
            Err(TlsError::NoPem { path, .. }) => assert_eq!(path, key),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_files_are_named() {
        let files = TlsFiles {
            rootcert: Some(PathBuf::from("/nonexistent/root.crt")),
            ..TlsFiles::default()
        };
        match build(Check::Chain, &files) {
            Err(TlsError::Read { path, .. }) => {
                assert_eq!(path, Path::new("/nonexistent/root.crt"))
            }
            other => panic!("{other:?}"),
        }
        // Encryption only reads no root certificate.
        build(Check::Nothing, &files).unwrap();
    }
}
