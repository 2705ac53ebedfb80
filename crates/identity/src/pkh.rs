//! did:pkh documents (the did:pkh method draft; `pkh-did-resolver`'s shape): the
//! account itself is the one verification method, a
//! `EcdsaSecp256k1RecoveryMethod2020` named by its CAIP-10 account id. No chain
//! state is read: every account has one, transaction or not.

use serde_json::{json, Map, Value};

/// The document of `did` (`did:pkh:<account>`), `@context` included when `ld`.
pub fn document(did: &str, account: &str, ld: bool) -> Map<String, Value> {
    let vm = format!("{did}#blockchainAccountId");
    let mut d = Map::new();
    if ld {
        d.insert(
            "@context".into(),
            json!([
                "https://www.w3.org/ns/did/v1",
                {
                    "blockchainAccountId": "https://w3id.org/security#blockchainAccountId",
                    "EcdsaSecp256k1RecoveryMethod2020": "https://identity.foundation/EcdsaSecp256k1RecoverySignature2020#EcdsaSecp256k1RecoveryMethod2020"
                }
            ]),
        );
    }
    d.insert("id".into(), json!(did));
    d.insert(
        "verificationMethod".into(),
        json!([{
            "id": vm,
            "type": "EcdsaSecp256k1RecoveryMethod2020",
            "controller": did,
            "blockchainAccountId": account,
        }]),
    );
    d.insert("authentication".into(), json!([vm]));
    d.insert("assertionMethod".into(), json!([vm]));
    d
}
