//! OpenAPI links: which answer gives the id that another operation takes
//! (a created webhook's `id` for getting, changing, pinging or deleting it;
//! an activity's `approvalId` for its approval and decisions). Clients and
//! stateful API testers (Schemathesis) follow them from one call to the next.

use serde_json::{json, Value};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::{OpenApi, RefOr};

/// (operation, status, [(link name, target operation, [(parameter, expression)])]).
type Links = &'static [(&'static str, &'static [(&'static str, &'static str)])];

const LINKS: &[(&str, &str, Links)] = &[
    (
        "createWebhook",
        "200",
        &[
            ("GetWebhook", &[("id", "$response.body#/id")]),
            ("UpdateWebhook", &[("id", "$response.body#/id")]),
            ("PingWebhook", &[("id", "$response.body#/id")]),
            ("ListWebhookEvents", &[("id", "$response.body#/id")]),
            ("DeleteWebhook", &[("id", "$response.body#/id")]),
        ],
    ),
    (
        "listWebhookEvents",
        "200",
        &[("GetWebhookEvent", &[("id", "$request.path.id"), ("eventId", "$response.body#/items/0/id")])],
    ),
    (
        "createPolicy",
        "200",
        &[
            ("GetPolicy", &[("id", "$response.body#/id")]),
            ("UpdatePolicy", &[("id", "$response.body#/id")]),
            ("ArchivePolicy", &[("id", "$response.body#/id")]),
        ],
    ),
    (
        "createPolicy",
        "202",
        &[
            ("GetChangeRequest", &[("id", "$response.body#/id")]),
            ("GetApproval", &[("id", "$response.body#/approvalId")]),
        ],
    ),
    (
        "submitActivity",
        "200",
        &[
            ("GetActivity", &[("id", "$response.body#/id")]),
            ("GetApproval", &[("id", "$response.body#/approvalId")]),
            ("CreateApprovalDecision", &[("id", "$response.body#/approvalId")]),
        ],
    ),
];

/// Adds [`LINKS`] to `openapi` (to the unversioned webhook copies too,
/// pointing at their own unversioned targets).
pub fn link(openapi: &mut OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete];
        for operation in operations.into_iter().flatten() {
            let Some(id) = operation.operation_id.clone() else { continue };
            let (base, suffix) = id.strip_suffix("Unversioned").map_or((id.as_str(), ""), |base| (base, "Unversioned"));
            for (_, status, links) in LINKS.iter().filter(|(source, ..)| *source == base) {
                let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else { continue };
                for (name, parameters) in links.iter() {
                    let mut link = LinkBuilder::new().operation_id(lower_first(name) + suffix);
                    for (parameter, expression) in parameters.iter() {
                        link = link.parameter(*parameter, json!(expression));
                    }
                    response.links.insert((*name).to_owned(), RefOr::T(link.build()));
                }
            }
        }
    }
}

/// utoipa 5 writes a link's fields in snake case (`operation_id`); OpenAPI
/// names them in camel case (`operationId`), which is what clients read.
pub fn name_link_fields(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else { return };
    let responses = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses").and_then(Value::as_object_mut))
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        for link in response.get_mut("links").and_then(Value::as_object_mut).into_iter().flat_map(|l| l.values_mut()) {
            let Some(fields) = link.as_object_mut() else { continue };
            for (snake, camel) in
                [("operation_id", "operationId"), ("operation_ref", "operationRef"), ("request_body", "requestBody")]
            {
                if let Some(value) = fields.remove(snake) {
                    fields.insert(camel.to_owned(), value);
                }
            }
        }
    }
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn created_ids_link_to_their_operations() {
        let document: serde_json::Value = serde_json::from_str(&super::super::openapi::render()).unwrap();
        let links = &document["paths"]["/v2/webhooks"]["post"]["responses"]["200"]["links"];
        assert_eq!(links["GetWebhook"]["operationId"], "getWebhook", "{links}");
        assert_eq!(links["GetWebhook"]["parameters"]["id"], "$response.body#/id");
        let links = &document["paths"]["/webhooks"]["post"]["responses"]["200"]["links"];
        assert_eq!(links["PingWebhook"]["operationId"], "pingWebhookUnversioned", "{links}");
        let links = &document["paths"]["/v2/activities"]["post"]["responses"]["200"]["links"];
        assert_eq!(links["GetApproval"]["parameters"]["id"], "$response.body#/approvalId", "{links}");
        // Every link names an operation that exists.
        let ids: Vec<&str> = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        for item in document["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                for response in operation["responses"].as_object().into_iter().flat_map(|r| r.values()) {
                    for link in response["links"].as_object().into_iter().flat_map(|l| l.values()) {
                        assert!(ids.contains(&link["operationId"].as_str().unwrap()), "{link}");
                    }
                }
            }
        }
    }
}
