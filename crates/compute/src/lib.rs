//! The computing node: the runtimes it serves calls with, the signed result it
//! answers each call with, and the proof of computing that measures it.
//!
//! * [`runtime`]: the one trait every runtime implements; [`http_app`] forwards to a
//!   local HTTP app (event streams pass through unchanged), [`wasm`] runs a
//!   fuel-metered, memory-capped WebAssembly job, [`models`] serves all-MiniLM-L6-v2
//!   embeddings and SmolLM2 chat completions with OpenAI's request and reply shapes.
//! * [`agent`]: the node's apps, prices and load (calls running, queued, capacity),
//!   admission, draining, and the signature over every reply ([`result`]).
//! * [`server`]: the node's own HTTP port (operators, routers on one host, benches).
//! * [`poc`]: the proof-of-computing task, its commitment and the sampled check.
//! * [`wire`]: the frames routers, validators and nodes exchange over libp2p streams.

pub mod agent;
pub mod http_app;
pub mod models;
pub mod poc;
pub mod result;
pub mod runtime;
pub mod server;
pub mod wasm;
pub mod wire;

pub use agent::{Agent, AppSpec, Frame, Load};
pub use result::{Metering, NodeId, ResultClaim, SignedResult, Unit};

#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error("config: {0}")]
    Config(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("no app {0:?} on this node")]
    NoSuchApp(String),
    #[error("saturated: {0}")]
    Saturated(String),
    #[error("draining: the node is shutting down and takes no new calls")]
    Draining,
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("runtime: {0}")]
    Runtime(String),
    #[error("signature: {0}")]
    BadSignature(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("payment required: {0}")]
    Payment(String),
    #[error("replayed: {0}")]
    Replayed(String),
}

impl ComputeError {
    /// The HTTP status a caller sees for this error.
    pub fn status(&self) -> u16 {
        match self {
            ComputeError::BadRequest(_) => 400,
            ComputeError::NoSuchApp(_) => 404,
            ComputeError::TooLarge(_) => 413,
            ComputeError::Saturated(_) => 429,
            ComputeError::Draining | ComputeError::Unavailable(_) => 503,
            ComputeError::Timeout(_) => 504,
            ComputeError::BadSignature(_) | ComputeError::Unauthorized(_) => 401,
            ComputeError::Payment(_) => 402,
            ComputeError::Replayed(_) => 409,
            ComputeError::Config(_) | ComputeError::Runtime(_) => 500,
        }
    }

    /// The error a peer reported with [`ComputeError::status`] (the inverse, as far
    /// as a status tells).
    pub fn from_status(status: u16, message: String) -> Self {
        match status {
            400 => ComputeError::BadRequest(message),
            401 => ComputeError::Unauthorized(message),
            402 => ComputeError::Payment(message),
            409 => ComputeError::Replayed(message),
            404 => ComputeError::NoSuchApp(message),
            413 => ComputeError::TooLarge(message),
            429 => ComputeError::Saturated(message),
            503 => ComputeError::Unavailable(message),
            504 => ComputeError::Timeout(message),
            _ => ComputeError::Runtime(message),
        }
    }
}
