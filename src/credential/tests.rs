use super::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_algorithm_signs_and_verifies() {
    for (name, algorithm) in [("ed25519", "Ed25519"), ("p256", "P-256"), ("secp256k1", "secp256k1"), ("rsa", "RSA")] {
        let public = PublicKey::from_pem(&fixture(&format!("{name}.pub"))).unwrap();
        let private = PrivateKey::from_pem(&fixture(&format!("{name}.key"))).unwrap();
        assert_eq!(public.algorithm(), algorithm);
        let signature = private.sign(b"clientData");
        assert!(public.verify(b"clientData", &signature), "{name}");
        assert!(!public.verify(b"clientdata", &signature), "{name}: another message");
        let mut flipped = signature.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(!public.verify(b"clientData", &flipped), "{name}: a flipped signature");
        assert!(!public.verify(b"clientData", &[]), "{name}: an empty signature");
    }
}

#[test]
fn a_key_does_not_verify_another_keys_signature() {
    let a = PrivateKey::from_pem(&fixture("ed25519.key")).unwrap();
    let b = PublicKey::from_pem(&fixture("ed25519-b.pub")).unwrap();
    assert!(!b.verify(b"m", &a.sign(b"m")));
}

#[test]
fn high_s_secp256k1_signatures_from_openssl_verify() {
    let private = k256::ecdsa::SigningKey::from_pkcs8_pem(&fixture("secp256k1.key")).unwrap();
    let public = PublicKey::from_pem(&fixture("secp256k1.pub")).unwrap();
    let low: k256::ecdsa::Signature = private.sign(b"m");
    // The other valid signature of the same (r, s): (r, n - s).
    let (r, s) = low.split_scalars();
    let high = k256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
    assert!(public.verify(b"m", high.to_der().as_bytes()));
}

#[test]
fn unsupported_and_weak_keys_are_refused() {
    assert_eq!(PublicKey::from_pem("not a key").unwrap_err(), KeyError::UnsupportedPublicKey);
    assert_eq!(PublicKey::from_pem(&fixture("rsa-1024.pub")).unwrap_err(), KeyError::WeakRsa(1024));
    assert_eq!(PrivateKey::from_pem(&fixture("p256.pub")).unwrap_err(), KeyError::UnsupportedPrivateKey);
    assert_eq!(PublicKey::from_pem(&fixture("p256.key")).unwrap_err(), KeyError::UnsupportedPublicKey);
}
