//! `emc poc run`: measure this machine with the standard proof-of-computing task, as
//! a validator would: prove, commit, open sampled segments, verify, and print E.

use anyhow::Result;
use emc_protocol::poc::{self, Behaviour, PocParams};
use std::time::Instant;

#[derive(clap::Subcommand)]
pub enum PocCmd {
    /// Run the standard task here and print the time, E and the cost of checking it.
    Run {
        /// Threads to prove with [default: the number of CPUs].
        #[arg(long)]
        threads: Option<usize>,
        /// Runs, to show E's run-to-run spread.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = PocParams::default().lanes)]
        lanes: u32,
        #[arg(long, default_value_t = PocParams::default().segments)]
        segments: u32,
        #[arg(long, default_value_t = PocParams::default().seg_steps)]
        seg_steps: u32,
        #[arg(long, default_value_t = PocParams::default().samples)]
        samples: u32,
    },
}

pub fn run(c: PocCmd) -> Result<()> {
    let PocCmd::Run {
        threads,
        runs,
        lanes,
        segments,
        seg_steps,
        samples,
    } = c;
    let params = PocParams {
        lanes,
        segments,
        seg_steps,
        samples,
    };
    params.check()?;
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    println!(
        "PoC task: {lanes} lanes x {segments} segments x {seg_steps} SHA-256 steps = {} steps; {samples} samples + {lanes} results checked",
        params.total_steps()
    );
    println!(
        "{:>4} {:>10} {:>12} {:>10} {:>10}",
        "run", "prove ms", "E (steps/ms)", "verify ms", "verify %"
    );
    let mut scores = Vec::new();
    for r in 0..runs.max(1) {
        let seed = alloy_primitives::B256::from(rand_seed(r));
        let t = Instant::now();
        let proof = poc::prove(seed, params, threads, Behaviour::Honest)?;
        let wall = t.elapsed();
        let asked = poc::sample(&params, alloy_primitives::keccak256(seed));
        let openings = proof.open(&asked)?;
        let t = Instant::now();
        poc::verify(seed, &params, proof.root(), &asked, &openings)?;
        let check = t.elapsed();
        let e = poc::score(&params, wall);
        scores.push(e as f64);
        println!(
            "{:>4} {:>10.1} {:>12} {:>10.2} {:>9.2}%",
            r + 1,
            wall.as_secs_f64() * 1e3,
            e,
            check.as_secs_f64() * 1e3,
            100.0 * check.as_secs_f64() / wall.as_secs_f64()
        );
    }
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    let sd = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / scores.len() as f64).sqrt();
    println!(
        "E on {threads} threads: mean {mean:.0} steps/ms, spread (sd/mean) {:.1}%; a prover skipping 10% of segments is caught with p = {:.4}",
        100.0 * sd / mean.max(1.0),
        params.detection_probability(0.10)
    );
    Ok(())
}

fn rand_seed(r: usize) -> [u8; 32] {
    let mut s: [u8; 32] = std::array::from_fn(|i| (i * 7 + r * 31) as u8);
    s[0] ^= std::process::id() as u8;
    s
}
