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
    /// The app's name, clipped ([`ComputeError::no_app`]).
    #[error("no app {0:?} is served here (GET /v1/models lists the ones that are)")]
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

/// Longest piece of a caller's input an error message repeats.
const SHOWN: usize = 64;

/// `s` as an error message may repeat it: whole if short, else its start and its size
/// (nobody needs a megabyte of their own request echoed back).
pub fn clip(s: &str) -> String {
    if s.len() <= SHOWN {
        return s.to_string();
    }
    let mut end = SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

impl ComputeError {
    /// No app called `name` (clipped for the message).
    pub fn no_app(name: &str) -> Self {
        ComputeError::NoSuchApp(clip(name))
    }

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

    /// The error a peer reported with [`ComputeError::status`] and its message (this
    /// enum's own `Display`, whose prefix is taken off again so it is not said twice).
    pub fn from_status(status: u16, message: String) -> Self {
        let bare = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .map_or_else(|| message.clone(), str::to_string)
        };
        match status {
            400 => ComputeError::BadRequest(bare("bad request: ")),
            401 => ComputeError::Unauthorized(bare("unauthorized: ")),
            402 => ComputeError::Payment(bare("payment required: ")),
            409 => ComputeError::Replayed(bare("replayed: ")),
            404 => ComputeError::NoSuchApp(message),
            413 => ComputeError::TooLarge(bare("too large: ")),
            429 => ComputeError::Saturated(bare("saturated: ")),
            503 if message.starts_with("draining") => ComputeError::Draining,
            503 => ComputeError::Unavailable(bare("unavailable: ")),
            504 => ComputeError::Timeout(bare("timeout: ")),
            _ => ComputeError::Runtime(bare("runtime: ")),
        }
    }

    /// Whether this error says the node is busy, not broken: full, or stopping.
    pub fn is_busy(&self) -> bool {
        matches!(self, ComputeError::Saturated(_) | ComputeError::Draining)
    }

    /// Whether this error speaks against the node that gave it (for a router's count
    /// of its reliability): not when the node was busy, or refused the request or its
    /// budget for what they are.
    pub fn counts_against_node(&self) -> bool {
        !matches!(
            self,
            ComputeError::Saturated(_)
                | ComputeError::Draining
                | ComputeError::Payment(_)
                | ComputeError::BadRequest(_)
                | ComputeError::TooLarge(_)
                | ComputeError::NoSuchApp(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_right_when_passed_along() {
        // A node's refusal crosses a router: its prefix is not said twice.
        let node = ComputeError::Saturated("1 calls running and 2 queued".into());
        let relayed = ComputeError::from_status(node.status(), node.to_string());
        assert_eq!(
            relayed.to_string(),
            "saturated: 1 calls running and 2 queued"
        );
        let drained = ComputeError::from_status(503, ComputeError::Draining.to_string());
        assert!(matches!(drained, ComputeError::Draining));
        assert!(drained.is_busy() && !drained.counts_against_node());
        // The hint stands outside the quoted name, and a huge name is clipped.
        assert_eq!(
            ComputeError::no_app("gpt-4o").to_string(),
            "no app \"gpt-4o\" is served here (GET /v1/models lists the ones that are)"
        );
        let huge = "m".repeat(1 << 20);
        let said = ComputeError::no_app(&huge).to_string();
        assert!(said.len() < 200, "{} bytes", said.len());
        assert!(said.contains("(1048576 bytes)"), "{said}");
    }
}
