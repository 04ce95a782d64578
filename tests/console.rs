//! The approver console (`/console/`). Without a browser: its files, their
//! media types and the strict Content-Security-Policy they carry. In a real
//! browser: `scripts/chromium.sh` installs Debian's chromium and the pinned
//! `playwright-core`, this test starts `warden serve` on loopback with the
//! people and policies that `tests/console-browser/console.test.js` expects,
//! runs it in one Node process, then checks on the server what the browser did.

#![cfg(unix)]

mod binary_support;
mod http_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use warden::config::token_sha256_hex;

/// `scripts/chromium.sh`'s status when apt-get, node, npm or a registry is unavailable.
const UNAVAILABLE: i32 = 77;

/// Seconds before the `hot` wallet's approvals expire: long enough for the
/// page to show the time left, short enough to wait for.
const EXPIRY_SECONDS: u64 = 10;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every file the console's pages and modules refer to (`src`, `href`, `import ... from`).
fn references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["src=\"", "href=\"", "from '", "import('"] {
        for piece in text.split(marker).skip(1) {
            let end = piece.find(['"', '\'']).unwrap_or(0);
            let reference = &piece[..end];
            if !reference.starts_with('#') && !reference.starts_with('$') && !reference.is_empty() {
                found.push(reference.to_owned());
            }
        }
    }
    found
}

#[actix_rt::test]
async fn console_files_are_served_with_a_strict_policy_and_no_token() {
    let server = http_support::TestServer::start().await;
    let client = awc::Client::builder().disable_redirects().timeout(Duration::from_secs(10)).finish();

    let redirect = client.get(format!("{}/console", server.base)).send().await.unwrap();
    assert_eq!(redirect.status().as_u16(), 308);
    assert_eq!(redirect.headers().get("location").unwrap(), "/console/");

    let mut page = client.get(format!("{}/console/", server.base)).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200, "no token needed");
    let html = String::from_utf8(page.body().await.unwrap().to_vec()).unwrap();
    let headers = page.headers();
    assert_eq!(headers.get("content-type").unwrap(), "text/html; charset=utf-8");
    assert_eq!(headers.get("x-content-type-options").unwrap(), "nosniff");
    let policy = headers.get("content-security-policy").expect("a CSP").to_str().unwrap().to_owned();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(policy.split(';').any(|d| d.trim() == directive), "`{directive}` missing from `{policy}`");
    }
    assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{policy}");
    assert!(!html.contains("<script>") && !html.contains(" style="), "no inline script or style: {html}");
    assert!(!html.contains("://"), "the page names no other origin: {html}");

    // Every file the page refers to is served with its media type and the same headers.
    let mut pending = references(&html);
    let mut seen = Vec::new();
    while let Some(name) = pending.pop() {
        let name = name.trim_start_matches("./").trim_start_matches("/console/").to_owned();
        if seen.contains(&name) {
            continue;
        }
        let mut answer = client.get(format!("{}/console/{name}", server.base)).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 200, "`{name}` is served");
        let expected = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected file kind {other:?} for `{name}`"),
        };
        assert_eq!(answer.headers().get("content-type").unwrap(), expected, "`{name}`");
        assert_eq!(answer.headers().get("content-security-policy").unwrap().to_str().unwrap(), policy);
        assert_eq!(answer.headers().get("x-content-type-options").unwrap(), "nosniff");
        let text = String::from_utf8(answer.body().await.unwrap().to_vec()).unwrap();
        assert!(!text.contains("innerHTML") && !text.contains("eval("), "`{name}` writes no HTML from strings");
        pending.extend(references(&text));
        seen.push(name);
    }
    for module in
        ["app.js", "api.js", "approval.js", "keys.js", "views.js", "dom.js", "format.js", "console.css", "icon.svg"]
    {
        assert!(seen.iter().any(|name| name == module), "`{module}` is reachable from the page: {seen:?}");
    }

    let missing = server.get("/console/nothing.js", None).await;
    missing.assert_problem(404, "nothing.js");
    let traversal = server.get("/console/..%2FCargo.toml", None).await;
    assert_eq!(traversal.status, 404);
    let head = client.head(format!("{}/console/app.js", server.base)).send().await.unwrap();
    assert_eq!(head.status().as_u16(), 200);
}

/// The shared test config plus the console's own people: Erin, in no group,
/// and Dan. The browser script registers keys made in the browser by
/// writing them at the `# credentials of ID` line of their principal.
fn console_config(dir: &Path) -> PathBuf {
    let config = binary_support::write_config(dir);
    let mut text = std::fs::read_to_string(&config).unwrap();
    let us_3 = format!("token_sha256 = \"{}\"\n", token_sha256_hex("approver-3-token"));
    assert!(text.contains(&us_3), "us-3 is in the shared config");
    text = text.replace(&us_3, &format!("{us_3}# credentials of us-3\n"));
    for (id, token) in [("us-erin", "erin-token"), ("us-dan", "dan-token")] {
        let digest = token_sha256_hex(token);
        text += &format!("\n[[principals]]\nid = \"{id}\"\nkind = \"User\"\nroles = []\ntoken_sha256 = \"{digest}\"\n");
        text += &format!("# credentials of {id}\n");
    }
    std::fs::write(&config, text).unwrap();
    config
}

async fn create_policy(base: &str, policy: Value) {
    let (status, body) = binary_support::signed_request(
        base,
        "alice-admin-token",
        ("ed25519", "cr-alice"),
        "POST",
        "/v2/policies",
        &policy,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

fn approval_policy(
    name: &str,
    group: &str,
    quorum: u32,
    approvers: &[&str],
    tag: &str,
    limit: &str,
    expiry: u64,
) -> Value {
    json!({
        "name": name, "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountLimit", "configuration": {"limit": limit, "currency": "USD"}},
        "action": {"kind": "RequestApproval", "autoRejectTimeout": expiry, "approvalGroups": [{
            "name": group, "quorum": quorum, "approvers": {"userId": {"in": approvers}},
            "initiatorCanApprove": false, "serviceAccountsCanApprove": false,
        }]},
        "filters": {"walletTags": {"hasAny": [tag]}}, "status": "Active",
    })
}

async fn get(base: &str, path: &str) -> Value {
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let mut answer = client.get(format!("{base}{path}")).bearer_auth("alice-admin-token").send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200, "{path}");
    answer.json::<Value>().limit(16 * 1024 * 1024).await.unwrap()
}

#[actix_rt::test]
async fn approvers_decide_in_a_real_browser() {
    let install = actix_web::web::block(|| Command::new("sh").arg(root().join("scripts/chromium.sh")).output())
        .await
        .unwrap()
        .expect("sh runs");
    if install.status.code() == Some(UNAVAILABLE) {
        eprintln!(
            "\n!!!!!!!!!! SKIPPED approvers_decide_in_a_real_browser: {}!!!!!!!!!!\n",
            String::from_utf8_lossy(&install.stderr)
        );
        return;
    }
    assert!(install.status.success(), "scripts/chromium.sh failed: {}", String::from_utf8_lossy(&install.stderr));
    let chromium = String::from_utf8(install.stdout).unwrap().trim().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let config = console_config(dir.path());
    let log = dir.path().join("warden.log");
    let warden = binary_support::Warden::start(&config, &dir.path().join("data"), &log).await;
    let treasury =
        approval_policy("Treasury approval", "Treasury", 2, &["us-dan", "us-2", "us-3"], "treasury", "100000", 86400);
    create_policy(&warden.base, treasury).await;
    let hot = approval_policy("Hot wallet approval", "Hot desk", 1, &["us-dan"], "hot", "1000", EXPIRY_SECONDS);
    create_policy(&warden.base, hot).await;
    // Last: from now on a policy change waits for Dan's approval.
    let governance = json!({
        "name": "Policy changes", "activityKind": "Policies:Modify",
        "rule": {"kind": "AlwaysTrigger", "configuration": {}},
        "action": {"kind": "RequestApproval", "approvalGroups": [{
            "name": "Risk", "quorum": 1, "approvers": {"userId": {"in": ["us-dan"]}},
        }]},
        "status": "Active",
    });
    create_policy(&warden.base, governance).await;

    // Screenshots of this run only (a failed run leaves `failure-N.png` of each page).
    let artifacts = root().join("target/console-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let (base, pid, config_path) = (warden.base.clone(), warden.pid().to_string(), config.clone());
    let artifacts_dir = artifacts.clone();
    let run = actix_web::web::block(move || {
        Command::new("node")
            .arg(root().join("tests/console-browser/console.test.js"))
            .current_dir(root().join("tests/console-browser"))
            .env("WARDEN_URL", &base)
            .env("WARDEN_PID", pid)
            .env("CONFIG", config_path)
            .env("CHROMIUM", chromium)
            .env("KEYS_DIR", root().join("tests/fixtures/keys"))
            .env("ARTIFACTS", artifacts_dir)
            .env("EXPIRY", EXPIRY_SECONDS.to_string())
            .output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr);
    if !run.status.success() {
        let server_log = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = server_log.lines().rev().take(40).collect();
        panic!(
            "the browser run failed:\n{stdout}\n{stderr}\n--- server log (last lines) ---\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    eprintln!("{stdout}");
    assert!(stdout.lines().any(|line| line == "console: ok"), "{stdout}");

    // What the browser did, as the server recorded it.
    let result: Value = stdout
        .lines()
        .find_map(|line| line.strip_prefix("console: result "))
        .map(|json| serde_json::from_str(json).unwrap())
        .expect("the script reports what it made");
    let approved =
        get(&warden.base, &format!("/v2/policy-approvals/{}", result["approved"]["approvalId"].as_str().unwrap()))
            .await;
    assert_eq!(approved["status"], "Approved", "{approved}");
    let decisions: Vec<(&str, &str, &str)> = approved["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (d["userId"].as_str().unwrap(), d["value"].as_str().unwrap(), d["credentialId"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(decisions, [("us-dan", "Approved", "cr-dan-browser"), ("us-3", "Approved", "cr-three-browser")]);
    let activity = get(&warden.base, &format!("/v2/activities/{}", result["approved"]["id"].as_str().unwrap())).await;
    assert_eq!(activity["status"], "Approved");
    let denied =
        get(&warden.base, &format!("/v2/policy-approvals/{}", result["denied"]["approvalId"].as_str().unwrap())).await;
    assert_eq!(denied["status"], "Denied");
    assert_eq!(denied["decisions"][0]["reason"], "recipient not on our list");
    assert_eq!(denied["decisions"][0]["credentialId"], "cr-two");
    let expired = get(&warden.base, &format!("/v2/activities/{}", result["expired"]["id"].as_str().unwrap())).await;
    assert_eq!(expired["status"], "Expired");
    let change = get(&warden.base, &format!("/v2/change-requests/{}", result["change"]["id"].as_str().unwrap())).await;
    assert_eq!(change["status"], "Applied", "{change}");
    let applied = get(&warden.base, &format!("/v2/policies/{}", change["entityId"].as_str().unwrap())).await;
    assert_eq!(applied["name"], "Desk limit");
    assert_eq!(applied["rule"]["configuration"]["limit"], "250000", "the denied update changed nothing");
    let refused =
        get(&warden.base, &format!("/v2/change-requests/{}", result["refused"]["id"].as_str().unwrap())).await;
    assert_eq!(refused["status"], "Rejected", "{refused}");
    for screenshot in ["console-pending.png", "console-approval.png"] {
        let bytes = std::fs::read(artifacts.join(screenshot)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{screenshot} is a real picture");
    }
    warden.terminate();

    // The browser's signatures (DER, from WebCrypto's P-256) verify offline too.
    let data = dir.path().join("data");
    let verify =
        ["audit", "verify", "--config", &config.display().to_string(), "--data-dir", &data.display().to_string()]
            .map(str::to_owned)
            .to_vec();
    let verified = binary_support::cli_async(verify).await;
    let out = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{out}{}", String::from_utf8_lossy(&verified.stderr));
    assert!(out.contains(": 0 failed"), "{out}");
}
