//! `GET /metrics`: every contract metric is exported from the start, the
//! counters move with traffic, and no label carries an id.

mod http_support;

use std::collections::HashMap;

use http_support::*;
use serde_json::json;

/// Every sample of a scrape, by its full series name (`name{labels}`).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(server: &TestServer) -> (String, HashMap<String, f64>) {
    let reply = server.get("/metrics", None).await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.starts_with("text/plain"), "{}", reply.content_type);
    let text = reply.body.as_str().expect("metrics are text").to_owned();
    let parsed = samples(&text);
    (text, parsed)
}

#[actix_rt::test]
async fn metrics_exist_from_start_and_count_traffic() {
    let server = TestServer::start().await;
    let (text, before) = scrape(&server).await;

    for name in [
        "warden_activities_total",
        "warden_evaluation_duration_seconds",
        "warden_approvals_pending",
        "warden_window_actors",
        "warden_approval_actors",
        "warden_approvals_resolved_total",
        "warden_journal_commit_duration_seconds",
        "warden_journal_records_total",
        "warden_webhook_deliveries_total",
        "warden_http_requests_total",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "`{name}` is not exported from start");
    }
    for status in ["Allowed", "Blocked", "PendingApproval", "Approved", "Denied", "Expired"] {
        let series = format!("warden_activities_total{{status=\"{status}\"}}");
        assert!(before.contains_key(&series), "`{series}` missing");
    }
    for status in ["Approved", "Denied", "Expired"] {
        let series = format!("warden_approvals_resolved_total{{status=\"{status}\"}}");
        assert!(before.contains_key(&series), "`{series}` missing");
    }
    // The outcome of an attempt is the event's delivery status after it.
    for outcome in ["Delivered", "Failed", "Pending"] {
        let series = format!("warden_webhook_deliveries_total{{outcome=\"{outcome}\"}}");
        assert!(before.contains_key(&series), "`{series}` missing");
    }
    assert!(before.contains_key("warden_approvals_pending"));
    assert!(text.contains("# TYPE warden_evaluation_duration_seconds histogram"));
    assert!(text.contains("warden_evaluation_duration_seconds_bucket{le=\"0.001\"}"), "explicit buckets");
    assert!(text.contains("# TYPE warden_journal_commit_duration_seconds histogram"));

    // Traffic: a policy, an allowed and a held activity, a decision.
    server.post("/v2/policies", Some(ALICE), &seed_policy()).await.expect(200);
    server.post("/v2/activities", Some(BOB), &activity("10", None)).await.expect(200);
    let held = server.post("/v2/activities", Some(BOB), &activity("150000", None)).await.expect(200);
    let approval_id = held["approvalId"].as_str().unwrap();
    let decisions = format!("/v2/policy-approvals/{approval_id}/decisions");
    server.post(&decisions, Some(APPROVER_1), &json!({"value": "Denied", "reason": "no"})).await.expect(200);
    server.get(&format!("/v2/policy-approvals/{approval_id}"), Some(BOB)).await.expect(200);
    server.get("/v2/policies/pl-unknown", Some(BOB)).await.assert_problem(404, "pl-unknown");

    let (text, after) = scrape(&server).await;
    let grew = |series: &str, by: f64| {
        let delta = after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0);
        assert!(delta >= by, "`{series}` grew by {delta}, expected at least {by}");
    };
    grew("warden_activities_total{status=\"Allowed\"}", 1.0);
    grew("warden_activities_total{status=\"PendingApproval\"}", 1.0);
    grew("warden_activities_total{status=\"Denied\"}", 1.0);
    grew("warden_approvals_resolved_total{status=\"Denied\"}", 1.0);
    grew("warden_journal_records_total", 3.0);
    grew("warden_evaluation_duration_seconds_count", 2.0);
    grew("warden_journal_commit_duration_seconds_count", 3.0);
    grew("warden_http_requests_total{route=\"/v2/activities\",status=\"200\"}", 2.0);
    grew("warden_http_requests_total{route=\"/v2/policy-approvals/{id}/decisions\",status=\"200\"}", 1.0);
    grew("warden_http_requests_total{route=\"/v2/policy-approvals/{id}\",status=\"200\"}", 1.0);
    grew("warden_http_requests_total{route=\"/v2/policies/{id}\",status=\"404\"}", 1.0);
    grew("warden_http_requests_total{route=\"/metrics\",status=\"200\"}", 1.0);

    // Labels carry patterns and names, never ids.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        for prefix in ["pl-", "ac-", "ap-", "cr-", "wh-", "ev-", "us-", "0x"] {
            assert!(!line.contains(&format!("\"{prefix}")) && !line.contains(&format!("/{prefix}")), "id in `{line}`");
        }
    }
    server.stop().await;
}
