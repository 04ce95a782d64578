//! `/console/`: the approver console, a static page embedded in the binary
//! (nothing to install, nothing fetched from another origin). The page
//! itself talks to the API with the approver's bearer token; these routes
//! need none, as api.md says of the console's static files.
//!
//! The assets live in `src/http/console/`, beside the HTTP adapter that
//! serves them, rather than in a top-level folder: they are compiled into
//! the binary like any other source (`include_bytes!`), there is no build
//! step to run on them, and a change to them is a change to the server.

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Path;
use actix_web::HttpResponse;

use crate::http::problem::Problem;

/// The policy the console's responses carry: scripts, styles, images and
/// connections from this origin only; no inline script or style, no
/// plugins, no framing, no `<base>` rewriting, forms post nowhere; DOM
/// sinks such as `innerHTML` refuse strings (Trusted Types), so text from
/// the API can only ever become text.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// One embedded file: its name under `/console/`, media type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// A file of the console, built into the binary from `src/http/console/`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset { name: $name, content_type: $content_type, body: include_bytes!(concat!("../console/", $name)) }
    };
}

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// Every file of the console; `index.html` is also `/console/` itself.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JAVASCRIPT),
    asset!("api.js", JAVASCRIPT),
    asset!("approval.js", JAVASCRIPT),
    asset!("views.js", JAVASCRIPT),
    asset!("keys.js", JAVASCRIPT),
    asset!("format.js", JAVASCRIPT),
    asset!("dom.js", JAVASCRIPT),
];

/// `/console` without the slash: the page's relative links need it.
#[utoipa::path(
    get, path = "/console", operation_id = "redirectToConsole", tag = "console", security(()),
    responses((status = 308, description = "to `/console/`"))
)]
pub async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/console/")).finish()
}

/// The approver console's page.
#[utoipa::path(
    get, path = "/console/", operation_id = "getConsole", tag = "console", security(()),
    responses((status = 200, description = "the approver console (HTML)", content_type = "text/html", body = String))
)]
pub async fn index() -> HttpResponse {
    serve(&ASSETS[0])
}

/// One of the console's files (scripts, style sheet, icon).
#[utoipa::path(
    get, path = "/console/{file}", operation_id = "getConsoleFile", tag = "console", security(()),
    params(("file" = String, Path, description = "`app.js`, `console.css`, ...")),
    responses(
        (status = 200, description = "a file of the console", body = String),
        (status = 404, description = "no console file of that name", body = Problem,
         content_type = "application/problem+json"),
    )
)]
pub async fn file(name: Path<String>) -> Result<HttpResponse, Problem> {
    ASSETS
        .iter()
        .find(|asset| asset.name == name.as_str())
        .map(serve)
        .ok_or_else(|| Problem::not_found(format!("no console file `{}`", name.as_str())))
}

fn serve(asset: &Asset) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(("Cross-Origin-Opener-Policy", "same-origin"))
        .insert_header(("Cross-Origin-Resource-Policy", "same-origin"))
        // Revalidate each time: a new binary serves new files at the same names.
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
    response.body(asset.body)
}
