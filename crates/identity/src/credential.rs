//! Verifiable credentials about computing nodes, from chain data (W3C VC Data Model
//! 2.0, secured as VC-JOSE-COSE's JWT: a compact JWS whose payload is the credential).
//!
//! A validator states what the chain says of a node at one block: its registration
//! (owner, apps and prices, hardware, since when), its E per epoch from the `Poc`
//! module, the calls it settled through `Tasks` and what they earned, and its faults
//! with the stake each one slashed. [`NodeFacts`] is that statement; every field is
//! read from state or from the logs of blocks at or below `block`, so two validators
//! asked about the same node at the same block issue the same `credentialSubject`
//! (only `iat` differs): a verifier that trusts no single validator collects more
//! than a third of the power's worth and compares them.
//!
//! The JWS: header `{"alg":"EdDSA","typ":"vc+jwt","cty":"vc","kid":"<issuer>#<key>"}`,
//! the issuer being the validator's ed25519 consensus key as a `did:key`, and the
//! subject the node's own ed25519 node key as a `did:key` (its node id is that key).
//! The payload is the credential with the JWT claims `iss` (the issuer), `sub` (the
//! subject), `jti` (the credential's id), `iat` and `exp` (its `validUntil`) beside it,
//! as VC-JOSE-COSE allows, so DID-aware JWT verifiers (`did-jwt`) check it unchanged.
//! Checking that the issuer's key is in the chain's validator set at `block` is the
//! verifier's step: the set is public (`IChain.validatorSet`, `emc_validators`).
//!
//! Nothing here fetches a JSON-LD context: a JWT-secured credential is verified as
//! JSON, and its only context is the VC 2.0 one, named and not loaded.

use crate::IdentityError;
use alloy_primitives::{Address, B256, U256};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use serde_json::{json, Map, Value};

/// How long a credential is valid after the block it describes.
pub const VALID_FOR_SECS: u64 = 30 * 86_400;
/// The most epochs of E, and of faults, one credential lists (the newest).
pub const MAX_EPOCHS: usize = 64;
/// The most settled receipts one credential sums (the newest, by whole blocks).
pub const MAX_RECEIPTS: usize = 10_000;
/// The longest JWT [`verify`] reads.
pub const MAX_JWT_BYTES: usize = 256 << 10;

/// A node's registration, as the `Registry` module holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub owner: Address,
    pub apps: Vec<(String, U256)>,
    pub hardware: String,
    pub registered_at: u64,
}

/// One epoch's E, as the `Poc` module set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Score {
    pub epoch: u64,
    pub score: u64,
    pub block: u64,
}

/// A fault the validators caught, and what it slashed of the owner's compute stake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub epoch: u64,
    pub block: u64,
    pub slashed: U256,
}

/// What `Tasks` settled to the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settlements {
    pub receipts: u64,
    pub earned: U256,
    pub router_fees: U256,
    /// The first block the sums cover (when not `complete`, older ones were left out).
    pub from_block: u64,
    pub complete: bool,
    /// The newest receipt ids, at most 8.
    pub latest: Vec<B256>,
}

/// What the chain says of a computing node at one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    pub chain_id: u64,
    pub block: u64,
    pub block_hash: B256,
    pub block_time: u64,
    pub node: B256,
    /// `None` when the node is not registered at `block`.
    pub registration: Option<Registration>,
    /// Newest first.
    pub scores: Vec<Score>,
    /// Newest first.
    pub faults: Vec<Fault>,
    pub settlements: Settlements,
}

/// `did:key` of an ed25519 public key (multicodec `0xed`, base58btc).
pub fn ed25519_did_key(key: &[u8; 32]) -> String {
    let mut coded = vec![0xed, 0x01];
    coded.extend_from_slice(key);
    format!("did:key:z{}", bs58::encode(coded).into_string())
}

/// The verification method of an ed25519 did:key (`did:key:z…#z…`).
pub fn ed25519_key_id(key: &[u8; 32]) -> String {
    let did = ed25519_did_key(key);
    let fingerprint = did.trim_start_matches("did:key:").to_string();
    format!("{did}#{fingerprint}")
}

fn wei(v: U256) -> Value {
    json!(v.to_string())
}

impl NodeFacts {
    /// The credential (VC 2.0) these facts make, issued by `issuer` (a DID).
    pub fn credential(&self, issuer: &str) -> Value {
        let mut subject = Map::new();
        subject.insert("id".into(), json!(ed25519_did_key(&self.node.0)));
        subject.insert("nodeId".into(), json!(self.node));
        subject.insert(
            "chain".into(),
            json!({"chainId": self.chain_id, "block": self.block, "blockHash": self.block_hash}),
        );
        subject.insert("registered".into(), json!(self.registration.is_some()));
        if let Some(r) = &self.registration {
            let apps: Vec<Value> = r
                .apps
                .iter()
                .map(|(app, price)| json!({"app": app, "pricePerUnit": wei(*price)}))
                .collect();
            let owner = r.owner.to_checksum(None);
            subject.insert(
                "registration".into(),
                json!({
                    "ownerDid": format!("did:pkh:eip155:{}:{owner}", self.chain_id),
                    "owner": owner,
                    "apps": apps, "hardware": r.hardware, "registeredAt": r.registered_at,
                }),
            );
        }
        let history: Vec<Value> = self
            .scores
            .iter()
            .map(|s| json!({"epoch": s.epoch, "score": s.score, "block": s.block}))
            .collect();
        subject.insert("computingPower".into(), json!({ "history": history }));
        let s = &self.settlements;
        subject.insert(
            "settlements".into(),
            json!({
                "receipts": s.receipts, "earned": wei(s.earned), "routerFees": wei(s.router_fees),
                "fromBlock": s.from_block, "toBlock": self.block, "complete": s.complete,
                "latest": s.latest,
            }),
        );
        let faults: Vec<Value> = self
            .faults
            .iter()
            .map(|f| json!({"epoch": f.epoch, "block": f.block, "slashed": wei(f.slashed)}))
            .collect();
        subject.insert("faults".into(), json!(faults));
        json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "id": self.id(),
            "type": ["VerifiableCredential", "EmcComputingNodeCredential"],
            "issuer": issuer,
            "validFrom": crate::iso_date(self.block_time),
            "validUntil": crate::iso_date(self.valid_until()),
            "credentialSubject": subject,
        })
    }

    /// `urn:emc:credential:<chainId>:<nodeId>:<block>`.
    pub fn id(&self) -> String {
        format!(
            "urn:emc:credential:{}:{}:{}",
            self.chain_id, self.node, self.block
        )
    }

    pub fn valid_until(&self) -> u64 {
        self.block_time.saturating_add(VALID_FOR_SECS)
    }
}

/// The JWT (compact JWS, EdDSA) of these facts, signed with ed25519 `seed` at `now`.
pub fn issue(facts: &NodeFacts, seed: [u8; 32], now: u64) -> (String, Value) {
    let key = ed25519_consensus::SigningKey::from(seed);
    let public = key.verification_key().to_bytes();
    let issuer = ed25519_did_key(&public);
    let credential = facts.credential(&issuer);
    let mut payload = credential.as_object().cloned().unwrap_or_default();
    payload.insert("iss".into(), json!(issuer));
    payload.insert("sub".into(), credential["credentialSubject"]["id"].clone());
    payload.insert("jti".into(), json!(facts.id()));
    payload.insert("iat".into(), json!(now));
    payload.insert("exp".into(), json!(facts.valid_until()));
    let header = json!({
        "alg": "EdDSA", "typ": "vc+jwt", "cty": "vc", "kid": ed25519_key_id(&public),
    });
    let signing_input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(Value::Object(payload).to_string())
    );
    let signature = key.sign(signing_input.as_bytes()).to_bytes();
    (
        format!("{signing_input}.{}", B64.encode(signature)),
        credential,
    )
}

/// A credential JWT's payload when its signature is `issuer`'s (an ed25519 key) and
/// its header and claims are a credential's; the caller checks `issuer` is a
/// validator at the credential's block.
pub fn verify(jwt: &str, issuer: &[u8; 32]) -> Result<Value, IdentityError> {
    let bad = |why: &str| IdentityError::InvalidCredential(why.into());
    if jwt.len() > MAX_JWT_BYTES {
        return Err(bad("the credential is longer than any this node issues"));
    }
    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("a JWT has three parts"));
    };
    let signature: [u8; 64] = B64
        .decode(s)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| bad("the signature is not 64 bytes of base64url"))?;
    let key = ed25519_consensus::VerificationKey::try_from(*issuer)
        .map_err(|_| bad("the issuer key is not an ed25519 key"))?;
    key.verify(
        &ed25519_consensus::Signature::from(signature),
        format!("{h}.{p}").as_bytes(),
    )
    .map_err(|_| bad("the signature is not the issuer's over this credential"))?;
    let json = |part: &str, what: &str| -> Result<Value, IdentityError> {
        let bytes = B64.decode(part).map_err(|_| bad(what))?;
        serde_json::from_slice(&bytes).map_err(|_| bad(what))
    };
    let header = json(h, "the header is not base64url JSON")?;
    if header["alg"] != "EdDSA" || header["typ"] != "vc+jwt" {
        return Err(bad("the header is not an EdDSA vc+jwt one"));
    }
    let payload = json(p, "the payload is not base64url JSON")?;
    let issuer_did = ed25519_did_key(issuer);
    if payload["iss"] != issuer_did || payload["issuer"] != issuer_did {
        return Err(bad("the credential names another issuer"));
    }
    if payload["credentialSubject"]["id"] != payload["sub"] {
        return Err(bad("the subject claim is not the credential's subject"));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests;
