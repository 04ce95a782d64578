//! The OpenAPI 3 document, generated from the route annotations and served
//! at `GET /openapi.json`. The error answers, common to every route, are
//! added here once rather than repeated on each route.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::problem::{Problem, PROBLEM_JSON};
use super::routes::approvals::DecisionRequest;
use super::routes::webhooks::DeliveryLogEntry;
use super::routes::{activities, approvals, change_requests, console, events, ops, policies, webhooks};
use super::schemas::*;
use super::user_action;
use crate::engine::MAX_PAGE_LIMIT;
use crate::model::activity::{Activity, ActivityRequest};
use crate::model::approval::Approval;
use crate::model::change_request::ChangeRequest;
use crate::model::policy::{Policy, PolicySpec};
use crate::model::webhook::{Webhook, WebhookSpec, WebhookUpdate};

/// The document's derivation.
#[derive(OpenApi)]
#[openapi(
    info(title = "Warden", description = "Transaction policy engine: allow, block or require a quorum of approvers."),
    paths(
        activities::submit, activities::list, activities::get,
        policies::create, policies::list, policies::get, policies::update, policies::archive,
        approvals::list, approvals::get, approvals::decide,
        change_requests::get,
        webhooks::create, webhooks::list, webhooks::get, webhooks::update, webhooks::delete, webhooks::ping,
        webhooks::events, webhooks::event,
        events::stream, ops::healthz, ops::leader, ops::metrics, ops::openapi,
        user_action::init, user_action::sign,
        console::redirect, console::index, console::file,
    ),
    components(schemas(
        Problem, Activity, ActivityRequest, ActivityListDoc, PolicySpec, Policy, PolicyViewDoc, PolicyListDoc,
        ChangeRequest, Approval, ApprovalListDoc, DecisionRequest, Webhook, WebhookSpec, WebhookUpdate,
        WebhookListDoc, DeliveryLogEntry, WebhookEventListDoc, WebhookDeletedDoc, WebhookPingDoc, HealthDoc,
        UserActionInitDoc, UserActionChallengeDoc, UserActionSignDoc, UserActionTokenDoc,
    )),
    modifiers(&Conventions),
    tags(
        (name = "activities", description = "What the signer asks about"),
        (name = "policies", description = "Policies and governed changes"),
        (name = "approvals", description = "Quorum approvals"),
        (name = "webhooks", description = "Event delivery"),
        (name = "operations", description = "Health, metrics, this document"),
        (name = "user actions", description = "Dfns user action signing: a challenge, a signed assertion, a single-use token"),
        (name = "console", description = "The approver console: a web page served by the binary, which calls this API with the approver's token"),
    )
)]
pub struct ApiDoc;

/// Renders [`ApiDoc`] as JSON text.
pub fn render() -> String {
    // Serializing the generated document cannot fail: it holds only maps,
    // strings and numbers.
    let Ok(mut document) = serde_json::to_value(ApiDoc::openapi()) else { return String::from("{}") };
    super::openapi_links::name_link_fields(&mut document);
    document.to_string()
}

/// Bearer authentication and the problem answers of every route.
struct Conventions;

/// The problem answers, by status: (status, name, description).
const PROBLEMS: &[(u16, &str, &str)] = &[
    (400, "BadRequest", "malformed JSON or an invalid field; `detail` names it"),
    (
        401,
        "Unauthorized",
        "missing or unknown bearer token; or a missing, expired, reused or mismatched `X-DFNS-USERACTION`",
    ),
    (403, "Forbidden", "authenticated but not allowed"),
    (404, "NotFound", "unknown id"),
    (409, "Conflict", "already decided, not pending, a change already pending, or a duplicate"),
    (413, "PayloadTooLarge", "body over the limit"),
    (415, "UnsupportedMediaType", "body that is not JSON"),
    (429, "TooManyRequests", "too many user actions in progress for this principal"),
    (503, "Unavailable", "the engine is not ready or is stopping; retry"),
];

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        for (status, name, description) in PROBLEMS {
            let content = Content::new(Some(RefOr::Ref(Ref::from_schema_name(Problem::name()))));
            let response = ResponseBuilder::new()
                .description(format!("{status}: {description}"))
                .content(PROBLEM_JSON, content)
                .build();
            components.responses.insert((*name).to_owned(), RefOr::T(response));
        }
        openapi.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
        serve_webhooks_unversioned(openapi);
        super::openapi_limits::tighten(openapi);
        super::openapi_links::link(openapi);

        for (path, item) in openapi.paths.paths.iter_mut() {
            let has_id = path.contains('{');
            let operations = [
                (&mut item.get, Method::Get),
                (&mut item.post, Method::Post),
                (&mut item.put, Method::Put),
                (&mut item.delete, Method::Delete),
            ];
            let user_action_route = path.starts_with("/auth/action");
            for (operation, method) in operations {
                if let Some(operation) = operation {
                    add_problems(operation, method, has_id);
                    if user_action_route {
                        operation
                            .responses
                            .responses
                            .insert("429".into(), RefOr::Ref(Ref::from_response_name("TooManyRequests")));
                    }
                }
            }
        }
    }
}

/// Dfns' SDK calls the webhook routes without `/v2`: the same operations,
/// documented again under `/webhooks` with `Unversioned` after their ids.
fn serve_webhooks_unversioned(openapi: &mut utoipa::openapi::OpenApi) {
    let copies: Vec<(String, utoipa::openapi::PathItem)> = openapi
        .paths
        .paths
        .iter()
        .filter_map(|(path, item)| {
            let rest = path.strip_prefix("/v2/webhooks")?;
            let mut item = item.clone();
            for operation in [&mut item.get, &mut item.post, &mut item.put, &mut item.delete].into_iter().flatten() {
                if let Some(id) = operation.operation_id.as_mut() {
                    id.push_str("Unversioned");
                }
            }
            Some((format!("/webhooks{rest}"), item))
        })
        .collect();
    openapi.paths.paths.extend(copies);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
}

/// `limit` as the server takes it: an integer from 1 to [`MAX_PAGE_LIMIT`].
fn bound_limit(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        if parameter.name == "limit" && parameter.parameter_in == ParameterIn::Query {
            let schema = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(MAX_PAGE_LIMIT as u64))
                .build();
            parameter.schema = Some(RefOr::T(Schema::Object(schema)));
        }
    }
}

fn add_problems(operation: &mut Operation, method: Method, has_id: bool) {
    bound_limit(operation);
    // Operations marked `security(())` need no token and have no common errors.
    let public = operation.security.as_ref().is_some_and(|s| s.iter().all(|r| r == &SecurityRequirement::default()));
    if public {
        return;
    }
    let writes = matches!(method, Method::Post | Method::Put | Method::Delete);
    let has_body = matches!(method, Method::Post | Method::Put);
    // Every query parameter is checked: a bad one is a 400 naming it.
    let has_query = operation.parameters.iter().flatten().any(|p| p.parameter_in == ParameterIn::Query);
    let list = method == Method::Get && (!has_id || has_query);
    let statuses = PROBLEMS.iter().filter(|(status, ..)| match status {
        400 => has_body || list,
        404 => has_id,
        409 => writes,
        413 | 415 => has_body,
        429 => false,
        _ => true,
    });
    for (status, name, _) in statuses {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let document: serde_json::Value = serde_json::from_str(&render()).unwrap();
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
        let paths = document["paths"].as_object().unwrap();
        for pattern in super::super::routes::PATTERNS {
            assert!(paths.contains_key(*pattern), "`{pattern}` is not documented");
        }
        let create = &paths["/v2/policies"]["post"];
        assert_eq!(
            create["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ChangeRequest"
        );
        assert_eq!(create["responses"]["415"]["$ref"], "#/components/responses/UnsupportedMediaType");
        assert!(paths["/healthz"]["get"]["responses"].get("401").is_none());
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for name in ["Problem", "PolicySpec", "Activity", "Approval", "Webhook", "ActivityList"] {
            assert!(schemas.contains_key(name), "schema `{name}` missing");
        }
        assert!(schemas["PolicySpec"]["properties"]["rule"].is_object());

        let mut operation_ids: Vec<&str> = paths
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        let count = operation_ids.len();
        operation_ids.sort_unstable();
        operation_ids.dedup();
        assert_eq!(operation_ids.len(), count, "operation ids are unique");
        assert_eq!(count, 38, "every operation has an id");
    }
}
