//! A computing node's own `did:ethr` identity, where it publishes its endpoint and
//! its encryption key.
//!
//! * The identity is an Ethereum address derived from the node's key seed
//!   (`keccak256("emc node did secp256k1 v1" ‖ seed)` as a secp256k1 secret), so the
//!   node alone controls it and it survives restarts; the node's owner account relays
//!   the changes (`setAttributeSigned`: the identity signs, the owner pays the gas).
//! * The encryption key is an X25519 key derived the same way
//!   (`keccak256("emc node x25519 v1" ‖ seed)`, clamped), published as
//!   `did/pub/X25519/enc/base64` (a `keyAgreement` method in the document).
//! * The service `did/svc/EMCNode` is JSON: `{"uri": "/p2p/<peer id>", "node":
//!   "0x<node id>", "binding": "0x<ed25519 signature>"}`. Nodes are reached over
//!   libp2p (through the routers they dial), so the endpoint is the node's peer id, not
//!   an address that changes. The binding is the node key's signature over
//!   [`binding_message`] (the chain, the identity, the node id, the X25519 key): anyone
//!   who knows the node id can check that this DID and key are that node's, and
//!   nobody else's DID can claim the node.

use alloy_primitives::{keccak256, Address, B256};

/// The attribute names the node publishes (ERC-1056 names, bytes32).
pub const KEY_ATTRIBUTE: &str = "did/pub/X25519/enc/base64";
pub const SERVICE_ATTRIBUTE: &str = "did/svc/EMCNode";
/// How long the published attributes are valid: ten years.
pub const VALIDITY_SECS: u64 = 315_360_000;

/// The node's derived identity and encryption key.
pub struct NodeIdentity {
    signing: k256::ecdsa::SigningKey,
    pub address: Address,
    pub x25519_secret: [u8; 32],
    pub x25519_public: [u8; 32],
}

impl NodeIdentity {
    /// The identity a node key seed determines.
    pub fn derive(seed: &[u8; 32]) -> Self {
        let mut counter = 0u8;
        let signing = loop {
            let h = keccak256([b"emc node did secp256k1 v1".as_slice(), seed, &[counter]].concat());
            if let Ok(k) = k256::ecdsa::SigningKey::from_bytes(&h.0.into()) {
                break k;
            }
            counter += 1; // a hash outside the curve order: odds of 2^-128
        };
        let address = Address::from_public_key(signing.verifying_key());
        let x25519_secret = keccak256([b"emc node x25519 v1".as_slice(), seed].concat()).0;
        let x25519_public =
            curve25519_dalek::MontgomeryPoint::mul_base_clamped(x25519_secret).to_bytes();
        Self {
            signing,
            address,
            x25519_secret,
            x25519_public,
        }
    }

    /// `did:ethr:0x<chain id>:<address>`.
    pub fn did(&self, chain_id: u64) -> String {
        format!("did:ethr:0x{chain_id:x}:{:#x}", self.address)
    }

    /// The identity's signature over `hash` as ERC-1056's signed calls take it: (v, r, s).
    pub fn sign(&self, hash: B256) -> (u8, B256, B256) {
        let (sig, recid) = self
            .signing
            .sign_prehash_recoverable(hash.as_slice())
            .expect("a 32-byte prehash always signs");
        let (r, s) = sig.split_bytes();
        (
            27 + recid.to_byte(),
            B256::from_slice(&r),
            B256::from_slice(&s),
        )
    }
}

/// What the node key signs to bind its DID and encryption key to itself.
pub fn binding_message(chain_id: u64, identity: Address, node: B256, x25519: &[u8; 32]) -> Vec<u8> {
    let mut m = b"emc node did v1".to_vec();
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(identity.as_slice());
    m.extend_from_slice(node.as_slice());
    m.extend_from_slice(x25519);
    m
}

/// Whether `binding` is node key `node`'s signature binding `identity` and `x25519`
/// to it on chain `chain_id` ([`binding_message`]).
pub fn binding_holds(
    chain_id: u64,
    identity: Address,
    node: B256,
    x25519: &[u8; 32],
    binding: &[u8; 64],
) -> bool {
    let Ok(key) = ed25519_consensus::VerificationKey::try_from(node.0) else {
        return false;
    };
    let msg = binding_message(chain_id, identity, node, x25519);
    key.verify(&ed25519_consensus::Signature::from(*binding), &msg)
        .is_ok()
}

/// The `did/svc/EMCNode` attribute's value.
pub fn service_value(peer: &str, node: B256, binding: &[u8; 64]) -> String {
    serde_json::json!({
        "uri": format!("/p2p/{peer}"),
        "node": format!("{node:#x}"),
        "binding": format!("0x{}", alloy_primitives::hex::encode(binding)),
    })
    .to_string()
}

/// An ERC-1056 attribute name as its `bytes32`: the text, zero-padded.
pub fn attribute_name(name: &str) -> B256 {
    let mut b = [0u8; 32];
    let n = name.len().min(32);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    B256::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_identity_whose_signatures_recover_to_it() {
        let a = NodeIdentity::derive(&[7; 32]);
        let b = NodeIdentity::derive(&[7; 32]);
        let c = NodeIdentity::derive(&[8; 32]);
        assert_eq!((a.address, a.x25519_public), (b.address, b.x25519_public));
        assert_ne!(a.address, c.address);
        assert_ne!(a.x25519_public, c.x25519_public);
        let hash = keccak256(b"a change");
        let (v, r, s) = a.sign(hash);
        let sig = alloy_primitives::Signature::from_scalars_and_parity(r, s, v == 28);
        assert_eq!(sig.recover_address_from_prehash(&hash).unwrap(), a.address);
        assert_eq!(a.did(42), format!("did:ethr:0x2a:{:#x}", a.address));
        assert_eq!(
            &attribute_name(KEY_ATTRIBUTE)[..25],
            KEY_ATTRIBUTE.as_bytes()
        );
    }
}
