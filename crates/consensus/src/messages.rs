//! IBFT 2.0 messages and what each signature covers.
//!
//! | message | signed payload | carries besides |
//! |---|---|---|
//! | PROPOSAL | (height, round, digest) | the block; in round > 0 a justification |
//! | PREPARE | (height, round, digest) | |
//! | COMMIT | (height, round, digest, seal) | seal = signature over (height, round, digest) |
//! | ROUND-CHANGE | (height, round, prepared round?, prepared digest?) | the prepared block and its PREPARE quorum |
//!
//! Payloads are borsh, prefixed with a per-kind domain tag and the chain id. Wire
//! messages are bounded ([`MAX_MESSAGE_BYTES`]) before they are decoded, and every
//! list inside is bounded by the validator set's size after.

use crate::{crypto::Sig, validators::ValidatorIndex, Height, Round};
use alloy_primitives::{Bytes, B256};
use borsh::{BorshDeserialize, BorshSerialize};

/// The largest consensus message a node decodes: a block of up to 8 MiB plus a
/// justification for the largest set.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024 + 512 * 1024;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub enum Kind {
    Proposal,
    Prepare,
    Commit,
    Seal,
    RoundChange,
}

/// PREPARE and PROPOSAL bodies: a vote for `digest` at (height, round).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    pub height: Height,
    pub round: Round,
    pub digest: B256,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommitBody {
    pub vote: Vote,
    /// Signature over `(Seal, height, round, digest)`: what a commit certificate holds.
    pub seal: Sig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RoundChangeBody {
    pub height: Height,
    pub round: Round,
    /// The round and digest this validator last prepared at this height, if any.
    pub prepared: Option<(Round, B256)>,
}

/// A body with its signer and signature.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signed<T> {
    pub body: T,
    pub signer: ValidatorIndex,
    pub sig: Sig,
}

/// Why a proposal in round > 0 may carry a value: a quorum of ROUND-CHANGEs for its
/// round and, if any of them is prepared, the PREPARE quorum of the highest.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Justification {
    pub round_changes: Vec<Signed<RoundChangeBody>>,
    pub prepares: Vec<Signed<Vote>>,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    pub signed: Signed<Vote>,
    pub block: Bytes,
    pub justification: Justification,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RoundChange {
    pub signed: Signed<RoundChangeBody>,
    /// With `prepared`: the block and the PREPARE quorum that prepared it.
    pub prepared_block: Option<Bytes>,
    pub prepares: Vec<Signed<Vote>>,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Message {
    Proposal(Proposal),
    Prepare(Signed<Vote>),
    Commit(Signed<CommitBody>),
    RoundChange(RoundChange),
}

impl Message {
    pub fn height(&self) -> Height {
        match self {
            Message::Proposal(p) => p.signed.body.height,
            Message::Prepare(v) => v.body.height,
            Message::Commit(c) => c.body.vote.height,
            Message::RoundChange(rc) => rc.signed.body.height,
        }
    }

    pub fn round(&self) -> Round {
        match self {
            Message::Proposal(p) => p.signed.body.round,
            Message::Prepare(v) => v.body.round,
            Message::Commit(c) => c.body.vote.round,
            Message::RoundChange(rc) => rc.signed.body.round,
        }
    }

    pub fn signer(&self) -> ValidatorIndex {
        match self {
            Message::Proposal(p) => p.signed.signer,
            Message::Prepare(v) => v.signer,
            Message::Commit(c) => c.signer,
            Message::RoundChange(rc) => rc.signed.signer,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh into a Vec never fails")
    }

    /// Decodes a wire message, refusing oversized input before decoding it.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::ConsensusError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(crate::ConsensusError::Oversized(bytes.len()));
        }
        Message::try_from_slice(bytes).map_err(|e| crate::ConsensusError::Malformed(e.to_string()))
    }
}

/// The bytes a signature of `kind` covers.
pub fn payload<T: BorshSerialize>(chain_id: u64, kind: Kind, body: &T) -> Vec<u8> {
    let mut out = b"EMC-IBFT-v1".to_vec();
    borsh::to_writer(&mut out, &(chain_id, kind, body)).expect("borsh into a Vec never fails");
    out
}
