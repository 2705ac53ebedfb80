//! The running devnet: its banner, the heights every few seconds, nodes that die and
//! nodes started again.
//!
//! A node that exits is reported with its status and log, and the others go on. After
//! a validator's death the devnet says whether the chain still can: IBFT makes
//! blocks while the validators up hold more than 2/3 of the voting power
//! ([`can_progress`]). `emc devnet restart NAME` (from another terminal) drops a
//! request file in `<dir>/control/`; the running devnet picks it up within a moment,
//! stops the node if it still runs, starts it again with the same arguments on the
//! same data, and removes the file to say it is done.

use super::{dev_api_key, stop_all, DevnetArgs, Proc, DEVNET_APPS, ESCROW_EMC};
use crate::client::Rpc;
use anyhow::{bail, Result};
use emc_types::Genesis;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long `emc devnet restart` waits for a running devnet to take its request.
const TAKE_WITHIN: Duration = Duration::from_secs(15);

/// Whether validators holding `up` of `total` voting power can make blocks: IBFT
/// needs more than 2/3 of the power.
pub(crate) fn can_progress(up: u64, total: u64) -> bool {
    3 * up > 2 * total
}

fn control_file(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join("control").join(format!("restart-{name}"))
}

/// `emc devnet restart NAME`: asks the devnet running in `dir` to start `name` again
/// and waits until it has.
pub fn request_restart(dir: &Path, name: &str) -> Result<()> {
    if !dir.join("genesis.json").exists() {
        bail!(
            "{} holds no devnet (no genesis.json); give its --dir",
            dir.display()
        );
    }
    if !dir.join(name).is_dir() {
        let nodes: Vec<String> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("node.log").exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        bail!(
            "the devnet in {} has no node {name:?} (it has: {})",
            dir.display(),
            nodes.join(", ")
        );
    }
    let file = control_file(dir, name);
    std::fs::create_dir_all(dir.join("control"))?;
    std::fs::write(&file, b"restart")?;
    let t = Instant::now();
    while file.exists() {
        if t.elapsed() > TAKE_WITHIN {
            let _ = std::fs::remove_file(&file);
            bail!(
                "no devnet running in {} took the request within {TAKE_WITHIN:?} (start it with `emc devnet --dir {}`)",
                dir.display(),
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "{name} started again; its log is {}",
        dir.join(name).join("node.log").display()
    );
    Ok(())
}

fn banner(a: &DevnetArgs, dir: &Path, g: &Genesis, procs: &[Proc]) -> Result<()> {
    println!(
        "EMC devnet: {} validators, {} full nodes, {} routers and {} computing nodes, chain id {}, one block every {} ms, epochs of {} blocks",
        a.validators, a.full_nodes, a.routers, a.compute_nodes, g.chain_id, a.block_time_ms, g.staking.epoch_blocks
    );
    println!("Directory: {} (logs in */node.log)", dir.display());
    for p in procs {
        println!(
            "{:<12} pid {:<7} JSON-RPC {}  WebSocket {}  metrics {}/metrics",
            p.name,
            p.child.id(),
            p.rpc,
            p.rpc.replacen("http", "ws", 1),
            p.metrics
        );
    }
    println!(
        "\nDevelopment accounts (10000 EMC each), mnemonic \"{}\":",
        emc_crypto::DEV_MNEMONIC
    );
    for (i, k) in emc_crypto::dev_accounts(emc_node::DEV_ACCOUNTS)?
        .iter()
        .enumerate()
    {
        println!(
            "({i}) {}  private key 0x{}",
            k.address(),
            hex::encode(k.to_bytes())
        );
    }
    if a.routers > 0 {
        println!("\nGateways (OpenAI base_url):");
        for r in 0..a.routers {
            println!("router-{r}       http://{}/v1", a.gateway(r));
        }
        let key = dev_api_key(g.chain_id)?;
        println!(
            "API key (account 0, {ESCROW_EMC} EMC in escrow, valid 30 days; `emc gateway key` makes others):\n{key}"
        );
        if a.compute_nodes > 0 {
            println!(
                "Models: {} (ready once the computing nodes have registered, a few seconds)",
                DEVNET_APPS
                    .iter()
                    .map(|s| s.split('=').next().unwrap_or(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "Try: curl http://{}/v1/embeddings -H 'Authorization: Bearer {key}' -H 'content-type: application/json' -d '{{\"model\": \"all-minilm-l6-v2\", \"input\": \"hello\"}}'",
                a.gateway(0)
            );
        }
    }
    let exe = std::env::current_exe()?;
    println!(
        "\nThese keys are public: never use them on a real network. A node that dies is reported and the rest go on; start it again with `{} devnet restart NAME --dir {}`. Ctrl-C stops the devnet.\n",
        exe.display(),
        dir.display()
    );
    Ok(())
}

/// Prints the banner, then watches the nodes until Ctrl-C, and stops them.
pub fn run(a: &DevnetArgs, dir: &Path, g: &Genesis, mut procs: Vec<Proc>) -> Result<()> {
    banner(a, dir, g, &procs)?;
    if a.routers > 0 && a.compute_nodes > 0 {
        if let Some(p) = procs.first() {
            super::sockets::start(p.rpc.clone(), g.chain_id);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(crate::cmd::node::wait_for_signal());
            }
            stop.store(true, Ordering::SeqCst);
        });
    }
    let total: u64 = procs.iter().filter_map(|p| p.power).sum();
    let mut dead = vec![false; procs.len()];
    let mut last = Instant::now() - Duration::from_secs(10);
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        let changed = reap(&mut procs, &mut dead) | restarts(dir, &mut procs, &mut dead);
        if changed {
            say_health(&procs, &dead, total);
        }
        if last.elapsed() >= Duration::from_secs(3) {
            last = Instant::now();
            heights(&procs, &dead);
        }
    }
    let _ = writeln!(std::io::stdout(), "stopping {} nodes", procs.len());
    stop_all(&mut procs);
    let _ = writeln!(
        std::io::stdout(),
        "stopped; the chain stays in {}",
        dir.display()
    );
    Ok(())
}

/// Notes the nodes that exited since the last look; whether any did.
fn reap(procs: &mut [Proc], dead: &mut [bool]) -> bool {
    let mut any = false;
    for (p, d) in procs.iter_mut().zip(dead.iter_mut()) {
        if *d {
            continue;
        }
        if let Ok(Some(status)) = p.child.try_wait() {
            *d = true;
            any = true;
            let log = p.dir.join("node.log");
            let _ = writeln!(
                std::io::stdout(),
                "{} exited ({status}); its log is {}",
                p.name,
                log.display()
            );
        }
    }
    any
}

/// Carries out the restart requests in `<dir>/control/`; whether any was.
fn restarts(dir: &Path, procs: &mut [Proc], dead: &mut [bool]) -> bool {
    let mut any = false;
    for (p, d) in procs.iter_mut().zip(dead.iter_mut()) {
        let file = control_file(dir, &p.name);
        if !file.exists() {
            continue;
        }
        if !*d {
            // Still running: stop it first (SIGTERM, then SIGKILL after 15 s).
            stop_all(std::slice::from_mut(p));
        }
        match p.respawn() {
            Ok(()) => {
                *d = false;
                let _ = writeln!(
                    std::io::stdout(),
                    "{} started again (pid {})",
                    p.name,
                    p.child.id()
                );
            }
            Err(e) => {
                let _ = writeln!(std::io::stdout(), "{} could not start again: {e:#}", p.name);
            }
        }
        let _ = std::fs::remove_file(&file);
        any = true;
    }
    any
}

/// Says whether the validators still up can make blocks.
fn say_health(procs: &[Proc], dead: &[bool], total: u64) {
    let up: u64 = procs
        .iter()
        .zip(dead)
        .filter(|(_, d)| !**d)
        .filter_map(|(p, _)| p.power)
        .sum();
    let (n_up, n) = (
        procs
            .iter()
            .zip(dead)
            .filter(|(p, d)| p.power.is_some() && !**d)
            .count(),
        procs.iter().filter(|p| p.power.is_some()).count(),
    );
    let line = if can_progress(up, total) {
        format!("the chain goes on: {n_up} of {n} validators are up, holding more than 2/3 of the voting power")
    } else {
        format!("the chain cannot make blocks: only {n_up} of {n} validators are up, and IBFT needs more than 2/3 of the voting power; restart one (`emc devnet restart validator-N`)")
    };
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn heights(procs: &[Proc], dead: &[bool]) {
    let heights: Vec<String> = procs
        .iter()
        .zip(dead)
        .map(|(p, d)| {
            if *d {
                return format!("{}=down", p.name);
            }
            match Rpc::new(&p.rpc).quantity("eth_blockNumber", json!([])) {
                Ok(h) => format!("{}={h}", p.name),
                Err(_) => format!("{}=?", p.name),
            }
        })
        .collect();
    // Whoever reads our output may have gone (a closed pipe): the nodes must still be
    // stopped, so a failed write is not a reason to panic.
    let _ = writeln!(std::io::stdout(), "heights: {}", heights.join(" "));
}

#[cfg(test)]
mod tests {
    use super::can_progress;

    #[test]
    fn more_than_two_thirds_of_the_power_makes_blocks() {
        // Four equal validators: three make blocks, two cannot.
        assert!(can_progress(3_000, 4_000));
        assert!(!can_progress(2_000, 4_000));
        // Seven: five is more than 2/3, four is not.
        assert!(can_progress(5, 7));
        assert!(!can_progress(4, 7));
        // Exactly 2/3 is not more than 2/3.
        assert!(!can_progress(2, 3));
    }
}
