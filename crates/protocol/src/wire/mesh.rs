//! `/emc/router-mesh/1` and `/emc/relay/1`: what routers tell each other.

use crate::node::{AppInfo, Load, NodeId, SealingKey};
use alloy_primitives::{Address, B256};
use borsh::{BorshDeserialize, BorshSerialize};

/// Most nodes one summary lists.
pub const MAX_SUMMARY: usize = 4_096;

#[derive(Debug, Clone, PartialEq, BorshSerialize, BorshDeserialize)]
pub enum MeshMsg {
    /// The sender's directly connected nodes, at most [`MAX_SUMMARY`].
    Summary(Vec<NodeSummary>),
    Publish(Publication),
}

/// The first frame of `/emc/relay/1`: the node the call is for.
#[derive(Debug, Clone, Copy, PartialEq, BorshSerialize, BorshDeserialize)]
pub struct RelayTo(pub NodeId);

/// A message on a publish/subscribe channel, as routers pass it along the mesh.
#[derive(Debug, Clone, PartialEq, BorshSerialize, BorshDeserialize)]
pub struct Publication {
    /// Unique per message (routers drop one they have seen).
    pub id: B256,
    pub channel: String,
    /// The publisher's account, as its API key proved to the router it used.
    pub from: Address,
    pub data: Vec<u8>,
    /// Unix milliseconds at the first router.
    pub at: u64,
    /// Routers it may still cross.
    pub hops: u8,
}

/// A router's view of one of its directly connected nodes, for its mesh peers.
#[derive(Debug, Clone, PartialEq, BorshSerialize, BorshDeserialize)]
pub struct NodeSummary {
    pub node: NodeId,
    pub apps: Vec<AppInfo>,
    pub load: Load,
    /// The router's measured round trip to the node, microseconds.
    pub rtt_us: Option<u64>,
    pub e: u64,
    /// The node owner's compute stake (big-endian U256), as the router read it.
    pub stake: [u8; 32],
    /// Registered prices per app (big-endian U256), as the router read them on chain.
    pub prices: Vec<(String, [u8; 32])>,
    /// The key sealed calls to the node are sealed to, as the node announced it.
    pub sealing: Option<SealingKey>,
}
