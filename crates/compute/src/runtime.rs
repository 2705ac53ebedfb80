//! The one trait every runtime implements, and the shape of a call through it.
//!
//! A call names an app, a path inside it (`/v1/embeddings`, `/sdapi/v1/txt2img`, `/`)
//! and carries a body. A runtime answers with a status, a content type and a stream of
//! chunks that ends with the call's metering, so a streamed reply (server-sent events)
//! passes through chunk by chunk and is still metered and signed at its end.

use bytes::Bytes;
use emc_protocol::CallError;
use emc_protocol::Unit;
use tokio::sync::mpsc;

pub use emc_protocol::call::{Call, MAX_REQUEST_BYTES, MAX_RESULT_BYTES, UNLIMITED};

#[derive(Debug)]
pub enum Chunk {
    Data(Bytes),
    /// The last chunk of a successful stream.
    End {
        unit: Unit,
        units: u64,
    },
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    /// False when the reply is one body (then a server may put the signature in a
    /// header); true for event streams.
    pub streaming: bool,
    pub chunks: mpsc::Receiver<Result<Chunk, CallError>>,
}

impl Reply {
    /// A reply that is one body.
    pub fn whole(status: u16, content_type: &str, body: Vec<u8>, unit: Unit, units: u64) -> Self {
        let (tx, rx) = mpsc::channel(2);
        tx.try_send(Ok(Chunk::Data(body.into())))
            .expect("fresh channel has room");
        tx.try_send(Ok(Chunk::End { unit, units }))
            .expect("fresh channel has room");
        Self {
            status,
            content_type: content_type.to_string(),
            streaming: false,
            chunks: rx,
        }
    }

    /// A JSON error reply in OpenAI's shape: `{"error": {"message", "type"}}`.
    pub fn error(status: u16, kind: &str, message: &str, unit: Unit, units: u64) -> Self {
        let body = serde_json::json!({"error": {"message": message, "type": kind}});
        Self::whole(
            status,
            "application/json",
            body.to_string().into_bytes(),
            unit,
            units,
        )
    }
}

/// A way of serving calls: a local HTTP app, a WASM job, a built-in model.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// `http-app`, `wasm`, `builtin:minilm`, ...
    fn kind(&self) -> String;
    /// Whether the same request always gives the same result (so a result cache and a
    /// re-run check apply).
    fn deterministic(&self) -> bool;
    async fn call(&self, call: Call) -> Result<Reply, CallError>;
}
