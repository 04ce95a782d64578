//! Signed user actions (Dfns user action signing), as `api.md` gives them:
//! `POST /auth/action/init` hands out a challenge bound to one request,
//! `POST /auth/action` exchanges the signed challenge for a token, and the
//! [`require`] middleware lets a change through only with a fresh token for
//! exactly that request (`X-DFNS-USERACTION`) when its principal must sign.
//! The verified assertion rides in the request's extensions to the route,
//! which hands it to the engine to journal with the change ([`UserAction`]).

pub mod challenge;
mod verify;

use std::future::{ready, Ready};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderName;
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::{self, Data, Json};
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use self::challenge::{Binding, Challenge, Full, Grant, PendingActions, TTL};
use self::verify::SignedChallenge;
use super::auth::{Caller, LiveCredentials};
use super::body::{check_declared_length, read_limited, BodyLimit, BodyTimeout, JsonBody, DEFAULT_BODY_TIMEOUT};
use super::problem::Problem;
use crate::config::DEFAULT_BODY_LIMIT;
use crate::engine::Engine;
use crate::model::signed_action::{binding_digest, body_sha256, challenge_text, SignedAction, BASE64URL, NONCE_LEN};

/// The header carrying the token of a signed user action.
pub const USER_ACTION_HEADER: HeaderName = HeaderName::from_static("x-dfns-useraction");

/// The routes of the flow itself, which need no user action.
pub const INIT_PATH: &str = "/auth/action/init";
/// See [`INIT_PATH`].
pub const SIGN_PATH: &str = "/auth/action";

/// Longest path a user action may be bound to; Warden's own are far shorter.
const MAX_PATH_LEN: usize = 2048;

/// The body of `POST /auth/action/init`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitRequest {
    /// The exact body text of the change (empty for none).
    pub user_action_payload: String,
    /// `POST`, `PUT` or `DELETE`.
    pub user_action_http_method: String,
    /// The percent-encoded path of the change, without query.
    pub user_action_http_path: String,
    /// `Api` (the only server kind).
    #[serde(default)]
    pub user_action_server_kind: Option<String>,
}

/// The answer of `POST /auth/action/init` (Dfns' shape).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeAnswer {
    challenge: String,
    challenge_identifier: String,
    allow_credentials: AllowCredentials,
    supported_credential_kinds: Vec<CredentialKind>,
    user_verification: &'static str,
    attestation: &'static str,
    external_authentication_url: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AllowCredentials {
    key: Vec<AllowedCredential>,
    webauthn: Vec<AllowedCredential>,
    password_protected_key: Vec<AllowedCredential>,
}

#[derive(Debug, Serialize)]
struct AllowedCredential {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialKind {
    kind: &'static str,
    factor: &'static str,
    requires_second_factor: bool,
}

/// The answer of `POST /auth/action`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenAnswer {
    user_action: String,
}

/// Starts a user action: a challenge bound to the principal, method, path
/// and body of the change to come.
#[utoipa::path(
    post, path = "/auth/action/init", operation_id = "createUserActionChallenge", tag = "user actions",
    request_body = crate::http::schemas::UserActionInitDoc,
    responses((status = 200, body = crate::http::schemas::UserActionChallengeDoc))
)]
pub async fn init(
    _authenticated: Caller,
    request: HttpRequest,
    engine: Data<Engine>,
    credentials: Data<LiveCredentials>,
    pending: Data<PendingActions>,
    JsonBody(init): JsonBody<InitRequest>,
) -> Result<Json<ChallengeAnswer>, Problem> {
    let credentials = credentials.current();
    let caller = credentials.caller_entry(&request)?;
    let method = init.user_action_http_method.to_ascii_uppercase();
    if !matches!(method.as_str(), "POST" | "PUT" | "DELETE") {
        return Err(Problem::bad_request(format!(
            "userActionHttpMethod: `{}` is not a method that changes anything (POST, PUT, DELETE)",
            method
        )));
    }
    let path = init.user_action_http_path;
    if !path.starts_with('/') || path.contains(['?', '#']) || path.len() > MAX_PATH_LEN {
        return Err(Problem::bad_request(format!(
            "userActionHttpPath: `{}` must be an absolute path without query, at most {MAX_PATH_LEN} bytes",
            path
        )));
    }
    if init.user_action_server_kind.as_deref().is_some_and(|kind| kind != "Api") {
        return Err(Problem::bad_request("userActionServerKind: must be `Api`"));
    }
    if caller.credentials.is_empty() {
        return Err(Problem::forbidden(format!(
            "principal `{}` has no credential to sign with; register one under [[principals.credentials]]",
            caller.principal.id
        )));
    }
    let binding = Binding { method, path, body_sha256: body_sha256(init.user_action_payload.as_bytes()) };
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let digest = binding_digest(&caller.principal.id, &binding.method, &binding.path, &binding.body_sha256);
    let challenge = challenge_text(&nonce, &digest);
    let identifier = format!("uc-{}", random_text());
    let now = engine.now();
    let entry = Challenge {
        principal_id: caller.principal.id.clone(),
        challenge: challenge.clone(),
        binding,
        expires: now + TTL,
    };
    pending.add_challenge(identifier.clone(), entry, now).map_err(|Full| too_many(&caller.principal.id))?;
    let key = caller
        .credentials
        .iter()
        .map(|credential| AllowedCredential { kind: "public-key", id: credential.id.clone() })
        .collect();
    Ok(Json(ChallengeAnswer {
        challenge,
        challenge_identifier: identifier,
        allow_credentials: AllowCredentials { key, webauthn: Vec::new(), password_protected_key: Vec::new() },
        supported_credential_kinds: vec![CredentialKind {
            kind: "Key",
            factor: "first",
            requires_second_factor: false,
        }],
        user_verification: "required",
        attestation: "none",
        external_authentication_url: "",
    }))
}

/// Completes a user action: the signed challenge for a single-use token.
#[utoipa::path(
    post, path = "/auth/action", operation_id = "signUserActionChallenge", tag = "user actions",
    request_body = crate::http::schemas::UserActionSignDoc,
    responses((status = 200, body = crate::http::schemas::UserActionTokenDoc))
)]
pub async fn sign(
    _authenticated: Caller,
    request: HttpRequest,
    engine: Data<Engine>,
    credentials: Data<LiveCredentials>,
    pending: Data<PendingActions>,
    JsonBody(signed): JsonBody<SignedChallenge>,
) -> Result<Json<TokenAnswer>, Problem> {
    let credentials = credentials.current();
    let caller = credentials.caller_entry(&request)?;
    let now = engine.now();
    let challenge = pending
        .take_challenge(&signed.challenge_identifier, &caller.principal.id, now)
        .map_err(|refusal| Problem::unauthorized(format!("challengeIdentifier: {refusal}")))?;
    let assertion = verify::check(caller, &challenge, signed.first_factor)?;
    let token = random_text();
    let grant =
        Grant { principal_id: caller.principal.id.clone(), binding: challenge.binding, assertion, expires: now + TTL };
    pending.add_grant(token.clone(), grant, now).map_err(|Full| too_many(&caller.principal.id))?;
    tracing::info!(principal = %caller.principal.id, "user action signed");
    Ok(Json(TokenAnswer { user_action: token }))
}

/// Middleware: a request that changes something, from a principal who must
/// sign, passes only with a token for exactly this request; the token is
/// used up, and the assertion (with the body) goes to the route. Requests of
/// principals who need not sign, reads, the flow's own routes and unknown
/// routes pass untouched (authentication stays the route's).
pub async fn require(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !needs_check(&request) {
        return next.call(request).await.map(ServiceResponse::map_into_boxed_body);
    }
    match checked(&mut request).await {
        Ok(Some(assertion)) => {
            request.extensions_mut().insert(assertion);
            next.call(request).await.map(ServiceResponse::map_into_boxed_body)
        }
        Ok(None) => next.call(request).await.map(ServiceResponse::map_into_boxed_body),
        Err(problem) => Ok(request.into_response(problem.error_response())),
    }
}

fn needs_check(request: &ServiceRequest) -> bool {
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    changes
        && request.path() != INIT_PATH
        && request.path() != SIGN_PATH
        // An unknown route answers 404 whoever calls.
        && request.match_pattern().is_some()
}

/// The assertion a request carries, `None` when its principal need not
/// sign (or is not authenticated: the route answers that).
async fn checked(request: &mut ServiceRequest) -> Result<Option<SignedAction>, Problem> {
    let (Some(credentials), Some(engine), Some(pending)) = (
        request.app_data::<Data<LiveCredentials>>().map(|live| live.current()),
        request.app_data::<Data<Engine>>().cloned(),
        request.app_data::<Data<PendingActions>>().cloned(),
    ) else {
        return Err(Problem::unavailable("user actions are not configured"));
    };
    let Ok(caller) = credentials.caller_entry(request.request()) else { return Ok(None) };
    let must_sign = credentials.must_sign(caller);
    let sent = request.headers().contains_key(USER_ACTION_HEADER);
    if !must_sign && !sent {
        return Ok(None);
    }
    if caller.credentials.is_empty() {
        return Err(Problem::unauthorized(if must_sign {
            // Its user action is missing, as the contract words it (401
            // naming the header), and it cannot make one: it may only read.
            format!(
                "x-dfns-useraction: principal `{}` has no credential to sign with and require_signed_actions is \
                 set: it may only read",
                caller.principal.id
            )
        } else {
            // A user action it sends is mismatched whatever it holds (it can
            // have none of its own): refused, and nobody's action is used up.
            format!(
                "x-dfns-useraction: principal `{}` has no credential, so no user action is its own; send the \
                 request without one",
                caller.principal.id
            )
        }));
    }
    let token = request
        .headers()
        .get(USER_ACTION_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            Problem::unauthorized(format!(
                "x-dfns-useraction: principal `{}` must sign this request (POST /auth/action/init, then /auth/action)",
                caller.principal.id
            ))
        })?
        .to_owned();

    let limit = request.app_data::<BodyLimit>().map_or(DEFAULT_BODY_LIMIT, |limit| limit.0);
    let timeout = request.app_data::<BodyTimeout>().map_or(DEFAULT_BODY_TIMEOUT, |timeout| timeout.0);
    check_declared_length(request.request(), limit)?;
    let mut payload = request.take_payload();
    let body = actix_rt::time::timeout(timeout, read_limited(&mut payload, limit))
        .await
        .map_err(|_| Problem::request_timeout(timeout))??;
    request.set_payload(Payload::from(body.clone()));

    let binding = Binding {
        method: request.method().as_str().to_owned(),
        path: request.uri().path().to_owned(),
        body_sha256: body_sha256(&body),
    };
    let grant = pending
        .use_grant(&token, &caller.principal.id, &binding, engine.now())
        .map_err(|refusal| Problem::unauthorized(format!("x-dfns-useraction: the user action {refusal}")))?;
    // The body hashed to what the principal signed, which was text.
    let body = String::from_utf8_lossy(&body).into_owned();
    Ok(Some(SignedAction { body, ..grant.assertion }))
}

/// The verified assertion of the request, when its principal signed it.
#[derive(Debug, Clone)]
pub struct UserAction(pub Option<SignedAction>);

impl FromRequest for UserAction {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(UserAction(request.extensions().get::<SignedAction>().cloned())))
    }
}

/// Registers the two routes of the flow. The init body quotes a whole
/// request body as a JSON string, so it may be up to about twice the body
/// limit (escaping) plus the other fields.
pub fn configure(config: &mut web::ServiceConfig, body_limit: usize) {
    let init_limit = BodyLimit(body_limit.saturating_mul(2).saturating_add(4096));
    config
        .service(web::resource(INIT_PATH).app_data(init_limit).route(web::post().to(init)))
        .service(web::resource(SIGN_PATH).route(web::post().to(sign)));
}

fn too_many(principal: &str) -> Problem {
    Problem::new(
        actix_web::http::StatusCode::TOO_MANY_REQUESTS,
        format!("principal `{principal}` has too many user actions in progress; finish or let them expire (5 minutes)"),
    )
}

fn random_text() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    BASE64URL.encode(bytes)
}
