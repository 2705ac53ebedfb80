//! `emc bench consensus`: IBFT at n = 4, 16, 64 and 100 with real ed25519, in the
//! deterministic simulator (every message signed and verified; justifications
//! batch-verified). Links have a fixed latency L and no jitter, so finality can be read
//! in message delays: the good case must take 3 (PROPOSAL, PREPARE, COMMIT).

use anyhow::{bail, Result};
use emc_sim::{CryptoKind, Fault, SimConfig};
use std::time::Duration;

const L: u64 = 100;
const TIMEOUT: u64 = 10_000;

#[derive(clap::Args)]
pub struct ConsensusBench {
    /// Validator counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "4,16,64,100")]
    sizes: Vec<usize>,
    /// Heights per run.
    #[arg(long, default_value_t = 5)]
    heights: u64,
}

fn config(n: usize, heights: u64) -> SimConfig {
    let mut cfg = SimConfig::new(n, 1);
    cfg.crypto = CryptoKind::Ed25519;
    cfg.latency_ms = L;
    cfg.jitter_ms = 0;
    cfg.app_delay_ms = 0;
    cfg.timeout_base_ms = TIMEOUT;
    cfg.heights = heights;
    cfg
}

pub fn run(a: ConsensusBench) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; build with --release for meaningful figures");
    }
    println!("EMC consensus benchmark: IBFT 2.0, ed25519, {} heights per run, link latency L = {L} ms, no jitter", a.heights);
    println!(
        "{:>5} {:>14} {:>22} {:>22} {:>18} {:>26}",
        "n",
        "msgs/height",
        "CPU/node/height mean",
        "CPU/node/height max",
        "finality (L)",
        "crashed proposer (L)"
    );
    for &n in &a.sizes {
        if n == 0 {
            bail!("--sizes must be positive");
        }
        let out = emc_sim::run(config(n, a.heights))
            .map_err(|v| anyhow::anyhow!("safety violation: {v:?}"))?;
        let heights = out.heights.iter().copied().min().unwrap_or(0).max(1);
        let per = |d: &Duration| d.as_secs_f64() * 1e3 / heights as f64;
        let mean = out.cpu.iter().map(per).sum::<f64>() / n as f64;
        let max = out.cpu.iter().map(per).fold(0.0, f64::max);
        let fin = out.finality_ms.iter().copied().max().unwrap_or(0) as f64 / L as f64;

        // The proposer of height 1, round 0 (validator 0) is down from the start.
        let mut crashed = config(n, 1);
        crashed.faults.push(Fault::Crash { node: 0, at_ms: 0 });
        let c = emc_sim::run(crashed).map_err(|v| anyhow::anyhow!("safety violation: {v:?}"))?;
        let t1 = c.commit_times.get(&1).copied().unwrap_or(u64::MAX);
        let after_timeout = t1.saturating_sub(TIMEOUT) as f64 / L as f64;
        println!(
            "{n:>5} {:>14.0} {:>19.2} ms {:>19.2} ms {:>18.1} {:>17} + {:.1}",
            out.messages as f64 / heights as f64,
            mean,
            max,
            fin,
            "timeout",
            after_timeout
        );
    }
    println!("\nfinality: from the proposal's broadcast to the last honest commit; crashed proposer: from the height's start, in delays after the round-0 timeout ({TIMEOUT} ms)");
    Ok(())
}
