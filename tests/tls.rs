//! HTTPS and mutual TLS over real TLS on loopback, with certificates made by
//! the tests: what a client with each kind of certificate meets, certificate
//! principals against bearer tokens, handshake failures counted by reason,
//! and, on the real binary, certificate rotation by SIGHUP without dropping
//! a connection and bad `[tls]` files refused at start.

mod binary_support;
mod http_support;
mod tls_support;

use std::net::{SocketAddr, TcpListener};

use http_support::activity;
use tls_support::{handshake_failures, plain_http_exchange, Authority, Client, Issued};
use tokio::sync::oneshot;
use warden::config::{token_sha256, ClientAuth, PrincipalConfig, TlsConfig};
use warden::http::{Credentials, HandshakeFailure, ReloadOutcome, Reloaders, Server, Tls};
use warden::{Engine, Principal, Role};

/// The token of `sa-signer-1`, which also has a client certificate.
const SIGNER_TOKEN: &str = "signer-token";
/// The token of `us-alice`, an admin without a certificate.
const ALICE_TOKEN: &str = "alice-token";

/// A CA and the certificates the tests present, written to a directory.
struct Pki {
    ca: Authority,
    server: Issued,
    /// `sa-signer-1`'s certificate.
    signer: Issued,
    /// Issued by the CA but nobody's `cert_sha256`.
    stranger: Issued,
    expired: Issued,
    /// Issued by another CA.
    foreign: Issued,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let ca = Authority::new("warden test clients and server CA");
        let other = Authority::new("another CA");
        Pki {
            server: ca.issue_server(),
            signer: ca.issue_client("sa-signer-1"),
            stranger: ca.issue_client("stranger"),
            expired: ca.issue_expired_client("sa-signer-1 (expired)"),
            foreign: other.issue_client("sa-signer-1 (other CA)"),
            ca,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A `[tls]` section over this PKI's files.
    fn tls_config(&self, client_auth: ClientAuth) -> TlsConfig {
        let (cert, key) = self.server.write(self.dir.path(), "server");
        let client_ca = self.dir.path().join("clients-ca.pem");
        std::fs::write(&client_ca, self.ca.pem()).unwrap();
        TlsConfig { cert, key, client_ca: Some(client_ca), client_auth: Some(client_auth) }
    }

    fn client(&self, identity: Option<&Issued>) -> Client {
        Client::new(&self.ca, identity)
    }
}

/// A server over TLS on 127.0.0.1, in this process.
struct Running {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: actix_rt::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start(pki: &Pki, client_auth: ClientAuth) -> Running {
        let signer = Principal::service_account("sa-signer-1", &[Role::Signer]);
        let alice = Principal::user("us-alice", &[Role::Admin]);
        let engine = Engine::builder()
            .principals(vec![signer.clone(), alice.clone()])
            .arbiters(1)
            .build()
            .await
            .expect("engine starts");
        let credentials = Credentials::new(vec![PrincipalConfig {
            principal: signer,
            token_sha256: Some(token_sha256(SIGNER_TOKEN)),
            cert_sha256: Some(pki.signer.sha256()),
            credentials: Vec::new(),
        }])
        .with_token(alice, ALICE_TOKEN);
        let tls = Tls::load(&pki.tls_config(client_auth)).expect("the TLS files load");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = Server::new(engine).credentials(credentials).workers(1).tls(tls);
        let task = actix_rt::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        Running { address, stop, task }
    }

    /// The metrics page, read with the signer's certificate (which every mode accepts).
    async fn metrics(&self, pki: &Pki) -> String {
        let client = pki.client(Some(&pki.signer));
        let answer = client.request(self.address, "GET", "/metrics", None, None).await.expect("metrics");
        answer.expect(200).as_str().expect("a text page").to_owned()
    }

    async fn failures(&self, pki: &Pki, reason: &str) -> u64 {
        handshake_failures(&self.metrics(pki).await, reason)
    }

    /// Waits until more handshakes failed for `reason` than `before`: the
    /// server counts a failure right after sending its alert, so the client
    /// may hear of it first.
    async fn assert_counted(&self, pki: &Pki, reason: &str, before: u64) {
        for _ in 0..300 {
            if self.failures(pki, reason).await > before {
                return;
            }
            actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no handshake failure counted as `{reason}`");
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task").expect("server stops cleanly");
    }
}

#[actix_rt::test]
async fn https_answers_over_tls_1_2_and_1_3_with_the_configured_certificate() {
    let pki = Pki::new();
    let server = Running::start(&pki, ClientAuth::Optional).await;

    let mut connection = pki.client(None).connect(server.address).await.expect("TLS handshake");
    assert_eq!(connection.server_cert_sha256, pki.server.sha256(), "the configured certificate is served");
    assert_eq!(connection.version, Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(connection.request("GET", "/healthz", None, None).await.unwrap().status, 200);

    let tls12 = Client::with_versions(&pki.ca, None, &[&rustls::version::TLS12]);
    let mut connection = tls12.connect(server.address).await.expect("TLS 1.2 handshake");
    assert_eq!(connection.version, Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(connection.request("GET", "/healthz", None, None).await.unwrap().status, 200);

    // Every reason is a series from the start, so that alerts can rate it.
    let metrics = server.metrics(&pki).await;
    for reason in HandshakeFailure::ALL {
        let series = format!("warden_tls_handshake_failures_total{{reason=\"{}\"}}", reason.label());
        assert!(metrics.contains(&series), "{series} is missing");
    }
    server.stop().await;
}

#[actix_rt::test]
async fn a_request_that_is_not_http_gets_a_problem_document_over_tls_too() {
    let pki = Pki::new();
    let server = Running::start(&pki, ClientAuth::Optional).await;
    let mut connection = pki.client(None).connect(server.address).await.expect("TLS handshake");
    let answer = connection.raw(b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n").await.expect("an answer, then the close");
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a complete answer");
    assert!(head.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/problem+json"), "{answer}");
    let problem: serde_json::Value = serde_json::from_str(body).expect("a JSON problem document");
    assert_eq!(problem["status"], 400);
    server.stop().await;
}

#[actix_rt::test]
async fn plain_http_on_the_tls_port_is_refused() {
    let pki = Pki::new();
    let server = Running::start(&pki, ClientAuth::Optional).await;
    let before = server.failures(&pki, "protocol").await;

    let received = plain_http_exchange(server.address).await;
    assert!(!received.starts_with(b"HTTP/"), "plain HTTP got an HTTP answer: {:?}", String::from_utf8_lossy(&received));

    server.assert_counted(&pki, "protocol", before).await;
    server.stop().await;
}

#[actix_rt::test]
async fn required_client_auth_refuses_a_client_without_a_certificate() {
    let pki = Pki::new();
    let server = Running::start(&pki, ClientAuth::Required).await;
    let before = server.failures(&pki, "no_client_cert").await;

    // A bearer token does not stand in for the certificate: the handshake
    // fails before any HTTP is read (in TLS 1.3 the client learns it from
    // the server's alert on its first read).
    let refused = pki.client(None).request(server.address, "GET", "/healthz", Some(ALICE_TOKEN), None).await;
    let error = refused.expect_err("a client without a certificate is refused");
    assert!(error.to_string().contains("CertificateRequired"), "{error}");

    server.assert_counted(&pki, "no_client_cert", before).await;
    server.stop().await;
}

#[actix_rt::test]
async fn optional_client_auth_lets_a_client_without_a_certificate_use_its_token() {
    let pki = Pki::new();
    let server = Running::start(&pki, ClientAuth::Optional).await;
    let client = pki.client(None);
    let answer = client.request(server.address, "GET", "/v2/policies", Some(ALICE_TOKEN), None).await.unwrap();
    answer.expect(200);
    let answer = client.request(server.address, "GET", "/v2/policies", None, None).await.unwrap();
    answer.assert_problem(401, "authorization");
    server.stop().await;
}

#[actix_rt::test]
async fn a_client_certificate_of_another_ca_is_refused() {
    let pki = Pki::new();
    let server = Running::start(&pki, ClientAuth::Optional).await;
    let before = server.failures(&pki, "unknown_ca").await;

    let refused = pki.client(Some(&pki.foreign)).request(server.address, "GET", "/healthz", None, None).await;
    refused.expect_err("a certificate of another CA is refused, even where certificates are optional");

    server.assert_counted(&pki, "unknown_ca", before).await;
    server.stop().await;
}

#[actix_rt::test]
async fn an_expired_client_certificate_is_refused() {
    let pki = Pki::new();
    let server = Running::start(&pki, ClientAuth::Required).await;
    let before = server.failures(&pki, "expired").await;

    let refused = pki.client(Some(&pki.expired)).request(server.address, "GET", "/healthz", None, None).await;
    refused.expect_err("an expired certificate is refused");

    server.assert_counted(&pki, "expired", before).await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_client_certificate_authenticates_its_principal_without_a_token() {
    let pki = Pki::new();
    let server = Running::start(&pki, ClientAuth::Required).await;
    let mut connection = pki.client(Some(&pki.signer)).connect(server.address).await.unwrap();

    let submitted = connection.request("POST", "/v2/activities", None, Some(&activity("100.00", None))).await;
    let submitted = submitted.unwrap().expect(200);
    assert_eq!(submitted["activity"]["initiator"]["id"], "sa-signer-1", "{submitted}");
    assert_eq!(submitted["activity"]["initiator"]["kind"], "ServiceAccount", "{submitted}");
    // Its own token beside its certificate is the same principal.
    let again = connection.request("POST", "/v2/activities", Some(SIGNER_TOKEN), Some(&activity("1.00", None))).await;
    assert_eq!(again.unwrap().expect(200)["activity"]["initiator"]["id"], "sa-signer-1");
    // Roles are the principal's: a Signer is not an Admin.
    let policies = connection.request("POST", "/v2/policies", None, Some(&http_support::seed_policy())).await;
    policies.unwrap().assert_problem(403, "Admin");

    // A certificate of the CA that no principal holds authenticates nobody.
    let stranger = pki.client(Some(&pki.stranger));
    let answer = stranger.request(server.address, "GET", "/v2/policies", None, None).await.unwrap();
    answer.assert_problem(401, "authorization");
    server.stop().await;
}

#[actix_rt::test]
async fn a_certificate_principal_with_another_principals_token_is_forbidden() {
    let pki = Pki::new();
    let server = Running::start(&pki, ClientAuth::Required).await;
    let mut connection = pki.client(Some(&pki.signer)).connect(server.address).await.unwrap();

    let as_alice = connection.request("GET", "/v2/policies", Some(ALICE_TOKEN), None).await.unwrap();
    as_alice.assert_problem(403, "sa-signer-1");
    let unknown = connection.request("GET", "/v2/policies", Some("no-such-token"), None).await.unwrap();
    unknown.assert_problem(403, "authorization");
    // Nothing was submitted in anyone's name.
    let activities = connection.request("GET", "/v2/activities", None, None).await.unwrap().expect(200);
    assert_eq!(activities["items"].as_array().map(Vec::len), Some(0), "{activities}");
    server.stop().await;
}

/// Writes `issued` over the server's certificate and key files.
fn replace_server_files(pki: &Pki, issued: &Issued) {
    let written = issued.write(pki.dir.path(), "server");
    assert_eq!(written.0, pki.dir.path().join("server.pem"));
}

#[actix_rt::test]
async fn a_reload_swaps_the_certificate_for_new_connections_only_and_a_bad_one_changes_nothing() {
    let pki = Pki::new();
    let config = pki.tls_config(ClientAuth::Optional);
    let tls = Tls::load(&config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let engine = Engine::builder().arbiters(1).build().await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = actix_rt::spawn(Server::new(engine).workers(1).tls(tls.clone()).serve(listener, async move {
        let _ = stopped.await;
    }));
    let server = Running { address, stop, task };
    let client = pki.client(None);
    let mut established = client.connect(address).await.unwrap();
    assert_eq!(established.request("GET", "/healthz", None, None).await.unwrap().status, 200);

    let rotated = pki.ca.issue_server();
    replace_server_files(&pki, &rotated);
    tls.reload(&config).expect("the rotated files load");
    assert_eq!(client.connect(address).await.unwrap().server_cert_sha256, rotated.sha256());
    assert_eq!(established.request("GET", "/healthz", None, None).await.unwrap().status, 200);
    assert_eq!(established.server_cert_sha256, pki.server.sha256());

    // A key that does not match: refused, naming the key, and the rotated certificate stays.
    std::fs::write(pki.dir.path().join("server.key"), pki.stranger.key_pem.as_bytes()).unwrap();
    let error = tls.reload(&config).expect_err("a mismatched key is refused");
    assert_eq!(error.key(), Some("tls.key"), "{error}");
    assert_eq!(client.connect(address).await.unwrap().server_cert_sha256, rotated.sha256());
    server.stop().await;
}

#[actix_rt::test]
async fn reloaders_apply_the_config_file_or_change_nothing() {
    let pki = Pki::new();
    let config = pki.tls_config(ClientAuth::Optional);
    let tls = Tls::load(&config).unwrap();
    let file = pki.dir.path().join("reload.toml");
    let mut reloaders = Reloaders::new(&file);
    reloaders.add(tls.clone());
    let section = format!("[tls]\ncert = {:?}\nkey = {:?}\n", config.cert, config.key);

    std::fs::write(&file, &section).unwrap();
    assert_eq!(reloaders.reload_all(), ReloadOutcome::Parts(vec![("tls", Ok(()))]));
    std::fs::write(&file, format!("{section}listen_port = 1\n")).unwrap();
    let ReloadOutcome::ConfigRefused(why) = reloaders.reload_all() else { panic!("a bad file reloads nothing") };
    assert!(why.contains("listen_port"), "{why}");
    std::fs::write(&file, "").unwrap();
    let ReloadOutcome::Parts(parts) = reloaders.reload_all() else { panic!("the file is valid") };
    let why = parts[0].1.clone().expect_err("TLS cannot be switched off by a reload");
    assert!(why.contains("[tls]"), "{why}");
}

#[test]
fn bad_tls_files_are_refused_naming_their_key() {
    let pki = Pki::new();
    let good = pki.tls_config(ClientAuth::Required);
    let dir = pki.dir.path();
    let refused = |config: TlsConfig| Tls::load(&config).expect_err("refused").to_string();

    let missing = refused(TlsConfig { cert: dir.join("missing.pem"), ..good.clone() });
    assert!(missing.contains("`tls.cert`") && missing.contains("missing.pem"), "{missing}");
    let (_, other_key) = pki.stranger.write(dir, "stranger");
    let mismatch = refused(TlsConfig { key: other_key, ..good.clone() });
    assert!(mismatch.contains("`tls.key`") && mismatch.contains("does not match"), "{mismatch}");
    let not_a_key = refused(TlsConfig { key: good.cert.clone(), ..good.clone() });
    assert!(not_a_key.contains("`tls.key`"), "{not_a_key}");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let unreadable_ca = refused(TlsConfig { client_ca: Some(garbage.clone()), ..good.clone() });
    assert!(
        unreadable_ca.contains("`tls.client_ca`") && unreadable_ca.contains("no PEM certificate"),
        "{unreadable_ca}"
    );
    let missing_ca = refused(TlsConfig { client_ca: Some(dir.join("nope.pem")), ..good.clone() });
    assert!(missing_ca.contains("`tls.client_ca`"), "{missing_ca}");
    let not_a_cert = refused(TlsConfig { cert: garbage, ..good });
    assert!(not_a_cert.contains("`tls.cert`"), "{not_a_cert}");
}

/// The real binary, for what only a process shows: SIGHUP and start-up refusals.
#[cfg(unix)]
mod binary {
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use super::binary_support::{self, PATIENCE};
    use super::*;

    /// A config file with `[tls]` over `pki`'s files and `sa-signer-1` by certificate.
    fn write_config(pki: &Pki, tls: &TlsConfig) -> PathBuf {
        let text = format!(
            "[tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\nclient_auth = \"required\"\n\n\
             [[principals]]\nid = \"sa-signer-1\"\nkind = \"ServiceAccount\"\nroles = [\"Signer\"]\ncert_sha256 = \"{}\"\n",
            tls.cert,
            tls.key,
            tls.client_ca.as_ref().unwrap(),
            pki.signer.sha256_hex()
        );
        let path = pki.dir.path().join("warden.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn command(config: &Path, data_dir: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
        command.args(["serve", "--listen", "127.0.0.1:0", "--config"]).arg(config).arg("--data-dir").arg(data_dir);
        command
    }

    /// A running `warden serve` over https, with the file its log goes to.
    struct Warden {
        process: binary_support::Warden,
        address: SocketAddr,
        log: PathBuf,
    }

    impl Warden {
        fn start(config: &Path, dir: &Path) -> Warden {
            let log = dir.join("warden.log");
            let mut command = command(config, &dir.join("data"));
            command.stderr(std::fs::File::create(&log).unwrap());
            let (process, _) = binary_support::Warden::spawn_listening(command);
            let address = process.base.strip_prefix("https://").expect("warden listens on https").parse().unwrap();
            Warden { process, address, log }
        }

        fn signal(&self, signal: i32) {
            self.process.signal(signal);
        }

        /// Waits until the log holds a line containing every one of `parts`, and returns it.
        async fn logged(&self, parts: &[&str]) -> String {
            let deadline = Instant::now() + PATIENCE;
            while Instant::now() < deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                if let Some(line) = log.lines().find(|line| parts.iter().all(|part| line.contains(part))) {
                    return line.to_owned();
                }
                actix_rt::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the log never said {parts:?}:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }

        /// SIGTERM, then waits for a clean exit.
        fn terminate(self) {
            self.process.terminate();
        }
    }

    fn wait(child: &mut Child) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    #[actix_rt::test]
    async fn sighup_rotates_the_certificate_while_an_established_connection_keeps_working() {
        let pki = Pki::new();
        let tls = pki.tls_config(ClientAuth::Required);
        let config = write_config(&pki, &tls);
        let warden = Warden::start(&config, pki.dir.path());
        let client = pki.client(Some(&pki.signer));
        let mut established = client.connect(warden.address).await.expect("TLS handshake");
        assert_eq!(established.server_cert_sha256, pki.server.sha256());
        let submitted = established.request("POST", "/v2/activities", None, Some(&activity("10.00", None))).await;
        assert_eq!(submitted.unwrap().expect(200)["activity"]["initiator"]["id"], "sa-signer-1");

        let rotated = pki.ca.issue_server();
        replace_server_files(&pki, &rotated);
        warden.signal(libc::SIGHUP);
        let deadline = Instant::now() + PATIENCE;
        loop {
            // Used all along, so that keep-alive never closes it for idleness.
            let answer = established.request("GET", "/healthz", None, None).await;
            assert_eq!(answer.expect("the established connection still answers").status, 200);
            if client.connect(warden.address).await.unwrap().server_cert_sha256 == rotated.sha256() {
                break;
            }
            assert!(Instant::now() < deadline, "new connections never saw the rotated certificate");
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        let answer = established.request("POST", "/v2/activities", None, Some(&activity("20.00", None))).await;
        assert_eq!(answer.unwrap().expect(200)["activity"]["initiator"]["id"], "sa-signer-1");
        warden.logged(&["TLS reloaded", &rotated.sha256_hex()]).await;

        // A key that does not match the certificate: the reload fails, says
        // why, and the rotated certificate keeps being served.
        std::fs::write(&tls.key, pki.stranger.key_pem.as_bytes()).unwrap();
        warden.signal(libc::SIGHUP);
        warden.logged(&["reload failed", "tls.key"]).await;
        assert_eq!(client.connect(warden.address).await.unwrap().server_cert_sha256, rotated.sha256());

        // A refused handshake is logged with its reason.
        let refused = pki.client(None).request(warden.address, "GET", "/healthz", None, None).await;
        refused.expect_err("no client certificate");
        warden.logged(&["TLS handshake failed", "no_client_cert"]).await;
        warden.terminate();
    }

    /// Runs `warden serve` on `config`, expecting it to refuse to start.
    fn refused_at_start(config: &Path, data_dir: &Path) -> String {
        let mut child = command(config, data_dir).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let status = wait(&mut child);
        if status.is_none() {
            let _ = child.kill();
        }
        let Output { status, stderr, .. } = child.wait_with_output().unwrap();
        assert!(!status.success(), "warden started with a bad [tls]");
        String::from_utf8_lossy(&stderr).into_owned()
    }

    #[test]
    fn bad_tls_config_is_refused_at_start_naming_the_key() {
        let pki = Pki::new();
        let good = pki.tls_config(ClientAuth::Required);
        let dir = pki.dir.path();
        let data_dir = dir.join("data");

        let config = write_config(&pki, &TlsConfig { cert: dir.join("missing.pem"), ..good.clone() });
        let stderr = refused_at_start(&config, &data_dir);
        assert!(stderr.contains("`tls.cert`") && stderr.contains("missing.pem"), "{stderr}");

        let (_, stranger_key) = pki.stranger.write(dir, "stranger");
        let config = write_config(&pki, &TlsConfig { key: stranger_key, ..good.clone() });
        let stderr = refused_at_start(&config, &data_dir);
        assert!(stderr.contains("`tls.key`") && stderr.contains("does not match"), "{stderr}");

        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let config = write_config(&pki, &TlsConfig { client_ca: Some(garbage), ..good });
        let stderr = refused_at_start(&config, &data_dir);
        assert!(stderr.contains("`tls.client_ca`"), "{stderr}");
        assert!(!data_dir.exists(), "refused before the journal was opened");
    }
}
