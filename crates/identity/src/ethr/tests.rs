//! The did:ethr builder against the published ethr-did-resolver: `vectors.json` holds
//! seeded random ERC-1056 histories and the documents ethr-did-resolver 11.1.3's own
//! `wrapDidDocument` built from them (written by `tests/e2e/did_vectors.mjs`; rerun it
//! after an upgrade of the resolver). Every one must come out the same here.

use super::*;
use crate::did::{parse, Did};

fn b32(v: &Value) -> [u8; 32] {
    let b = alloy_primitives::hex::decode(v.as_str().expect("hex")).expect("hex");
    b.try_into().expect("32 bytes")
}

fn event(v: &Value) -> Event {
    let block = v["block"].as_u64().expect("block");
    let addr = |k: &str| {
        v[k].as_str()
            .expect("address")
            .parse::<Address>()
            .expect("address")
    };
    let valid_to = || {
        v["validTo"]
            .as_str()
            .expect("validTo")
            .parse::<U256>()
            .expect("number")
    };
    let change = match v["kind"].as_str().expect("kind") {
        "owner" => Change::Owner {
            owner: addr("owner"),
        },
        "delegate" => Change::Delegate {
            delegate_type: b32(&v["delegateType"]),
            delegate: addr("delegate"),
            valid_to: valid_to(),
        },
        _ => Change::Attribute {
            name: b32(&v["name"]),
            value: alloy_primitives::hex::decode(v["value"].as_str().expect("hex"))
                .expect("hex")
                .into(),
            valid_to: valid_to(),
        },
    };
    Event { block, change }
}

#[test]
fn documents_match_ethr_did_resolver_on_every_vector() {
    let vectors: Vec<Value> = serde_json::from_str(include_str!("vectors.json")).expect("vectors");
    assert!(vectors.len() >= 100);
    for (i, v) in vectors.iter().enumerate() {
        let did = v["did"].as_str().expect("did");
        let Did::Ethr { id, .. } = parse(did).expect("a did:ethr").method else {
            panic!("not ethr")
        };
        let history: Vec<Event> = v["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(event)
            .collect();
        let built = document(
            did,
            &id,
            420,
            &history,
            v["at"].as_u64(),
            v["now"].as_u64().expect("now"),
        );
        assert_eq!(
            Value::Object(built.document),
            v["document"],
            "vector {i}: {:#}",
            v["events"]
        );
        assert_eq!(
            built.deactivated,
            v["deactivated"].as_bool().expect("bool"),
            "vector {i}"
        );
        assert_eq!(
            built.version_id,
            v["versionId"].as_u64().expect("n"),
            "vector {i}"
        );
        assert_eq!(
            built.next_version_id,
            v["nextVersionId"].as_u64(),
            "vector {i}"
        );
    }
}

#[test]
fn a_revoked_key_leaves_its_number_behind_and_the_next_key_counts_on() {
    let did = "did:ethr:0x1a4:0x1111111111111111111111111111111111111111";
    let Did::Ethr { id, .. } = parse(did).expect("did").method else {
        panic!()
    };
    let mut name = [0u8; 32];
    name[..27].copy_from_slice(b"did/pub/Ed25519/veriKey/hex");
    let key = |v: u8, valid_to: u64, block: u64| Event {
        block,
        change: Change::Attribute {
            name,
            value: vec![v; 32].into(),
            valid_to: U256::from(valid_to),
        },
    };
    let history = [key(1, 2_000, 1), key(1, 0, 2), key(2, 2_000, 3)];
    let built = document(did, &id, 420, &history, None, 1_000);
    let vm = built.document["verificationMethod"]
        .as_array()
        .expect("methods");
    assert_eq!(vm.len(), 2, "the controller and the second key");
    assert_eq!(vm[1]["id"], format!("{did}#delegate-3"));
    assert_eq!(vm[1]["publicKeyHex"], "02".repeat(32));
    assert_eq!(built.version_id, 3);
    let then = document(did, &id, 420, &history, Some(1), 1_000);
    assert_eq!(then.next_version_id, Some(2));
    assert_eq!(
        then.document["verificationMethod"][1]["id"],
        format!("{did}#delegate-1")
    );
}
