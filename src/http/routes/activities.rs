//! `/v2/activities`: evaluate an activity, and the audit trail.

use actix_web::http::header::ContentType;
use actix_web::web::{Data, Json, Path};
use actix_web::HttpResponse;

use crate::engine::{ActivityAsJson, ActivityFilter, Engine, Page};
use crate::http::auth::{Authorized, Caller, SignerRole};
use crate::http::body::JsonBody;
use crate::http::problem::Problem;
use crate::http::query::ListQuery;
use crate::http::schemas::ActivityListDoc;
use crate::http::user_action::UserAction;
use crate::model::activity::{Activity, ActivityRequest, ActivityStatus, Initiator};

/// The contract's activity statuses, for error messages.
const STATUSES: &[&str] = &["Allowed", "Blocked", "PendingApproval", "Approved", "Denied", "Expired"];

/// Evaluates a `Wallets:Sign` activity; the initiator defaults to the caller.
/// A new activity is answered with its record's JSON text, not a second
/// encoding (a repeated `externalId`, with the activity as it stands now).
#[utoipa::path(
    post, path = "/v2/activities", operation_id = "submitActivity", tag = "activities",
    request_body = crate::model::activity::ActivityRequest,
    responses((status = 200, description = "Allowed, Blocked or PendingApproval", body = crate::model::activity::Activity))
)]
pub async fn submit(
    engine: Data<Engine>,
    caller: Authorized<SignerRole>,
    signed: UserAction,
    JsonBody(mut request): JsonBody<ActivityRequest>,
) -> Result<HttpResponse, Problem> {
    let caller = caller.0;
    if request.initiator.is_none() {
        request.initiator = Some(Initiator { id: caller.id, kind: caller.kind });
    }
    let ActivityAsJson { activity, json } = engine.evaluate_signed_as_json(request, signed.0).await?;
    tracing::info!(
        activity = %activity.id,
        status = activity.status.as_str(),
        approval = activity.approval_id.as_deref().unwrap_or(""),
        "activity evaluated"
    );
    Ok(HttpResponse::Ok().content_type(ContentType::json()).body(json))
}

/// One activity.
#[utoipa::path(
    get, path = "/v2/activities/{id}", operation_id = "getActivity", tag = "activities",
    params(("id" = String, Path, description = "`ac-...`")),
    responses((status = 200, body = crate::model::activity::Activity))
)]
pub async fn get(engine: Data<Engine>, _caller: Caller, id: Path<String>) -> Result<Json<Activity>, Problem> {
    let engine = engine.get_ref().clone();
    Ok(Json(super::reading_the_journal(move || engine.activity(&id)).await?))
}

/// The audit trail, oldest first.
#[utoipa::path(
    get, path = "/v2/activities", operation_id = "listActivities", tag = "activities",
    params(
        ("walletId" = Option<String>, Query, description = "only this wallet's activities"),
        ("status" = Option<String>, Query, description = "Allowed, Blocked, PendingApproval, Approved, Denied or Expired"),
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
        ("paginationToken" = Option<String>, Query, description = "the previous page's nextPageToken"),
    ),
    responses((status = 200, body = ActivityListDoc))
)]
pub async fn list(engine: Data<Engine>, _caller: Caller, query: ListQuery) -> Result<Json<Page<Activity>>, Problem> {
    let filter = ActivityFilter {
        wallet_id: query.text("walletId"),
        status: query.named::<ActivityStatus>("status", STATUSES)?,
    };
    let (engine, page) = (engine.get_ref().clone(), query.page()?);
    Ok(Json(super::reading_the_journal(move || engine.activities(&filter, &page)).await?))
}
