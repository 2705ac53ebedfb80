//! Frames between routers, validators and computing nodes over libp2p streams, and
//! both sides of each exchange, over any byte stream.
//!
//! A frame is a 4-byte big-endian length and the borsh encoding of one message of the
//! stream's protocol; a length over the limit of the exchange is refused before
//! anything is allocated. Each protocol has its own message enum, so a frame of
//! another protocol cannot even be decoded where it does not belong:
//!
//! * [`call`], `/emc/compute/1` (router → node): [`call::CallMsg::Call`], then `Head`,
//!   `Data`..., and `Done` with the signed result (or `Failed`, or `Refused` before any
//!   `Head`); calls follow one another on a kept stream.
//! * [`load`], `/emc/compute-load/1` (node → router, kept open): `Hello` with the node's
//!   apps and load, then `Load` every few seconds. The stream is what keeps a node
//!   behind NAT connected to its router.
//! * [`poc`], `/emc/poc/1` (validator → node): `Challenge`, `Commit` (the challenger
//!   stops its clock), `Ask`, `Open`. See [`crate::poc`].
//! * [`ping`], `/emc/ping/1`: 8 bytes out, the same 8 back, no frames.
//! * [`mesh`], `/emc/router-mesh/1` (router ↔ router): `Summary` of a table, `Publish`
//!   of a pub/sub message; and `/emc/relay/1`: one [`mesh::RelayTo`], then the call
//!   protocol as is.
//! * [`pool`], `/emc/pool/1` (pool member → head member): `Join`, answered by `Admit`
//!   with the pool's Ray address and token, or `Refused`.
//! * [`pool_jobs`], `/emc/pool-jobs/1` (router or member → head member): a pool's
//!   jobs (submit, status, logs, stop, settlement) and members' metering rounds.

pub mod call;
pub mod load;
pub mod mesh;
pub mod ping;
pub mod poc;
pub mod pool;
pub mod pool_jobs;

use crate::CallError;
use borsh::{BorshDeserialize, BorshSerialize};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const CALL_PROTOCOL: &str = "/emc/compute/1";
pub const LOAD_PROTOCOL: &str = "/emc/compute-load/1";
pub const POC_PROTOCOL: &str = "/emc/poc/1";
/// Round trips a router measures: 8 bytes out, the same 8 bytes back, for as long as
/// the stream stays open.
pub const PING_PROTOCOL: &str = "/emc/ping/1";
/// Routers' summaries of their tables, each way between mesh peers.
pub const MESH_PROTOCOL: &str = "/emc/router-mesh/1";
/// A call through a peer router: `RelayTo(node)`, then `/emc/compute/1` as is.
pub const RELAY_PROTOCOL: &str = "/emc/relay/1";
/// A pool member asking its head member for the Ray cluster's address and token.
pub const POOL_PROTOCOL: &str = "/emc/pool/1";
/// A pool's jobs and its members' metering, spoken to its head member.
pub const POOL_JOBS_PROTOCOL: &str = "/emc/pool-jobs/1";

/// Largest frame of a call exchange (a request body plus its envelope).
pub const MAX_CALL_FRAME: usize = crate::call::MAX_REQUEST_BYTES + 64 * 1024;
/// Largest frame of the load, mesh and PoC exchanges (the largest openings a task
/// within `poc`'s bounds can ask for are about 350 KiB).
pub const MAX_SMALL_FRAME: usize = 1024 * 1024;
/// Data frames of a reply carry at most this much.
pub const DATA_CHUNK: usize = 256 * 1024;

/// How a stream's own failure (not an answer from the other end) begins.
const LOST: &str = "stream: ";

pub(crate) fn io(e: std::io::Error) -> CallError {
    CallError::Unavailable(format!("{LOST}{e}"))
}

/// Whether `e` is a stream failing (reset, or its connection closed), on this hop or,
/// passed back by a relay, on the relay's, rather than anything the node said: a
/// caller that had no answer yet may try again on a fresh stream.
pub fn lost_stream(e: &CallError) -> bool {
    matches!(e, CallError::Unavailable(m) if m.starts_with(LOST))
}

pub async fn write_frame<W: AsyncWrite + Unpin, M: BorshSerialize>(
    w: &mut W,
    m: &M,
) -> Result<(), CallError> {
    let bytes = borsh::to_vec(m).map_err(io)?;
    w.write_all(&(bytes.len() as u32).to_be_bytes())
        .await
        .map_err(io)?;
    w.write_all(&bytes).await.map_err(io)?;
    w.flush().await.map_err(io)
}

/// Reads one frame of `M`; `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin, M: BorshDeserialize>(
    r: &mut R,
    max: usize,
) -> Result<Option<M>, CallError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io(e)),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(CallError::TooLarge(format!(
            "a frame of {len} bytes is over {max}"
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await.map_err(io)?;
    M::try_from_slice(&buf)
        .map(Some)
        .map_err(|e| CallError::BadRequest(format!("malformed frame: {e}")))
}

/// The next frame, which must come.
pub async fn expect<R: AsyncRead + Unpin, M: BorshDeserialize>(
    r: &mut R,
    max: usize,
) -> Result<M, CallError> {
    read_frame(r, max)
        .await?
        .ok_or_else(|| CallError::Unavailable("the peer closed the stream".into()))
}

/// A message that does not belong at this point of an exchange.
pub(crate) fn unexpected(wanted: &str, got: &impl std::fmt::Debug) -> CallError {
    let got = format!("{got:?}");
    CallError::BadRequest(format!("expected {wanted}, got {}", crate::clip(&got)))
}

#[cfg(test)]
pub(crate) mod testing {
    use futures::{AsyncRead, AsyncWrite};

    /// A duplex pipe of futures-io streams.
    pub fn pipe() -> (
        impl AsyncRead + AsyncWrite + Unpin,
        impl AsyncRead + AsyncWrite + Unpin,
    ) {
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let (a, b) = tokio::io::duplex(1 << 20);
        (a.compat(), b.compat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use call::CallMsg;

    #[tokio::test]
    async fn oversized_and_malformed_frames_are_refused() {
        let mut big = Vec::new();
        big.extend_from_slice(&(10_000_000u32).to_be_bytes());
        let mut r = futures::io::Cursor::new(big);
        assert!(matches!(
            read_frame::<_, CallMsg>(&mut r, MAX_SMALL_FRAME).await,
            Err(CallError::TooLarge(_))
        ));
        let mut junk = Vec::new();
        junk.extend_from_slice(&3u32.to_be_bytes());
        junk.extend_from_slice(&[200, 1, 2]);
        let mut r = futures::io::Cursor::new(junk);
        assert!(matches!(
            read_frame::<_, CallMsg>(&mut r, MAX_SMALL_FRAME).await,
            Err(CallError::BadRequest(_))
        ));
        let mut empty = futures::io::Cursor::new(Vec::new());
        assert!(matches!(
            read_frame::<_, CallMsg>(&mut empty, 10).await,
            Ok(None)
        ));
    }

    #[tokio::test]
    async fn a_frame_of_another_protocol_is_refused() {
        // A load report sent down a call stream does not decode as a call.
        let mut buf = Vec::new();
        write_frame(&mut buf, &load::LoadMsg::Load(Default::default()))
            .await
            .expect("write");
        let mut r = futures::io::Cursor::new(buf);
        let got = read_frame::<_, CallMsg>(&mut r, MAX_SMALL_FRAME).await;
        assert!(matches!(got, Err(CallError::BadRequest(_))), "{got:?}");
    }

    #[tokio::test]
    async fn a_lost_stream_is_told_from_an_answer_that_says_unavailable() {
        // A write to a stream whose connection is gone fails as the stream's own loss.
        struct Closed;
        impl futures::io::AsyncWrite for Closed {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let e = std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection is closed",
                );
                std::task::Poll::Ready(Err(e))
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
        }
        let lost = write_frame(&mut Closed, &load::LoadMsg::Load(Default::default()))
            .await
            .expect_err("a closed stream");
        assert!(lost_stream(&lost), "{lost:?}");
        // A relay whose own stream to the node was lost passes that on as such...
        let relayed = CallError::from_status(503, lost.to_string());
        assert!(lost_stream(&relayed), "{relayed:?}");
        // ...while a node that answers "unavailable" has answered.
        let said = CallError::from_status(503, "unavailable: the app is restarting".into());
        assert!(matches!(said, CallError::Unavailable(_)));
        assert!(!lost_stream(&said), "{said:?}");
    }
}
