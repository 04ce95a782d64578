//! Checking a credential assertion (`POST /auth/action`) against the
//! challenge it answers and the principal's registered keys.

use base64::Engine as _;
use serde::Deserialize;

use super::challenge::Challenge;
use crate::config::PrincipalConfig;
use crate::http::problem::Problem;
use crate::model::signed_action::{challenge_of, verify_signature, SignedAction, BASE64URL};

/// The body of `POST /auth/action`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedChallenge {
    /// The `challengeIdentifier` of `/auth/action/init`.
    pub challenge_identifier: String,
    /// The assertion.
    pub first_factor: FirstFactor,
}

/// A first factor: only key credentials (`kind: "Key"`) are supported.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirstFactor {
    /// `Key`.
    pub kind: String,
    /// The key's assertion.
    pub credential_assertion: Option<KeyAssertion>,
}

/// What a key credential sends.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyAssertion {
    /// The credential's id.
    pub cred_id: String,
    /// base64url of `{"type":"key.get","challenge":"..."}`.
    pub client_data: String,
    /// base64url of the signature over the `clientData` bytes.
    pub signature: String,
}

/// The assertion of `principal` answering `challenge`, when it holds: a key
/// of the principal signed `clientData`, which holds exactly that challenge.
/// The returned assertion carries the bound method and path; the body is
/// added when the token is used.
pub fn check(principal: &PrincipalConfig, challenge: &Challenge, factor: FirstFactor) -> Result<SignedAction, Problem> {
    if factor.kind != "Key" {
        return Err(Problem::bad_request(format!(
            "firstFactor.kind: `{}` is not supported; use `Key`",
            factor.kind.chars().take(64).collect::<String>()
        )));
    }
    let assertion = factor
        .credential_assertion
        .ok_or_else(|| Problem::bad_request("firstFactor.credentialAssertion: is required"))?;
    let credential = principal.credential(&assertion.cred_id).ok_or_else(|| {
        Problem::unauthorized(format!(
            "firstFactor.credentialAssertion.credId: `{}` is not a credential of principal `{}`",
            assertion.cred_id.chars().take(64).collect::<String>(),
            principal.principal.id
        ))
    })?;
    let client_data = BASE64URL
        .decode(assertion.client_data.trim())
        .map_err(|_| Problem::unauthorized("firstFactor.credentialAssertion.clientData: is not base64url"))?;
    let signed_challenge = challenge_of(&client_data)
        .map_err(|e| Problem::unauthorized(format!("firstFactor.credentialAssertion.clientData: {e}")))?;
    if signed_challenge != challenge.challenge {
        return Err(Problem::unauthorized(
            "firstFactor.credentialAssertion.clientData: does not hold the challenge issued for this identifier",
        ));
    }
    verify_signature(&credential.public_key, &credential.id, &client_data, &assertion.signature)
        .map_err(|e| Problem::unauthorized(format!("firstFactor.credentialAssertion.signature: {e}")))?;
    Ok(SignedAction {
        principal_id: principal.principal.id.clone(),
        credential_id: credential.id.clone(),
        client_data: assertion.client_data,
        signature: assertion.signature,
        method: challenge.binding.method.clone(),
        path: challenge.binding.path.clone(),
        body: String::new(),
    })
}
