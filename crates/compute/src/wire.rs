//! Frames between routers, validators and computing nodes over libp2p streams, and
//! the node's and the peers' side of each exchange, over any byte stream.
//!
//! A frame is a 4-byte big-endian length and the borsh encoding of a [`Msg`]; a length
//! over the limit of the exchange is refused before anything is allocated.
//!
//! * `/emc/compute/1` (router → node): `Call`, then `Head`, `Data`..., and `Done` with
//!   the signed result (or `Failed`, or `Refused` before any `Head`).
//! * `/emc/compute-load/1` (node → router, kept open): `Hello` with the node's apps and
//!   load, then `Load` every few seconds. The stream is what keeps a node behind NAT
//!   connected to its router.
//! * `/emc/poc/1` (validator → node): `Challenge`, `Commit` (the challenger stops its
//!   clock), `Ask`, `Open`. See [`crate::poc`].

use crate::agent::{Agent, AppInfo, Frame, Load};
use crate::poc::{self, Opening, PocParams, Segment};
use crate::result::{NodeId, SignedResult};
use crate::runtime::{Call, MAX_REQUEST_BYTES};
use crate::ComputeError;
use alloy_primitives::B256;
use borsh::{BorshDeserialize, BorshSerialize};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
/// Most nodes one summary lists.
pub const MAX_SUMMARY: usize = 4_096;

/// A message on a publish/subscribe channel, as routers pass it along the mesh.
#[derive(Debug, Clone, PartialEq, BorshSerialize, BorshDeserialize)]
pub struct Publication {
    /// Unique per message (routers drop one they have seen).
    pub id: B256,
    pub channel: String,
    /// The publisher's account, as its API key proved to the router it used.
    pub from: [u8; 20],
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
    /// Registered prices per app (big-endian U256), as the router read them on chain.
    pub prices: Vec<(String, [u8; 32])>,
}

/// Largest frame of a call exchange (a request body plus its envelope).
pub const MAX_CALL_FRAME: usize = MAX_REQUEST_BYTES + 64 * 1024;
/// Largest frame of the load and PoC exchanges (the largest openings a task within
/// `poc`'s bounds can ask for are about 350 KiB).
pub const MAX_SMALL_FRAME: usize = 1024 * 1024;
/// Data frames of a reply carry at most this much.
pub const DATA_CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, BorshSerialize, BorshDeserialize)]
pub enum Msg {
    Call {
        id: B256,
        app: String,
        method: String,
        path: String,
        content_type: Option<String>,
        body: Vec<u8>,
        max_units: u64,
    },
    Head {
        status: u16,
        content_type: String,
        streaming: bool,
    },
    Data(Vec<u8>),
    Done(SignedResult),
    Failed(String),
    Refused {
        status: u16,
        message: String,
    },
    Hello {
        node: NodeId,
        apps: Vec<AppInfo>,
        load: Load,
    },
    Load(Load),
    Summary(Vec<NodeSummary>),
    Publish(Publication),
    RelayTo(NodeId),
    Challenge {
        seed: B256,
        params: PocParams,
    },
    Commit {
        root: B256,
    },
    Ask(Vec<Segment>),
    Open(Vec<Opening>),
}

fn io(e: std::io::Error) -> ComputeError {
    ComputeError::Unavailable(format!("stream: {e}"))
}

pub async fn write_msg<W: AsyncWrite + Unpin>(w: &mut W, m: &Msg) -> Result<(), ComputeError> {
    let bytes = borsh::to_vec(m).map_err(io)?;
    w.write_all(&(bytes.len() as u32).to_be_bytes())
        .await
        .map_err(io)?;
    w.write_all(&bytes).await.map_err(io)?;
    w.flush().await.map_err(io)
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_msg<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Msg>, ComputeError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io(e)),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(ComputeError::TooLarge(format!(
            "a frame of {len} bytes is over {max}"
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await.map_err(io)?;
    Msg::try_from_slice(&buf)
        .map(Some)
        .map_err(|e| ComputeError::BadRequest(format!("malformed frame: {e}")))
}

async fn expect<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Msg, ComputeError> {
    read_msg(r, max)
        .await?
        .ok_or_else(|| ComputeError::Unavailable("the peer closed the stream".into()))
}

/// The node's side of `/emc/compute/1`: serves calls from a router, one after another
/// on the same stream, until the router closes it (a router keeps idle streams to
/// reuse, so a call costs no stream negotiation).
pub async fn serve_call<S: AsyncRead + AsyncWrite + Unpin>(
    agent: &Arc<Agent>,
    s: &mut S,
) -> Result<(), ComputeError> {
    while serve_one(agent, s).await? {}
    Ok(())
}

/// Serves one call; `Ok(false)` when the stream ended cleanly before a call.
async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    agent: &Arc<Agent>,
    s: &mut S,
) -> Result<bool, ComputeError> {
    let call = match read_msg(s, MAX_CALL_FRAME).await? {
        None => return Ok(false),
        Some(Msg::Call {
            id,
            app,
            method,
            path,
            content_type,
            body,
            max_units,
        }) => Call {
            id,
            app,
            method,
            path,
            content_type,
            body: body.into(),
            max_units,
        },
        other => {
            return Err(ComputeError::BadRequest(format!(
                "expected a call, got {other:?}"
            )))
        }
    };
    let mut served = match agent.call(call).await {
        Ok(s) => s,
        Err(e) => {
            let refused = Msg::Refused {
                status: e.status(),
                message: e.to_string(),
            };
            write_msg(s, &refused).await?;
            return Ok(true);
        }
    };
    let head = Msg::Head {
        status: served.status,
        content_type: served.content_type.clone(),
        streaming: served.streaming,
    };
    write_msg(s, &head).await?;
    while let Some(f) = served.frames.recv().await {
        match f {
            Frame::Data(b) => {
                for c in b.chunks(DATA_CHUNK) {
                    write_msg(s, &Msg::Data(c.to_vec())).await?;
                }
            }
            Frame::Done(r) => {
                write_msg(s, &Msg::Done(r)).await?;
                return Ok(true);
            }
            Frame::Failed(e) => {
                write_msg(s, &Msg::Failed(e)).await?;
                return Ok(true);
            }
        }
    }
    write_msg(
        s,
        &Msg::Failed("the reply ended without a signature".into()),
    )
    .await?;
    Ok(true)
}

/// The caller's side of `/emc/compute/1`: sends the call and returns the reply's head;
/// read the rest with [`read_reply`].
pub async fn send_call<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    call: &Call,
) -> Result<(u16, String, bool), ComputeError> {
    let m = Msg::Call {
        id: call.id,
        app: call.app.clone(),
        method: call.method.clone(),
        path: call.path.clone(),
        content_type: call.content_type.clone(),
        body: call.body.to_vec(),
        max_units: call.max_units,
    };
    write_msg(s, &m).await?;
    match expect(s, MAX_SMALL_FRAME).await? {
        Msg::Head {
            status,
            content_type,
            streaming,
        } => Ok((status, content_type, streaming)),
        Msg::Refused { status, message } => Err(ComputeError::from_status(status, message)),
        other => Err(ComputeError::BadRequest(format!(
            "expected a reply head, got {other:?}"
        ))),
    }
}

/// The next piece of a reply: data, or the signed end.
pub async fn read_reply<S: AsyncRead + Unpin>(s: &mut S) -> Result<Frame, ComputeError> {
    Ok(match expect(s, DATA_CHUNK + 1024).await? {
        Msg::Data(b) => Frame::Data(b.into()),
        Msg::Done(r) => Frame::Done(r),
        Msg::Failed(e) => Frame::Failed(e),
        other => {
            return Err(ComputeError::BadRequest(format!(
                "unexpected frame in a reply: {other:?}"
            )))
        }
    })
}

/// The node's side of `/emc/compute-load/1`: `Hello`, then its load every `every`,
/// until the stream breaks.
pub async fn report_load<S: AsyncWrite + Unpin>(
    agent: &Agent,
    s: &mut S,
    every: Duration,
) -> Result<(), ComputeError> {
    let hello = Msg::Hello {
        node: agent.id(),
        apps: agent.apps(),
        load: agent.load(),
    };
    write_msg(s, &hello).await?;
    loop {
        tokio::time::sleep(every).await;
        write_msg(s, &Msg::Load(agent.load())).await?;
    }
}

/// The node's side of `/emc/poc/1`: proves on `threads` threads, commits, opens.
pub async fn serve_poc<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    threads: usize,
    behaviour: poc::Behaviour,
) -> Result<(), ComputeError> {
    let (seed, params) = match expect(s, MAX_SMALL_FRAME).await? {
        Msg::Challenge { seed, params } => (seed, params),
        other => {
            return Err(ComputeError::BadRequest(format!(
                "expected a challenge, got {other:?}"
            )))
        }
    };
    params
        .check()
        .map_err(|e| ComputeError::BadRequest(e.to_string()))?;
    let proof = tokio::task::spawn_blocking(move || poc::prove(seed, params, threads, behaviour))
        .await
        .map_err(|e| ComputeError::Runtime(format!("prover panicked: {e}")))?
        .map_err(|e| ComputeError::BadRequest(e.to_string()))?;
    write_msg(s, &Msg::Commit { root: proof.root() }).await?;
    let asked = match expect(s, MAX_SMALL_FRAME).await? {
        Msg::Ask(a) => a,
        other => {
            return Err(ComputeError::BadRequest(format!(
                "expected the asked segments, got {other:?}"
            )))
        }
    };
    let openings = proof
        .open(&asked)
        .map_err(|e| ComputeError::BadRequest(e.to_string()))?;
    write_msg(s, &Msg::Open(openings)).await
}

/// What a challenger concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// E, steps per millisecond of the measured time (0 when the node failed).
    pub score: u64,
    pub ok: bool,
    pub wall: Duration,
    /// Why the node failed, when it did.
    pub reason: Option<String>,
}

/// The challenger's side of `/emc/poc/1`. `entropy` is the challenger's private
/// randomness for the samples. An answer that does not arrive within `deadline` is
/// an error (no verdict), not a fault: the node may simply be unreachable.
pub async fn challenge<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    seed: B256,
    params: PocParams,
    entropy: B256,
    deadline: Duration,
) -> Result<Verdict, ComputeError> {
    let run = async {
        let started = Instant::now();
        write_msg(s, &Msg::Challenge { seed, params }).await?;
        let root = match expect(s, MAX_SMALL_FRAME).await? {
            Msg::Commit { root } => root,
            other => {
                return Err(ComputeError::BadRequest(format!(
                    "expected a commitment, got {other:?}"
                )))
            }
        };
        let wall = started.elapsed();
        let asked = poc::sample(&params, entropy);
        write_msg(s, &Msg::Ask(asked.clone())).await?;
        let openings = match expect(s, MAX_SMALL_FRAME).await? {
            Msg::Open(o) => o,
            other => {
                return Err(ComputeError::BadRequest(format!(
                    "expected openings, got {other:?}"
                )))
            }
        };
        let check = tokio::task::spawn_blocking(move || {
            poc::verify(seed, &params, root, &asked, &openings)
        })
        .await
        .map_err(|e| ComputeError::Runtime(format!("verifier panicked: {e}")))?;
        Ok(match check {
            Ok(()) => Verdict {
                score: poc::score(&params, wall),
                ok: true,
                wall,
                reason: None,
            },
            Err(e) => Verdict {
                score: 0,
                ok: false,
                wall,
                reason: Some(e.to_string()),
            },
        })
    };
    tokio::time::timeout(deadline, run)
        .await
        .map_err(|_| ComputeError::Timeout(format!("no PoC answer within {deadline:?}")))?
}

/// The node's side of `/emc/ping/1`: echoes every 8 bytes until the stream ends.
pub async fn serve_ping<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<(), ComputeError> {
    let mut b = [0u8; 8];
    loop {
        if s.read_exact(&mut b).await.is_err() {
            return Ok(());
        }
        s.write_all(&b).await.map_err(io)?;
        s.flush().await.map_err(io)?;
    }
}

/// One round trip on a `/emc/ping/1` stream; `seq` tells one ping from the next.
pub async fn ping<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    seq: u64,
) -> Result<Duration, ComputeError> {
    let t = Instant::now();
    let out = seq.to_le_bytes();
    s.write_all(&out).await.map_err(io)?;
    s.flush().await.map_err(io)?;
    let mut back = [0u8; 8];
    s.read_exact(&mut back).await.map_err(io)?;
    if back != out {
        return Err(ComputeError::BadRequest(
            "the ping came back changed".into(),
        ));
    }
    Ok(t.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn oversized_and_malformed_frames_are_refused() {
        let mut big = Vec::new();
        big.extend_from_slice(&(10_000_000u32).to_be_bytes());
        let mut r = futures::io::Cursor::new(big);
        assert!(matches!(
            read_msg(&mut r, MAX_SMALL_FRAME).await,
            Err(ComputeError::TooLarge(_))
        ));
        let mut junk = Vec::new();
        junk.extend_from_slice(&3u32.to_be_bytes());
        junk.extend_from_slice(&[200, 1, 2]);
        let mut r = futures::io::Cursor::new(junk);
        assert!(matches!(
            read_msg(&mut r, MAX_SMALL_FRAME).await,
            Err(ComputeError::BadRequest(_))
        ));
        let mut empty = futures::io::Cursor::new(Vec::new());
        assert!(matches!(read_msg(&mut empty, 10).await, Ok(None)));
    }

    /// A duplex pipe of futures-io streams.
    fn pipe() -> (
        impl AsyncRead + AsyncWrite + Unpin,
        impl AsyncRead + AsyncWrite + Unpin,
    ) {
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let (a, b) = tokio::io::duplex(1 << 20);
        (a.compat(), b.compat())
    }

    #[tokio::test]
    async fn an_honest_node_passes_a_challenge_and_a_liar_fails_it() {
        let params = PocParams {
            lanes: 2,
            segments: 64,
            seg_steps: 64,
            samples: 8,
        };
        for (behaviour, ok) in [
            (poc::Behaviour::Honest, true),
            (poc::Behaviour::WrongResult, false),
        ] {
            let (mut node, mut validator) = pipe();
            let prover = tokio::spawn(async move { serve_poc(&mut node, 2, behaviour).await });
            let v = challenge(
                &mut validator,
                B256::repeat_byte(3),
                params,
                B256::repeat_byte(4),
                Duration::from_secs(30),
            )
            .await
            .expect("a verdict");
            prover.await.expect("join").expect("prover ran");
            assert_eq!(v.ok, ok, "{behaviour:?}: {v:?}");
            assert_eq!(v.score > 0, ok);
        }
    }
}
