//! `/v2/change-requests/{id}`: a governed policy change.

use actix_web::web::{Data, Json, Path};

use crate::engine::Engine;
use crate::http::auth::Caller;
use crate::http::problem::Problem;
use crate::model::change_request::ChangeRequest;

/// One change request.
#[utoipa::path(
    get, path = "/v2/change-requests/{id}", operation_id = "getChangeRequest", tag = "policies",
    params(("id" = String, Path, description = "`cr-...`")),
    responses((status = 200, body = crate::model::change_request::ChangeRequest))
)]
pub async fn get(engine: Data<Engine>, _caller: Caller, id: Path<String>) -> Result<Json<ChangeRequest>, Problem> {
    Ok(Json(engine.change_request(&id)?))
}
