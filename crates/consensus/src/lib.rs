//! IBFT 2.0 consensus (as the QBFT specification writes it) as a pure state machine.
//!
//! ```text
//!            round r at height h                      proposer(r) = set[(prev + 1 + r) mod n]
//!  proposer ──PROPOSAL(h,r,D,block[,justification])──▶ all
//!  all      ──PREPARE(h,r,D)──────────────────────────▶ all     (after the app validates block)
//!  quorum of PREPAREs for D: prepared := (r, D, quorum);  COMMIT(h,r,D,seal) ──▶ all
//!  quorum of COMMITs for D: the block is FINAL; its certificate = the seals
//!  round timer (base·2^r) expires: ROUND-CHANGE(h,r+1,prepared) ──▶ all
//!  quorum of ROUND-CHANGEs for r' at proposer(r'): PROPOSAL(h,r',D') justified by them,
//!      where D' must be the value of the highest prepared round among them, if any
//!  ROUND-CHANGEs for rounds > r from more than 1/3 of the power: jump to the least of them
//! ```
//!
//! Invariants:
//! * **Safety**: no two different blocks are final at one height, as long as the
//!   faulty hold less than a third of the power. There are no locks; a value that may
//!   have been committed (prepared by a quorum) is carried forward by the prepared
//!   certificates inside ROUND-CHANGEs, and a proposal in round > 0 must re-propose the
//!   highest one (justification).
//! * Quorum is by stake: more than 2/3 of the voting power ([`ValidatorSet::quorum`]).
//! * Every message's signature and sender membership is checked before it counts.
//! * A validator never signs two different things of one kind at one (height, round),
//!   across crashes: [`Output::Persist`] comes before the [`Output::Broadcast`] of anything
//!   it signs, and the shell must write it durably before sending ("persist before you
//!   send", as raft-rs puts it).
//! * The core is pure: [`Core::handle`] takes an [`Input`] and returns [`Output`]s; no
//!   clock, randomness or I/O. The shell owns timers, the network, the WAL and the chain.
//!
//! Data flow: p2p → [`Input::Message`]; the chain answers [`Output::RequestBlock`] and
//! [`Output::ValidateBlock`]; [`Output::Commit`] goes to the chain, which calls
//! [`Input::Start`] for the next height.

mod core;
pub mod crypto;
mod justify;
pub mod messages;
pub mod validators;

pub use crate::core::{Config, Core};
pub use crypto::{Crypto, Ed25519Crypto, Sig, ValidatorKey};
pub use emc_types::{Height, Round};
pub use justify::{verify_certificate, verify_message, verify_prepares, verify_round_change};
pub use messages::{Justification, Message, Proposal, RoundChange, Signed, Vote};
pub use validators::{Validator, ValidatorIndex, ValidatorSet};

use alloy_primitives::{Bytes, B256};
use borsh::{BorshDeserialize, BorshSerialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    #[error("consensus message of {0} bytes exceeds the limit")]
    Oversized(usize),
    #[error("malformed consensus message: {0}")]
    Malformed(String),
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
}

/// What the shell feeds the core.
#[derive(Clone, Debug)]
pub enum Input {
    /// Begin `height` with this set. `prev_proposer` proposed the previous block (None
    /// at the first height). `restore` is the WAL state, after a restart.
    Start {
        height: Height,
        set: ValidatorSet,
        prev_proposer: Option<ValidatorIndex>,
        restore: Option<WalState>,
    },
    Message(Message),
    Timeout {
        height: Height,
        round: Round,
    },
    /// The chain built the block this node asked for.
    BlockBuilt {
        height: Height,
        round: Round,
        digest: B256,
        block: Bytes,
    },
    /// The chain's verdict on a proposed block (it checks that `block` hashes to `digest`).
    BlockValidated {
        height: Height,
        round: Round,
        digest: B256,
        valid: bool,
    },
}

/// What the core asks the shell to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Broadcast(Message),
    /// Write durably before performing any later output.
    Persist(WalState),
    ScheduleTimeout {
        height: Height,
        round: Round,
        after_ms: u64,
    },
    RequestBlock {
        height: Height,
        round: Round,
    },
    ValidateBlock {
        height: Height,
        round: Round,
        digest: B256,
        block: Bytes,
    },
    Commit(Finalized),
    /// A validator signed two different values of one kind at one (height, round).
    Equivocation(Evidence),
}

/// A final block with the certificate that proves it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Finalized {
    pub height: Height,
    pub digest: B256,
    pub block: Bytes,
    pub certificate: CommitCertificate,
}

/// COMMIT seals from more than 2/3 of the power for (height, round, digest).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct CommitCertificate {
    pub round: Round,
    pub seals: Vec<(ValidatorIndex, Sig)>,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Evidence {
    pub kind: messages::Kind,
    pub first: Signed<Vote>,
    pub second: Signed<Vote>,
}

/// A prepared certificate: this node saw a PREPARE quorum for `digest` in `round`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Prepared {
    pub round: Round,
    pub digest: B256,
    pub block: Bytes,
    pub prepares: Vec<Signed<Vote>>,
}

/// What a validator must remember across a crash at one height: its round, its
/// prepared certificate, and every (round, kind, digest) it has signed.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WalState {
    pub height: Height,
    pub round: Round,
    pub prepared: Option<Prepared>,
    pub signed: Vec<(Round, messages::Kind, B256)>,
}
