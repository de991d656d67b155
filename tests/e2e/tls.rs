//! Redis over TLS with certificates verified: each test makes its own CA and
//! certificates with openssl and starts a TLS-only redis-server with them.

use crate::support::*;
use std::path::Path;

/// The critical-keys plugin (54 keys) into `url`, with extra `[backend]` lines.
fn config(ws: &Workspace, url: &str, backend: &str) -> std::path::PathBuf {
    ws.config(&format!(
        r#"
[backend]
kind = "redis"
url = "{url}"
{backend}
[[plugins]]
name = "critical-keys"
path = {path:?}
key_prefixes = ["system.", "products.", "navigation.", "featured.", "user.profile."]
[plugins.settings]
user_ids = "1-50"
page_size = 16
"#,
        path = plugin("critical_keys").display().to_string(),
    ))
}

/// A CA `test` in the workspace and a TLS-only server with a certificate it
/// signed for `alt_names`; `client_auth` makes the server require a client certificate.
fn server(ws: &Workspace, alt_names: &str, client_auth: bool) -> (TestCa, RedisServer) {
    let ca = TestCa::new(ws.dir.path(), "test");
    let (cert, key) = ca.issue("server", alt_names);
    let client = ca.issue("client", "DNS:preheat-client");
    let redis = RedisServer::start_tls(&ServerTls {
        cert: &cert,
        key: &key,
        ca: &ca.cert,
        client: client_auth.then_some((client.0.as_path(), client.1.as_path())),
    });
    (ca, redis)
}

fn run(ws: &Workspace, config: &Path) -> Run {
    preheat(ws, &["run", "--config", config.to_str().unwrap()], &[])
}

#[test]
fn a_server_signed_by_tls_ca_file_is_trusted_by_run_and_cache_get() {
    let ws = Workspace::new();
    let (_ca, redis) = server(&ws, "IP:127.0.0.1,DNS:localhost", false);
    // Relative to the config file's directory, like every path of the config.
    let config = config(&ws, &redis.url(), "tls_ca_file = \"test-ca.pem\"");
    let run = run(&ws, &config);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(redis.dbsize(), 54);
    assert!(run.report["backend"].as_str().unwrap().starts_with("redis rediss://"));
    assert!(!run.stderr().contains("verification is OFF"), "{}", run.stderr());

    let got = preheat_in(
        &ws,
        &[
            "cache",
            "get",
            "user.profile.7",
            "--config",
            config.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    let got: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(got["value"]["id"], 7, "{got}");
}

#[test]
fn without_tls_ca_file_the_certificate_is_not_trusted_and_deploy_still_exits_0() {
    let ws = Workspace::new();
    let (_ca, redis) = server(&ws, "IP:127.0.0.1,DNS:localhost", false);
    let config = config(&ws, &redis.url(), "");
    let deploy = preheat(&ws, &["deploy", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(deploy.code(), 0, "deploy never fails the release: {}", deploy.stderr());
    assert_eq!(deploy.report["status"], "failed");
    let error = deploy.report["error"].as_str().unwrap();
    for part in [
        "the server's TLS certificate was not trusted",
        &format!("rediss://127.0.0.1:{}/0", redis.port),
        "system trust store",
        "tls_ca_file",
        "#insecure",
    ] {
        assert!(error.contains(part), "{part:?} missing from: {error}");
    }
    assert!(deploy.stderr().contains("was not trusted"), "{}", deploy.stderr());
    assert_eq!(redis.dbsize(), 0);
}

#[test]
fn a_ca_that_did_not_sign_the_server_certificate_is_not_trusted() {
    let ws = Workspace::new();
    let (_ca, redis) = server(&ws, "IP:127.0.0.1,DNS:localhost", false);
    let other = TestCa::new(ws.dir.path(), "other");
    let config = config(
        &ws,
        &redis.url(),
        &format!("tls_ca_file = {:?}", other.cert.display().to_string()),
    );
    let run = run(&ws, &config);
    assert_ne!(run.code(), 0);
    let error = run.report["error"].as_str().unwrap();
    assert!(
        error.contains("was not trusted") && error.contains("other-ca.pem"),
        "{error}"
    );
    assert_eq!(redis.dbsize(), 0);
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let ws = Workspace::new();
    let (_ca, redis) = server(&ws, "DNS:cache.internal", false);
    let config = config(&ws, &redis.url(), "tls_ca_file = \"test-ca.pem\"");
    let run = run(&ws, &config);
    assert_ne!(run.code(), 0);
    let error = run.report["error"].as_str().unwrap();
    assert!(error.contains("not issued for the host in the URL"), "{error}");
    assert!(
        error.contains("cache.internal"),
        "rustls' detail names what the certificate is for: {error}"
    );
    assert_eq!(redis.dbsize(), 0);
}

#[test]
fn a_server_that_requires_a_client_certificate_gets_tls_cert_file() {
    let ws = Workspace::new();
    let (_ca, redis) = server(&ws, "IP:127.0.0.1", true);
    let without = config(&ws, &redis.url(), "tls_ca_file = \"test-ca.pem\"");
    let run_without = run(&ws, &without);
    assert_ne!(run_without.code(), 0);
    let error = run_without.report["error"].as_str().unwrap();
    assert!(
        error.contains("requires a client certificate") && error.contains("tls_cert_file"),
        "{error}"
    );
    assert_eq!(redis.dbsize(), 0);

    let with = config(
        &ws,
        &redis.url(),
        "tls_ca_file = \"test-ca.pem\"\ntls_cert_file = \"client.pem\"\ntls_key_file = \"client.key\"",
    );
    let run_with = run(&ws, &with);
    assert_eq!(run_with.code(), 0, "{}", run_with.stderr());
    assert_eq!(redis.dbsize(), 54);
}

#[test]
fn insecure_is_an_explicit_opt_out_with_a_warning() {
    let ws = Workspace::new();
    let (_ca, redis) = server(&ws, "IP:127.0.0.1", false);
    let config = config(&ws, &format!("{}#insecure", redis.url()), "");
    let run = run(&ws, &config);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(redis.dbsize(), 54);
    assert!(
        run.stderr().contains("TLS certificate verification is OFF"),
        "{}",
        run.stderr()
    );
}

#[test]
fn bad_tls_files_are_config_errors_naming_the_key_and_the_file() {
    let ws = Workspace::new();
    std::fs::write(
        ws.dir.path().join("junk.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n",
    )
    .unwrap();
    let check = |backend: &str| {
        let config = config(&ws, "rediss://127.0.0.1:1/0", backend);
        let out = preheat_in(&ws, &["check", "--config", config.to_str().unwrap()]);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = check("tls_ca_file = \"missing.pem\"");
    assert!(
        err.contains("tls_ca_file") && err.contains("missing.pem") && err.contains("cannot be read"),
        "{err}"
    );
    let err = check("tls_ca_file = \"junk.pem\"");
    assert!(
        err.contains("tls_ca_file") && err.contains("junk.pem") && err.contains("not valid PEM"),
        "{err}"
    );
    let ca = TestCa::new(ws.dir.path(), "test");
    let (cert, _) = ca.issue("client", "DNS:preheat-client");
    let err = check(&format!("tls_cert_file = {:?}", cert.display().to_string()));
    assert!(err.contains("tls_cert_file and tls_key_file go together"), "{err}");
    let err = check("tls_cert_file = \"client.pem\"\ntls_key_file = \"test-ca.key\"");
    assert!(
        err.contains("tls_key_file") && err.contains("test-ca.key") && err.contains("cannot be used with"),
        "{err}"
    );
}
