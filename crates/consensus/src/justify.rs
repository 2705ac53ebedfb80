//! Pure validity checks: prepared certificates, ROUND-CHANGEs, proposal
//! justifications, commit certificates. Each checks signatures, membership, distinct
//! signers, that every part is for the same height and round, and the weight.

use crate::{
    crypto::Crypto,
    messages::{payload, Justification, Kind, RoundChange, Signed, Vote},
    CommitCertificate, ConsensusError, Height, Round, ValidatorSet,
};
use alloy_primitives::B256;
use std::collections::BTreeSet;

fn err(m: impl Into<String>) -> ConsensusError {
    ConsensusError::InvalidCertificate(m.into())
}

/// A PREPARE quorum for exactly (height, round, digest): the round is bound into every
/// signature, so PREPAREs of another round never count.
pub fn verify_prepares(
    crypto: &dyn Crypto,
    chain_id: u64,
    set: &ValidatorSet,
    want: Vote,
    prepares: &[Signed<Vote>],
) -> Result<(), ConsensusError> {
    if prepares.len() > set.len() {
        return Err(err("more PREPAREs than validators"));
    }
    let mut seen = BTreeSet::new();
    let mut batch = Vec::with_capacity(prepares.len());
    for p in prepares {
        if p.body != want {
            return Err(err(format!("a PREPARE is for {:?}, not {want:?}", p.body)));
        }
        let v = set
            .get(p.signer)
            .ok_or_else(|| err("PREPARE from a non-validator"))?;
        if !seen.insert(p.signer) {
            return Err(err("duplicate PREPARE signer"));
        }
        batch.push((v.key, payload(chain_id, Kind::Prepare, &p.body), p.sig));
    }
    if set.weight(&seen) < set.quorum() {
        return Err(err("PREPAREs below quorum"));
    }
    if !crypto.verify_batch(&batch) {
        return Err(err("bad PREPARE signature"));
    }
    Ok(())
}

/// A ROUND-CHANGE as received: signed by a member, and if it claims a prepared value,
/// carrying that value's block and a PREPARE quorum for it in an earlier round.
pub fn verify_round_change(
    crypto: &dyn Crypto,
    chain_id: u64,
    set: &ValidatorSet,
    rc: &RoundChange,
) -> Result<(), ConsensusError> {
    let b = &rc.signed.body;
    let v = set
        .get(rc.signed.signer)
        .ok_or_else(|| err("ROUND-CHANGE from a non-validator"))?;
    if !crypto.verify(
        &v.key,
        &payload(chain_id, Kind::RoundChange, b),
        &rc.signed.sig,
    ) {
        return Err(err("bad ROUND-CHANGE signature"));
    }
    match b.prepared {
        None => {
            if rc.prepared_block.is_some() || !rc.prepares.is_empty() {
                return Err(err("unprepared ROUND-CHANGE carries a certificate"));
            }
        }
        Some((pr, pd)) => {
            if pr >= b.round {
                return Err(err("prepared round is not below the ROUND-CHANGE round"));
            }
            if rc.prepared_block.is_none() {
                return Err(err("prepared ROUND-CHANGE without its block"));
            }
            verify_prepares(
                crypto,
                chain_id,
                set,
                Vote {
                    height: b.height,
                    round: pr,
                    digest: pd,
                },
                &rc.prepares,
            )?;
        }
    }
    Ok(())
}

/// The justification of a proposal for `digest` at (height, round > 0).
pub fn verify_justification(
    crypto: &dyn Crypto,
    chain_id: u64,
    set: &ValidatorSet,
    height: Height,
    round: Round,
    digest: B256,
    j: &Justification,
) -> Result<(), ConsensusError> {
    if j.round_changes.len() > set.len() {
        return Err(err("more ROUND-CHANGEs than validators"));
    }
    let mut seen = BTreeSet::new();
    let mut batch = Vec::with_capacity(j.round_changes.len());
    let mut highest: Option<(Round, B256)> = None;
    for rc in &j.round_changes {
        let b = &rc.body;
        if b.height != height || b.round != round {
            return Err(err("ROUND-CHANGE for another height or round"));
        }
        let v = set
            .get(rc.signer)
            .ok_or_else(|| err("ROUND-CHANGE from a non-validator"))?;
        if !seen.insert(rc.signer) {
            return Err(err("duplicate ROUND-CHANGE signer"));
        }
        if let Some((pr, pd)) = b.prepared {
            if pr >= round {
                return Err(err("prepared round is not below the proposal round"));
            }
            if highest.is_none_or(|(hr, _)| pr > hr) {
                highest = Some((pr, pd));
            }
        }
        batch.push((v.key, payload(chain_id, Kind::RoundChange, b), rc.sig));
    }
    if set.weight(&seen) < set.quorum() {
        return Err(err("ROUND-CHANGEs below quorum"));
    }
    match highest {
        None => {
            if !j.prepares.is_empty() {
                return Err(err("PREPAREs without a prepared ROUND-CHANGE"));
            }
        }
        Some((pr, pd)) => {
            if pd != digest {
                return Err(err("proposal is not the highest prepared value"));
            }
            verify_prepares(
                crypto,
                chain_id,
                set,
                Vote {
                    height,
                    round: pr,
                    digest: pd,
                },
                &j.prepares,
            )?;
        }
    }
    if !crypto.verify_batch(&batch) {
        return Err(err("bad ROUND-CHANGE signature"));
    }
    Ok(())
}

/// Checks on its own that a block is final: seals from distinct members holding more
/// than 2/3 of the power, each over (height, certificate round, digest).
pub fn verify_certificate(
    crypto: &dyn Crypto,
    chain_id: u64,
    set: &ValidatorSet,
    height: Height,
    digest: B256,
    cert: &CommitCertificate,
) -> Result<(), ConsensusError> {
    if cert.seals.len() > set.len() {
        return Err(err("more seals than validators"));
    }
    let vote = Vote {
        height,
        round: cert.round,
        digest,
    };
    let p = payload(chain_id, Kind::Seal, &vote);
    let mut seen = BTreeSet::new();
    let mut batch = Vec::with_capacity(cert.seals.len());
    for (who, sig) in &cert.seals {
        let v = set
            .get(*who)
            .ok_or_else(|| err("seal from a non-validator"))?;
        if !seen.insert(*who) {
            return Err(err("duplicate seal"));
        }
        batch.push((v.key, p.clone(), *sig));
    }
    if set.weight(&seen) < set.quorum() {
        return Err(err("seals below quorum"));
    }
    if !crypto.verify_batch(&batch) {
        return Err(err("bad seal"));
    }
    Ok(())
}

/// Whether a wire message is signed by the member it names (for PROPOSALs, the
/// proposal signature; the justification is the core's to check). The network layer
/// uses it to forward only valid consensus gossip.
pub fn verify_message(
    crypto: &dyn Crypto,
    chain_id: u64,
    set: &ValidatorSet,
    m: &crate::Message,
) -> bool {
    use crate::Message;
    let signed_by = |who: crate::ValidatorIndex, payload: Vec<u8>, sig: &crate::Sig| {
        set.get(who)
            .is_some_and(|v| crypto.verify(&v.key, &payload, sig))
    };
    match m {
        Message::Proposal(p) => signed_by(
            p.signed.signer,
            payload(chain_id, Kind::Proposal, &p.signed.body),
            &p.signed.sig,
        ),
        Message::Prepare(v) => {
            signed_by(v.signer, payload(chain_id, Kind::Prepare, &v.body), &v.sig)
        }
        Message::Commit(c) => {
            signed_by(c.signer, payload(chain_id, Kind::Commit, &c.body), &c.sig)
                && signed_by(
                    c.signer,
                    payload(chain_id, Kind::Seal, &c.body.vote),
                    &c.body.seal,
                )
        }
        Message::RoundChange(rc) => verify_round_change(crypto, chain_id, set, rc).is_ok(),
    }
}
