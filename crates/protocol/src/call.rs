//! A call, as a router forwards it to a node and a node hands it to a runtime, and a
//! reply on its way back.
//!
//! A call names an app, a path inside it (`/v1/embeddings`, `/sdapi/v1/txt2img`, `/`)
//! and carries a body and a budget. The reply is a status, a content type and a stream
//! of [`Frame`]s that ends with the node's signed result ([`Frame::Done`]) or breaks off
//! without one ([`Frame::Failed`]), so nothing unsigned can be charged for.

use crate::result::SignedResult;
use alloy_primitives::B256;
use bytes::Bytes;
use tokio::sync::mpsc;

/// Largest request body a node accepts for any app.
pub const MAX_REQUEST_BYTES: usize = 8 << 20;
/// Largest result a node relays for one call; a longer reply is cut off with an error.
pub const MAX_RESULT_BYTES: u64 = 64 << 20;
/// The budget of a call nobody meters (the operator's own port).
pub const UNLIMITED: u64 = u64::MAX;

#[derive(Clone, Debug)]
pub struct Call {
    /// The caller's id for this call (a router's, unique per forwarded call; zero for
    /// direct calls). The node signs it back in its result, so a settled call cannot
    /// be settled again under the same id.
    pub id: B256,
    pub app: String,
    /// HTTP method for http-apps (`POST` elsewhere).
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// The most units (of the app's measure) the caller pays for: the budget a router
    /// derives from what the client's escrow, key and cap allow at the node's price.
    /// A runtime stops there (a chat ends at this many tokens, a job at this much
    /// fuel) or refuses at once what cannot fit (an embedding of more tokens). The
    /// node signs it into its result. [`UNLIMITED`] on the node's own port.
    pub max_units: u64,
}

impl Call {
    /// The hash the node signs the request under ([`crate::result::request_hash`]).
    pub fn request_hash(&self) -> B256 {
        crate::result::request_hash(&self.app, &self.path, &self.body)
    }
}

/// One piece of a served reply. (A reply has one `Done`, so its size is no cost
/// worth a box.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Frame {
    Data(Bytes),
    Done(SignedResult),
    Failed(String),
}

/// A reply on its way: status and type at once, the body as frames. Whatever `guard`
/// holds lives until the reply is dropped (a node counts the call as running until
/// whoever relays it has sent it all, so a draining node does not stop while a reply
/// is still on its way out).
pub struct Served {
    pub status: u16,
    pub content_type: String,
    pub streaming: bool,
    pub request_hash: B256,
    pub frames: mpsc::Receiver<Frame>,
    pub guard: Option<Box<dyn Send + Sync>>,
}

impl Served {
    /// A reply relayed from another node (a router's view of it): nothing rides along.
    pub fn relayed(
        status: u16,
        content_type: String,
        streaming: bool,
        request_hash: B256,
        frames: mpsc::Receiver<Frame>,
    ) -> Self {
        Self {
            status,
            content_type,
            streaming,
            request_hash,
            frames,
            guard: None,
        }
    }
}

/// Reads a whole reply: the body and the signed result (or why it failed).
pub async fn collect(mut served: Served) -> (Vec<u8>, Result<SignedResult, String>) {
    let mut body = Vec::new();
    while let Some(f) = served.frames.recv().await {
        match f {
            Frame::Data(b) => body.extend_from_slice(&b),
            Frame::Done(s) => return (body, Ok(s)),
            Frame::Failed(e) => return (body, Err(e)),
        }
    }
    (body, Err("the reply ended without a signature".into()))
}
