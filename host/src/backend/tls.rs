//! TLS for Redis (`rediss://`): whom to trust, the client identity, and what a
//! failed handshake means. Every Redis connection of the process (the backend,
//! `cache get`, serve's stats, the usage stream, keyspace notifications) gets
//! its client from [`client`], so all of them verify the same way.
//!
//! The server's certificate is verified by default: against `[backend]
//! tls_ca_file` when set, else against the system trust store (the redis
//! crate's `rustls-native-certs`: `/etc/ssl/certs` on Debian, or
//! `SSL_CERT_FILE`/`SSL_CERT_DIR`). `#insecure` at the end of the URL is the
//! explicit opt-out: no verification at all, logged as a warning. A cluster's
//! nodes ([`cluster_client`], [`node_client`]) are verified the same way,
//! each at the address the cluster announces for it.

use crate::config::{is_insecure, is_tls, RedisTarget};
use anyhow::{Context, Result};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::{ClientTlsConfig, ConnectionAddr, IntoConnectionInfo, TlsCertificates};
use std::collections::BTreeSet;
use std::sync::Mutex;

/// A Redis client for `url` with the TLS setup of `[backend]`. For a
/// `rediss://` URL the `tls_*` files are read (again, so rotated files are
/// picked up) and checked; a plain `redis://` URL ignores them.
pub fn client(url: &str, backend: &RedisTarget) -> Result<redis::Client> {
    let address = crate::support::redact_url(url);
    let invalid = || format!("invalid redis URL {address}: expected redis://[:password@]host:port/db or rediss://…");
    let info = url.into_connection_info().with_context(invalid)?;
    match certificates(url, backend)? {
        Some(certs) => redis::Client::build_with_tls(info, certs).with_context(invalid),
        None => redis::Client::open(info).with_context(invalid),
    }
}

/// A client for the cluster node at `host:port`, reached as the seed `url`
/// says (scheme, credentials, `#insecure`) with the TLS setup of `[backend]`:
/// what a cluster announces is an address, the rest comes from the config.
pub fn node_client(url: &str, host: &str, port: u16, backend: &RedisTarget) -> Result<redis::Client> {
    let address = crate::support::redact_url(url);
    let info = url
        .into_connection_info()
        .with_context(|| format!("invalid redis URL {address}"))?;
    let addr = match info.addr().clone() {
        ConnectionAddr::TcpTls {
            insecure, tls_params, ..
        } => ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure,
            tls_params,
        },
        _ => ConnectionAddr::Tcp(host.to_string(), port),
    };
    let info = info.set_addr(addr);
    let at = || format!("cluster node {host}:{port} (seed {address})");
    match certificates(url, backend).with_context(at)? {
        Some(certs) => redis::Client::build_with_tls(info, certs).with_context(at),
        None => redis::Client::open(info).with_context(at),
    }
}

/// A Redis Cluster client for the seed `urls` (checked by config
/// validation: one scheme and one set of credentials), every node reached
/// with the TLS setup of `[backend]`; `settings` adds timeouts and retries.
pub fn cluster_client(
    urls: &[String],
    backend: &RedisTarget,
    settings: impl FnOnce(ClusterClientBuilder) -> ClusterClientBuilder,
) -> Result<ClusterClient> {
    let seeds = describe_seeds(urls);
    let invalid = || {
        format!("invalid redis-cluster urls {seeds}: expected redis://[user:password@]host:port or rediss://…, alike")
    };
    let mut builder = ClusterClientBuilder::new(urls.iter().map(String::as_str));
    if let Some(certs) = urls
        .first()
        .map(|url| certificates(url, backend))
        .transpose()?
        .flatten()
    {
        builder = builder.certs(certs);
    }
    settings(builder).build().with_context(invalid)
}

/// The seed URLs of a cluster for messages, without credentials.
pub fn describe_seeds(urls: &[String]) -> String {
    urls.iter()
        .map(|u| crate::support::redact_url(u))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The certificates the redis crate takes for a `rediss://` `url`: `None`
/// for `redis://` or when no `tls_*` file is set (the system trust store).
/// Installs rustls' process-wide crypto provider, and warns once per
/// address when `#insecure` turns verification off.
fn certificates(url: &str, backend: &RedisTarget) -> Result<Option<TlsCertificates>> {
    if !is_tls(url) {
        return Ok(None);
    }
    // rustls needs a process-wide crypto provider; a second install is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if is_insecure(url)? {
        warn_insecure(&crate::support::redact_url(url));
    }
    Ok(backend.tls_files()?.map(|files| TlsCertificates {
        client_tls: files.client.map(|(client_cert, client_key)| ClientTlsConfig {
            client_cert,
            client_key,
        }),
        root_cert: files.root_cert,
    }))
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

/// What `error` (from connecting to `address`) means when it is a failed TLS
/// handshake, and what to do; `None` when it is something else.
///
/// rustls' errors reach us as text inside the redis crate's I/O errors, so
/// they are recognised by rustls' wording (kept honest by the tests below).
pub fn handshake_failure(error: &anyhow::Error, address: &str, backend: &RedisTarget) -> Option<String> {
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
pub fn explained(error: anyhow::Error, address: &str, backend: &RedisTarget) -> anyhow::Error {
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

    fn explain(e: rustls::Error, backend: &RedisTarget) -> String {
        handshake_failure(&failed(e), "rediss://h:1/0", backend).unwrap_or_default()
    }

    #[test]
    fn handshake_failures_say_what_to_do() {
        let plain = RedisTarget::default();
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
        let with_ca = RedisTarget {
            tls_ca_file: Some("/etc/preheat/ca.pem".into()),
            ..RedisTarget::default()
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
        let with_cert = RedisTarget {
            tls_cert_file: Some("/etc/preheat/client.pem".into()),
            tls_key_file: Some("/etc/preheat/client.key".into()),
            ..RedisTarget::default()
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
        assert_eq!(handshake_failure(&e, "rediss://h:1/0", &RedisTarget::default()), None);
    }
}
