//! Byzantine behaviours. A byzantine node runs an honest core; its outgoing messages
//! are rewritten here and re-signed with its own key (it cannot sign as another).

use crate::{digest_of, Sim, SimBlock, CHAIN_ID};
use alloy_primitives::B256;
use emc_consensus::{
    messages::{payload, CommitBody, Kind, RoundChangeBody},
    Message, RoundChange, Signed,
};
use rand::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// Sends nothing.
    Silent,
    /// Drops each outgoing message with probability 1/2.
    DropHalf,
    /// As proposer, sends one block to half the validators and another to the rest.
    EquivocatingProposer,
    /// As proposer, sends a block the chain rejects.
    InvalidProposal,
    /// Strips the justification from its round > 0 proposals and claims prepared
    /// values it cannot prove in its ROUND-CHANGEs.
    BadJustification,
    /// PREPAREs for a random digest.
    WrongDigestPrepare,
    /// COMMITs (and seals) for a random digest.
    WrongDigestCommit,
    /// With everything it sends, a ROUND-CHANGE for a random far-future round.
    RoundChangeSpammer,
    /// With everything it sends, replays old messages it has received.
    Replayer,
    /// Sends its honest PREPARE and a second one for a random digest: a provable
    /// equivocation, for the staking module's slashing.
    DoublePrepare,
}

type Targets = Option<Vec<usize>>;

fn sign<T: borsh::BorshSerialize>(
    sim: &Sim,
    node: usize,
    kind: Kind,
    body: &T,
) -> emc_consensus::Sig {
    sim.nodes[node].crypto.sign(&payload(CHAIN_ID, kind, body))
}

fn random_digest(sim: &mut Sim) -> B256 {
    B256::from(sim.rng.gen::<[u8; 32]>())
}

pub(crate) fn rewrite(
    b: Behavior,
    me: usize,
    m: Message,
    sim: &mut Sim,
) -> Vec<(Targets, Message)> {
    match (b, m) {
        (Behavior::Silent, _) => vec![],
        (Behavior::EquivocatingProposer, Message::Proposal(p)) => {
            let other = alt_block(sim, me, p.signed.body.height.0, true);
            let mut q = p.clone();
            q.signed.body.digest = digest_of(&other);
            q.block = other.into();
            q.signed.sig = sign(sim, me, Kind::Proposal, &q.signed.body);
            let half: Vec<usize> = (0..sim.cfg.n).filter(|i| i % 2 == 0).collect();
            let rest: Vec<usize> = (0..sim.cfg.n).filter(|i| i % 2 == 1).collect();
            vec![
                (Some(half), Message::Proposal(p)),
                (Some(rest), Message::Proposal(q)),
            ]
        }
        (Behavior::InvalidProposal, Message::Proposal(mut p)) => {
            let bad = alt_block(sim, me, p.signed.body.height.0, false);
            p.signed.body.digest = digest_of(&bad);
            p.block = bad.into();
            p.signed.sig = sign(sim, me, Kind::Proposal, &p.signed.body);
            vec![(None, Message::Proposal(p))]
        }
        (Behavior::BadJustification, Message::Proposal(mut p)) if p.signed.body.round.0 > 0 => {
            p.justification.round_changes.truncate(1);
            vec![(None, Message::Proposal(p))]
        }
        (Behavior::BadJustification, Message::RoundChange(rc)) => {
            let body = RoundChangeBody {
                prepared: Some((emc_consensus::Round(0), random_digest(sim))),
                ..rc.signed.body
            };
            let sig = sign(sim, me, Kind::RoundChange, &body);
            let fake = RoundChange {
                signed: Signed {
                    body,
                    signer: rc.signed.signer,
                    sig,
                },
                prepared_block: Some(vec![1].into()),
                prepares: vec![],
            };
            vec![(None, Message::RoundChange(fake))]
        }
        (Behavior::DoublePrepare, Message::Prepare(v)) => {
            let mut w = v.clone();
            w.body.digest = random_digest(sim);
            w.sig = sign(sim, me, Kind::Prepare, &w.body);
            vec![(None, Message::Prepare(v)), (None, Message::Prepare(w))]
        }
        (Behavior::WrongDigestPrepare, Message::Prepare(mut v)) => {
            v.body.digest = random_digest(sim);
            v.sig = sign(sim, me, Kind::Prepare, &v.body);
            vec![(None, Message::Prepare(v))]
        }
        (Behavior::WrongDigestCommit, Message::Commit(mut c)) => {
            c.body.vote.digest = random_digest(sim);
            c.body.seal = sign(sim, me, Kind::Seal, &c.body.vote);
            let body: CommitBody = c.body;
            c.sig = sign(sim, me, Kind::Commit, &body);
            vec![(None, Message::Commit(c))]
        }
        (Behavior::RoundChangeSpammer, m) => {
            let jump = sim.rng.gen_range(1..1_000u32);
            let body = RoundChangeBody {
                height: m.height(),
                round: emc_consensus::Round(m.round().0 + jump),
                prepared: None,
            };
            let sig = sign(sim, me, Kind::RoundChange, &body);
            let spam = RoundChange {
                signed: Signed {
                    body,
                    signer: m.signer(),
                    sig,
                },
                prepared_block: None,
                prepares: vec![],
            };
            vec![(None, m), (None, Message::RoundChange(spam))]
        }
        (Behavior::Replayer, m) => {
            let mut out = vec![(None, m)];
            let seen = sim.nodes[me].seen.len();
            for _ in 0..seen.min(3) {
                let k = sim.rng.gen_range(0..seen);
                out.push((None, (*sim.nodes[me].seen[k]).clone()));
            }
            out
        }
        (_, m) => vec![(None, m)],
    }
}

fn alt_block(sim: &mut Sim, me: usize, height: u64, valid: bool) -> Vec<u8> {
    let payload: Vec<u8> = (0..32).map(|_| sim.rng.gen()).collect();
    borsh::to_vec(&SimBlock {
        height,
        proposer: me as u32,
        valid,
        payload,
        ops: Vec::new(),
    })
    .expect("borsh into a Vec never fails")
}
