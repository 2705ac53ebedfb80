//! The computing node: the runtimes it serves calls with, the agent that admits,
//! meters and signs every call, its HTTP port, and the compute and challenger roles on
//! the node's libp2p streams. The protocol it speaks is `emc-protocol`'s.
//!
//! * [`runtime`]: the one trait every runtime implements; [`http_app`] forwards to a
//!   local HTTP app (event streams pass through unchanged), [`wasm`] runs a
//!   fuel-metered, memory-capped WebAssembly job, [`models`] serves all-MiniLM-L6-v2
//!   embeddings and SmolLM2 chat completions with OpenAI's request and reply shapes.
//! * [`agent`]: the node's apps, prices and load (calls running, queued, capacity),
//!   admission, draining, and the signature over every reply.
//! * [`server`]: the node's own HTTP port (operators, routers on one host, benches).
//! * [`role`]: the compute role on libp2p streams (calls, PoC answers, load reports to
//!   routers, registration on chain); [`challenger`]: every validator's PoC challenger.
//!   Both reach the chain only through `emc_client::ChainClient`.
//!
//! Errors are the protocol's [`CallError`]: every one a runtime raises is one a caller
//! sees, with its HTTP status.

/// Held while a transaction from the node's owner account is signed and submitted
/// (its registration, its DID, its pool joins: separate tasks), so two of them never
/// take the same nonce.
pub(crate) static OWNER_SENDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub mod agent;
pub mod challenger;
pub mod did;
pub mod http_app;
pub mod models;
pub mod pool;
pub mod role;
pub mod runtime;
pub mod sealed;
pub mod server;
pub mod wasm;

pub use agent::{Agent, AppSpec};
pub use emc_protocol::CallError;
