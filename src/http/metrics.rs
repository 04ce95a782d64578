//! Prometheus metrics: one process-wide recorder (the `metrics` facade allows
//! only one), installed on first use and shared by every server in the
//! process; `GET /metrics` renders it.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::tls::{HandshakeFailure, HANDSHAKE_FAILURES};
use crate::model::activity::ActivityStatus;
use crate::model::approval::ApprovalStatus;
use crate::model::webhook::DeliveryStatus;

/// How often histograms are folded and idle data dropped when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Activity evaluation: in-process work from microseconds up to a slow
/// window actor round trip.
const EVALUATION_BUCKETS: &[f64] =
    &[0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0];
/// Journal commits: bounded below by fsync (~0.26 ms here), up to slow disks.
const JOURNAL_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
/// Whole HTTP requests: a journal commit plus parsing and the network.
const HTTP_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Requests served, by route pattern and status code.
pub const HTTP_REQUESTS: &str = "warden_http_requests_total";
/// Request duration, by route pattern.
pub const HTTP_DURATION: &str = "warden_http_request_duration_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (first call only) and
/// returns its handle. Call it before building the engine, so that what the
/// engine records while recovering is kept.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = buckets(PrometheusBuilder::new()).build_recorder();
            let handle = recorder.handle();
            // Looked up in this recorder before it is given away; kept only
            // if it becomes the global one, which it then stays for good.
            let handles = crate::telemetry::handles_in(&recorder);
            match metrics::set_global_recorder(recorder) {
                Ok(()) => crate::telemetry::keep(handles),
                Err(_) => {
                    tracing::warn!("another metrics recorder is installed; /metrics shows only what reaches this one")
                }
            }
            describe();
            register_from_start();
            handle
        })
        .clone()
}

fn buckets(builder: PrometheusBuilder) -> PrometheusBuilder {
    let histograms = [
        ("warden_evaluation_duration_seconds", EVALUATION_BUCKETS),
        ("warden_journal_commit_duration_seconds", JOURNAL_BUCKETS),
        (HTTP_DURATION, HTTP_BUCKETS),
    ];
    histograms.into_iter().fold(builder, |builder, (name, buckets)| {
        // Only an empty bucket list is refused, and none of these is empty.
        builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets).unwrap_or_else(|_| unreachable!())
    })
}

fn describe() {
    metrics::describe_counter!("warden_activities_total", "Activities by the status they reached");
    metrics::describe_histogram!(
        "warden_evaluation_duration_seconds",
        metrics::Unit::Seconds,
        "Time to evaluate one activity, journal commit included"
    );
    metrics::describe_gauge!("warden_approvals_pending", "Approvals waiting for decisions");
    metrics::describe_gauge!("warden_window_actors", "Velocity window actors alive (idle ones retire)");
    metrics::describe_gauge!(
        "warden_approval_actors",
        "Approval actors alive (one per pending approval being decided; idle ones retire)"
    );
    metrics::describe_counter!("warden_approvals_resolved_total", "Approvals by how they resolved");
    metrics::describe_histogram!(
        "warden_journal_commit_duration_seconds",
        metrics::Unit::Seconds,
        "Time of one journal commit (one fsync)"
    );
    metrics::describe_counter!("warden_journal_records_total", "Records committed to the journal");
    metrics::describe_counter!("warden_webhook_deliveries_total", "Webhook delivery attempts by outcome");
    metrics::describe_counter!(
        "warden_webhook_events_dropped_total",
        "Undelivered webhook events given up: `backlog` (a full backlog dropped its oldest), `disabled` (a webhook failing for 24 h)"
    );
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by route pattern and status code");
    metrics::describe_histogram!(HTTP_DURATION, metrics::Unit::Seconds, "HTTP request duration by route pattern");
    metrics::describe_counter!(HANDSHAKE_FAILURES, "TLS handshakes that failed, by reason");
}

/// Every contract metric exists from the start: counters at 0 for each of
/// the contract's label values, gauges at 0, histograms empty.
fn register_from_start() {
    for status in ActivityStatus::ALL {
        metrics::counter!("warden_activities_total", "status" => status.as_str()).increment(0);
    }
    for status in [ApprovalStatus::Approved, ApprovalStatus::Denied, ApprovalStatus::Expired] {
        metrics::counter!("warden_approvals_resolved_total", "status" => status.as_str()).increment(0);
    }
    for outcome in DeliveryStatus::ALL {
        metrics::counter!("warden_webhook_deliveries_total", "outcome" => outcome.as_str()).increment(0);
    }
    for reason in ["backlog", "disabled"] {
        metrics::counter!("warden_webhook_events_dropped_total", "reason" => reason).increment(0);
    }
    // An increment of 0 registers the gauge without overwriting a value
    // that recovery may already have set.
    metrics::gauge!("warden_approvals_pending").increment(0.0);
    metrics::gauge!("warden_window_actors").increment(0.0);
    metrics::gauge!("warden_approval_actors").increment(0.0);
    metrics::counter!("warden_journal_records_total").increment(0);
    let _ = metrics::histogram!("warden_evaluation_duration_seconds");
    let _ = metrics::histogram!("warden_journal_commit_duration_seconds");
    for reason in HandshakeFailure::ALL {
        metrics::counter!(HANDSHAKE_FAILURES, "reason" => reason.label()).increment(0);
    }
    for route in super::routes::PATTERNS {
        metrics::counter!(HTTP_REQUESTS, "route" => *route, "status" => "200").increment(0);
    }
}

/// Runs the recorder's upkeep every [`UPKEEP_INTERVAL`] (without an HTTP
/// listener of its own, the exporter leaves this to its user) until aborted.
pub(crate) fn spawn_upkeep() -> actix_rt::task::JoinHandle<()> {
    let handle = install();
    actix_rt::spawn(async move {
        loop {
            actix_rt::time::sleep(UPKEEP_INTERVAL).await;
            handle.run_upkeep();
        }
    })
}
