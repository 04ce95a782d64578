//! The routes of the contract. Each handler authenticates, extracts, calls
//! the engine once and shapes the answer; rules and workflow stay in the
//! engine.

pub mod activities;
pub mod approvals;
pub mod change_requests;
pub mod console;
pub mod events;
pub mod ops;
pub mod policies;
pub mod webhooks;

use actix_web::web;

/// Every route pattern, as the `route` label of the HTTP metrics.
pub const PATTERNS: &[&str] = &[
    "/v2/activities",
    "/v2/activities/{id}",
    "/v2/policies",
    "/v2/policies/{id}",
    "/v2/policy-approvals",
    "/v2/policy-approvals/{id}",
    "/v2/policy-approvals/{id}/decisions",
    "/v2/change-requests/{id}",
    "/v2/webhooks",
    "/v2/webhooks/{id}",
    "/v2/webhooks/{id}/ping",
    "/v2/webhooks/{id}/events",
    "/v2/webhooks/{id}/events/{eventId}",
    "/webhooks",
    "/webhooks/{id}",
    "/webhooks/{id}/ping",
    "/webhooks/{id}/events",
    "/webhooks/{id}/events/{eventId}",
    "/v2/events",
    "/healthz",
    "/healthz/leader",
    "/metrics",
    "/openapi.json",
    "/auth/action/init",
    "/auth/action",
    "/console",
    "/console/",
    "/console/{file}",
];

/// Registers every route. A path with no route for the method answers 405
/// (with `Allow`); a path with no route at all, 404.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/v2/activities")
                .route(web::post().to(activities::submit))
                .route(web::get().to(activities::list)),
        )
        .service(web::resource("/v2/activities/{id}").route(web::get().to(activities::get)))
        .service(
            web::resource("/v2/policies").route(web::post().to(policies::create)).route(web::get().to(policies::list)),
        )
        .service(
            web::resource("/v2/policies/{id}")
                .route(web::get().to(policies::get))
                .route(web::put().to(policies::update))
                .route(web::delete().to(policies::archive)),
        )
        .service(web::resource("/v2/policy-approvals").route(web::get().to(approvals::list)))
        .service(web::resource("/v2/policy-approvals/{id}").route(web::get().to(approvals::get)))
        .service(web::resource("/v2/policy-approvals/{id}/decisions").route(web::post().to(approvals::decide)))
        .service(web::resource("/v2/change-requests/{id}").route(web::get().to(change_requests::get)))
        .configure(|config| webhook_routes(config, "/v2/webhooks"))
        // Dfns' SDK calls webhooks without the version prefix.
        .configure(|config| webhook_routes(config, "/webhooks"))
        .service(web::resource("/v2/events").route(web::get().to(events::stream)))
        .service(web::resource("/healthz").route(web::get().to(ops::healthz)))
        .service(web::resource("/healthz/leader").route(web::get().to(ops::leader)))
        .service(web::resource("/metrics").route(web::get().to(ops::metrics)))
        .service(web::resource("/openapi.json").route(web::get().to(ops::openapi)))
        // The console's files answer HEAD too, as static files do.
        .service(
            web::resource("/console").route(web::get().to(console::redirect)).route(web::head().to(console::redirect)),
        )
        .service(web::resource("/console/").route(web::get().to(console::index)).route(web::head().to(console::index)))
        .service(
            web::resource("/console/{file}").route(web::get().to(console::file)).route(web::head().to(console::file)),
        );
}

/// Runs a read that reads the journal (activities, resolved approvals: a
/// record read each) on actix's blocking pool: not on the worker that serves
/// other requests, and not inside its async runtime (a journal may block on
/// one of its own, as the PostgreSQL client does).
pub(super) async fn reading_the_journal<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, crate::error::Error> + Send + 'static,
) -> Result<T, crate::http::problem::Problem> {
    let answer = actix_web::web::block(read).await.map_err(|e| {
        crate::error::Error::Unavailable(crate::error::Unavailable::TaskFailed { reason: e.to_string() })
    })?;
    Ok(answer?)
}

/// The webhook routes under `prefix`.
fn webhook_routes(config: &mut web::ServiceConfig, prefix: &str) {
    config
        .service(web::resource(prefix).route(web::post().to(webhooks::create)).route(web::get().to(webhooks::list)))
        .service(
            web::resource(format!("{prefix}/{{id}}"))
                .route(web::get().to(webhooks::get))
                .route(web::put().to(webhooks::update))
                .route(web::delete().to(webhooks::delete)),
        )
        .service(web::resource(format!("{prefix}/{{id}}/ping")).route(web::post().to(webhooks::ping)))
        .service(web::resource(format!("{prefix}/{{id}}/events")).route(web::get().to(webhooks::events)))
        .service(web::resource(format!("{prefix}/{{id}}/events/{{eventId}}")).route(web::get().to(webhooks::event)));
}
