//! did:ethr documents from an identity's ERC-1056 events, built as the published
//! `ethr-did-resolver` builds them (its `wrapDidDocument`), so both give the same
//! document for the same chain:
//!
//! * `#controller` is the current owner as a `EcdsaSecp256k1RecoveryMethod2020`
//!   (`blockchainAccountId: eip155:<chain id>:<owner>`); a DID that is a public key
//!   adds it as `#controllerKey` while the identity owns itself.
//! * Delegates (`veriKey`, `sigAuth`) and `did/pub/<algorithm>/<purpose>/<encoding>`
//!   attributes valid now are `#delegate-<n>` keys, `n` counting every delegate and
//!   key event in order, valid or not; `sigAuth` ones also authenticate, `enc` ones
//!   are key agreement keys. `did/svc/<type>` attributes are `#service-<n>`.
//! * A revocation (or an expiry) removes the entry its event index names; an owner
//!   change to address zero deactivates the DID (an empty document).
//! * With a `versionId`, events after that block are left out and the next one is
//!   named in the metadata.
//!
//! Quirks kept on purpose, because resolvers must agree: a revoked key agreement
//! reference stays in `keyAgreement`; names are bytes32 read as UTF-8 with trailing
//! zeros cut, and an event whose name is not UTF-8 is skipped as if it were not
//! there (not even its block counts as a version).

use crate::EthrId;
use alloy_primitives::{Address, Bytes, U256};
use base64::Engine;
use serde_json::{json, Map, Value};

/// One ERC-1056 event of the identity, at `block`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub block: u64,
    pub change: Change,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Owner {
        owner: Address,
    },
    Delegate {
        delegate_type: [u8; 32],
        delegate: Address,
        valid_to: U256,
    },
    Attribute {
        name: [u8; 32],
        value: Bytes,
        valid_to: U256,
    },
}

/// A built document and what the metadata says of its version.
#[derive(Clone, Debug, PartialEq)]
pub struct Built {
    pub document: Map<String, Value>,
    pub deactivated: bool,
    /// The block of the last change included (0: none).
    pub version_id: u64,
    /// The block of the first change left out, for a `versionId` in the past.
    pub next_version_id: Option<u64>,
}

/// A bytes32 name as ethr-did-resolver reads it: UTF-8, trailing zeros cut.
fn name_of(b: &[u8; 32]) -> Option<String> {
    std::str::from_utf8(b)
        .ok()
        .map(|s| s.trim_end_matches('\0').to_string())
}

/// Entries by event index, in the order JavaScript objects keep string keys: first
/// insertion, a re-set keeping its place, a delete then set going last.
#[derive(Default)]
struct Ordered(Vec<(String, Value)>);

impl Ordered {
    fn set(&mut self, k: &str, v: Value) {
        match self.0.iter_mut().find(|(key, _)| key == k) {
            Some(e) => e.1 = v,
            None => self.0.push((k.to_string(), v)),
        }
    }
    fn delete(&mut self, k: &str) {
        self.0.retain(|(key, _)| key != k);
    }
    fn values(self) -> impl Iterator<Item = Value> {
        self.0.into_iter().map(|(_, v)| v)
    }
}

#[derive(Default)]
struct Sections {
    auth: Ordered,
    key_agreement: Ordered,
    signing: Ordered,
    keys: Ordered,
    services: Ordered,
    delegates: u64,
    services_seen: u64,
}

/// `did/(pub|svc)/<algorithm>[/<purpose>][/<encoding>]`, each part `\w+`.
fn attribute_parts(name: &str) -> Option<(&str, &str, Option<&str>, Option<&str>)> {
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() < 3
        || parts.len() > 5
        || parts[0] != "did"
        || !parts[1..].iter().all(|p| word(p))
    {
        return None;
    }
    if parts[1] != "pub" && parts[1] != "svc" {
        return None;
    }
    Some((
        parts[1],
        parts[2],
        parts.get(3).copied(),
        parts.get(4).copied(),
    ))
}

fn legacy_type(purpose: &str) -> Option<&'static str> {
    Some(match purpose {
        "sigAuth" => "SignatureAuthentication2018",
        "veriKey" => "VerificationKey2018",
        "enc" => "KeyAgreementKey2019",
        _ => return None,
    })
}

fn legacy_algorithm(t: &str) -> Option<&'static str> {
    Some(match t {
        "Secp256k1VerificationKey2018" | "Secp256k1SignatureAuthentication2018" => {
            "EcdsaSecp256k1VerificationKey2019"
        }
        "Ed25519SignatureAuthentication2018" | "Ed25519VerificationKey2018" => {
            "Ed25519VerificationKey2018"
        }
        "RSAVerificationKey2018" => "RSAVerificationKey2018",
        "X25519KeyAgreementKey2019" => "X25519KeyAgreementKey2019",
        _ => return None,
    })
}

/// Builds the document of `did` (identity `id` on chain `chain_id`) from its events in
/// chain order, as of block `at` (`None`: the latest), counting validity against
/// `now` (Unix seconds).
pub fn document(
    did: &str,
    id: &EthrId,
    chain_id: u64,
    history: &[Event],
    at: Option<u64>,
    now: u64,
) -> Built {
    let address = id.address();
    let mut controller = address;
    let mut s = Sections::default();
    let (mut version_id, mut next_version_id) = (0u64, None::<u64>);
    let mut deactivated = false;
    for e in history {
        // ethr-did-resolver's log parser drops these before anything counts them.
        let readable = match &e.change {
            Change::Owner { .. } => true,
            Change::Delegate {
                delegate_type: b, ..
            }
            | Change::Attribute { name: b, .. } => name_of(b).is_some(),
        };
        if !readable {
            continue;
        }
        if at.is_some_and(|at| e.block > at) {
            next_version_id = Some(next_version_id.map_or(e.block, |n| n.min(e.block)));
            continue;
        }
        version_id = version_id.max(e.block);
        if let Change::Owner { owner } = &e.change {
            controller = *owner;
            if owner.is_zero() {
                deactivated = true;
                break;
            }
            continue;
        }
        apply(&mut s, did, chain_id, &e.change, now);
    }
    let base = |vm: Vec<Value>, auth: Vec<Value>, assertion: Vec<Value>| {
        let mut d = Map::new();
        d.insert("id".into(), json!(did));
        d.insert("verificationMethod".into(), Value::Array(vm));
        d.insert("authentication".into(), Value::Array(auth));
        d.insert("assertionMethod".into(), Value::Array(assertion));
        d
    };
    if deactivated {
        return Built {
            document: base(vec![], vec![], vec![]),
            deactivated,
            version_id,
            next_version_id,
        };
    }
    let mut vm = vec![json!({
        "id": format!("{did}#controller"),
        "type": "EcdsaSecp256k1RecoveryMethod2020",
        "controller": did,
        "blockchainAccountId": format!("eip155:{chain_id}:{}", controller.to_checksum(None)),
    })];
    let mut auth = vec![json!(format!("{did}#controller"))];
    let mut assertion = auth.clone();
    if let EthrId::PublicKey { hex, .. } = id {
        if controller == address {
            vm.push(json!({
                "id": format!("{did}#controllerKey"),
                "type": "EcdsaSecp256k1VerificationKey2019",
                "controller": did,
                "publicKeyHex": hex.strip_prefix("0x").unwrap_or(hex),
            }));
            auth.push(json!(format!("{did}#controllerKey")));
            assertion.push(json!(format!("{did}#controllerKey")));
        }
    }
    vm.extend(s.keys.values());
    auth.extend(s.auth.values());
    assertion.extend(s.signing.values());
    let mut document = base(vm, auth, assertion);
    let services: Vec<Value> = s.services.values().collect();
    if !services.is_empty() {
        document.insert("service".into(), Value::Array(services));
    }
    let agreement: Vec<Value> = s.key_agreement.values().collect();
    if !agreement.is_empty() {
        document.insert("keyAgreement".into(), Value::Array(agreement));
    }
    Built {
        document,
        deactivated,
        version_id,
        next_version_id,
    }
}

/// One delegate or attribute event.
fn apply(s: &mut Sections, did: &str, chain_id: u64, change: &Change, now: u64) {
    let (kind, first, second, valid_to) = match change {
        Change::Delegate {
            delegate_type,
            delegate,
            valid_to,
        } => {
            let Some(t) = name_of(delegate_type) else {
                return;
            };
            (
                "DIDDelegateChanged",
                t,
                delegate.to_checksum(None),
                *valid_to,
            )
        }
        Change::Attribute {
            name,
            value,
            valid_to,
        } => {
            let Some(n) = name_of(name) else { return };
            (
                "DIDAttributeChanged",
                n,
                alloy_primitives::hex::encode_prefixed(value),
                *valid_to,
            )
        }
        Change::Owner { .. } => return,
    };
    // `${delegateType || name}`: an empty delegate type falls through to the
    // delegate event's missing name.
    let shown = match change {
        Change::Delegate { .. } if first.is_empty() => "undefined",
        _ => first.as_str(),
    };
    let index = format!("{kind}-{shown}-{second}");
    let valid = !valid_to.is_zero() && valid_to >= U256::from(now);
    match change {
        Change::Delegate { delegate, .. } if valid => {
            s.delegates += 1;
            let id = format!("{did}#delegate-{}", s.delegates);
            if first == "sigAuth" || first == "veriKey" {
                if first == "sigAuth" {
                    s.auth.set(&index, json!(id));
                }
                s.keys.set(
                    &index,
                    json!({
                        "id": id,
                        "type": "EcdsaSecp256k1RecoveryMethod2020",
                        "controller": did,
                        "blockchainAccountId": format!("eip155:{chain_id}:{}", delegate.to_checksum(None)),
                    }),
                );
                s.signing.set(&index, json!(id));
            }
        }
        Change::Attribute { value, .. } if valid => attribute(s, did, &index, &first, value),
        _ => {
            // Counted by prefix alone (`/^did\/pub\//`), as ethr-did-resolver does.
            let attribute = matches!(change, Change::Attribute { .. });
            if !attribute || first.starts_with("did/pub/") {
                s.delegates += 1;
            } else if first.starts_with("did/svc/") {
                s.services_seen += 1;
            }
            s.auth.delete(&index);
            s.signing.delete(&index);
            s.keys.delete(&index);
            s.services.delete(&index);
        }
    }
}

/// A valid `did/pub/…` or `did/svc/…` attribute.
fn attribute(s: &mut Sections, did: &str, index: &str, name: &str, value: &Bytes) {
    let Some((section, algorithm, purpose, encoding)) = attribute_parts(name) else {
        return;
    };
    if section == "svc" {
        s.services_seen += 1;
        let Ok(text) = std::str::from_utf8(value) else {
            return;
        };
        let endpoint = serde_json::from_str::<Value>(text).unwrap_or_else(|_| json!(text));
        s.services.set(
            index,
            json!({
                "id": format!("{did}#service-{}", s.services_seen),
                "type": algorithm,
                "serviceEndpoint": endpoint,
            }),
        );
        return;
    }
    s.delegates += 1;
    let id = format!("{did}#delegate-{}", s.delegates);
    let named = format!(
        "{algorithm}{}",
        purpose.map_or("undefined", |p| legacy_type(p).unwrap_or(p))
    );
    let kind = legacy_algorithm(&named).unwrap_or(algorithm);
    let hex = alloy_primitives::hex::encode(value);
    let (field, data) = match encoding {
        None | Some("hex") => ("publicKeyHex", hex),
        Some("base64") => (
            "publicKeyBase64",
            base64::engine::general_purpose::STANDARD.encode(value),
        ),
        Some("base58") => ("publicKeyBase58", bs58::encode(value).into_string()),
        Some("pem") => match std::str::from_utf8(value) {
            Ok(pem) => ("publicKeyPem", pem.to_string()),
            Err(_) => return,
        },
        Some(_) => ("value", hex),
    };
    s.keys.set(
        index,
        json!({ "id": id, "type": kind, "controller": did, field: data }),
    );
    match purpose {
        Some("sigAuth") => {
            s.auth.set(index, json!(id));
            s.signing.set(index, json!(id));
        }
        Some("enc") => s.key_agreement.set(index, json!(id)),
        _ => s.signing.set(index, json!(id)),
    }
}

#[cfg(test)]
mod tests;
