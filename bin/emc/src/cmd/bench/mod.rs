//! `emc bench chain`: how fast one node executes and commits transactions.
//!
//! It signs a workload up front (not timed), then pushes it through the node's real
//! path in blocks: signature recovery (decode), pool admission, execution in revm,
//! the state root (jmt), and the atomic redb commit, each timed on its own. The same
//! transactions' signature recovery alone is measured first, single-threaded, as the
//! yardstick. A second workload does the same with ERC-20 transfers.
//!
//! `token.hex` is the creation code of tests/e2e/contracts/Token.sol as
//! `node tests/e2e/compile.mjs Token` prints it; the ethers.js test checks that it
//! still matches the source.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_network::TxSignerSync;
use alloy_primitives::{keccak256, Address, Bytes, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{sol, SolCall, SolConstructor};
use anyhow::{bail, Context, Result};
use emc_chain::Chain;
use emc_types::{decode_raw_tx, Genesis, SignedTx};
use std::time::{Duration, Instant};

const TOKEN_HEX: &str = include_str!("token.hex");

sol! {
    contract Token {
        constructor(string name_, string symbol_, uint256 supply);
        function transfer(address to, uint256 value) external returns (bool);
    }
}

mod compute;
mod consensus;
mod gateway;
mod market;
mod network;
mod sealed;

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// Transfers and ERC-20 transfers executed and committed per second on one node.
    Chain(ChainBench),
    /// IBFT messages, CPU and finality at n = 4, 16, 64, 100 with ed25519.
    Consensus(consensus::ConsensusBench),
    /// TPS and latency of validator processes over libp2p, and sync time of a new node.
    Network(network::NetworkBench),
    /// Each runtime directly and through a computing node; tokens/s, embeddings/s, E.
    Compute(compute::ComputeBench),
    /// Requests/s and latency through nginx and through one and two EMC routers (wrk).
    Gateway(gateway::GatewayBench),
    /// A spot block's wall time, gas and trades against the same number of transfers.
    Market(market::MarketBench),
    /// What sealing calls end to end costs: latency and calls/s against plain calls.
    Sealed(sealed::SealedBench),
}

#[derive(clap::Args)]
pub struct ChainBench {
    /// Transactions per workload.
    #[arg(long, default_value_t = 20_000)]
    txs: usize,
    /// Transactions per block.
    #[arg(long, default_value_t = 2_000)]
    block_txs: usize,
    /// Distinct senders.
    #[arg(long, default_value_t = 200)]
    senders: usize,
}

pub fn run(c: BenchCmd) -> Result<()> {
    let a = match c {
        BenchCmd::Chain(a) => a,
        BenchCmd::Consensus(a) => return consensus::run(a),
        BenchCmd::Network(a) => return network::run(a),
        BenchCmd::Compute(a) => return compute::run(a),
        BenchCmd::Gateway(a) => return gateway::run(a),
        BenchCmd::Market(a) => return market::run(a),
        BenchCmd::Sealed(a) => return sealed::run(a),
    };
    if a.txs == 0 || a.block_txs == 0 || a.senders == 0 {
        bail!("--txs, --block-txs and --senders must be positive");
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; build with --release for meaningful figures");
    }
    println!(
        "EMC chain benchmark: {} transactions per workload, {} per block, {} senders",
        a.txs, a.block_txs, a.senders
    );
    let keys: Vec<PrivateKeySigner> = (0..a.senders)
        .map(|i| PrivateKeySigner::from_bytes(&keccak256(format!("emc-bench-{i}"))).context("key"))
        .collect::<Result<_>>()?;
    let transfers = workload_from(
        &keys,
        a.txs,
        |_| 0,
        |i| {
            (
                TxKind::Call(recipient(i)),
                U256::from(1),
                Bytes::new(),
                21_000,
            )
        },
    );
    let t = measure(&keys, &a, &transfers, None)?;
    report("transfers", &t, a.txs);

    let token_addr = keys[0].address().create(0);
    // Sender 0 deployed the token and funded the others (nonces 0..senders); the
    // others start the workload at nonce 0.
    let erc20 = workload_from(
        &keys,
        a.txs,
        |k| if k == 0 { a.senders as u64 } else { 0 },
        |i| {
            let data = Token::transferCall {
                to: recipient(i),
                value: U256::from(1),
            }
            .abi_encode();
            (TxKind::Call(token_addr), U256::ZERO, data.into(), 60_000)
        },
    );
    let t = measure(&keys, &a, &erc20, Some(token_addr))?;
    report("ERC-20 transfers", &t, a.txs);
    Ok(())
}

fn recipient(i: usize) -> Address {
    Address::from_word(keccak256(i.to_be_bytes()))
}

const CHAIN_ID: u64 = 31337;
const MAX_FEE: u128 = 100_000_000_000;

fn sign(
    key: &PrivateKeySigner,
    nonce: u64,
    kind: TxKind,
    value: U256,
    input: Bytes,
    gas: u64,
) -> Result<Vec<u8>> {
    let mut t = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: MAX_FEE,
        max_priority_fee_per_gas: 1_000_000_000,
        to: kind,
        value,
        input,
        ..Default::default()
    };
    let sig = key.sign_transaction_sync(&mut t)?;
    Ok(TxEnvelope::from(t.into_signed(sig)).encoded_2718())
}

/// `n` transactions round-robin over the senders; sender k's nonces start at `first(k)`.
fn workload_from(
    keys: &[PrivateKeySigner],
    n: usize,
    first: impl Fn(usize) -> u64,
    make: impl Fn(usize) -> (TxKind, U256, Bytes, u64),
) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let (kind, value, input, gas) = make(i);
            let nonce = first(i % keys.len()) + (i / keys.len()) as u64;
            sign(&keys[i % keys.len()], nonce, kind, value, input, gas)
                .expect("signing never fails")
        })
        .collect()
}

#[derive(Default)]
struct Timings {
    recover_alone: Duration,
    recover: Duration,
    pool: Duration,
    execute: Duration,
    state_root: Duration,
    commit: Duration,
    blocks: usize,
    pipelined: Duration,
}

/// A one-validator dev genesis with `keys` funded and blocks of `gas_limit`.
fn bench_genesis(keys: &[PrivateKeySigner], gas_limit: u64) -> Genesis {
    let addrs: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    let mut genesis = Genesis::dev(
        emc_types::GenesisValidator {
            address: Address::repeat_byte(0xcc),
            consensus_key: emc_crypto::ConsensusKey::dev(0).public(),
            power: 1_000,
        },
        &addrs,
        U256::from(10u128.pow(24)),
    );
    genesis.gas_limit = gas_limit;
    genesis
}

/// A fresh chain with the senders funded; with `token`, the ERC-20 deployed and every
/// sender given a balance (not timed).
fn setup(
    dir: &std::path::Path,
    keys: &[PrivateKeySigner],
    a: &ChainBench,
    token: Option<Address>,
) -> Result<(std::sync::Arc<Chain>, u64)> {
    let mut genesis = bench_genesis(keys, (a.block_txs as u64 * 80_000).max(30_000_000));
    genesis.base_fee = 1_000_000_000;
    let chain = Chain::open(dir, genesis)?;
    let mut ts = 1u64;
    if let Some(token_addr) = token {
        let code: Bytes = format!(
            "{}{}",
            TOKEN_HEX.trim(),
            alloy_primitives::hex::encode(
                Token::constructorCall {
                    name_: "Bench".into(),
                    symbol_: "B".into(),
                    supply: U256::MAX >> 1
                }
                .abi_encode(),
            )
        )
        .parse()
        .context("token.hex is not hex")?;
        let mut setup = vec![sign(
            &keys[0],
            0,
            TxKind::Create,
            U256::ZERO,
            code,
            3_000_000,
        )?];
        for (i, k) in keys.iter().enumerate().skip(1) {
            let data = Token::transferCall {
                to: k.address(),
                value: U256::from(1u64 << 40),
            }
            .abi_encode();
            setup.push(sign(
                &keys[0],
                i as u64,
                TxKind::Call(token_addr),
                U256::ZERO,
                data.into(),
                60_000,
            )?);
        }
        // One sender funds everyone, so stay within the pool's 64-nonce look-ahead.
        for chunk in setup.chunks(a.block_txs.min(64)) {
            for r in chunk {
                chain.submit(r)?;
            }
            ts += 1;
            chain.seal(Address::repeat_byte(0xcc), ts)?;
        }
        let deployed = chain.state_at(chain.head().height)?.account(token_addr)?;
        if deployed.is_none_or(|acc| acc.code_hash == emc_storage::EMPTY_CODE_HASH) {
            bail!("the benchmark token was not deployed");
        }
    }
    Ok((chain, ts))
}

/// Runs `raw` through a fresh chain one phase after another on this thread, timing
/// each phase.
fn measure(
    keys: &[PrivateKeySigner],
    a: &ChainBench,
    raw: &[Vec<u8>],
    token: Option<Address>,
) -> Result<Timings> {
    let dir = tempfile::tempdir()?;
    let (chain, mut ts) = setup(dir.path(), keys, a, token)?;
    let mut t = Timings::default();
    let start = Instant::now();
    for r in raw {
        std::hint::black_box(decode_raw_tx(r, CHAIN_ID)?);
    }
    t.recover_alone = start.elapsed();

    for chunk in raw.chunks(a.block_txs) {
        let start = Instant::now();
        let txs: Vec<SignedTx> = chunk
            .iter()
            .map(|r| decode_raw_tx(r, CHAIN_ID))
            .collect::<Result<_, _>>()?;
        t.recover += start.elapsed();
        let start = Instant::now();
        for tx in txs {
            chain
                .submit_tx(tx)
                .map_err(|e| anyhow::anyhow!("pool refused a benchmark transaction: {e}"))?;
        }
        t.pool += start.elapsed();
        ts += 1;
        let built = chain.build_block(Address::repeat_byte(0xcc), ts)?;
        t.execute += built.timings.execute;
        t.state_root += built.timings.state_root;
        let included = built.receipts.len();
        let failed = built.receipts.iter().filter(|r| !r.success).count();
        if !built.rejected().is_empty() || failed > 0 {
            bail!(
                "{} transactions were left out and {failed} failed: {:?}",
                built.rejected().len(),
                built.rejected().first()
            );
        }
        let start = Instant::now();
        chain.commit(built, None)?;
        t.commit += start.elapsed();
        t.blocks += 1;
        debug_assert_eq!(included, chunk.len());
    }
    t.pipelined = pipelined(keys, a, raw, token)?;
    Ok(t)
}

/// The node's real arrangement: one thread recovers signatures and admits to the
/// pool (as the RPC threads do) while another seals blocks. Returns the wall time from
/// the first transaction handed in to the last block committed.
fn pipelined(
    keys: &[PrivateKeySigner],
    a: &ChainBench,
    raw: &[Vec<u8>],
    token: Option<Address>,
) -> Result<Duration> {
    let dir = tempfile::tempdir()?;
    let (chain, mut ts) = setup(dir.path(), keys, a, token)?;
    let before = chain.store().verify()?.transactions;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let start = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let feeder = {
            let chain = chain.clone();
            scope.spawn(move || -> Result<()> {
                for chunk in raw.chunks(a.block_txs) {
                    for r in chunk {
                        chain.submit(r).map_err(|e| {
                            anyhow::anyhow!("pool refused a benchmark transaction: {e}")
                        })?;
                    }
                    if ready_tx.send(()).is_err() {
                        break;
                    }
                }
                Ok(())
            })
        };
        // A block takes whatever is pending, which may include part of the next chunk.
        for () in ready_rx {
            ts += 1;
            chain.commit(chain.build_block(Address::repeat_byte(0xcc), ts)?, None)?;
        }
        feeder
            .join()
            .map_err(|_| anyhow::anyhow!("feeder panicked"))??;
        while chain.pool_counts().0 > 0 {
            ts += 1;
            chain.commit(chain.build_block(Address::repeat_byte(0xcc), ts)?, None)?;
        }
        Ok(())
    })?;
    let elapsed = start.elapsed();
    let committed = chain.store().verify()?.transactions - before;
    if committed != raw.len() as u64 {
        bail!("{committed} of {} transactions were committed", raw.len());
    }
    Ok(elapsed)
}

fn report(what: &str, t: &Timings, n: usize) {
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("\n{what} ({} blocks)", t.blocks);
    println!(
        "{:<34} {:>10} {:>12} {:>12}",
        "phase", "total ms", "us per tx", "tx/s"
    );
    let row = |name: &str, d: Duration| {
        println!(
            "{name:<34} {:>10.1} {:>12.2} {:>12.0}",
            d.as_secs_f64() * 1e3,
            per(d),
            rate(d)
        );
    };
    row("signature recovery alone", t.recover_alone);
    row("  recovery (decode + sender)", t.recover);
    row("  pool admission", t.pool);
    row("  execution (revm)", t.execute);
    row("  state root (jmt)", t.state_root);
    row("  commit (redb, fsync)", t.commit);
    let total = t.recover + t.pool + t.execute + t.state_root + t.commit;
    row("committed, phases in sequence", total);
    row("committed, pipelined (2 threads)", t.pipelined);
    println!(
        "committed rate / recovery-alone rate: {:.2} in sequence, {:.2} pipelined (target >= 0.50)",
        rate(total) / rate(t.recover_alone),
        rate(t.pipelined) / rate(t.recover_alone)
    );
}
