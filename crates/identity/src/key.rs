//! did:key documents (the did:key method; `key-did-resolver`'s shape): the key is the
//! document. An Ed25519 key also agrees keys as the X25519 key it maps to (RFC 7748's
//! birational map, as libsodium's `crypto_sign_ed25519_pk_to_curve25519`), named by
//! that key's own did:key fingerprint.

use crate::did::PublicKey;
use crate::IdentityError;
use serde_json::{json, Map, Value};

/// The document of `did` (`did:key:<fingerprint>`), `@context` included when `ld`.
pub fn document(
    did: &str,
    fingerprint: &str,
    key: &PublicKey,
    ld: bool,
) -> Result<Map<String, Value>, IdentityError> {
    let id = format!("{did}#{fingerprint}");
    let mut d = Map::new();
    d.insert("id".into(), json!(did));
    let (kind, bytes) = match key {
        PublicKey::Ed25519(k) => ("Ed25519VerificationKey2018", k.to_vec()),
        PublicKey::Secp256k1(k) => ("Secp256k1VerificationKey2018", k.clone()),
    };
    d.insert(
        "verificationMethod".into(),
        json!([{ "id": id, "type": kind, "controller": did, "publicKeyBase58": bs58::encode(&bytes).into_string() }]),
    );
    for purpose in [
        "authentication",
        "assertionMethod",
        "capabilityDelegation",
        "capabilityInvocation",
    ] {
        d.insert(purpose.into(), json!([id]));
    }
    if let PublicKey::Ed25519(k) = key {
        let x = x25519_of(k)?;
        let mut coded = vec![0xec, 0x01];
        coded.extend_from_slice(&x);
        d.insert(
            "keyAgreement".into(),
            json!([{
                "id": format!("{did}#z{}", bs58::encode(&coded).into_string()),
                "type": "X25519KeyAgreementKey2019",
                "controller": did,
                "publicKeyBase58": bs58::encode(x).into_string(),
            }]),
        );
    }
    if ld {
        d.insert("@context".into(), json!("https://w3id.org/did/v1"));
    }
    Ok(d)
}

/// The X25519 public key an Ed25519 public key maps to.
pub fn x25519_of(ed25519: &[u8; 32]) -> Result<[u8; 32], IdentityError> {
    curve25519_dalek::edwards::CompressedEdwardsY(*ed25519)
        .decompress()
        .map(|p| p.to_montgomery().to_bytes())
        .ok_or_else(|| {
            IdentityError::InvalidDid("the Ed25519 key is not a point on the curve".into())
        })
}
