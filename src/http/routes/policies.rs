//! `/v2/policies`: create, read, replace and archive policies; a governed
//! change answers 202 with its change request.

use actix_web::http::StatusCode;
use actix_web::web::{Data, Json, Path};
use actix_web::HttpResponse;

use crate::engine::{Engine, Page, PolicyChange, PolicyView};
use crate::http::auth::{AdminRole, Authorized, Caller};
use crate::http::body::JsonBody;
use crate::http::problem::Problem;
use crate::http::query::ListQuery;
use crate::http::schemas::{PolicyListDoc, PolicyViewDoc};
use crate::http::user_action::UserAction;
use crate::model::change_request::ChangeRequest;
use crate::model::policy::{PolicySpec, PolicyStatus};

/// Creates a policy.
#[utoipa::path(
    post, path = "/v2/policies", operation_id = "createPolicy", tag = "policies",
    request_body = crate::model::policy::PolicySpec,
    responses(
        (status = 200, description = "applied", body = PolicyViewDoc),
        (status = 202, description = "held for approval", body = ChangeRequest),
    )
)]
pub async fn create(
    engine: Data<Engine>,
    caller: Authorized<AdminRole>,
    signed: UserAction,
    JsonBody(spec): JsonBody<PolicySpec>,
) -> Result<HttpResponse, Problem> {
    Ok(answer(engine.create_policy_signed(&caller.0, spec, signed.0).await?))
}

/// Replaces a policy.
#[utoipa::path(
    put, path = "/v2/policies/{id}", operation_id = "updatePolicy", tag = "policies",
    params(("id" = String, Path, description = "`pl-...`")),
    request_body = crate::model::policy::PolicySpec,
    responses(
        (status = 200, description = "applied", body = PolicyViewDoc),
        (status = 202, description = "held for approval", body = ChangeRequest),
    )
)]
pub async fn update(
    engine: Data<Engine>,
    caller: Authorized<AdminRole>,
    id: Path<String>,
    signed: UserAction,
    JsonBody(spec): JsonBody<PolicySpec>,
) -> Result<HttpResponse, Problem> {
    Ok(answer(engine.update_policy_signed(&caller.0, &id, spec, signed.0).await?))
}

/// Archives a policy.
#[utoipa::path(
    delete, path = "/v2/policies/{id}", operation_id = "archivePolicy", tag = "policies",
    params(("id" = String, Path, description = "`pl-...`")),
    responses(
        (status = 200, description = "archived", body = PolicyViewDoc),
        (status = 202, description = "held for approval", body = ChangeRequest),
    )
)]
pub async fn archive(
    engine: Data<Engine>,
    caller: Authorized<AdminRole>,
    id: Path<String>,
    signed: UserAction,
) -> Result<HttpResponse, Problem> {
    Ok(answer(engine.archive_policy_signed(&caller.0, &id, signed.0).await?))
}

/// One policy, with its pending change request.
#[utoipa::path(
    get, path = "/v2/policies/{id}", operation_id = "getPolicy", tag = "policies",
    params(("id" = String, Path, description = "`pl-...`")),
    responses((status = 200, body = PolicyViewDoc))
)]
pub async fn get(engine: Data<Engine>, _caller: Caller, id: Path<String>) -> Result<Json<PolicyView>, Problem> {
    Ok(Json(engine.policy(&id)?))
}

/// Policies in creation order.
#[utoipa::path(
    get, path = "/v2/policies", operation_id = "listPolicies", tag = "policies",
    params(
        ("status" = Option<String>, Query, description = "Active or Archived"),
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
        ("paginationToken" = Option<String>, Query, description = "the previous page's nextPageToken"),
    ),
    responses((status = 200, body = PolicyListDoc))
)]
pub async fn list(engine: Data<Engine>, _caller: Caller, query: ListQuery) -> Result<Json<Page<PolicyView>>, Problem> {
    let status = query.named::<PolicyStatus>("status", &["Active", "Archived"])?;
    Ok(Json(engine.policies(status, &query.page()?)?))
}

/// 200 with the policy, or 202 with the change request.
fn answer(change: PolicyChange) -> HttpResponse {
    match change {
        PolicyChange::Applied(policy) => {
            tracing::info!(policy = %policy.id, status = ?policy.spec.status, "policy change applied");
            HttpResponse::Ok().json(policy)
        }
        PolicyChange::Pending(change) => {
            tracing::info!(
                change_request = %change.id, policy = %change.entity_id, approval = %change.approval_id,
                "policy change held for approval"
            );
            HttpResponse::build(StatusCode::ACCEPTED).json(change)
        }
    }
}
