//! The EMC compute protocol, with no runtime in it: what routers, computing nodes,
//! validators and the chain's `Tasks` module must agree on byte for byte.
//!
//! * [`call`]: a call (app, path, body, budget), its request hash, and a reply's frames.
//! * [`result`]: the claim a node signs for every call, in its one versioned encoding
//!   (nodes sign it, routers check it, the `Tasks` module checks it again on chain).
//! * [`node`]: node ids (ed25519 keys, also libp2p identities), apps, units, load.
//! * [`wire`]: the stream protocols between routers, nodes and validators, one message
//!   enum each, with both sides of every exchange.
//! * [`poc`]: the proof-of-computing task, its proof and its check.
//! * [`error`]: the errors of a call, each with the HTTP status a caller sees.
//! * [`http`] (feature `http`): the HTTP surface nodes and routers share.
//!
//! Invariants: every length read from a peer is bounded before it is allocated
//! ([`wire::read_frame`]); nothing unsigned is charged (a reply ends in
//! [`call::Frame::Done`] with a signed result or in [`call::Frame::Failed`]); a claim
//! never meters more than its budget ([`result::ResultClaim::check`]).

pub mod call;
pub mod error;
#[cfg(feature = "http")]
pub mod http;
pub mod node;
pub mod poc;
pub mod result;
#[cfg(feature = "sealed")]
pub mod sealed;
pub mod wire;

pub use call::{Call, Frame, Served};
pub use error::{clip, CallError};
pub use node::{AppInfo, Load, NodeId, Unit};
pub use result::{request_hash, Metering, ResultClaim, SignedResult};
