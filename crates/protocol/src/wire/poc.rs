//! `/emc/poc/1`: a validator's challenge and the node's proof, both sides.

use super::{expect, unexpected, write_frame, MAX_SMALL_FRAME};
use crate::poc::{self, Opening, PocParams, Segment};
use crate::CallError;
use alloy_primitives::B256;
use borsh::{BorshDeserialize, BorshSerialize};
use futures::{AsyncRead, AsyncWrite};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, BorshSerialize, BorshDeserialize)]
pub enum PocMsg {
    Challenge { seed: B256, params: PocParams },
    Commit { root: B256 },
    Ask(Vec<Segment>),
    Open(Vec<Opening>),
}

/// The node's side: proves on `threads` threads, commits, opens.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    threads: usize,
    behaviour: poc::Behaviour,
) -> Result<(), CallError> {
    let (seed, params) = match expect(s, MAX_SMALL_FRAME).await? {
        PocMsg::Challenge { seed, params } => (seed, params),
        other => return Err(unexpected("a challenge", &other)),
    };
    params
        .check()
        .map_err(|e| CallError::BadRequest(e.to_string()))?;
    let proof = tokio::task::spawn_blocking(move || poc::prove(seed, params, threads, behaviour))
        .await
        .map_err(|e| CallError::Runtime(format!("prover panicked: {e}")))?
        .map_err(|e| CallError::BadRequest(e.to_string()))?;
    write_frame(s, &PocMsg::Commit { root: proof.root() }).await?;
    let asked = match expect(s, MAX_SMALL_FRAME).await? {
        PocMsg::Ask(a) => a,
        other => return Err(unexpected("the asked segments", &other)),
    };
    let openings = proof
        .open(&asked)
        .map_err(|e| CallError::BadRequest(e.to_string()))?;
    write_frame(s, &PocMsg::Open(openings)).await
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

/// The challenger's side. `entropy` is the challenger's private randomness for the
/// samples. An answer that does not arrive within `deadline` is an error (no
/// verdict), not a fault: the node may simply be unreachable.
pub async fn challenge<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    seed: B256,
    params: PocParams,
    entropy: B256,
    deadline: Duration,
) -> Result<Verdict, CallError> {
    let run = async {
        let started = Instant::now();
        write_frame(s, &PocMsg::Challenge { seed, params }).await?;
        let root = match expect(s, MAX_SMALL_FRAME).await? {
            PocMsg::Commit { root } => root,
            other => return Err(unexpected("a commitment", &other)),
        };
        let wall = started.elapsed();
        let asked = poc::sample(&params, entropy);
        write_frame(s, &PocMsg::Ask(asked.clone())).await?;
        let openings = match expect(s, MAX_SMALL_FRAME).await? {
            PocMsg::Open(o) => o,
            other => return Err(unexpected("openings", &other)),
        };
        let check = tokio::task::spawn_blocking(move || {
            poc::verify(seed, &params, root, &asked, &openings)
        })
        .await
        .map_err(|e| CallError::Runtime(format!("verifier panicked: {e}")))?;
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
        .map_err(|_| CallError::Timeout(format!("no PoC answer within {deadline:?}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testing::pipe;

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
            let prover = tokio::spawn(async move { serve(&mut node, 2, behaviour).await });
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
