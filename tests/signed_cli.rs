//! The real binary with signing principals: the approver CLI (`warden
//! approvals list|show|decide`) deciding with Ed25519 and P-256 keys,
//! decisions showing their credential, and `warden audit verify` checking
//! the journal offline, then failing once a record with a bad signature is
//! written into it.

#![cfg(unix)]

mod binary_support;

use binary_support::*;
use serde_json::{json, Value};
use warden::Journal;

fn seed_policy() -> Value {
    json!({
        "name": "Large Transaction Approval",
        "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountLimit", "configuration": {"limit": "100000", "currency": "USD"}},
        "action": {"kind": "RequestApproval", "approvalGroups": [{
            "name": "Treasury", "quorum": 2, "approvers": {"userId": {"in": ["us-1", "us-2", "us-3"]}}
        }], "autoRejectTimeout": 86400},
        "filters": {"walletTags": {"hasAny": ["treasury"]}}
    })
}

fn transfer(usd: &str) -> Value {
    json!({
        "kind": "Wallets:Sign",
        "wallet": {"id": "wa-1", "tags": ["treasury"]},
        "transaction": {"type": "Transfer", "network": "Ethereum",
            "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "50000000000000000000", "valueUsd": usd}]}
    })
}

fn text(output: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn approvals(base: &str, token: &str, rest: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["approvals".into(), "--url".into(), base.into(), "--token".into(), token.into()];
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}

#[actix_rt::test]
async fn approvers_decide_with_the_cli_and_the_journal_verifies_until_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let data = dir.path().join("data");
    let warden = Warden::start(&config, &data, &dir.path().join("warden.log")).await;
    let base = warden.base.clone();

    let (status, policy) =
        signed_request(&base, "alice-admin-token", ("ed25519", "cr-alice"), "POST", "/v2/policies", &seed_policy())
            .await;
    assert_eq!(status, 200, "{policy}");
    let client = awc::Client::default();
    let mut held = client
        .post(format!("{base}/v2/activities"))
        .bearer_auth("bob-signer-token")
        .send_json(&transfer("150000"))
        .await
        .unwrap();
    let held: Value = held.json().await.unwrap();
    assert_eq!(held["status"], "PendingApproval", "{held}");
    let approval_id = held["approvalId"].as_str().unwrap().to_owned();

    // list and show
    let listed = cli_async(approvals(&base, "approver-1-token", &["list"])).await;
    let (out, err) = text(&listed);
    assert!(listed.status.success(), "{err}");
    assert!(out.contains(&approval_id) && out.contains("Pending") && out.contains("Treasury 0/2"), "{out}");
    let shown = cli_async(approvals(&base, "approver-1-token", &["show", &approval_id])).await;
    let (out, err) = text(&shown);
    assert!(shown.status.success(), "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["activity"]["transaction"]["assets"][0]["valueUsd"], "150000");

    // An approver with a key must sign: unsigned, the server refuses.
    let unsigned = cli_async(approvals(&base, "approver-1-token", &["decide", &approval_id, "--approve"])).await;
    let (_, err) = text(&unsigned);
    assert!(!unsigned.status.success());
    assert!(err.contains("x-dfns-useraction"), "{err}");

    // Two signed approvals, Ed25519 then P-256.
    for (token, key, credential) in
        [("approver-1-token", "ed25519-b", "cr-one"), ("approver-2-token", "p256", "cr-two")]
    {
        let key = key_path(&format!("{key}.key")).display().to_string();
        let args = [
            "decide",
            &approval_id,
            "--approve",
            "--reason",
            "checked the desk",
            "--key",
            &key,
            "--credential-id",
            credential,
        ];
        let decided = cli_async(approvals(&base, token, &args)).await;
        let (out, err) = text(&decided);
        assert!(decided.status.success(), "{err}");
        assert!(out.contains(&approval_id), "{out}");
    }
    let mut approval = client
        .get(format!("{base}/v2/policy-approvals/{approval_id}"))
        .bearer_auth("approver-3-token")
        .send()
        .await
        .unwrap();
    let approval: Value = approval.json().await.unwrap();
    assert_eq!(approval["status"], "Approved");
    assert_eq!(approval["decisions"][0]["credentialId"], "cr-one");
    assert_eq!(approval["decisions"][1]["credentialId"], "cr-two");
    let signed_decision = approval["decisions"][0]["userAction"].clone();
    warden.terminate();

    // Offline: the policy create and both decisions verify.
    let config_arg = config.display().to_string();
    let data_arg = data.display().to_string();
    let verify = vec!["audit", "verify", "--config", &config_arg, "--data-dir", &data_arg];
    let verify: Vec<String> = verify.into_iter().map(str::to_owned).collect();
    let verified = cli_async(verify.clone()).await;
    let (out, err) = text(&verified);
    assert!(verified.status.success(), "{out}{err}");
    assert!(out.contains("3 signed actions checked") && out.contains(": 0 failed"), "{out}");

    // Tampered: a record of a signed action whose body says something else
    // than what was signed, and one whose signature is flipped.
    let original: warden::SignedAction = serde_json::from_value(signed_decision).unwrap();
    let forged = warden::SignedAction { body: original.body.replace("Approved", "Denied"), ..original.clone() };
    let mut signature = original.signature.clone().into_bytes();
    signature[3] = if signature[3] == b'A' { b'B' } else { b'A' };
    let flipped = warden::SignedAction { signature: String::from_utf8(signature).unwrap(), ..original };
    let journal = warden_redb::RedbJournal::open(data.join("warden.redb")).unwrap();
    journal
        .append(&[warden::audit::signed_action_payload(&forged), warden::audit::signed_action_payload(&flipped)])
        .unwrap();
    drop(journal);
    let failed = cli_async(verify).await;
    let (out, _) = text(&failed);
    assert_eq!(failed.status.code(), Some(1), "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("FAILED")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines.iter().all(|l| l.contains("us-1") && l.contains("cr-one")), "{out}");
    assert!(lines[0].contains("challenge"), "the body is not what was signed: {out}");
    assert!(lines[1].contains("does not verify"), "a flipped signature: {out}");
    assert!(out.contains("5 signed actions checked") && out.contains(": 2 failed"), "{out}");
}
