//! `/v2/policy-approvals`: read approvals and decide them.

use actix_web::web::{Data, Json, Path};
use serde::Deserialize;

use crate::engine::{ApprovalFilter, Engine, Page};
use crate::http::auth::Caller;
use crate::http::body::JsonBody;
use crate::http::problem::Problem;
use crate::http::query::ListQuery;
use crate::http::schemas::ApprovalListDoc;
use crate::http::user_action::UserAction;
use crate::model::approval::{Approval, ApprovalStatus, DecisionValue};

/// The body of a decision.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DecisionRequest {
    /// `Approved` or `Denied` (`Rejected` reads as `Denied`).
    pub value: DecisionValue,
    /// Why; may be empty.
    #[serde(default)]
    pub reason: String,
}

/// Approvals in creation order.
#[utoipa::path(
    get, path = "/v2/policy-approvals", operation_id = "listApprovals", tag = "approvals",
    params(
        ("status" = Option<String>, Query, description = "Pending, Approved, Denied or Expired"),
        ("initiatorId" = Option<String>, Query, description = "approvals of this initiator's activities"),
        ("approverId" = Option<String>, Query, description = "approvals this principal is eligible to decide"),
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
        ("paginationToken" = Option<String>, Query, description = "the previous page's nextPageToken"),
    ),
    responses((status = 200, body = ApprovalListDoc))
)]
pub async fn list(engine: Data<Engine>, _caller: Caller, query: ListQuery) -> Result<Json<Page<Approval>>, Problem> {
    let filter = ApprovalFilter {
        status: query.named::<ApprovalStatus>("status", &["Pending", "Approved", "Denied", "Expired"])?,
        initiator_id: query.text("initiatorId"),
        approver_id: query.text("approverId"),
    };
    let page = query.page()?;
    Ok(Json(super::reading_the_journal(move || engine.approvals(&filter, &page)).await?))
}

/// One approval.
#[utoipa::path(
    get, path = "/v2/policy-approvals/{id}", operation_id = "getApproval", tag = "approvals",
    params(("id" = String, Path, description = "`ap-...`")),
    responses((status = 200, body = Approval))
)]
pub async fn get(engine: Data<Engine>, _caller: Caller, id: Path<String>) -> Result<Json<Approval>, Problem> {
    Ok(Json(super::reading_the_journal(move || engine.approval(&id)).await?))
}

/// The caller approves or denies; 404 unknown, 403 not eligible, 409
/// already decided or no longer pending.
#[utoipa::path(
    post, path = "/v2/policy-approvals/{id}/decisions", operation_id = "createApprovalDecision", tag = "approvals",
    params(("id" = String, Path, description = "`ap-...`")),
    request_body = DecisionRequest,
    responses((status = 200, description = "the updated approval", body = Approval))
)]
pub async fn decide(
    engine: Data<Engine>,
    caller: Caller,
    id: Path<String>,
    signed: UserAction,
    JsonBody(decision): JsonBody<DecisionRequest>,
) -> Result<Json<Approval>, Problem> {
    let approval = engine.decide_signed(&caller.0, &id, decision.value, decision.reason, signed.0).await?;
    tracing::info!(
        approval = %approval.id, activity = %approval.activity.id, decider = %caller.0.id,
        value = ?decision.value, status = approval.status.as_str(), "decision recorded"
    );
    Ok(Json(approval))
}
