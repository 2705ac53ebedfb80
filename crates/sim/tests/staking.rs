//! Validator sets that change at epoch boundaries, in the simulator: a candidate
//! elected at the next epoch starts proposing and sealing; a validator that leaves
//! stops; an equivocator is convicted by the evidence honest proposers put on chain
//! and leaves the set; blocks never stop across epoch changes, and safety is checked
//! at every commit as always. `EMC_SIM_SEED` replays one seed.

use emc_sim::{run, Behavior, Outcome, SimConfig, StakeOp, Staking};

fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("EMC_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(s) => vec![s],
        None => (1..=default).collect(),
    }
}

fn must_progress(cfg: SimConfig) -> Outcome {
    let seed = cfg.seed;
    let out = run(cfg.clone())
        .unwrap_or_else(|v| panic!("SAFETY VIOLATION, replay with EMC_SIM_SEED={seed}: {v:?}"));
    let h = out.min_honest_height(&cfg, &[]);
    assert!(
        h >= cfg.heights,
        "stalled with seed {seed} at {h} of {} ({:?})",
        cfg.heights,
        out.heights
    );
    // Every height, every epoch: no gap in the final chain.
    assert!((1..=cfg.heights).all(|k| out.sealed.contains_key(&k)));
    out
}

fn config(n: usize, seed: u64, genesis: Vec<usize>, ops: Vec<(u64, StakeOp)>) -> SimConfig {
    let mut cfg = SimConfig::new(n, seed);
    cfg.heights = 30;
    cfg.staking = Some(Staking {
        epoch_blocks: 5,
        genesis,
        ops,
        submit_evidence: true,
    });
    cfg
}

#[test]
fn a_candidate_is_elected_at_the_next_epoch_and_signs() {
    for seed in seeds(20) {
        let cfg = config(
            5,
            seed,
            vec![0, 1, 2, 3],
            vec![(2, StakeOp::Join { node: 4, power: 1 })],
        );
        let out = must_progress(cfg);
        for (h, s) in &out.sealed {
            // Joined in epoch 0 (blocks 1-5): a member from block 6 on, not before.
            assert_eq!(s.set.contains(&4), *h > 5, "seed {seed} height {h}: {s:?}");
        }
        let later: Vec<_> = out.sealed.range(6..).collect();
        assert!(
            later.iter().any(|(_, s)| s.proposer == 4),
            "seed {seed}: never proposed"
        );
        assert!(
            later.iter().any(|(_, s)| s.signers.contains(&4)),
            "seed {seed}: never sealed"
        );
    }
}

#[test]
fn a_validator_that_leaves_stops_sealing_and_blocks_go_on() {
    for seed in seeds(20) {
        let cfg = config(
            5,
            seed,
            vec![0, 1, 2, 3, 4],
            vec![(7, StakeOp::Leave { node: 1 })],
        );
        let out = must_progress(cfg);
        for (h, s) in out.sealed.range(11..) {
            assert!(
                !s.set.contains(&1) && !s.signers.contains(&1) && s.proposer != 1,
                "seed {seed} height {h}: {s:?}"
            );
        }
        assert!(out.sealed[&3].set.contains(&1));
    }
}

#[test]
fn an_equivocator_is_convicted_by_on_chain_evidence_and_leaves_the_set() {
    for seed in seeds(20) {
        let mut cfg = config(5, seed, vec![0, 1, 2, 3, 4], vec![]);
        cfg.byzantine = vec![(2, Behavior::DoublePrepare)];
        let out = must_progress(cfg);
        assert!(
            out.equivocations_reported > 0,
            "seed {seed}: nobody noticed"
        );
        let last = out.sealed.values().last().expect("blocks");
        assert!(
            !last.set.contains(&2),
            "seed {seed}: still a member: {last:?}"
        );
        assert!(out.sealed[&1].set.contains(&2));
    }
}

#[test]
fn churn_every_epoch_never_stalls() {
    for seed in seeds(30) {
        // Seven nodes, four at genesis; each epoch someone joins or leaves, and the set
        // never drops below four.
        let ops = vec![
            (1, StakeOp::Join { node: 4, power: 2 }),
            (6, StakeOp::Join { node: 5, power: 1 }),
            (11, StakeOp::Leave { node: 0 }),
            (16, StakeOp::Join { node: 6, power: 3 }),
            (21, StakeOp::Leave { node: 4 }),
            (26, StakeOp::Join { node: 0, power: 1 }),
        ];
        let mut cfg = config(7, seed, vec![0, 1, 2, 3], ops);
        cfg.heights = 40;
        cfg.jitter_ms = seed % 40;
        let out = must_progress(cfg);
        let last = out.sealed.values().last().expect("blocks");
        assert_eq!(last.set, vec![0, 1, 2, 3, 5, 6], "seed {seed}");
    }
}
