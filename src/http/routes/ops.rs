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
        Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })))
    } else {
        Err(Problem::unavailable("engine is not ready (recovering or stopping)"))
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
