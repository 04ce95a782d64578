//! A signed user action (Dfns user action signing): the assertion a person
//! made with their own key, and the request it authorized. It is journaled
//! with the change, so the audit trail proves who decided and can be checked
//! again offline (`warden audit verify`).
//!
//! The challenge Warden hands out commits to the request: it is
//! `base64url(nonce || binding)`, 32 random bytes then [`binding_digest`]
//! of the principal, method, path and body. A signature over `clientData`
//! (which holds the challenge) therefore covers exactly this request, and
//! anyone holding the public key can check that from the record alone.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::credential::PublicKey;
pub use crate::credential::BASE64URL;

/// Random bytes at the start of every challenge.
pub const NONCE_LEN: usize = 32;

/// The `type` a key credential's `clientData` carries.
pub const KEY_GET: &str = "key.get";

/// Domain separation of the binding digest, with a version for the layout.
const BINDING_DOMAIN: &[u8] = b"warden-user-action/1";

/// A signed assertion and the request it was bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedAction {
    /// Who signed (the authenticated principal).
    pub principal_id: String,
    /// The credential (key) that signed.
    pub credential_id: String,
    /// `clientData` as received, base64url.
    pub client_data: String,
    /// The signature over the `clientData` bytes, base64url.
    pub signature: String,
    /// The request's method (`POST`, `PUT`, `DELETE`).
    pub method: String,
    /// The request's percent-encoded path, without query.
    pub path: String,
    /// The request's exact body.
    pub body: String,
}

/// Why an assertion does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssertionError {
    /// `clientData` is not base64url of the JSON object the protocol gives.
    #[error("clientData is not base64url of {{\"type\": \"key.get\", \"challenge\": ...}}")]
    MalformedClientData,
    /// `clientData` holds another challenge, or another `type`.
    #[error("clientData does not hold the challenge issued for this request")]
    WrongChallenge,
    /// The signature is not base64url, or does not verify with the key.
    #[error("the signature does not verify with credential `{0}`")]
    BadSignature(String),
}

/// The digest a challenge commits to: the principal, method, path and the
/// sha256 of the body, each length-prefixed so no two requests share one.
pub fn binding_digest(principal_id: &str, method: &str, path: &str, body_sha256: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(BINDING_DOMAIN);
    for part in [principal_id.as_bytes(), method.as_bytes(), path.as_bytes(), body_sha256.as_slice()] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The sha256 of a body.
pub fn body_sha256(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// The challenge text for a nonce and a binding digest.
pub fn challenge_text(nonce: &[u8; NONCE_LEN], binding: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(NONCE_LEN + 32);
    bytes.extend_from_slice(nonce);
    bytes.extend_from_slice(binding);
    BASE64URL.encode(bytes)
}

/// The challenge a `clientData` text holds, when it is the protocol's JSON
/// object of type `key.get`.
pub fn challenge_of(client_data: &[u8]) -> Result<String, AssertionError> {
    #[derive(Deserialize)]
    struct ClientData {
        #[serde(rename = "type")]
        kind: String,
        challenge: String,
    }
    let data: ClientData = serde_json::from_slice(client_data).map_err(|_| AssertionError::MalformedClientData)?;
    if data.kind != KEY_GET {
        return Err(AssertionError::WrongChallenge);
    }
    Ok(data.challenge)
}

/// Checks a signature (base64url) over `client_data` bytes with `key`.
pub fn verify_signature(
    key: &PublicKey,
    credential_id: &str,
    client_data: &[u8],
    signature: &str,
) -> Result<(), AssertionError> {
    let bad = || AssertionError::BadSignature(credential_id.to_owned());
    let signature = BASE64URL.decode(signature.trim()).map_err(|_| bad())?;
    if key.verify(client_data, &signature) {
        Ok(())
    } else {
        Err(bad())
    }
}

impl SignedAction {
    /// Re-verifies the record on its own, as `warden audit verify` does:
    /// `clientData` holds a challenge committing to this principal, method,
    /// path and body, and `key` signed it.
    pub fn verify(&self, key: &PublicKey) -> Result<(), AssertionError> {
        let client_data = BASE64URL.decode(self.client_data.trim()).map_err(|_| AssertionError::MalformedClientData)?;
        let challenge = challenge_of(&client_data)?;
        let challenge = BASE64URL.decode(challenge).map_err(|_| AssertionError::WrongChallenge)?;
        let binding = binding_digest(&self.principal_id, &self.method, &self.path, &body_sha256(self.body.as_bytes()));
        if challenge.len() != NONCE_LEN + 32 || challenge[NONCE_LEN..] != binding {
            return Err(AssertionError::WrongChallenge);
        }
        verify_signature(key, &self.credential_id, &client_data, &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::PrivateKey;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn signed(body: &str) -> SignedAction {
        let binding = binding_digest("us-a", "POST", "/v2/policies", &body_sha256(body.as_bytes()));
        let challenge = challenge_text(&[7; NONCE_LEN], &binding);
        let client_data = format!(r#"{{"type":"key.get","challenge":"{challenge}"}}"#);
        let key = PrivateKey::from_pem(&fixture("ed25519.key")).unwrap();
        SignedAction {
            principal_id: "us-a".into(),
            credential_id: "cr-a".into(),
            client_data: BASE64URL.encode(&client_data),
            signature: BASE64URL.encode(key.sign(client_data.as_bytes())),
            method: "POST".into(),
            path: "/v2/policies".into(),
            body: body.into(),
        }
    }

    #[test]
    fn a_record_verifies_alone_and_any_change_to_it_fails() {
        let key = PublicKey::from_pem(&fixture("ed25519.pub")).unwrap();
        let action = signed(r#"{"name":"x"}"#);
        assert_eq!(action.verify(&key), Ok(()));
        let other_key = PublicKey::from_pem(&fixture("ed25519-b.pub")).unwrap();
        assert!(matches!(action.verify(&other_key), Err(AssertionError::BadSignature(_))));
        for tampered in [
            SignedAction { body: r#"{"name":"y"}"#.into(), ..action.clone() },
            SignedAction { path: "/v2/policies/pl-1".into(), ..action.clone() },
            SignedAction { method: "PUT".into(), ..action.clone() },
            SignedAction { principal_id: "us-b".into(), ..action.clone() },
        ] {
            assert_eq!(tampered.verify(&key), Err(AssertionError::WrongChallenge));
        }
        let garbage = SignedAction { client_data: "!!".into(), ..action };
        assert_eq!(garbage.verify(&key), Err(AssertionError::MalformedClientData));
    }
}
