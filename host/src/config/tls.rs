//! `[backend]` TLS settings as the config holds them: whether a URL uses TLS
//! or turns verification off, and the PEM files read and checked (so a bad
//! file is a config error naming its key). `backend::tls` builds the Redis
//! client from them.

use super::RedisTarget;
use anyhow::{bail, Context, Result};
use redis::{ConnectionAddr, IntoConnectionInfo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The PEM files of `[backend]`, read and checked.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// `tls_ca_file`: the CA certificates the server's certificate is verified against.
    pub root_cert: Option<Vec<u8>>,
    /// `tls_cert_file` and `tls_key_file`: the client certificate (chain) and its key.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
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

impl RedisTarget {
    /// Reads and checks the `tls_ca_file`, `tls_cert_file` and `tls_key_file`:
    /// `None` when none is set. Every error names the key and the file:
    /// unreadable, not PEM, no certificate or key in it, a key that is not the
    /// certificate's, or a cert without its key.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>> {
        let root_cert = match &self.tls_ca_file {
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
        let client_tls = match (&self.tls_cert_file, &self.tls_key_file) {
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
                Some((client_cert, client_key))
            }
        };
        Ok((root_cert.is_some() || client_tls.is_some()).then_some(TlsFiles {
            root_cert,
            client: client_tls,
        }))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let with = |ca: &Path| RedisTarget {
            tls_ca_file: Some(ca.to_path_buf()),
            ..RedisTarget::default()
        };
        let err = format!("{:#}", with(&missing).tls_files().unwrap_err());
        assert!(
            err.contains("tls_ca_file") && err.contains("nope.pem") && err.contains("cannot be read"),
            "{err}"
        );
        let err = format!("{:#}", with(&junk).tls_files().unwrap_err());
        assert!(
            err.contains("tls_ca_file") && err.contains("junk.pem") && err.contains("holds no certificate"),
            "{err}"
        );
        let half = RedisTarget {
            tls_cert_file: Some(junk.clone()),
            ..RedisTarget::default()
        };
        let err = format!("{:#}", half.tls_files().unwrap_err());
        assert!(err.contains("tls_cert_file and tls_key_file go together"), "{err}");
        assert!(RedisTarget::default().tls_files().unwrap().is_none());
    }
}
