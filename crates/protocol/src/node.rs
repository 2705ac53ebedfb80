//! Who a computing node is and what it tells routers: its id, its apps with their
//! prices and measures, and its load.

use alloy_primitives::B256;
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

impl NodeId {
    /// The ed25519 verification key this id is, when it is one.
    pub fn key(&self) -> Option<ed25519_consensus::VerificationKey> {
        ed25519_consensus::VerificationKey::try_from(self.0 .0).ok()
    }
}

/// What the node tells routers and the registry about an app.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
)]
pub struct AppInfo {
    pub name: String,
    pub kind: String,
    pub price: u128,
    pub unit: Unit,
    pub deterministic: bool,
}

/// The node's load, reported to its routers every few seconds.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
)]
pub struct Load {
    pub running: u32,
    pub queued: u32,
    pub capacity: u32,
    /// Calls that may wait for a slot before new ones are refused as saturated.
    pub max_queue: u32,
    pub served: u64,
    pub draining: bool,
}

/// A node's encryption key as it announces it: its DID's address, the X25519 key and
/// the node key's signature binding them (`emc_identity::node::binding_message`).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SealingKey {
    pub did: [u8; 20],
    pub x25519: [u8; 32],
    pub binding: [u8; 64],
}
