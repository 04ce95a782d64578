//! Schemathesis against the real binary's own `/openapi.json`: examples,
//! coverage, fuzzing and stateful phases (following the document's links),
//! a bounded number of examples per operation, and every check but one: no
//! 5xx, every status documented, every answer valid against its documented
//! schema, content type and headers, schema-violating requests refused,
//! deleted resources gone, authentication not ignored. The one left out,
//! `positive_data_acceptance` (every schema-valid request accepted), cannot
//! hold for Warden: rules across fields (a velocity rule needs a window, a
//! pagination token must come from the same list) are beyond JSON Schema.
//!
//! `scripts/schemathesis.sh` installs the pinned Schemathesis into a virtual
//! environment under `target/` (once). The server and Schemathesis run in a
//! network namespace of their own with only loopback: fuzzed webhook URLs
//! must never make the server connect anywhere but this machine.

#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;

use warden::config::token_sha256_hex;

const TOKEN: &str = "schemathesis-token";

/// Examples per operation and phase: about 2,000 requests in all, well under
/// a minute on two cores.
const MAX_EXAMPLES: &str = "10";

/// Installs Schemathesis (idempotent) and returns its `st` command.
fn schemathesis() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/schemathesis.sh");
    let output = Command::new("sh").arg(script).arg(env!("CARGO_TARGET_TMPDIR")).output().expect("sh runs");
    assert!(
        output.status.success(),
        "scripts/schemathesis.sh failed (python3 -m venv and pip must work):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn schemathesis_finds_no_disagreement_between_the_document_and_the_server() {
    let st = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "[[principals]]\nid = \"us-fuzz\"\nroles = [\"Admin\", \"Signer\"]\ntoken_sha256 = \"{}\"\n",
            token_sha256_hex(TOKEN)
        ),
    )
    .unwrap();
    // A fresh network namespace has every port free: the fixed one is safe.
    // `/v2/events` is a stream that never ends, so it is left out.
    let script = r#"
        ip link set lo up || exit 90
        "$WARDEN" serve --config "$DIR/warden.toml" --listen 127.0.0.1:8080 --data-dir "$DIR" >"$DIR/server.log" 2>&1 &
        server=$!
        "$ST" run http://127.0.0.1:8080/openapi.json --wait-for-schema 60 \
            -H "Authorization: Bearer $TOKEN" \
            --checks all --exclude-checks positive_data_acceptance \
            --phases examples,coverage,fuzzing,stateful --max-examples "$MAX_EXAMPLES" --seed 1 \
            --exclude-path /v2/events --request-timeout 10 --no-color --report-dir "$DIR/report" \
            --generation-database none
        status=$?
        kill $server
        wait $server
        exit $status
    "#;
    // Run in the temp dir: Schemathesis leaves files where it runs.
    let output = Command::new("unshare")
        .current_dir(dir.path())
        .args(["--net", "sh", "-c", script])
        .env("WARDEN", env!("CARGO_BIN_EXE_warden"))
        .env("ST", &st)
        .env("DIR", dir.path())
        .env("TOKEN", TOKEN)
        .env("MAX_EXAMPLES", MAX_EXAMPLES)
        .output()
        .expect("unshare runs (util-linux)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let server_log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    assert_ne!(
        output.status.code(),
        Some(90),
        "no network namespace (the test needs root or user namespaces): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "Schemathesis found failures:\n{stdout}\n{}\nserver log (last lines):\n{}",
        String::from_utf8_lossy(&output.stderr),
        server_log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    assert!(stdout.contains("passed"), "Schemathesis ran no test case:\n{stdout}");
}
