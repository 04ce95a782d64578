//! Operations: health, metrics and the OpenAPI document; none needs a token.

use actix_web::web::Data;
use actix_web::HttpResponse;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::engine::Engine;
use crate::http::problem::Problem;
use crate::http::schemas::HealthDoc;

/// 200 once recovery is complete, 503 before and while stopping.
#[utoipa::path(
    get, path = "/healthz", operation_id = "getHealth", tag = "operations", security(()),
    responses((status = 200, body = HealthDoc))
)]
pub async fn healthz(engine: Data<Engine>) -> Result<HttpResponse, Problem> {
    if engine.is_ready() {
        let role = if engine.is_leader() { "leader" } else { "standby" };
        let mut health = serde_json::json!({ "status": "ok", "role": role, "journalSeq": engine.journal_seq() });
        if let Some(leader) = engine.leader_url() {
            health["leader"] = leader.into();
        }
        Ok(HttpResponse::Ok().json(health))
    } else {
        Err(Problem::unavailable("engine is not ready (recovering or stopping)"))
    }
}

/// 200 only on the node that writes the journal now (for load balancers); a
/// single node is its own leader once recovered.
#[utoipa::path(
    get, path = "/healthz/leader", operation_id = "getLeaderHealth", tag = "operations", security(()),
    responses((status = 200, body = HealthDoc), (status = 503, description = "not the leader (or not ready)"))
)]
pub async fn leader(engine: Data<Engine>) -> Result<HttpResponse, Problem> {
    if engine.is_leader() {
        healthz(engine).await
    } else {
        Err(Problem::unavailable("this node is not the leader"))
    }
}

/// The Prometheus text format.
#[utoipa::path(
    get, path = "/metrics", operation_id = "getMetrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(handle: Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(handle.render())
}

/// The OpenAPI document as served, rendered once per server.
#[derive(Debug, Clone)]
pub struct OpenApiJson(pub String);

/// This API's OpenAPI 3 document.
#[utoipa::path(
    get, path = "/openapi.json", operation_id = "getOpenApi", tag = "operations", security(()),
    responses((status = 200, description = "OpenAPI 3 document", body = Object))
)]
pub async fn openapi(document: Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document.0.clone())
}
