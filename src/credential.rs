//! Keys of principals for signed user actions: parse a public key from SPKI
//! PEM and verify a signature with it; parse a PKCS#8 PEM private key and
//! sign (the approver CLI and tests). Every algorithm is a RustCrypto crate:
//! Ed25519 (raw 64-byte signatures), ECDSA P-256 and secp256k1 over SHA-256
//! (DER signatures), RSA PKCS#1 v1.5 over SHA-256. A leaf: it imports
//! nothing of the crate, so every layer may use it.

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa::pkcs1v15;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use sha2::Sha256;

/// base64url as the Dfns SDK writes it (no padding); padding is tolerated on input.
pub const BASE64URL: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The smallest RSA modulus accepted: below 2048 bits, a key no longer
/// protects a custody decision.
const MIN_RSA_BITS: usize = 2048;

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not a PEM key of a supported algorithm.
    #[error("is not an SPKI PEM public key of Ed25519, ECDSA P-256, ECDSA secp256k1 or RSA")]
    UnsupportedPublicKey,
    /// Not a PKCS#8 PEM private key of a supported algorithm.
    #[error("is not a PKCS#8 PEM private key of Ed25519, ECDSA P-256, ECDSA secp256k1 or RSA")]
    UnsupportedPrivateKey,
    /// An RSA key below [`MIN_RSA_BITS`].
    #[error("is an RSA key of {0} bits; at least 2048 are required")]
    WeakRsa(usize),
}

/// A principal's public key.
#[derive(Debug, Clone)]
pub struct PublicKey {
    algorithm: Verifying,
    /// The SubjectPublicKeyInfo DER: what two keys are compared by.
    spki_der: Vec<u8>,
}

#[derive(Debug, Clone)]
enum Verifying {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    Secp256k1(k256::ecdsa::VerifyingKey),
    Rsa(pkcs1v15::VerifyingKey<Sha256>),
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki_der == other.spki_der
    }
}

impl Eq for PublicKey {}

impl PublicKey {
    /// Reads an SPKI PEM (`-----BEGIN PUBLIC KEY-----`); each algorithm's
    /// decoder checks the key's algorithm identifier (and curve).
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        let pem = pem.trim();
        let algorithm = if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            Verifying::Ed25519(key)
        } else if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            Verifying::P256(key)
        } else if let Ok(key) = k256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            Verifying::Secp256k1(key)
        } else if let Ok(key) = rsa::RsaPublicKey::from_public_key_pem(pem) {
            let bits = key.n().bits();
            if bits < MIN_RSA_BITS {
                return Err(KeyError::WeakRsa(bits));
            }
            Verifying::Rsa(pkcs1v15::VerifyingKey::new(key))
        } else {
            return Err(KeyError::UnsupportedPublicKey);
        };
        let spki_der = match &algorithm {
            Verifying::Ed25519(key) => key.to_public_key_der(),
            Verifying::P256(key) => key.to_public_key_der(),
            Verifying::Secp256k1(key) => key.to_public_key_der(),
            Verifying::Rsa(key) => key.to_public_key_der(),
        }
        .map_err(|_| KeyError::UnsupportedPublicKey)?
        .into_vec();
        Ok(PublicKey { algorithm, spki_der })
    }

    /// The algorithm's name, for messages: `Ed25519`, `P-256`, `secp256k1`, `RSA`.
    pub fn algorithm(&self) -> &'static str {
        match self.algorithm {
            Verifying::Ed25519(_) => "Ed25519",
            Verifying::P256(_) => "P-256",
            Verifying::Secp256k1(_) => "secp256k1",
            Verifying::Rsa(_) => "RSA",
        }
    }

    /// Whether `signature` is this key's signature of `message`.
    ///
    /// ECDSA signatures are DER as the contract says; the fixed 64-byte
    /// `r || s` form that WebCrypto produces is accepted too. A secp256k1
    /// signature with a high `s` is normalized first: OpenSSL (and so Node's
    /// `crypto.sign`) does not normalize, and malleability does not matter
    /// for a single-use challenge.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.algorithm {
            Verifying::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify_strict(message, &signature).is_ok()),
            Verifying::P256(key) => p256::ecdsa::Signature::from_der(signature)
                .or_else(|_| p256::ecdsa::Signature::from_slice(signature))
                .is_ok_and(|signature| key.verify(message, &signature).is_ok()),
            Verifying::Secp256k1(key) => k256::ecdsa::Signature::from_der(signature)
                .or_else(|_| k256::ecdsa::Signature::from_slice(signature))
                .is_ok_and(|signature| {
                    let signature = signature.normalize_s().unwrap_or(signature);
                    key.verify(message, &signature).is_ok()
                }),
            Verifying::Rsa(key) => {
                pkcs1v15::Signature::try_from(signature).is_ok_and(|signature| key.verify(message, &signature).is_ok())
            }
        }
    }
}

/// A private key that signs user actions (the approver CLI, tests).
#[derive(Debug, Clone)]
pub struct PrivateKey(Signing);

#[derive(Debug, Clone)]
enum Signing {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
    Secp256k1(k256::ecdsa::SigningKey),
    Rsa(pkcs1v15::SigningKey<Sha256>),
}

impl PrivateKey {
    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str) -> Result<PrivateKey, KeyError> {
        let pem = pem.trim();
        let signing = if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            Signing::Ed25519(key)
        } else if let Ok(key) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            Signing::P256(key)
        } else if let Ok(key) = k256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            Signing::Secp256k1(key)
        } else if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
            let bits = key.n().bits();
            if bits < MIN_RSA_BITS {
                return Err(KeyError::WeakRsa(bits));
            }
            Signing::Rsa(pkcs1v15::SigningKey::new(key))
        } else {
            return Err(KeyError::UnsupportedPrivateKey);
        };
        Ok(PrivateKey(signing))
    }

    /// Signs `message` in the contract's encoding (Ed25519 raw, ECDSA DER,
    /// RSA PKCS#1 v1.5).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.0 {
            Signing::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            Signing::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            Signing::Secp256k1(key) => {
                let signature: k256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            Signing::Rsa(key) => key.sign(message).to_vec(),
        }
    }
}

#[cfg(test)]
mod tests;
