//! Whole-protocol suites: safety is checked at every commit inside the simulator;
//! these tests add liveness (progress once more than 2/3 of the power can talk) and
//! the stalls that must happen when it cannot.
//!
//! The default run covers a few hundred runs. The long sweep runs 8,300:
//! `cargo test -p emc-sim --release --test suites -- --ignored --nocapture`.
//! `EMC_SIM_SEEDS=N` sets the seeds per test of the default run.
//! A failing run prints its seed; replay one with `EMC_SIM_SEED=<seed>`.

use emc_sim::{run, Behavior, CryptoKind, Fault, Outcome, SimConfig};
use rand::{seq::SliceRandom, Rng, SeedableRng};

const BEHAVIORS: [Behavior; 9] = [
    Behavior::Silent,
    Behavior::DropHalf,
    Behavior::EquivocatingProposer,
    Behavior::InvalidProposal,
    Behavior::BadJustification,
    Behavior::WrongDigestPrepare,
    Behavior::WrongDigestCommit,
    Behavior::RoundChangeSpammer,
    Behavior::Replayer,
];

fn seeds(default: u64) -> Vec<u64> {
    if let Some(s) = std::env::var("EMC_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return vec![s];
    }
    let n = std::env::var("EMC_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    (1..=n).collect()
}

/// Runs and asserts safety and that every live honest node reached the target.
fn must_progress(cfg: SimConfig, down: &[usize]) -> Outcome {
    let seed = cfg.seed;
    let out = run(cfg.clone())
        .unwrap_or_else(|v| panic!("SAFETY VIOLATION, replay with EMC_SIM_SEED={seed}: {v:?}"));
    let h = out.min_honest_height(&cfg, down);
    assert!(
        h >= cfg.heights,
        "no liveness with seed {seed} (replay with EMC_SIM_SEED={seed}): honest nodes reached {h} of {} by {} ms; heights {:?}",
        cfg.heights,
        out.time_ms,
        out.heights
    );
    out
}

fn byzantine_config(n: usize, seed: u64, behaviors: &[Behavior]) -> SimConfig {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0xb12);
    let f = (n - 1) / 3;
    let mut ids: Vec<usize> = (0..n).collect();
    ids.shuffle(&mut rng);
    let mut cfg = SimConfig::new(n, seed);
    cfg.heights = 3;
    cfg.jitter_ms = rng.gen_range(0..40);
    cfg.byzantine = ids[..f]
        .iter()
        .enumerate()
        .map(|(k, i)| (*i, behaviors[k % behaviors.len()]))
        .collect();
    cfg
}

#[test]
fn same_seed_same_trace_and_different_seeds_differ() {
    let mut cfg = byzantine_config(7, 42, &[Behavior::EquivocatingProposer, Behavior::Replayer]);
    cfg.loss = 0.05;
    let a = run(cfg.clone()).expect("safe");
    let b = run(cfg.clone()).expect("safe");
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.heights, b.heights);
    cfg.seed = 43;
    assert_ne!(run(cfg).expect("safe").trace_hash, a.trace_hash);
}

fn sweep(n: usize, default_seeds: u64) {
    for seed in seeds(default_seeds) {
        for (k, b) in BEHAVIORS.iter().enumerate() {
            must_progress(byzantine_config(n, seed * 16 + k as u64, &[*b]), &[]);
        }
        // f byzantine nodes of mixed kinds at once.
        must_progress(byzantine_config(n, seed * 16 + 15, &BEHAVIORS), &[]);
    }
}

#[test]
fn n4_with_one_byzantine_of_every_kind() {
    sweep(4, 16);
}

#[test]
fn n7_with_two_byzantine_of_every_kind() {
    sweep(7, 6);
}

#[test]
fn n10_with_three_byzantine_of_every_kind() {
    sweep(10, 2);
}

#[test]
fn n31_with_ten_byzantine_of_every_kind() {
    sweep(31, 1);
}

#[test]
fn lossy_links_and_jitter_still_progress() {
    for seed in seeds(20) {
        let mut cfg = byzantine_config(7, seed, &[Behavior::DropHalf]);
        cfg.loss = 0.2;
        cfg.jitter_ms = 100;
        must_progress(cfg, &[]);
    }
}

#[test]
fn f_plus_one_silent_stalls_without_forking_then_recovers() {
    for seed in seeds(10) {
        let n = 7;
        let mut cfg = SimConfig::new(n, seed);
        cfg.heights = 3;
        // f + 1 = 3 crash at once after the chain has started, and return at 20 s.
        let down = [1, 3, 5];
        for node in down {
            cfg.faults.push(Fault::Crash { node, at_ms: 150 });
            cfg.faults.push(Fault::Restart {
                node,
                at_ms: 20_000,
            });
        }
        let mut stalled = cfg.clone();
        stalled.max_time_ms = 19_000;
        let out = run(stalled).unwrap_or_else(|v| panic!("safety, seed {seed}: {v:?}"));
        let during = *out.heights.iter().max().expect("nodes");
        let mut later = cfg.clone();
        later.heights = during + 3;
        let after = must_progress(later, &[]);
        assert!(
            after.min_honest_height(&cfg, &[]) >= during + 3,
            "seed {seed}: no recovery after the silent nodes returned"
        );
        // While they were away the live ones could not have gone more than one height
        // past where they were at the crash (at most the height in flight).
        assert!(
            during <= 2,
            "seed {seed}: progress without a quorum: {:?}",
            out.heights
        );
    }
}

#[test]
fn everyone_partitioned_then_healed() {
    for seed in seeds(10) {
        let n = 4;
        let mut cfg = SimConfig::new(n, seed);
        cfg.heights = 4;
        cfg.faults.push(Fault::Partition {
            groups: (0..n).map(|i| vec![i]).collect(),
            at_ms: 60,
        });
        cfg.faults.push(Fault::Heal { at_ms: 10_000 });
        must_progress(cfg, &[]);
    }
}

#[test]
fn two_two_partition_stalls_and_heals() {
    for seed in seeds(10) {
        let mut cfg = SimConfig::new(4, seed);
        cfg.faults.push(Fault::Partition {
            groups: vec![vec![0, 1], vec![2, 3]],
            at_ms: 0,
        });
        cfg.faults.push(Fault::Heal { at_ms: 15_000 });
        let mut stalled = cfg.clone();
        stalled.max_time_ms = 14_000;
        let out = run(stalled).expect("safe");
        assert!(
            out.heights.iter().all(|h| *h == 0),
            "seed {seed}: a 2|2 split made progress: {:?}",
            out.heights
        );
        must_progress(cfg, &[]);
    }
}

#[test]
fn crash_and_restart_any_validator_at_any_step() {
    for seed in seeds(60) {
        crash_schedule(seed);
    }
}

fn crash_schedule(seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = [4, 7][rng.gen_range(0..2)];
    let mut cfg = SimConfig::new(n, seed);
    cfg.heights = 4;
    cfg.jitter_ms = rng.gen_range(0..30);
    let f = (n - 1) / 3;
    // Up to 2f crash events at any instant, each back after a while; a validator may
    // crash twice, and up to f may be down at once.
    for _ in 0..rng.gen_range(1..=2 * f) {
        let node = rng.gen_range(0..n);
        let at = rng.gen_range(0..1_500);
        cfg.faults.push(Fault::Crash { node, at_ms: at });
        cfg.faults.push(Fault::Restart {
            node,
            at_ms: at + rng.gen_range(1..3_000),
        });
    }
    must_progress(cfg, &[]);
}

#[test]
fn stake_weighted_quorum_with_one_validator_at_40_percent() {
    let powers = vec![40, 20, 20, 20];
    for seed in seeds(10) {
        // The big validator down: 60% remains, three of four nodes, and that is not a
        // quorum (counting nodes as "2F+1" would wrongly proceed).
        let mut cfg = SimConfig::new(4, seed);
        cfg.powers = Some(powers.clone());
        cfg.max_time_ms = 15_000;
        cfg.faults.push(Fault::Crash { node: 0, at_ms: 0 });
        let out = run(cfg).expect("safe");
        assert!(
            out.heights[1..].iter().all(|h| *h == 0),
            "seed {seed}: 60% made progress: {:?}",
            out.heights
        );

        // One small validator down (80% remains): progress, with the big one proposing
        // in its turn.
        let mut cfg = SimConfig::new(4, seed);
        cfg.powers = Some(powers.clone());
        cfg.byzantine = vec![(3, Behavior::Silent)];
        must_progress(cfg, &[]);
    }
}

#[test]
fn real_ed25519_signatures_end_to_end() {
    for n in [4, 7] {
        let mut cfg = byzantine_config(n, 9, &[Behavior::WrongDigestCommit]);
        cfg.crypto = CryptoKind::Ed25519;
        must_progress(cfg, &[]);
    }
}

#[test]
#[ignore = "long sweep: cargo test -p emc-sim --release --test suites -- --ignored"]
fn long_sweep() {
    // 10 configurations per seed: 4,000 + 2,000 + 1,000 + 300 runs with byzantine
    // nodes, plus 1,000 crash/restart schedules.
    for (n, count) in [(4, 400u64), (7, 200), (10, 100), (31, 30)] {
        for seed in 1_000..1_000 + count {
            for (k, b) in BEHAVIORS.iter().enumerate() {
                must_progress(byzantine_config(n, seed * 16 + k as u64, &[*b]), &[]);
            }
            must_progress(byzantine_config(n, seed * 16 + 15, &BEHAVIORS), &[]);
        }
        println!("n = {n}: {count} seeds x 10 configurations safe and live");
    }
    for seed in 10_000..11_000 {
        crash_schedule(seed);
    }
    println!("1000 crash/restart schedules safe and live");
}
