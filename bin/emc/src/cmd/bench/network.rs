//! `emc bench network`: a real network on this machine.
//!
//! 1. Throughput and latency: N validator processes (libp2p on loopback, 1 s blocks,
//!    a 200M gas limit so CPU, not the limit, is the bound) and transfers from 2,000
//!    funded senders submitted over JSON-RPC by several client threads as fast as the
//!    nodes take them (a "pool is full" answer is retried). Every block is read back to
//!    time each transaction from submission to its final block: sustained TPS, p50, p99.
//! 2. Sync: a 10,000-block chain is built in-process with real ed25519 commit
//!    certificates, served by a validator process, and a fresh full node syncs it over
//!    libp2p, checking every certificate and re-executing every block.

use crate::cmd::devnet::{launch, stop_all, DevnetArgs, Extra};
use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_network::TxSignerSync;
use alloy_primitives::{keccak256, Address, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

#[derive(clap::Args)]
pub struct NetworkBench {
    #[arg(long, default_value_t = 20_000)]
    txs: usize,
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Client threads submitting over JSON-RPC.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Blocks for the sync measurement (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    sync_blocks: u64,
    /// First port to use; the bench takes a range above it (below the ephemeral range).
    #[arg(long, default_value_t = 18_000)]
    port: u16,
}

const SENDERS: usize = 2_000;

fn rpc(url: &str, agent: &ureq::Agent, method: &str, params: Value) -> Result<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let v: Value = match agent.post(url).send_json(body) {
        Ok(r) => r.into_json()?,
        Err(ureq::Error::Status(_, r)) => r.into_json()?,
        Err(e) => bail!("{url}: {e}"),
    };
    if let Some(e) = v.get("error") {
        bail!("{}", e["message"].as_str().unwrap_or("error"));
    }
    Ok(v["result"].clone())
}

fn hex_u64(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0)
}

pub fn run(a: NetworkBench) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; build with --release for meaningful figures");
    }
    let keys: Vec<PrivateKeySigner> = (0..SENDERS)
        .map(|i| {
            PrivateKeySigner::from_bytes(&keccak256(format!("emc-net-bench-{i}"))).context("key")
        })
        .collect::<Result<_>>()?;
    let tmp = tempfile::tempdir()?;
    let args = DevnetArgs::bench(tmp.path().join("net"), a.port, a.validators);
    let extra = Extra {
        accounts: keys.iter().map(|k| k.address()).collect(),
        gas_limit: Some(200_000_000),
        ..Default::default()
    };
    let (_, genesis, mut procs) = launch(&args, &extra)?;
    let result = throughput(
        &a,
        &keys,
        &procs.iter().map(|p| p.rpc.clone()).collect::<Vec<_>>(),
        genesis.chain_id,
    );
    let banned = (0..a.validators)
        .map(|i| peers_banned(a.port as usize + 100 + i))
        .sum::<Result<u64>>();
    stop_all(&mut procs);
    let (tps, p50, p99, blocks) = result?;
    println!(
        "EMC network benchmark: {} validators (separate processes, libp2p on loopback), 1 s blocks",
        a.validators
    );
    println!("{:<44} {:>12}", "transfers submitted over JSON-RPC", a.txs);
    println!(
        "{:<44} {:>12.0}",
        "sustained TPS (first submit -> last final)", tps
    );
    println!(
        "{:<44} {:>9.0} ms",
        "latency p50, submit -> final block", p50
    );
    println!("{:<44} {:>9.0} ms", "latency p99", p99);
    println!("{:<44} {:>12}", "blocks that carried them", blocks);
    // Honest validators under load must not ban each other.
    println!("{:<44} {:>12}", "peers banned by validators", banned?);
    if a.sync_blocks > 0 {
        let (built, synced) = sync(&a, tmp.path())?;
        println!(
            "{:<44} {:>9.1} s",
            format!("build {} blocks with certificates", a.sync_blocks),
            built.as_secs_f64()
        );
        println!(
            "{:<44} {:>9.1} s",
            format!("a new full node syncs {} blocks", a.sync_blocks),
            synced.as_secs_f64()
        );
        println!(
            "{:<44} {:>12.0}",
            "sync rate, blocks/s",
            a.sync_blocks as f64 / synced.as_secs_f64()
        );
    }
    Ok(())
}

/// `emc_peers_banned_total` from a node's metrics port.
fn peers_banned(metrics_port: usize) -> Result<u64> {
    let text = ureq::get(&format!("http://127.0.0.1:{metrics_port}/metrics"))
        .call()?
        .into_string()?;
    text.lines()
        .find_map(|l| l.strip_prefix("emc_peers_banned_total "))
        .context("no emc_peers_banned_total in /metrics")?
        .trim()
        .parse()
        .context("emc_peers_banned_total")
}

#[allow(clippy::type_complexity)]
fn throughput(
    a: &NetworkBench,
    keys: &[PrivateKeySigner],
    rpcs: &[String],
    chain_id: u64,
) -> Result<(f64, f64, f64, usize)> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let start = Instant::now();
    while rpcs.iter().any(|u| {
        rpc(u, &agent, "eth_blockNumber", json!([]))
            .map(|v| hex_u64(&v))
            .unwrap_or(0)
            < 1
    }) {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the network did not start");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Sign everything first: sender i sends txs/SENDERS transfers, nonces in order.
    let per = a.txs.div_ceil(SENDERS);
    let signed: Vec<Vec<(String, String)>> = keys
        .iter()
        .map(|k| {
            (0..per)
                .map(|n| {
                    let mut t = TxEip1559 {
                        chain_id,
                        nonce: n as u64,
                        gas_limit: 21_000,
                        max_fee_per_gas: 50_000_000_000,
                        max_priority_fee_per_gas: 1_000_000_000,
                        to: TxKind::Call(Address::from_word(keccak256(k.address()))),
                        value: U256::from(1),
                        ..Default::default()
                    };
                    let sig = k
                        .sign_transaction_sync(&mut t)
                        .expect("signing never fails");
                    let env = TxEnvelope::from(t.into_signed(sig));
                    (
                        env.tx_hash().to_string(),
                        format!("0x{}", alloy_primitives::hex::encode(env.encoded_2718())),
                    )
                })
                .collect()
        })
        .collect();
    let total: usize = signed.iter().map(Vec::len).sum();
    let submitted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let t0 = Instant::now();
    let mut clients = Vec::new();
    for c in 0..a.clients {
        let mine: Vec<Vec<(String, String)>> =
            signed.iter().skip(c).step_by(a.clients).cloned().collect();
        let (url, submitted, agent) = (
            rpcs[c % rpcs.len()].clone(),
            submitted.clone(),
            agent.clone(),
        );
        clients.push(std::thread::spawn(move || -> Result<()> {
            let rounds = mine.iter().map(Vec::len).max().unwrap_or(0);
            for n in 0..rounds {
                for txs in &mine {
                    let Some((hash, raw)) = txs.get(n) else {
                        continue;
                    };
                    let mut tries = 0;
                    loop {
                        match rpc(&url, &agent, "eth_sendRawTransaction", json!([raw])) {
                            Ok(_) => break,
                            Err(e) if e.to_string().contains("already known") => break,
                            // A full pool or a node too busy to answer in time: try again.
                            Err(_) if tries < 200 => {
                                tries += 1;
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    submitted
                        .lock()
                        .expect("lock")
                        .insert(hash.clone(), Instant::now());
                }
            }
            Ok(())
        }));
    }
    // Observe final blocks on the first node.
    let mut included: HashMap<String, Instant> = HashMap::new();
    let mut next = rpc(&rpcs[0], &agent, "eth_blockNumber", json!([])).map(|v| hex_u64(&v))? + 1;
    let mut blocks = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while included.len() < total {
        // A client that gave up fails the run now rather than after the deadline.
        if let Some(pos) = clients.iter().position(|c| c.is_finished()) {
            let c = clients.swap_remove(pos);
            c.join()
                .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {total} transactions were included in 10 minutes",
                included.len()
            );
        }
        let head = rpc(&rpcs[0], &agent, "eth_blockNumber", json!([])).map(|v| hex_u64(&v))?;
        while next <= head {
            let b = rpc(
                &rpcs[0],
                &agent,
                "eth_getBlockByNumber",
                json!([format!("{next:#x}"), false]),
            )?;
            let now = Instant::now();
            let txs = b["transactions"].as_array().cloned().unwrap_or_default();
            if !txs.is_empty() {
                blocks += 1;
            }
            for h in txs {
                included.insert(h.as_str().unwrap_or_default().to_string(), now);
            }
            next += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for c in clients {
        c.join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    let submitted = submitted.lock().expect("lock");
    let last = included.values().max().copied().unwrap_or(t0);
    let mut lat: Vec<f64> = included
        .iter()
        .filter_map(|(h, t)| {
            submitted
                .get(h)
                .map(|s| t.saturating_duration_since(*s).as_secs_f64() * 1e3)
        })
        .collect();
    lat.sort_by(|x, y| x.total_cmp(y));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Ok((
        total as f64 / (last - t0).as_secs_f64(),
        pct(0.50),
        pct(0.99),
        blocks,
    ))
}

/// Builds `sync_blocks` certified blocks in-process, serves them from a validator
/// process, and times a fresh full node catching up.
fn sync(a: &NetworkBench, tmp: &std::path::Path) -> Result<(Duration, Duration)> {
    use emc_consensus::{
        messages::payload, messages::Kind, CommitCertificate, Crypto, Ed25519Crypto,
        ValidatorIndex, Vote,
    };
    let key = emc_crypto::ConsensusKey::dev(0);
    let account = Address::repeat_byte(0xfe);
    let validator = emc_types::GenesisValidator {
        address: account,
        consensus_key: key.public(),
        power: 1_000,
    };
    let mut genesis = emc_types::Genesis::dev(validator, &[], U256::ZERO);
    genesis.block_time_ms = 1_000;
    let src = tmp.join("sync-src");
    let t = Instant::now();
    {
        let chain = emc_chain::Chain::open(&src, genesis.clone())?;
        let signer = Ed25519Crypto::from_seed(key.seed());
        for h in 1..=a.sync_blocks {
            let built = chain.build_block(account, h)?;
            let vote = Vote {
                height: built.block.header.height,
                round: emc_types::Round(0),
                digest: built.block.hash(),
            };
            let seal = signer.sign(&payload(genesis.chain_id, Kind::Seal, &vote));
            let cert = CommitCertificate {
                round: emc_types::Round(0),
                seals: vec![(ValidatorIndex(0), seal)],
            };
            chain.commit(built, Some(&borsh::to_vec(&cert)?))?;
        }
    }
    let built = t.elapsed();
    let gpath = tmp.join("sync-genesis.json");
    std::fs::write(&gpath, genesis.to_json())?;
    let kpath = tmp.join("sync-key.json");
    key.write(&kpath)?;
    let p2p = format!("/ip4/127.0.0.1/tcp/{}", a.port + 300);
    let id = emc_p2p::peer_id_of(emc_node::p2p_seed_of(&key));
    let exe = std::env::current_exe()?;
    let node = |args: &[String]| {
        std::process::Command::new(&exe)
            .arg("node")
            .args(args)
            .args(["--log", "warn"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    };
    let g = gpath.display().to_string();
    let mut server = node(&[
        "--genesis".into(),
        g.clone(),
        "--consensus-key".into(),
        kpath.display().to_string(),
        "--datadir".into(),
        src.display().to_string(),
        "--rpc-addr".into(),
        format!("127.0.0.1:{}", a.port + 301),
        "--p2p-addr".into(),
        p2p.clone(),
    ])?;
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    let mut full = node(&[
        "--genesis".into(),
        g,
        "--datadir".into(),
        tmp.join("sync-dst").display().to_string(),
        "--rpc-addr".into(),
        format!("127.0.0.1:{}", a.port + 302),
        "--p2p-addr".into(),
        format!("/ip4/127.0.0.1/tcp/{}", a.port + 303),
        "--bootnode".into(),
        format!("{p2p}/p2p/{id}"),
    ])?;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let url = format!("http://127.0.0.1:{}", a.port + 302);
    let result = loop {
        if rpc(&url, &agent, "eth_blockNumber", json!([]))
            .map(|v| hex_u64(&v))
            .unwrap_or(0)
            >= a.sync_blocks
        {
            break Ok(t.elapsed());
        }
        if t.elapsed() > Duration::from_secs(900) {
            break Err(anyhow::anyhow!(
                "the full node did not sync within 15 minutes"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = full.kill();
    let _ = server.kill();
    let _ = (full.wait(), server.wait());
    Ok((built, result?))
}
