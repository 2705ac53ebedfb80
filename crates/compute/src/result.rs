//! Signed results: what a computing node answers for, and what routers and the chain
//! hold it to.
//!
//! For every call the node signs, with its ed25519 node key, the borsh encoding of
//! [`ResultClaim`] under the domain tag `"emc result v1"`: the keccak256 of the request
//! it was given, the caller's call id, the keccak256 of every byte of the result it sent (the streamed body,
//! concatenated), its node id (the public key itself, so a claim names who signed it),
//! the metering (units of the runtime's measure, and wall time), and the budget in
//! units the call was given, which the metering never exceeds. A router checks
//! the signature and recomputes the result hash over what it relayed; settlement checks
//! the signature again on chain.

use crate::ComputeError;
use alloy_primitives::{keccak256, B256};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// A computing node's id: its ed25519 public key (also its libp2p identity).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct NodeId(pub B256);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a runtime counts for its price: fuel for WASM, tokens for models, calls for
/// HTTP apps (whose cost the node cannot see inside).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Call,
    Fuel,
    Tokens,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Metering {
    pub unit: Unit,
    pub units: u64,
    /// Bytes of result sent.
    pub bytes: u64,
    /// Wall time of the call on the node, microseconds.
    pub wall_us: u64,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct ResultClaim {
    pub request_hash: B256,
    /// The caller's call id ([`crate::runtime::Call::id`]).
    pub call: B256,
    pub result_hash: B256,
    pub node: NodeId,
    pub metering: Metering,
    /// The budget the call came with ([`crate::runtime::Call::max_units`]); the node
    /// never meters more (settlement refuses a claim that does).
    pub max_units: u64,
}

const DOMAIN: &[u8] = b"emc result v1";

impl ResultClaim {
    /// The exact bytes the node signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = DOMAIN.to_vec();
        BorshSerialize::serialize(self, &mut out).expect("borsh into a Vec cannot fail");
        out
    }
}

/// A claim and the node's signature over it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SignedResult {
    pub claim: ResultClaim,
    #[serde(with = "hex_sig")]
    pub signature: [u8; 64],
}

mod hex_sig {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(s: &[u8; 64], ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&format!("0x{}", hex::encode(s)))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<[u8; 64], D::Error> {
        let s = String::deserialize(de)?;
        let b = hex::decode(s.trim_start_matches("0x")).map_err(serde::de::Error::custom)?;
        b.try_into()
            .map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))
    }
}

impl SignedResult {
    pub fn sign(key: &emc_crypto::ConsensusKey, claim: ResultClaim) -> Self {
        Self {
            signature: ed25519_consensus::SigningKey::from(key.seed())
                .sign(&claim.signing_bytes())
                .to_bytes(),
            claim,
        }
    }

    /// Checks the signature against the node id the claim names.
    pub fn verify(&self) -> Result<(), ComputeError> {
        let vk = ed25519_consensus::VerificationKey::try_from(self.claim.node.0 .0)
            .map_err(|_| ComputeError::BadSignature("node id is not an ed25519 key".into()))?;
        self.verify_with(&vk)
    }

    /// [`SignedResult::verify`] with the node's key already decoded (a router keeps
    /// it per node); the key must be the claim's node id.
    pub fn verify_with(&self, vk: &ed25519_consensus::VerificationKey) -> Result<(), ComputeError> {
        if vk.to_bytes() != self.claim.node.0 .0 {
            return Err(ComputeError::BadSignature(
                "the result names another node".into(),
            ));
        }
        let sig = ed25519_consensus::Signature::from(self.signature);
        vk.verify(&sig, &self.claim.signing_bytes())
            .map_err(|_| ComputeError::BadSignature("result signature does not verify".into()))
    }

    /// The header form: hex of the borsh encoding.
    pub fn to_header(&self) -> String {
        hex::encode(borsh::to_vec(self).expect("borsh into a Vec cannot fail"))
    }

    pub fn from_header(s: &str) -> Result<Self, ComputeError> {
        let b = hex::decode(s.trim())
            .map_err(|e| ComputeError::BadSignature(format!("result header is not hex: {e}")))?;
        borsh::from_slice(&b).map_err(|e| ComputeError::BadSignature(format!("result header: {e}")))
    }
}

/// The request hash a node signs for: keccak256 over app, path and body, each length
/// prefixed.
pub fn request_hash(app: &str, path: &str, body: &[u8]) -> B256 {
    let mut buf = Vec::with_capacity(24 + app.len() + path.len() + body.len());
    for part in [app.as_bytes(), path.as_bytes(), body] {
        buf.extend_from_slice(&(part.len() as u64).to_be_bytes());
        buf.extend_from_slice(part);
    }
    keccak256(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(key: &emc_crypto::ConsensusKey) -> ResultClaim {
        ResultClaim {
            request_hash: request_hash("embed", "/v1/embeddings", b"{}"),
            call: B256::repeat_byte(7),
            result_hash: keccak256(b"result"),
            node: NodeId(key.public()),
            metering: Metering {
                unit: Unit::Tokens,
                units: 7,
                bytes: 6,
                wall_us: 1234,
            },
            max_units: 100,
        }
    }

    #[test]
    fn a_signed_result_verifies_and_any_change_breaks_it() {
        let key = emc_crypto::ConsensusKey::from_seed([5; 32]);
        let signed = SignedResult::sign(&key, claim(&key));
        signed.verify().expect("verifies");
        let back = SignedResult::from_header(&signed.to_header()).expect("round trip");
        assert_eq!(back, signed);
        let mut more = signed.clone();
        more.claim.metering.units += 1;
        assert!(more.verify().is_err(), "metering is covered");
        let mut other = signed.clone();
        other.claim.result_hash = keccak256(b"other");
        assert!(other.verify().is_err(), "the result is covered");
        let mut richer = signed.clone();
        richer.claim.max_units += 1;
        assert!(richer.verify().is_err(), "the budget is covered");
        let mut imposter = signed;
        imposter.claim.node = NodeId(emc_crypto::ConsensusKey::from_seed([6; 32]).public());
        assert!(
            imposter.verify().is_err(),
            "another node's id does not verify"
        );
    }

    #[test]
    fn request_hash_separates_its_parts() {
        assert_ne!(request_hash("ab", "c", b""), request_hash("a", "bc", b""));
    }
}
