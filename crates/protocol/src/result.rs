//! Signed results: what a computing node answers for, and what routers and the chain
//! hold it to.
//!
//! For every call the node signs, with its ed25519 node key, a [`ResultClaim`]: the
//! keccak256 of the request it was given, the caller's call id, the keccak256 of every
//! byte of the result it sent (the streamed body, concatenated), its node id (the
//! public key itself, so a claim names who signed it), the metering (units of the
//! runtime's measure, and wall time), and the budget in units the call was given, which
//! the metering never exceeds. A router checks the signature and recomputes the result
//! hash over what it relayed; the `Tasks` module checks the signature again on chain,
//! over the same bytes ([`ResultClaim::signing_bytes`], the one claim encoding).
//!
//! **Versions.** Version 1 signs `"emc result v1"` followed by the borsh encoding of
//! the six fields above. A claim may carry [`Extension`]s (a tag and a 32-byte value:
//! a ciphertext hash, a content hash, a batch root, as later features need); a claim
//! with any is version 2 and signs `"emc result v2"`, the same six fields, then the
//! extensions in ascending tag order. A claim without extensions encodes exactly as
//! version 1 always did, so receipts signed before extensions existed still verify.

use crate::node::{NodeId, Unit};
use crate::CallError;
use alloy_primitives::{keccak256, B256};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

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

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
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
    /// Fields of later versions; empty in a version-1 claim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<Extension>,
}

/// What an extension's value means. Tags are assigned once and never reused.
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
pub struct ExtensionTag(pub u16);

/// One field a version-2 claim adds.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
pub struct Extension {
    pub tag: ExtensionTag,
    pub value: B256,
}

/// Most extensions one claim carries.
pub const MAX_EXTENSIONS: usize = 16;

const DOMAIN_V1: &[u8] = b"emc result v1";
const DOMAIN_V2: &[u8] = b"emc result v2";

impl ResultClaim {
    /// 1 without extensions, 2 with.
    pub fn version(&self) -> u8 {
        if self.extensions.is_empty() {
            1
        } else {
            2
        }
    }

    /// Checks what a signature cannot: the extensions are few, in ascending tag order,
    /// each tag once.
    pub fn check(&self) -> Result<(), CallError> {
        if self.extensions.len() > MAX_EXTENSIONS {
            return Err(CallError::BadSignature(format!(
                "a claim carries at most {MAX_EXTENSIONS} extensions, not {}",
                self.extensions.len()
            )));
        }
        if self.extensions.windows(2).any(|w| w[0].tag >= w[1].tag) {
            return Err(CallError::BadSignature(
                "a claim's extensions must be in ascending tag order, each once".into(),
            ));
        }
        if self.metering.units > self.max_units {
            return Err(CallError::BadSignature(format!(
                "the claim meters {} units over its budget of {}",
                self.metering.units, self.max_units
            )));
        }
        Ok(())
    }

    /// The exact bytes the node signs (see the module header for each version).
    pub fn signing_bytes(&self) -> Vec<u8> {
        let v2 = !self.extensions.is_empty();
        let mut out = if v2 { DOMAIN_V2 } else { DOMAIN_V1 }.to_vec();
        let v1 = (
            self.request_hash,
            self.call,
            self.result_hash,
            self.node,
            self.metering,
            self.max_units,
        );
        borsh::to_writer(&mut out, &v1).expect("borsh into a Vec cannot fail");
        if v2 {
            borsh::to_writer(&mut out, &self.extensions).expect("borsh into a Vec cannot fail");
        }
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
    pub fn sign(key: &ed25519_consensus::SigningKey, claim: ResultClaim) -> Self {
        Self {
            signature: key.sign(&claim.signing_bytes()).to_bytes(),
            claim,
        }
    }

    /// Checks the signature against the node id the claim names.
    pub fn verify(&self) -> Result<(), CallError> {
        let vk = ed25519_consensus::VerificationKey::try_from(self.claim.node.0 .0)
            .map_err(|_| CallError::BadSignature("node id is not an ed25519 key".into()))?;
        self.verify_with(&vk)
    }

    /// [`SignedResult::verify`] with the node's key already decoded (a router keeps
    /// it per node); the key must be the claim's node id.
    pub fn verify_with(&self, vk: &ed25519_consensus::VerificationKey) -> Result<(), CallError> {
        self.claim.check()?;
        if vk.to_bytes() != self.claim.node.0 .0 {
            return Err(CallError::BadSignature(
                "the result names another node".into(),
            ));
        }
        let sig = ed25519_consensus::Signature::from(self.signature);
        vk.verify(&sig, &self.claim.signing_bytes())
            .map_err(|_| CallError::BadSignature("result signature does not verify".into()))
    }

    /// The header form: hex of the borsh encoding.
    pub fn to_header(&self) -> String {
        hex::encode(borsh::to_vec(self).expect("borsh into a Vec cannot fail"))
    }

    pub fn from_header(s: &str) -> Result<Self, CallError> {
        let b = hex::decode(s.trim())
            .map_err(|e| CallError::BadSignature(format!("result header is not hex: {e}")))?;
        borsh::from_slice(&b).map_err(|e| CallError::BadSignature(format!("result header: {e}")))
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

    fn key(seed: u8) -> ed25519_consensus::SigningKey {
        ed25519_consensus::SigningKey::from([seed; 32])
    }

    fn id(k: &ed25519_consensus::SigningKey) -> NodeId {
        NodeId(B256::from(k.verification_key().to_bytes()))
    }

    fn claim(k: &ed25519_consensus::SigningKey) -> ResultClaim {
        ResultClaim {
            request_hash: request_hash("embed", "/v1/embeddings", b"{}"),
            call: B256::repeat_byte(7),
            result_hash: keccak256(b"result"),
            node: id(k),
            metering: Metering {
                unit: Unit::Tokens,
                units: 7,
                bytes: 6,
                wall_us: 1234,
            },
            max_units: 100,
            extensions: vec![],
        }
    }

    #[test]
    fn a_signed_result_verifies_and_any_change_breaks_it() {
        let k = key(5);
        let signed = SignedResult::sign(&k, claim(&k));
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
        let mut extended = signed.clone();
        extended.claim.extensions.push(Extension {
            tag: ExtensionTag(1),
            value: B256::repeat_byte(1),
        });
        assert!(extended.verify().is_err(), "extensions are covered");
        let mut imposter = signed;
        imposter.claim.node = id(&key(6));
        assert!(
            imposter.verify().is_err(),
            "another node's id does not verify"
        );
    }

    #[test]
    fn a_version_1_claim_signs_the_bytes_it_always_signed() {
        // The bytes of a version-1 claim are fixed forever: receipts signed by older
        // nodes must verify on chain. This is the domain, then borsh of the six fields.
        let k = key(5);
        let c = claim(&k);
        assert_eq!(c.version(), 1);
        let mut want = b"emc result v1".to_vec();
        want.extend_from_slice(c.request_hash.as_slice());
        want.extend_from_slice(c.call.as_slice());
        want.extend_from_slice(c.result_hash.as_slice());
        want.extend_from_slice(c.node.0.as_slice());
        want.push(2); // Unit::Tokens
        for n in [7u64, 6, 1234, 100] {
            want.extend_from_slice(&n.to_le_bytes());
        }
        assert_eq!(c.signing_bytes(), want);
        // Version 2 adds the extensions after the same fields, under its own domain.
        let mut v2 = c;
        v2.extensions = vec![Extension {
            tag: ExtensionTag(3),
            value: B256::repeat_byte(9),
        }];
        let b = v2.signing_bytes();
        assert_eq!(v2.version(), 2);
        assert!(b.starts_with(b"emc result v2"));
        assert_eq!(&b[13..want.len()], &want[13..]);
        assert_eq!(b.len(), want.len() + 4 + 2 + 32);
    }

    #[test]
    fn extensions_out_of_order_or_too_many_are_refused() {
        let k = key(5);
        let mut c = claim(&k);
        let ext = |t| Extension {
            tag: ExtensionTag(t),
            value: B256::ZERO,
        };
        c.extensions = vec![ext(2), ext(1)];
        let s = SignedResult::sign(&k, c.clone());
        assert!(s.verify().unwrap_err().to_string().contains("ascending"));
        c.extensions = (0..=MAX_EXTENSIONS as u16).map(ext).collect();
        let s = SignedResult::sign(&k, c.clone());
        assert!(s.verify().unwrap_err().to_string().contains("at most"));
        c.extensions = vec![ext(1), ext(4)];
        SignedResult::sign(&k, c)
            .verify()
            .expect("two in order verify");
    }

    #[test]
    fn request_hash_separates_its_parts() {
        assert_ne!(request_hash("ab", "c", b""), request_hash("a", "bc", b""));
    }
}
