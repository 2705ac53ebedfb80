//! `emc genesis`: write a genesis file.

use alloy_primitives::{utils::parse_ether, Address, U256};
use anyhow::{Context, Result};
use emc_types::{Genesis, GenesisAccount, GenesisValidator};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct GenesisArgs {
    #[arg(long, default_value_t = emc_types::genesis::DEV_CHAIN_ID)]
    chain_id: u64,
    /// A validator as ACCOUNT=KEY[@STAKE]: KEY is its ed25519 consensus public key (0x…)
    /// or a key file from `emc keys consensus-new`; STAKE, in whole EMC (default 1000),
    /// is held for it by the staking module and is its voting power. Repeat for
    /// several, in proposer order. Default: the development validator.
    #[arg(long = "validator", value_parser = parse_validator)]
    validators: Vec<GenesisValidator>,
    /// Premine, as ADDRESS=AMOUNT with AMOUNT in EMC (for example 0xabc...=1000).
    #[arg(long = "alloc", value_parser = parse_alloc)]
    alloc: Vec<(Address, U256)>,
    /// Also fund this many development accounts with 10000 EMC each.
    #[arg(long, default_value_t = 0)]
    dev_accounts: u32,
    #[arg(long, default_value_t = 1_000)]
    block_time_ms: u64,
    #[arg(long, default_value_t = 30_000_000)]
    gas_limit: u64,
    /// Base fee of block 1 in wei.
    #[arg(long, default_value_t = 1_000_000_000)]
    base_fee: u64,
    /// Blocks per staking epoch (the validator set changes between epochs).
    #[arg(long)]
    epoch_blocks: Option<u64>,
    /// Blocks between unstaking and withdrawing.
    #[arg(long)]
    unbonding_blocks: Option<u64>,
    /// The most validators an election picks.
    #[arg(long)]
    max_validators: Option<u32>,
    /// The rest of the staking rules as JSON (the genesis file's `staking` object);
    /// the flags above win over it.
    #[arg(long)]
    staking_json: Option<String>,
    /// The proof-of-computing task as JSON (the genesis file's `poc` object:
    /// lanes, segments, segSteps, samples).
    #[arg(long)]
    poc_json: Option<String>,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_validator(s: &str) -> Result<GenesisValidator, String> {
    let (addr, rest) = s.split_once('=').ok_or("expected ACCOUNT=KEY[@STAKE]")?;
    let address = addr
        .parse::<Address>()
        .map_err(|e| format!("account {addr}: {e}"))?;
    let (key, power) = match rest.rsplit_once('@') {
        Some((k, p)) => (k, p.parse::<u64>().map_err(|e| format!("stake {p}: {e}"))?),
        None => (rest, 1_000),
    };
    let consensus_key = match key.parse::<alloy_primitives::B256>() {
        Ok(k) => k,
        Err(_) => emc_crypto::ConsensusKey::read(std::path::Path::new(key))
            .map_err(|e| e.to_string())?
            .public(),
    };
    Ok(GenesisValidator {
        address,
        consensus_key,
        power,
    })
}

fn parse_alloc(s: &str) -> Result<(Address, U256), String> {
    let (a, v) = s.split_once('=').ok_or("expected ADDRESS=AMOUNT")?;
    let addr = a
        .parse::<Address>()
        .map_err(|e| format!("address {a}: {e}"))?;
    let wei = parse_ether(v).map_err(|e| format!("amount {v}: {e}"))?;
    Ok((addr, wei))
}

pub fn run(a: GenesisArgs) -> Result<()> {
    let validators = if a.validators.is_empty() {
        emc_node::dev_validators(1)?
    } else {
        a.validators
    };
    let mut g = Genesis::dev(validators[0].clone(), &[], U256::ZERO);
    g.chain_id = a.chain_id;
    g.validators = validators;
    g.block_time_ms = a.block_time_ms;
    g.gas_limit = a.gas_limit;
    g.base_fee = a.base_fee;
    if let Some(j) = &a.staking_json {
        g.staking = serde_json::from_str(j).context("--staking-json")?;
    }
    if let Some(n) = a.epoch_blocks {
        g.staking.epoch_blocks = n;
    }
    if let Some(j) = &a.poc_json {
        g.poc = serde_json::from_str(j).context("--poc-json")?;
    }
    if let Some(n) = a.unbonding_blocks {
        g.staking.unbonding_blocks = n;
    }
    if let Some(n) = a.max_validators {
        g.staking.max_validators = n;
    }
    for k in emc_crypto::dev_accounts(a.dev_accounts)? {
        g.alloc.insert(
            k.address(),
            GenesisAccount {
                balance: U256::from(emc_node::DEV_BALANCE_WEI),
                ..Default::default()
            },
        );
    }
    for (addr, wei) in a.alloc {
        g.alloc.entry(addr).or_default().balance += wei;
    }
    g.validate()?;
    match a.out {
        Some(p) => {
            std::fs::write(&p, g.to_json()).with_context(|| format!("writing {}", p.display()))?;
            eprintln!(
                "wrote {} (chain id {}, {} accounts, {} validators)",
                p.display(),
                g.chain_id,
                g.alloc.len(),
                g.validators.len()
            );
        }
        None => println!("{}", g.to_json()),
    }
    Ok(())
}
