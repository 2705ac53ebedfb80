//! `emc bench market`: what a spot block costs on one node. N spot orders (half bids
//! from distinct buyers, half asks from two providers' nodes, prices crossing so
//! about half the units trade) go into one block through the node's real path
//! (decode, pool, revm, the end-of-block clearing, the state root, the redb commit);
//! side by side, the same number of orders that do not cross (the clearing finds no
//! price) and of plain transfers. It prints each block's wall time, its gas, the
//! trades made, and how many spot orders a 30M-gas block takes.

use super::{sign, CHAIN_ID};
use alloy_primitives::{keccak256, Address, Bytes, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolEvent};
use anyhow::{bail, Context, Result};
use emc_chain::Chain;
use emc_modules::market::IMarket;
use emc_modules::registry::register_call;
use emc_modules::{MARKET_ADDRESS, REGISTRY_ADDRESS};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct MarketBench {
    /// Spot orders in the block.
    #[arg(long, default_value_t = 1_000)]
    orders: usize,
}

/// What one block did.
struct Block {
    wall: Duration,
    execute: Duration,
    gas: u64,
    trades: usize,
    units: u64,
}

const PROVIDER_SEEDS: [u8; 2] = [0xa1, 0xa2];

fn key(i: usize) -> Result<PrivateKeySigner> {
    PrivateKeySigner::from_bytes(&keccak256(format!("emc-market-bench-{i}"))).context("key")
}

/// A chain whose two providers have registered a node each, and every account funded.
fn setup(
    dir: &std::path::Path,
    accounts: &[PrivateKeySigner],
    gas_limit: u64,
) -> Result<(std::sync::Arc<Chain>, [alloy_primitives::B256; 2])> {
    let genesis = super::bench_genesis(accounts, gas_limit);
    let chain = Chain::open(dir, genesis)?;
    let mut nodes = [alloy_primitives::B256::ZERO; 2];
    for (i, seed) in PROVIDER_SEEDS.iter().enumerate() {
        let node_key = ed25519_consensus::SigningKey::from([*seed; 32]);
        let owner = &accounts[i];
        let reg = register_call(CHAIN_ID, owner.address(), &node_key, &["echo"]);
        let node = reg.nodeId;
        chain.submit(&sign(
            owner,
            0,
            TxKind::Call(REGISTRY_ADDRESS),
            U256::ZERO,
            reg.abi_encode().into(),
            1_000_000,
        )?)?;
        nodes[i] = node;
    }
    chain.seal(Address::repeat_byte(0xcc), 1)?;
    Ok((chain, nodes))
}

/// The spot orders: even ones bids from buyer accounts, odd ones asks alternating
/// between the providers (each provider's nonces counted from 1). `cross`: whether
/// the bids reach the asks.
fn orders(
    accounts: &[PrivateKeySigner],
    nodes: &[alloy_primitives::B256; 2],
    n: usize,
    cross: bool,
) -> Result<Vec<Vec<u8>>> {
    let mut nonce = [1u64, 1];
    (0..n)
        .map(|i| {
            let units = 1 + (i % 5) as u64;
            if i % 2 == 0 {
                let limit = U256::from(if cross { 10 + i % 7 } else { 1 + i % 3 });
                let c = IMarket::spotBidCall {
                    app: "echo".into(),
                    unit: 0,
                    units,
                    limitPerUnit: limit,
                };
                sign(
                    &accounts[2 + i / 2],
                    0,
                    TxKind::Call(MARKET_ADDRESS),
                    limit * U256::from(units),
                    Bytes::from(c.abi_encode()),
                    600_000,
                )
            } else {
                let p = (i / 2) % 2;
                let c = IMarket::spotAskCall {
                    node: nodes[p],
                    app: "echo".into(),
                    unit: 0,
                    units,
                    limitPerUnit: U256::from(7 + i % 7),
                };
                let raw = sign(
                    &accounts[p],
                    nonce[p],
                    TxKind::Call(MARKET_ADDRESS),
                    U256::ZERO,
                    Bytes::from(c.abi_encode()),
                    600_000,
                );
                nonce[p] += 1;
                raw
            }
        })
        .collect()
}

fn transfers(accounts: &[PrivateKeySigner], n: usize) -> Result<Vec<Vec<u8>>> {
    (0..n)
        .map(|i| {
            sign(
                &accounts[2 + i / 2],
                (i % 2) as u64,
                TxKind::Call(Address::repeat_byte(0x77)),
                U256::from(1),
                Bytes::new(),
                21_000,
            )
        })
        .collect()
}

/// Puts `raw` into one block on a fresh chain and seals it.
fn run_block(
    accounts: &[PrivateKeySigner],
    gas_limit: u64,
    raw: impl Fn(&[alloy_primitives::B256; 2]) -> Result<Vec<Vec<u8>>>,
) -> Result<Block> {
    let dir = tempfile::tempdir()?;
    let (chain, nodes) = setup(dir.path(), accounts, gas_limit)?;
    let raw = raw(&nodes)?;
    let start = Instant::now();
    for r in &raw {
        chain
            .submit(r)
            .map_err(|e| anyhow::anyhow!("pool refused a benchmark transaction: {e}"))?;
    }
    let built = chain.build_block(Address::repeat_byte(0xcc), 2)?;
    let execute = built.timings.execute;
    let failed = built.receipts.iter().filter(|r| !r.success).count();
    let included = built
        .receipts
        .iter()
        .filter(|r| r.from != emc_modules::SYSTEM_CALLER)
        .count();
    if failed > 0 || included != raw.len() {
        bail!(
            "{included} of {} transactions included, {failed} failed",
            raw.len()
        );
    }
    let gas = built.receipts.iter().map(|r| r.gas_used).sum::<u64>();
    let (mut trades, mut units) = (0, 0);
    for r in &built.receipts {
        for l in &r.logs {
            if let Ok(f) = IMarket::SpotFilled::decode_raw_log(l.topics.clone(), &l.data) {
                trades += 1;
                units += f.units;
            }
        }
    }
    chain.commit(built, None)?;
    Ok(Block {
        wall: start.elapsed(),
        execute,
        gas,
        trades,
        units,
    })
}

pub fn run(a: MarketBench) -> Result<()> {
    if a.orders < 2 || a.orders > emc_modules::market::spot::MAX_BOOK as usize {
        bail!("--orders is 2 to {}", emc_modules::market::spot::MAX_BOOK);
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; build with --release for meaningful figures");
    }
    let accounts: Vec<PrivateKeySigner> = (0..2 + a.orders.div_ceil(2))
        .map(key)
        .collect::<Result<_>>()?;
    // Room for every order's gas and its prepaid share of the clearing.
    let gas_limit = (a.orders as u64 * 600_000).max(30_000_000);
    println!(
        "EMC market benchmark: {} spot orders in one block (block gas limit {gas_limit})",
        a.orders
    );
    let rows = [
        (
            "spot orders, crossing",
            run_block(&accounts, gas_limit, |n| {
                orders(&accounts, n, a.orders, true)
            })?,
        ),
        (
            "spot orders, not crossing",
            run_block(&accounts, gas_limit, |n| {
                orders(&accounts, n, a.orders, false)
            })?,
        ),
        (
            "plain transfers",
            run_block(&accounts, gas_limit, |_| transfers(&accounts, a.orders))?,
        ),
    ];
    println!(
        "| block of {} | wall ms | execute ms | gas | gas a tx | trades | units traded |",
        a.orders
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, b) in &rows {
        println!(
            "| {name} | {:.1} | {:.1} | {} | {} | {} | {} |",
            b.wall.as_secs_f64() * 1e3,
            b.execute.as_secs_f64() * 1e3,
            b.gas,
            b.gas / a.orders as u64,
            b.trades,
            b.units
        );
    }
    let per_order = rows[0].1.gas / a.orders as u64;
    println!(
        "A 30M-gas block takes {} spot orders ({} gas each, the clearing's share prepaid); the crossing block's clearing took {:.1} ms more than the one that found no price.",
        30_000_000 / per_order.max(1),
        per_order,
        (rows[0].1.execute.as_secs_f64() - rows[1].1.execute.as_secs_f64()) * 1e3
    );
    Ok(())
}
