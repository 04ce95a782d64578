//! Authentication (a bearer token, or a client certificate over mutual TLS)
//! and role checks, as extractors: a route that takes a [`Caller`] answers
//! 401 without a known token or certificate; one that takes an
//! [`Authorized<R>`] also answers 403 without role `R`. Both run before the
//! body is read, so an unauthorized caller never gets to its validation.

use std::future::{ready, Ready};
use std::marker::PhantomData;

use actix_web::http::header;
use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::problem::Problem;
use super::tls::ClientCertificate;
use crate::config::{token_sha256, PrincipalConfig};
use crate::model::principal::{Principal, Role};

/// The principals the server knows, by the sha256 of their tokens and of
/// their client certificates, with their keys for signed user actions.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    entries: Vec<PrincipalConfig>,
    require_signed_actions: bool,
}

impl Credentials {
    /// Credentials of the given principals.
    pub fn new(entries: Vec<PrincipalConfig>) -> Self {
        Credentials { entries, require_signed_actions: false }
    }

    /// Adds a principal authenticated by `token`.
    pub fn with_token(mut self, principal: Principal, token: &str) -> Self {
        self.entries.push(PrincipalConfig::with_token(principal, token));
        self
    }

    /// Adds a principal as the config file gives it (digests and keys).
    pub fn with_entry(mut self, entry: PrincipalConfig) -> Self {
        self.entries.push(entry);
        self
    }

    /// Whether every principal must sign its changes (`require_signed_actions`).
    pub fn require_signed_actions(mut self, required: bool) -> Self {
        self.require_signed_actions = required;
        self
    }

    /// Whether `entry` must sign the changes it makes: it has a key, or
    /// the config requires every principal to sign.
    pub fn must_sign(&self, entry: &PrincipalConfig) -> bool {
        self.require_signed_actions || !entry.credentials.is_empty()
    }

    /// The config entry of a request's principal (see [`Credentials::caller`]).
    pub fn caller_entry(&self, request: &HttpRequest) -> Result<&PrincipalConfig, Problem> {
        let principal = self.caller(request)?;
        self.entries
            .iter()
            .find(|entry| entry.principal.id == principal.id)
            .ok_or_else(|| Problem::unauthorized("authorization: unknown principal"))
    }

    /// The principal whose token is `token`, if any.
    ///
    /// Every entry is compared, in constant time, whatever matches: the
    /// answer time says nothing about how close a guess was nor which
    /// principal it hit.
    pub fn authenticate(&self, token: &str) -> Option<&Principal> {
        self.authenticate_digest(&token_sha256(token))
    }

    /// [`authenticate`](Self::authenticate), given the token's sha256.
    fn authenticate_digest(&self, digest: &[u8; 32]) -> Option<&Principal> {
        let mut found = 0u32;
        let mut index = 0u32;
        for (i, entry) in self.entries.iter().enumerate() {
            // Whether an entry has a token at all is configuration, not a secret.
            let hit = entry.token_sha256.map_or(Choice::from(0), |known| known.ct_eq(digest));
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            index = u32::conditional_select(&index, &i, hit);
            found |= u32::from(hit.unwrap_u8());
        }
        (found == 1).then(|| &self.entries[index as usize].principal)
    }

    /// The principal whose client certificate has the sha256 `cert_sha256`.
    /// (A certificate is public; the handshake proved its key is held.)
    pub fn authenticate_certificate(&self, cert_sha256: &[u8; 32]) -> Option<&Principal> {
        self.entries.iter().find(|entry| entry.cert_sha256.as_ref() == Some(cert_sha256)).map(|entry| &entry.principal)
    }

    /// The principal of a request: the one of its connection's client
    /// certificate, else the one of its `Authorization: Bearer` header. With
    /// both, the token must be the same principal's (403 otherwise): a
    /// certificate-authenticated service cannot act as someone else.
    pub fn caller(&self, request: &HttpRequest) -> Result<Principal, Problem> {
        let by_certificate = request
            .conn_data::<ClientCertificate>()
            .and_then(|certificate| self.authenticate_certificate(&certificate.sha256));
        let Some(principal) = by_certificate else {
            return self.bearer(request);
        };
        if request.headers().contains_key(header::AUTHORIZATION) {
            match self.bearer(request) {
                Ok(bearer) if bearer.id == principal.id => {}
                _ => {
                    return Err(Problem::forbidden(format!(
                        "authorization: the bearer token is not that of `{}`, the principal of the client certificate",
                        principal.id
                    )))
                }
            }
        }
        Ok(principal.clone())
    }

    /// The principal of a request's `Authorization: Bearer` header.
    fn bearer(&self, request: &HttpRequest) -> Result<Principal, Problem> {
        let mut headers = request.headers().get_all(header::AUTHORIZATION);
        let header =
            headers.next().ok_or_else(|| Problem::unauthorized("authorization: a bearer token is required"))?;
        // Two tokens are two principals, or a guess beside a real one: which
        // one counts is no choice to make.
        if headers.next().is_some() {
            return Err(Problem::unauthorized("authorization: give one `Authorization` header, not several"));
        }
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or_else(|| Problem::unauthorized("authorization: expected `Bearer <token>`"))?;
        let digest = token_digest_of(request, token);
        self.authenticate_digest(&digest)
            .cloned()
            .ok_or_else(|| Problem::unauthorized("authorization: unknown bearer token"))
    }
}

/// The sha256 of a request's bearer token, kept in the request once made:
/// the signed actions' middleware and the route both authenticate it, each
/// against the credentials in force at the time, and the hash was most of
/// that work.
#[derive(Debug, Clone, Copy)]
struct TokenDigest([u8; 32]);

fn token_digest_of(request: &HttpRequest, token: &str) -> [u8; 32] {
    if let Some(TokenDigest(digest)) = request.extensions().get::<TokenDigest>() {
        return *digest;
    }
    let digest = token_sha256(token);
    request.extensions_mut().insert(TokenDigest(digest));
    digest
}

/// Any authenticated principal.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequest for Caller {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(request).map(Caller))
    }
}

/// A role a route requires.
pub trait RequiredRole {
    /// The role.
    const ROLE: Role;
}

/// Requires [`Role::Admin`]: policies and webhooks.
#[derive(Debug)]
pub struct AdminRole;

impl RequiredRole for AdminRole {
    const ROLE: Role = Role::Admin;
}

/// Requires [`Role::Signer`]: submitting activities.
#[derive(Debug)]
pub struct SignerRole;

impl RequiredRole for SignerRole {
    const ROLE: Role = Role::Signer;
}

/// An authenticated principal holding role `R`.
#[derive(Debug, Clone)]
pub struct Authorized<R>(pub Principal, PhantomData<R>);

impl<R: RequiredRole> FromRequest for Authorized<R> {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authorized = authenticate(request).and_then(|principal| {
            if principal.has_role(R::ROLE) {
                Ok(Authorized(principal, PhantomData))
            } else {
                Err(Problem::forbidden(format!("principal `{}` lacks the role `{:?}`", principal.id, R::ROLE)))
            }
        });
        ready(authorized)
    }
}

fn authenticate(request: &HttpRequest) -> Result<Principal, Problem> {
    let credentials = request
        .app_data::<web::Data<LiveCredentials>>()
        .ok_or_else(|| Problem::unavailable("authentication is not configured"))?;
    credentials.current().caller(request)
}

/// The credentials in force, swapped whole by a reload (SIGHUP): a request
/// sees the old set or the new one, never a mix.
#[derive(Debug)]
pub struct LiveCredentials(arc_swap::ArcSwap<Credentials>);

impl LiveCredentials {
    /// Starts with `credentials`.
    pub fn new(credentials: Credentials) -> Self {
        LiveCredentials(arc_swap::ArcSwap::from_pointee(credentials))
    }

    /// The set in force now.
    pub fn current(&self) -> std::sync::Arc<Credentials> {
        self.0.load_full()
    }
}

/// Reloads `[[principals]]` (tokens, certificates, keys) and
/// `require_signed_actions` from the config file on SIGHUP: who may call,
/// and the principals the engine knows (approvers for the lockout check, kinds
/// for the `approverId` filter).
#[derive(Clone)]
pub struct PrincipalsReloader {
    credentials: std::sync::Arc<LiveCredentials>,
    engine: crate::engine::Engine,
}

impl PrincipalsReloader {
    /// Reloads `credentials` and `engine`'s principals.
    pub fn new(credentials: std::sync::Arc<LiveCredentials>, engine: crate::engine::Engine) -> Self {
        PrincipalsReloader { credentials, engine }
    }
}

impl std::fmt::Debug for PrincipalsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalsReloader").finish_non_exhaustive()
    }
}

impl crate::http::reload::Reload for PrincipalsReloader {
    fn name(&self) -> &'static str {
        "principals"
    }

    fn reload(&self, config: &crate::config::Config) -> Result<(), String> {
        let fresh = Credentials::new(config.principals.clone()).require_signed_actions(config.require_signed_actions);
        self.credentials.0.store(std::sync::Arc::new(fresh));
        self.engine.set_principals(config.engine_principals());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_find_their_principal_only() {
        let credentials = Credentials::default()
            .with_token(Principal::user("us-a", &[Role::Admin]), "alpha")
            .with_token(Principal::user("us-b", &[]), "beta");
        assert_eq!(credentials.authenticate("alpha").map(|p| p.id.as_str()), Some("us-a"));
        assert_eq!(credentials.authenticate("beta").map(|p| p.id.as_str()), Some("us-b"));
        assert!(credentials.authenticate("gamma").is_none());
        assert!(credentials.authenticate("").is_none());
    }

    #[test]
    fn a_request_hashes_its_token_once_and_is_checked_against_the_credentials_in_force() {
        let request = actix_web::test::TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer alpha"))
            .to_http_request();
        let first = Credentials::default().with_token(Principal::user("us-a", &[Role::Admin]), "alpha");
        assert_eq!(first.caller(&request).map(|p| p.id).ok().as_deref(), Some("us-a"));
        let kept = request.extensions().get::<TokenDigest>().map(|d| d.0);
        assert_eq!(kept, Some(token_sha256("alpha")), "the first check keeps the token's hash");
        // A reload that no longer knows the token: the next check of the same
        // request refuses it.
        let reloaded = Credentials::default().with_token(Principal::user("us-b", &[]), "beta");
        assert!(reloaded.caller(&request).is_err());
        // The hash kept is the one used: a request made to carry beta's hash
        // is beta's, whatever its header says.
        request.extensions_mut().insert(TokenDigest(token_sha256("beta")));
        assert_eq!(reloaded.caller(&request).map(|p| p.id).ok().as_deref(), Some("us-b"));
    }

    #[test]
    fn certificates_find_their_principal_and_never_a_token() {
        let cert = [7u8; 32];
        let credentials = Credentials::new(vec![PrincipalConfig::with_certificate(
            Principal::user("sa-signer", &[Role::Signer]),
            cert,
        )])
        .with_token(Principal::user("us-a", &[Role::Admin]), "alpha");
        assert_eq!(credentials.authenticate_certificate(&cert).map(|p| p.id.as_str()), Some("sa-signer"));
        assert!(credentials.authenticate_certificate(&[8u8; 32]).is_none());
        assert_eq!(credentials.authenticate("alpha").map(|p| p.id.as_str()), Some("us-a"));
    }
}
