//! Shared by the tests that run the real `warden` binary with signing
//! principals: a config file holding the test keys of `tests/fixtures/keys`,
//! the server process on a free loopback port, and the CLI.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use warden::config::token_sha256_hex;

/// How long the binary may take to start or to stop.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A principal of the test config: id, roles, token, and its key (the
/// fixture name and the credential id), if it signs.
pub struct TestPrincipal {
    pub id: &'static str,
    pub roles: &'static str,
    pub token: &'static str,
    pub key: Option<(&'static str, &'static str)>,
}

/// The seed's people: an admin who signs with Ed25519, a signer without a
/// key, three treasury approvers (Ed25519, P-256, and one without a key),
/// and a second admin who signs with secp256k1 (the approver of governed
/// policy changes).
pub const PEOPLE: &[TestPrincipal] = &[
    TestPrincipal {
        id: "us-alice",
        roles: "\"Admin\"",
        token: "alice-admin-token",
        key: Some(("ed25519", "cr-alice")),
    },
    TestPrincipal { id: "us-bob", roles: "\"Signer\"", token: "bob-signer-token", key: None },
    TestPrincipal { id: "us-1", roles: "", token: "approver-1-token", key: Some(("ed25519-b", "cr-one")) },
    TestPrincipal { id: "us-2", roles: "", token: "approver-2-token", key: Some(("p256", "cr-two")) },
    TestPrincipal { id: "us-3", roles: "", token: "approver-3-token", key: None },
    TestPrincipal {
        id: "us-carol",
        roles: "\"Admin\"",
        token: "carol-admin-token",
        key: Some(("secp256k1", "cr-carol")),
    },
];

/// A `[[principals]]` entry of a user with `roles` (TOML list items, e.g.
/// `"\"Admin\""`) who signs in with `token`.
pub fn principal_toml(id: &str, roles: &str, token: &str) -> String {
    format!(
        "[[principals]]\nid = \"{id}\"\nkind = \"User\"\nroles = [{roles}]\ntoken_sha256 = \"{}\"\n\n",
        token_sha256_hex(token)
    )
}

/// A fixture key file's path.
pub fn key_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys").join(name)
}

/// Writes the config of [`PEOPLE`] in `dir`.
pub fn write_config(dir: &Path) -> PathBuf {
    let mut text = String::from(
        "listen = \"127.0.0.1:1\"   # overridden by --listen\n\
         webhook_allow_private = true   # the test receivers are on loopback\n\n",
    );
    for person in PEOPLE {
        text += &format!(
            "[[principals]]\nid = \"{}\"\nkind = \"User\"\nroles = [{}]\ntoken_sha256 = \"{}\"\n",
            person.id,
            person.roles,
            token_sha256_hex(person.token)
        );
        if let Some((key, credential)) = person.key {
            let pem = std::fs::read_to_string(key_path(&format!("{key}.pub"))).unwrap();
            text += &format!("[[principals.credentials]]\nid = \"{credential}\"\npublic_key = \"\"\"{pem}\"\"\"\n");
        }
        text += "\n";
    }
    text += "[prices]\nETH = \"3000\"\n";
    let path = dir.join("warden.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `warden serve`; killed if the test ends without stopping it.
pub struct Warden {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Warden {
    /// Starts the binary on a free port and waits until it is healthy.
    pub async fn start(config: &Path, data_dir: &Path, log: &Path) -> Warden {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
        command.args(["serve", "--config"]).arg(config).args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
        command.stderr(log);
        Warden::spawn(command).await.0
    }

    /// Runs `command` (a `warden serve` listening on a free port), waits until
    /// it is healthy, and answers it with the lines it printed before it
    /// said where it listens.
    pub async fn spawn(command: Command) -> (Warden, Vec<String>) {
        let (warden, printed) = Warden::spawn_listening(command);
        warden.wait_healthy().await;
        (warden, printed)
    }

    /// Runs `command` and waits only until it says where it listens (an
    /// https server is asked whether it is healthy by the caller's own
    /// client); answers it with the lines it printed before.
    pub fn spawn_listening(mut command: Command) -> (Warden, Vec<String>) {
        let mut child = command.stdout(Stdio::piped()).spawn().expect("warden starts");
        let stdout = child.stdout.take().unwrap();
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + PATIENCE;
        let mut printed = Vec::new();
        let base = loop {
            let line = received
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("warden prints where it listens");
            if let Some(address) = line.strip_prefix("warden listening on ") {
                break address.trim().to_owned();
            }
            printed.push(line);
        };
        (Warden { child, base }, printed)
    }

    async fn wait_healthy(&self) {
        let client = awc::Client::default();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let health = client.get(format!("{}/healthz", self.base)).send().await;
            if health.is_ok_and(|response| response.status() == 200) {
                return;
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("warden did not become healthy");
    }

    /// The server process's id (for a script that signals it itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the server process.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(mut self) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "warden exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "warden did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the `warden` CLI with `args` (blocking: call it off the async
/// runtime's thread, e.g. with `actix_web::web::block`).
pub fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden")).args(args).env_remove("WARDEN_TOKEN").output().expect("warden runs")
}

/// [`cli`] on the blocking pool.
pub async fn cli_async(args: Vec<String>) -> Output {
    actix_web::web::block(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&args)
    })
    .await
    .unwrap()
}

/// Sends `body` to `path` as `token`, signed through the user-action flow
/// with fixture key `key` registered as `credential`; answers status and JSON.
pub async fn signed_request(
    base: &str,
    token: &str,
    (key, credential): (&str, &str),
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    use base64::Engine as _;
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let body = body.to_string();
    let post = |path: &str, value: serde_json::Value| {
        client.post(format!("{base}{path}")).bearer_auth(token).send_json(&value)
    };
    let init = serde_json::json!({
        "userActionPayload": body, "userActionHttpMethod": method, "userActionHttpPath": path,
    });
    let challenge: serde_json::Value = post("/auth/action/init", init).await.unwrap().json().await.unwrap();
    let client_data = serde_json::json!({"type": "key.get", "challenge": challenge["challenge"]}).to_string();
    let private =
        warden::credential::PrivateKey::from_pem(&std::fs::read_to_string(key_path(&format!("{key}.key"))).unwrap())
            .unwrap();
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let assertion = serde_json::json!({
        "challengeIdentifier": challenge["challengeIdentifier"],
        "firstFactor": {"kind": "Key", "credentialAssertion": {
            "credId": credential,
            "clientData": encode(client_data.as_bytes()),
            "signature": encode(&private.sign(client_data.as_bytes())),
        }},
    });
    let token_answer: serde_json::Value = post("/auth/action", assertion).await.unwrap().json().await.unwrap();
    let user_action = token_answer["userAction"].as_str().expect("a user action token").to_owned();
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut response = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .insert_header(("X-DFNS-USERACTION", user_action))
        .insert_header(("Content-Type", "application/json"))
        .send_body(body)
        .await
        .unwrap();
    let bytes = response.body().await.unwrap();
    (response.status().as_u16(), serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}
