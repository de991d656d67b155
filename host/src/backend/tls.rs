//! TLS for Redis (`rediss://`): whom to trust, the client identity, and what a
//! failed handshake means. Every Redis connection of the process (the backend,
//! `cache get`, serve's stats, the usage stream, keyspace notifications) gets
//! its client from [`client`], so all of them verify the same way.
//!
//! The server's certificate is verified by default: against `[backend]
//! tls_ca_file` when set, else against the system trust store (the redis
//! crate's `rustls-native-certs`: `/etc/ssl/certs` on Debian, or
//! `SSL_CERT_FILE`/`SSL_CERT_DIR`). `#insecure` at the end of the URL is the
//! explicit opt-out: no verification at all, logged as a warning.

use crate::config::BackendConfig;
use anyhow::{bail, Context, Result};
use redis::{ClientTlsConfig, ConnectionAddr, IntoConnectionInfo, TlsCertificates};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A Redis client for `url` with the TLS setup of `[backend]`. For a
/// `rediss://` URL the `tls_*` files are read (again, so rotated files are
/// picked up) and checked; a plain `redis://` URL ignores them.
pub fn client(url: &str, backend: &BackendConfig) -> Result<redis::Client> {
    let address = crate::support::redact_url(url);
    let invalid = || format!("invalid redis URL {address}: expected redis://[:password@]host:port/db or rediss://…");
    if !is_tls(url) {
        return redis::Client::open(url).with_context(invalid);
    }
    // rustls needs a process-wide crypto provider; a second install is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if is_insecure(url).with_context(invalid)? {
        warn_insecure(&address);
    }
    match certificates(backend)? {
        Some(certs) => redis::Client::build_with_tls(url, certs).with_context(invalid),
        None => redis::Client::open(url).with_context(invalid),
    }
}

/// Whether `url` connects with TLS (`rediss://`).
pub fn is_tls(url: &str) -> bool {
    url.starts_with("rediss://")
}

/// Whether `url` turns certificate verification off (`rediss://…#insecure`).
pub fn is_insecure(url: &str) -> Result<bool> {
    Ok(matches!(
        url.into_connection_info()?.addr(),
        ConnectionAddr::TcpTls { insecure: true, .. }
    ))
}

/// Logs, once per process and address, that `#insecure` turned verification off.
fn warn_insecure(address: &str) {
    static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    if WARNED.lock().unwrap().insert(address.to_string()) {
        tracing::warn!(
            "TLS certificate verification is OFF for redis at {address} (#insecure in the URL): anyone on the network path can impersonate the server and read what is written; remove #insecure and set [backend] tls_ca_file to the CA that signed the server's certificate"
        );
    }
}

/// Reads and checks the `[backend]` `tls_ca_file`, `tls_cert_file` and
/// `tls_key_file`: `None` when none is set. Every error names the key and the
/// file: unreadable, not PEM, no certificate or key in it, a key that is not
/// the certificate's, or a cert without its key.
pub fn certificates(backend: &BackendConfig) -> Result<Option<TlsCertificates>> {
    let root_cert = match &backend.tls_ca_file {
        Some(path) => {
            let pem = read("tls_ca_file", path)?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs_in("tls_ca_file", path, &pem)? {
                roots.add(cert).with_context(|| {
                    format!("[backend] tls_ca_file = {path:?} holds a certificate that cannot be a trust anchor")
                })?;
            }
            Some(pem)
        }
        None => None,
    };
    let client_tls = match (&backend.tls_cert_file, &backend.tls_key_file) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => bail!(
            "[backend] tls_cert_file and tls_key_file go together: a client certificate needs its private key; set both or neither"
        ),
        (Some(cert_path), Some(key_path)) => {
            let client_cert = read("tls_cert_file", cert_path)?;
            let chain = certs_in("tls_cert_file", cert_path, &client_cert)?;
            let client_key = read("tls_key_file", key_path)?;
            let key = PrivateKeyDer::from_pem_slice(&client_key).map_err(|e| {
                anyhow::anyhow!("[backend] tls_key_file = {key_path:?} holds no private key ({e}); give the PEM key (PKCS#8, PKCS#1 or SEC1) of tls_cert_file")
            })?;
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_client_auth_cert(chain, key)
                .with_context(|| {
                    format!("[backend] tls_key_file = {key_path:?} cannot be used with tls_cert_file = {cert_path:?}; give the private key of that certificate")
                })?;
            Some(ClientTlsConfig {
                client_cert,
                client_key,
            })
        }
    };
    Ok((root_cert.is_some() || client_tls.is_some()).then_some(TlsCertificates { client_tls, root_cert }))
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!("[backend] {key} = {path:?} cannot be read; give the path of a PEM file (a relative path is relative to the config file)")
    })
}

/// The certificates of a PEM file; at least one.
fn certs_in(key: &str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("[backend] {key} = {path:?} is not valid PEM: {e}"))?;
    if certs.is_empty() {
        bail!("[backend] {key} = {path:?} holds no certificate: expected PEM \"-----BEGIN CERTIFICATE-----\" blocks");
    }
    Ok(certs)
}

/// What `error` (from connecting to `address`) means when it is a failed TLS
/// handshake, and what to do; `None` when it is something else.
///
/// rustls' errors reach us as text inside the redis crate's I/O errors, so
/// they are recognised by rustls' wording (kept honest by the tests below).
pub fn handshake_failure(error: &anyhow::Error, address: &str, backend: &BackendConfig) -> Option<String> {
    let text = format!("{error:#}");
    let has = |s: &str| text.contains(s);
    let trusted = match &backend.tls_ca_file {
        Some(path) => format!("a CA of [backend] tls_ca_file = {path:?}"),
        None => "a CA of the system trust store (no [backend] tls_ca_file is set)".into(),
    };
    if has("invalid peer certificate: UnknownIssuer") || has("invalid peer certificate: BadSignature") {
        Some(format!(
            "redis at {address}: the server's TLS certificate was not trusted: it is not signed by {trusted}; set [backend] tls_ca_file to the PEM file of the CA that signed it (or, to turn verification off, end the URL with #insecure: not for production)"
        ))
    } else if has("certificate not valid for name") || has("invalid peer certificate: NotValidForName") {
        Some(format!(
            "redis at {address}: the server's TLS certificate was not issued for the host in the URL; connect with a name it was issued for, or reissue it with this host in its subjectAltName"
        ))
    } else if has("invalid peer certificate") {
        Some(format!(
            "redis at {address}: the server's TLS certificate was rejected; fix the server's certificate (it must be valid and signed by {trusted})"
        ))
    } else if has("received fatal alert: CertificateRequired")
        || (backend.tls_cert_file.is_none() && has("received fatal alert: HandshakeFailure"))
    {
        Some(format!(
            "redis at {address}: the server requires a client certificate; set [backend] tls_cert_file and tls_key_file to a certificate signed by a CA the server trusts (its tls-ca-cert-file)"
        ))
    } else if let (Some(cert), true) = (
        &backend.tls_cert_file,
        has("received fatal alert: UnknownCA")
            || has("received fatal alert: BadCertificate")
            || has("received fatal alert: CertificateUnknown")
            || has("received fatal alert: DecryptError")
            || has("received fatal alert: HandshakeFailure"),
    ) {
        Some(format!(
            "redis at {address}: the server refused the client certificate of [backend] tls_cert_file = {cert:?}; it must be signed by a CA the server trusts (its tls-ca-cert-file)"
        ))
    } else {
        None
    }
}

/// `error` from connecting to `address`, with [`handshake_failure`]'s
/// explanation in front when it is a failed TLS handshake.
pub fn explained(error: anyhow::Error, address: &str, backend: &BackendConfig) -> anyhow::Error {
    match handshake_failure(&error, address, backend) {
        Some(why) => error.context(why),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{AlertDescription, CertificateError};

    /// A rustls error as the redis crate hands it over: inside an I/O error.
    fn failed(e: rustls::Error) -> anyhow::Error {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        anyhow::Error::new(redis::RedisError::from(io)).context("connecting")
    }

    fn explain(e: rustls::Error, backend: &BackendConfig) -> String {
        handshake_failure(&failed(e), "rediss://h:1/0", backend).unwrap_or_default()
    }

    #[test]
    fn handshake_failures_say_what_to_do() {
        let plain = BackendConfig::default();
        let untrusted = explain(
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            &plain,
        );
        assert!(
            untrusted.contains("rediss://h:1/0")
                && untrusted.contains("was not trusted")
                && untrusted.contains("system trust store")
                && untrusted.contains("tls_ca_file")
                && untrusted.contains("#insecure"),
            "{untrusted}"
        );
        let with_ca = BackendConfig {
            tls_ca_file: Some("/etc/preheat/ca.pem".into()),
            ..BackendConfig::default()
        };
        let untrusted = explain(
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            &with_ca,
        );
        assert!(untrusted.contains("/etc/preheat/ca.pem"), "{untrusted}");
        let name = explain(
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
            &plain,
        );
        assert!(name.contains("not issued for the host"), "{name}");
        let expired = explain(rustls::Error::InvalidCertificate(CertificateError::Expired), &plain);
        assert!(expired.contains("was rejected"), "{expired}");
        let required = explain(
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
            &plain,
        );
        assert!(
            required.contains("requires a client certificate") && required.contains("tls_cert_file"),
            "{required}"
        );
        let with_cert = BackendConfig {
            tls_cert_file: Some("/etc/preheat/client.pem".into()),
            tls_key_file: Some("/etc/preheat/client.key".into()),
            ..BackendConfig::default()
        };
        let refused = explain(rustls::Error::AlertReceived(AlertDescription::UnknownCA), &with_cert);
        assert!(
            refused.contains("refused the client certificate") && refused.contains("client.pem"),
            "{refused}"
        );
        let refused = explain(
            rustls::Error::AlertReceived(AlertDescription::BadCertificate),
            &with_cert,
        );
        assert!(refused.contains("refused the client certificate"), "{refused}");
    }

    #[test]
    fn other_errors_are_not_taken_for_tls() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = anyhow::Error::new(redis::RedisError::from(refused));
        assert_eq!(handshake_failure(&e, "rediss://h:1/0", &BackendConfig::default()), None);
    }

    #[test]
    fn insecure_is_read_from_the_url() {
        assert!(is_insecure("rediss://127.0.0.1:6380/0#insecure").unwrap());
        assert!(!is_insecure("rediss://127.0.0.1:6380/0").unwrap());
        assert!(!is_insecure("redis://127.0.0.1:6379/0").unwrap());
    }

    #[test]
    fn pem_files_are_checked_with_their_key_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let with = |ca: &Path| BackendConfig {
            tls_ca_file: Some(ca.to_path_buf()),
            ..BackendConfig::default()
        };
        let err = format!("{:#}", certificates(&with(&missing)).unwrap_err());
        assert!(
            err.contains("tls_ca_file") && err.contains("nope.pem") && err.contains("cannot be read"),
            "{err}"
        );
        let err = format!("{:#}", certificates(&with(&junk)).unwrap_err());
        assert!(
            err.contains("tls_ca_file") && err.contains("junk.pem") && err.contains("holds no certificate"),
            "{err}"
        );
        let half = BackendConfig {
            tls_cert_file: Some(junk.clone()),
            ..BackendConfig::default()
        };
        let err = format!("{:#}", certificates(&half).unwrap_err());
        assert!(err.contains("tls_cert_file and tls_key_file go together"), "{err}");
        assert!(certificates(&BackendConfig::default()).unwrap().is_none());
    }
}
