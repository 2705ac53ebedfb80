//! Table tests: one rule (or one regression go-ibft hit) per test, driving a single
//! core with hand-made messages from the other validators.

use super::*;
use crate::{
    crypto::insecure::{MacCrypto, Registry},
    justify::{verify_certificate, verify_justification, verify_round_change},
    Input, Output, Prepared,
};

const CHAIN: u64 = 7;
const H: Height = Height(5);
const R0: Round = Round(0);
const R1: Round = Round(1);
const R2: Round = Round(2);

struct T {
    keys: Vec<MacCrypto>,
    set: ValidatorSet,
}

fn d(x: u8) -> B256 {
    B256::repeat_byte(x)
}

fn blk(x: u8) -> Bytes {
    Bytes::from(vec![x; 8])
}

impl T {
    fn new(n: usize) -> T {
        Self::weighted(&vec![1; n])
    }

    fn weighted(powers: &[u64]) -> T {
        let (_, keys) = Registry::new(1, powers.len());
        let set = ValidatorSet::new(
            keys.iter()
                .zip(powers)
                .map(|(k, p)| crate::Validator {
                    key: k.public_key(),
                    power: *p,
                })
                .collect(),
        )
        .unwrap();
        T { keys, set }
    }

    /// A started core for validator `me` at height H; previous proposer = last index,
    /// so proposer(r) = r mod n.
    fn core(&self, me: usize) -> (Core, Vec<Output>) {
        let mut c = Core::new(
            Config {
                chain_id: CHAIN,
                ..Config::default()
            },
            Box::new(self.keys[me].clone()),
        );
        let prev = Some(ValidatorIndex(self.set.len() as u32 - 1));
        let out = c.handle(Input::Start {
            height: H,
            set: self.set.clone(),
            prev_proposer: prev,
            restore: None,
        });
        (c, out)
    }

    fn sig<B: borsh::BorshSerialize>(&self, k: usize, kind: Kind, body: &B) -> crate::Sig {
        self.keys[k].sign(&payload(CHAIN, kind, body))
    }

    fn vote(&self, k: usize, kind: Kind, h: Height, r: Round, dg: B256) -> Signed<Vote> {
        let body = Vote {
            height: h,
            round: r,
            digest: dg,
        };
        Signed {
            body,
            signer: ValidatorIndex(k as u32),
            sig: self.sig(k, kind, &body),
        }
    }

    fn prepare(&self, k: usize, r: Round, dg: B256) -> Message {
        Message::Prepare(self.vote(k, Kind::Prepare, H, r, dg))
    }

    fn commit(&self, k: usize, r: Round, dg: B256) -> Message {
        let vote = Vote {
            height: H,
            round: r,
            digest: dg,
        };
        let body = CommitBody {
            vote,
            seal: self.sig(k, Kind::Seal, &vote),
        };
        Message::Commit(Signed {
            body,
            signer: ValidatorIndex(k as u32),
            sig: self.sig(k, Kind::Commit, &body),
        })
    }

    fn proposal(&self, k: usize, r: Round, x: u8, j: Justification) -> Message {
        Message::Proposal(Proposal {
            signed: self.vote(k, Kind::Proposal, H, r, d(x)),
            block: blk(x),
            justification: j,
        })
    }

    fn round_change(
        &self,
        k: usize,
        r: Round,
        prepared: Option<(Round, u8, &[usize])>,
    ) -> RoundChange {
        let body = RoundChangeBody {
            height: H,
            round: r,
            prepared: prepared.map(|(pr, x, _)| (pr, d(x))),
        };
        RoundChange {
            signed: Signed {
                body,
                signer: ValidatorIndex(k as u32),
                sig: self.sig(k, Kind::RoundChange, &body),
            },
            prepared_block: prepared.map(|(_, x, _)| blk(x)),
            prepares: prepared
                .map(|(pr, x, who)| {
                    who.iter()
                        .map(|w| self.vote(*w, Kind::Prepare, H, pr, d(x)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

fn msg(c: &mut Core, m: Message) -> Vec<Output> {
    c.handle(Input::Message(m))
}

fn broadcasts(out: &[Output]) -> Vec<&Message> {
    out.iter()
        .filter_map(|o| {
            if let Output::Broadcast(m) = o {
                Some(m)
            } else {
                None
            }
        })
        .collect()
}

fn has_prepare(out: &[Output], r: Round, dg: B256) -> bool {
    broadcasts(out)
        .iter()
        .any(|m| matches!(m, Message::Prepare(v) if v.body.round == r && v.body.digest == dg))
}

fn has_commit(out: &[Output]) -> bool {
    broadcasts(out)
        .iter()
        .any(|m| matches!(m, Message::Commit(_)))
}

fn committed(out: &[Output]) -> Option<&Finalized> {
    out.iter().find_map(|o| {
        if let Output::Commit(f) = o {
            Some(f)
        } else {
            None
        }
    })
}

/// Accepts proposal x at round r on core `c` (proposer r mod n).
fn accept(t: &T, c: &mut Core, r: Round, x: u8, j: Justification) -> Vec<Output> {
    let out = msg(c, t.proposal(r.0 as usize % t.set.len(), r, x, j));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::ValidateBlock { .. })),
        "{out:?}"
    );
    c.handle(Input::BlockValidated {
        height: H,
        round: r,
        digest: d(x),
        valid: true,
    })
}

#[test]
fn round_zero_proposer_asks_for_a_block_and_others_wait() {
    let t = T::new(4);
    let (_, out) = t.core(0);
    assert!(out.contains(&Output::RequestBlock {
        height: H,
        round: R0
    }));
    assert!(out.contains(&Output::ScheduleTimeout {
        height: H,
        round: R0,
        after_ms: 1_000
    }));
    let (_, out) = t.core(1);
    assert!(!out.iter().any(|o| matches!(o, Output::RequestBlock { .. })));
}

#[test]
fn proposer_proposes_what_the_chain_built_and_prepares_it() {
    let t = T::new(4);
    let (mut c, _) = t.core(0);
    let out = c.handle(Input::BlockBuilt {
        height: H,
        round: R0,
        digest: d(1),
        block: blk(1),
    });
    assert!(matches!(broadcasts(&out)[0], Message::Proposal(p) if p.signed.body.digest == d(1)));
    assert!(has_prepare(&out, R0, d(1)));
    // Persist precedes every broadcast of something newly signed.
    let first_persist = out
        .iter()
        .position(|o| matches!(o, Output::Persist(_)))
        .unwrap();
    let first_broadcast = out
        .iter()
        .position(|o| matches!(o, Output::Broadcast(_)))
        .unwrap();
    assert!(first_persist < first_broadcast);
}

#[test]
fn proposals_from_the_wrong_sender_or_badly_signed_are_dropped() {
    let t = T::new(4);
    let (mut c, _) = t.core(2);
    // Validator 1 is not the proposer of round 0.
    assert!(msg(&mut c, t.proposal(1, R0, 1, Justification::default())).is_empty());
    // A signature by the right proposer over another digest.
    let Message::Proposal(mut p) = t.proposal(0, R0, 1, Justification::default()) else {
        unreachable!()
    };
    p.signed.body.digest = d(2);
    assert!(msg(&mut c, Message::Proposal(p)).is_empty());
    // A signer index outside the set.
    let mut v = t.vote(0, Kind::Prepare, H, R0, d(1));
    v.signer = ValidatorIndex(9);
    assert!(msg(&mut c, Message::Prepare(v)).is_empty());
}

#[test]
fn valid_proposal_is_validated_then_prepared_and_invalid_is_not() {
    let t = T::new(4);
    let (mut c, _) = t.core(1);
    let out = accept(&t, &mut c, R0, 1, Justification::default());
    assert!(has_prepare(&out, R0, d(1)));
    let (mut c, _) = t.core(1);
    msg(&mut c, t.proposal(0, R0, 1, Justification::default()));
    let out = c.handle(Input::BlockValidated {
        height: H,
        round: R0,
        digest: d(1),
        valid: false,
    });
    assert!(out.is_empty());
}

#[test]
fn prepare_quorum_commits_and_commit_quorum_finalizes_with_a_checkable_certificate() {
    let t = T::new(4);
    let (mut c, _) = t.core(1);
    accept(&t, &mut c, R0, 1, Justification::default());
    assert!(
        !has_commit(&msg(&mut c, t.prepare(0, R0, d(1)))),
        "2 of 4 is not a quorum"
    );
    let out = msg(&mut c, t.prepare(2, R0, d(1)));
    assert!(has_commit(&out), "3 of 4 prepares");
    assert!(committed(&msg(&mut c, t.commit(0, R0, d(1)))).is_none());
    let out = msg(&mut c, t.commit(2, R0, d(1)));
    let fin = committed(&out).expect("final");
    assert_eq!(
        (fin.height, fin.digest, fin.block.clone()),
        (H, d(1), blk(1))
    );
    verify_certificate(&t.keys[3], CHAIN, &t.set, H, d(1), &fin.certificate)
        .expect("certificate verifies");
    // Another digest, a height or an under-quorum certificate do not.
    assert!(verify_certificate(&t.keys[3], CHAIN, &t.set, H, d(2), &fin.certificate).is_err());
    assert!(
        verify_certificate(&t.keys[3], CHAIN, &t.set, Height(6), d(1), &fin.certificate).is_err()
    );
    let mut short = fin.certificate.clone();
    short.seals.truncate(2);
    assert!(verify_certificate(&t.keys[3], CHAIN, &t.set, H, d(1), &short).is_err());
    let mut dup = fin.certificate.clone();
    dup.seals[1] = dup.seals[0];
    assert!(verify_certificate(&t.keys[3], CHAIN, &t.set, H, d(1), &dup).is_err());
}

#[test]
fn prepares_for_another_digest_never_add_up() {
    let t = T::new(4);
    let (mut c, _) = t.core(1);
    accept(&t, &mut c, R0, 1, Justification::default());
    msg(&mut c, t.prepare(0, R0, d(9)));
    assert!(!has_commit(&msg(&mut c, t.prepare(2, R0, d(9)))));
}

#[test]
fn quorum_is_weighted_by_stake() {
    // Validator 0 holds 40%; the node itself (1) and 2 hold 20% each: 80% prepared.
    let t = T::weighted(&[40, 20, 20, 20]);
    let (mut c, _) = t.core(1);
    accept(&t, &mut c, R0, 1, Justification::default());
    assert!(
        !has_commit(&msg(&mut c, t.prepare(2, R0, d(1)))),
        "40% + nothing from 0 yet"
    );
    assert!(has_commit(&msg(&mut c, t.prepare(0, R0, d(1)))));
    // Three small validators (60%) never make a quorum, though they are 3 of 4 nodes.
    let (mut c, _) = t.core(1);
    accept(&t, &mut c, R0, 1, Justification::default());
    msg(&mut c, t.prepare(2, R0, d(1)));
    assert!(!has_commit(&msg(&mut c, t.prepare(3, R0, d(1)))));
}

#[test]
fn timeout_sends_round_change_with_the_prepared_certificate_and_doubles_the_timer() {
    let t = T::new(4);
    let (mut c, _) = t.core(1);
    accept(&t, &mut c, R0, 1, Justification::default());
    msg(&mut c, t.prepare(0, R0, d(1)));
    msg(&mut c, t.prepare(2, R0, d(1)));
    let out = c.handle(Input::Timeout {
        height: H,
        round: R0,
    });
    assert!(out.contains(&Output::ScheduleTimeout {
        height: H,
        round: R1,
        after_ms: 2_000
    }));
    let rc = broadcasts(&out)
        .into_iter()
        .find_map(|m| {
            if let Message::RoundChange(rc) = m {
                Some(rc.clone())
            } else {
                None
            }
        })
        .expect("round change");
    assert_eq!(rc.signed.body.round, R1);
    assert_eq!(rc.signed.body.prepared, Some((R0, d(1))));
    assert_eq!(rc.prepared_block, Some(blk(1)));
    verify_round_change(&t.keys[0], CHAIN, &t.set, &rc).expect("its certificate checks");
    // A stale timer changes nothing.
    assert!(c
        .handle(Input::Timeout {
            height: H,
            round: R0
        })
        .is_empty());
}

#[test]
fn regression_finalization_racing_the_round_timer() {
    // go-ibft halted when the round timer fired as the block was being finalized.
    let t = T::new(4);
    let (mut c, _) = t.core(1);
    accept(&t, &mut c, R0, 1, Justification::default());
    msg(&mut c, t.prepare(0, R0, d(1)));
    msg(&mut c, t.prepare(2, R0, d(1)));
    msg(&mut c, t.commit(0, R0, d(1)));
    assert!(committed(&msg(&mut c, t.commit(2, R0, d(1)))).is_some());
    assert!(
        c.handle(Input::Timeout {
            height: H,
            round: R0
        })
        .is_empty(),
        "no round change after commit"
    );
    // And a commit quorum still finalizes a node that has already moved to round 1.
    let (mut c, _) = t.core(1);
    accept(&t, &mut c, R0, 1, Justification::default());
    let _ = c.handle(Input::Timeout {
        height: H,
        round: R0,
    });
    for k in [0, 2, 3] {
        let out = msg(&mut c, t.commit(k, R0, d(1)));
        if k == 3 {
            assert!(
                committed(&out).is_some(),
                "late commit quorum of round 0 finalizes in round 1"
            );
        }
    }
}

#[test]
fn regression_future_messages_are_kept_not_dropped() {
    let t = T::new(4);
    let mut c = Core::new(
        Config {
            chain_id: CHAIN,
            ..Config::default()
        },
        Box::new(t.keys[1].clone()),
    );
    let prev = Some(ValidatorIndex(3));
    let _ = c.handle(Input::Start {
        height: Height(4),
        set: t.set.clone(),
        prev_proposer: prev,
        restore: None,
    });
    // Height 5 messages arrive while the node is still at height 4.
    assert!(msg(&mut c, t.proposal(0, R0, 1, Justification::default())).is_empty());
    msg(&mut c, t.prepare(0, R0, d(1)));
    msg(&mut c, t.prepare(2, R0, d(1)));
    let out = c.handle(Input::Start {
        height: H,
        set: t.set.clone(),
        prev_proposer: prev,
        restore: None,
    });
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::ValidateBlock { digest, .. } if *digest == d(1))));
    let out = c.handle(Input::BlockValidated {
        height: H,
        round: R0,
        digest: d(1),
        valid: true,
    });
    assert!(
        has_commit(&out),
        "buffered prepares count once the proposal is accepted"
    );
    // Too far ahead is dropped (bounded memory).
    let far = Message::Prepare(t.vote(0, Kind::Prepare, Height(500), R0, d(1)));
    let _ = msg(&mut c, far);
    assert!(c
        .future
        .values()
        .all(|v| v.iter().all(|m| m.height().0 < 500)));
}

/// A justification for round 2 where validators prepared A in round 0 and B in round 1.
fn two_prepared_rounds(t: &T) -> Vec<RoundChange> {
    vec![
        t.round_change(0, R2, Some((R0, 0xA, &[0, 1, 2]))),
        t.round_change(1, R2, Some((R1, 0xB, &[0, 1, 3]))),
        t.round_change(3, R2, None),
    ]
}

#[test]
fn regression_round_above_zero_reproposes_the_highest_prepared_value() {
    // go-ibft once picked the wrong previous-round block: the proposer of round 2 must
    // re-propose B (prepared in round 1), not A (round 0) nor a new block.
    let t = T::new(4);
    let (mut c, _) = t.core(2); // proposer of round 2
    let _ = c.handle(Input::Timeout {
        height: H,
        round: R0,
    });
    let _ = c.handle(Input::Timeout {
        height: H,
        round: R1,
    });
    let mut proposal = None;
    for rc in two_prepared_rounds(&t) {
        for m in broadcasts(&msg(&mut c, Message::RoundChange(rc))) {
            if let Message::Proposal(p) = m {
                proposal = Some(p.clone());
            }
        }
    }
    let p = proposal.expect("a quorum of round changes makes the proposer propose");
    assert_eq!(p.signed.body.round, R2);
    assert_eq!(p.signed.body.digest, d(0xB));
    assert_eq!(p.block, blk(0xB));
    verify_justification(&t.keys[0], CHAIN, &t.set, H, R2, d(0xB), &p.justification)
        .expect("justified");
    // The same justification cannot carry A, nor a fresh value.
    assert!(
        verify_justification(&t.keys[0], CHAIN, &t.set, H, R2, d(0xA), &p.justification).is_err()
    );
    assert!(
        verify_justification(&t.keys[0], CHAIN, &t.set, H, R2, d(0xC), &p.justification).is_err()
    );
}

#[test]
fn regression_the_round_is_bound_into_prepared_certificates() {
    let t = T::new(4);
    // Claims "prepared in round 1" but carries PREPAREs signed for round 0.
    let mut rc = t.round_change(0, R2, Some((R1, 0xB, &[0, 1, 2])));
    rc.prepares = [0, 1, 2]
        .iter()
        .map(|k| t.vote(*k, Kind::Prepare, H, R0, d(0xB)))
        .collect();
    assert!(verify_round_change(&t.keys[3], CHAIN, &t.set, &rc).is_err());
    // Prepared round not below the round-change round.
    let rc = t.round_change(0, R1, Some((R1, 0xB, &[0, 1, 2])));
    assert!(verify_round_change(&t.keys[3], CHAIN, &t.set, &rc).is_err());
    // Under quorum, duplicate signers, a non-member.
    let rc = t.round_change(0, R2, Some((R1, 0xB, &[0, 1])));
    assert!(verify_round_change(&t.keys[3], CHAIN, &t.set, &rc).is_err());
    let rc = t.round_change(0, R2, Some((R1, 0xB, &[0, 1, 1])));
    assert!(verify_round_change(&t.keys[3], CHAIN, &t.set, &rc).is_err());
    let mut rc = t.round_change(0, R2, Some((R1, 0xB, &[0, 1, 2])));
    rc.prepares[2].signer = ValidatorIndex(7);
    assert!(verify_round_change(&t.keys[3], CHAIN, &t.set, &rc).is_err());
    // A prepared claim without its block.
    let mut rc = t.round_change(0, R2, Some((R1, 0xB, &[0, 1, 2])));
    rc.prepared_block = None;
    assert!(verify_round_change(&t.keys[3], CHAIN, &t.set, &rc).is_err());
}

#[test]
fn proposals_above_round_zero_need_a_justification() {
    let t = T::new(4);
    let (mut c, _) = t.core(3);
    // No justification.
    assert!(msg(&mut c, t.proposal(1, R1, 1, Justification::default())).is_empty());
    // Round changes below quorum.
    let rcs = vec![
        t.round_change(0, R1, None).signed,
        t.round_change(2, R1, None).signed,
    ];
    assert!(msg(
        &mut c,
        t.proposal(
            1,
            R1,
            1,
            Justification {
                round_changes: rcs,
                prepares: vec![]
            }
        )
    )
    .is_empty());
    // Round changes for another round.
    let rcs: Vec<_> = [0, 2, 3]
        .iter()
        .map(|k| t.round_change(*k, R2, None).signed)
        .collect();
    assert!(msg(
        &mut c,
        t.proposal(
            1,
            R1,
            1,
            Justification {
                round_changes: rcs,
                prepares: vec![]
            }
        )
    )
    .is_empty());
    // A proper quorum of unprepared round changes: any value, and the node moves to round 1.
    let rcs: Vec<_> = [0, 2, 3]
        .iter()
        .map(|k| t.round_change(*k, R1, None).signed)
        .collect();
    let out = accept(
        &t,
        &mut c,
        R1,
        1,
        Justification {
            round_changes: rcs,
            prepares: vec![],
        },
    );
    assert!(has_prepare(&out, R1, d(1)));
    assert_eq!(c.round(), R1);
}

#[test]
fn round_changes_from_more_than_a_third_of_the_power_make_a_node_jump() {
    let t = T::new(4);
    let (mut c, _) = t.core(1);
    let out = msg(
        &mut c,
        Message::RoundChange(t.round_change(0, Round(3), None)),
    );
    assert!(out.is_empty(), "one of four is not more than a third");
    let out = msg(
        &mut c,
        Message::RoundChange(t.round_change(2, Round(5), None)),
    );
    assert_eq!(c.round(), Round(3), "two of four (> 1/3) at rounds >= 3");
    assert!(broadcasts(&out)
        .iter()
        .any(|m| matches!(m, Message::RoundChange(rc) if rc.signed.body.round == Round(3))));
    // A single spammer far ahead cannot drag anyone.
    let (mut c, _) = t.core(1);
    for r in 1..50 {
        msg(
            &mut c,
            Message::RoundChange(t.round_change(0, Round(r * 10), None)),
        );
    }
    assert_eq!(c.round(), R0);
}

#[test]
fn the_wal_stops_a_restarted_validator_from_signing_twice() {
    let t = T::new(4);
    let (mut c, _) = t.core(1);
    let out = accept(&t, &mut c, R0, 1, Justification::default());
    let wal = out
        .iter()
        .rev()
        .find_map(|o| {
            if let Output::Persist(w) = o {
                Some(w.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert!(wal.signed.contains(&(R0, Kind::Prepare, d(1))));
    // Crash; restart from the WAL; an equivocating proposer now offers block 2.
    let mut c = Core::new(
        Config {
            chain_id: CHAIN,
            ..Config::default()
        },
        Box::new(t.keys[1].clone()),
    );
    let _ = c.handle(Input::Start {
        height: H,
        set: t.set.clone(),
        prev_proposer: Some(ValidatorIndex(3)),
        restore: Some(wal),
    });
    let out = accept(&t, &mut c, R0, 2, Justification::default());
    assert!(
        !has_prepare(&out, R0, d(2)),
        "never a second PREPARE at (h, r)"
    );
}

#[test]
fn a_restarted_validator_keeps_its_prepared_certificate() {
    let t = T::new(4);
    let (mut c, _) = t.core(1);
    accept(&t, &mut c, R0, 1, Justification::default());
    msg(&mut c, t.prepare(0, R0, d(1)));
    let out = msg(&mut c, t.prepare(2, R0, d(1)));
    let wal = out
        .iter()
        .rev()
        .find_map(|o| {
            if let Output::Persist(w) = o {
                Some(w.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(
        wal.prepared.as_ref().map(|p: &Prepared| p.digest),
        Some(d(1))
    );
    let mut c = Core::new(
        Config {
            chain_id: CHAIN,
            ..Config::default()
        },
        Box::new(t.keys[1].clone()),
    );
    let _ = c.handle(Input::Start {
        height: H,
        set: t.set.clone(),
        prev_proposer: Some(ValidatorIndex(3)),
        restore: Some(wal),
    });
    let out = c.handle(Input::Timeout {
        height: H,
        round: R0,
    });
    assert!(broadcasts(&out).iter().any(
        |m| matches!(m, Message::RoundChange(rc) if rc.signed.body.prepared == Some((R0, d(1))))
    ));
}

#[test]
fn equivocation_is_reported_once_and_the_second_value_refused() {
    let t = T::new(4);
    let (mut c, _) = t.core(1);
    msg(&mut c, t.proposal(0, R0, 1, Justification::default()));
    let out = msg(&mut c, t.proposal(0, R0, 2, Justification::default()));
    assert!(
        matches!(&out[..], [Output::Equivocation(e)] if e.first.body.digest == d(1) && e.second.body.digest == d(2))
    );
    assert!(msg(&mut c, t.proposal(0, R0, 3, Justification::default())).is_empty());
    let out = {
        msg(&mut c, t.prepare(2, R0, d(1)));
        msg(&mut c, t.prepare(2, R0, d(9)))
    };
    assert!(matches!(&out[..], [Output::Equivocation(e)] if e.kind == Kind::Prepare));
}

#[test]
fn messages_for_past_heights_and_far_rounds_are_dropped() {
    let t = T::new(4);
    let (mut c, _) = t.core(1);
    let old = Message::Prepare(t.vote(0, Kind::Prepare, Height(4), R0, d(1)));
    assert!(msg(&mut c, old).is_empty());
    let far = t.prepare(0, Round(1_000), d(1));
    assert!(msg(&mut c, far).is_empty());
    assert!(c.h.prepares.is_empty());
}

#[test]
fn a_follower_counts_and_commits_without_signing() {
    let t = T::new(4);
    // Key 4 of the same registry: it can check the validators' signatures, but is not one.
    let (_, all) = Registry::new(1, 5);
    let mut c = Core::new(
        Config {
            chain_id: CHAIN,
            ..Config::default()
        },
        Box::new(all[4].clone()),
    );
    let _ = c.handle(Input::Start {
        height: H,
        set: t.set.clone(),
        prev_proposer: Some(ValidatorIndex(3)),
        restore: None,
    });
    let out = accept(&t, &mut c, R0, 1, Justification::default());
    assert!(broadcasts(&out).is_empty());
    for k in 0..3 {
        msg(&mut c, t.prepare(k, R0, d(1)));
    }
    let mut fin = None;
    for k in 0..3 {
        fin = fin.or(committed(&msg(&mut c, t.commit(k, R0, d(1)))).cloned());
    }
    assert!(fin.is_some());
}

#[test]
fn wire_decoding_is_bounded_and_never_panics() {
    assert!(matches!(
        Message::decode(&vec![0u8; crate::messages::MAX_MESSAGE_BYTES + 1]),
        Err(crate::ConsensusError::Oversized(_))
    ));
    assert!(Message::decode(&[9, 9, 9]).is_err());
    let t = T::new(4);
    let m = t.prepare(0, R0, d(1));
    assert_eq!(Message::decode(&m.encode()).unwrap(), m);
}

proptest::proptest! {
    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        let _ = Message::decode(&bytes);
    }
}
