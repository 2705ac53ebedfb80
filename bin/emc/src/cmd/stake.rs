//! `emc stake ...`, `emc validators`, `emc rewards`: the staking module from the
//! command line. Writes are transactions to the `Staking` contract (signed like
//! `emc tx send`); reads are the node's `emc_` methods.

use crate::{
    client::{parse_quantity, Rpc},
    cmd::{
        tx::{parse_amount, send, SignerArgs},
        RpcArg,
    },
};
use alloy_primitives::{utils::format_ether, Address, Bytes, B256, U256};
use alloy_sol_types::SolCall;
use anyhow::{bail, Result};
use emc_modules::{staking::IStaking, STAKING_ADDRESS};
use serde_json::{json, Value};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Role {
    Validator,
    Router,
    Compute,
}

#[derive(clap::Subcommand)]
pub enum StakeCmd {
    /// Stake AMOUNT for a role (validators then register their consensus key).
    Add {
        #[arg(long, value_enum)]
        role: Role,
        /// "500" or "500emc".
        #[arg(long, value_parser = parse_amount)]
        amount: U256,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Start unbonding AMOUNT of a role's stake.
    Remove {
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long, value_parser = parse_amount)]
        amount: U256,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Pay out every stake whose unbonding has ended.
    Withdraw {
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Lock a computing node's stake for a genesis lock tier (0 = the shortest).
    Lock {
        #[arg(long)]
        tier: u8,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Become a validator candidate with this consensus key (0x… or a key file from
    /// `emc keys consensus-new`); elected at an epoch's end by stake.
    Register {
        #[arg(long)]
        consensus_key: String,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Mint the rewards credited to the signer.
    Claim {
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// An account's stakes, lock, rewards and validator record.
    Show {
        address: Address,
        #[command(flatten)]
        rpc: RpcArg,
    },
}

fn role(r: Role) -> u8 {
    match r {
        Role::Validator => 0,
        Role::Router => 1,
        Role::Compute => 2,
    }
}

fn call(signer: &SignerArgs, value: U256, data: Vec<u8>) -> Result<()> {
    send(
        signer,
        STAKING_ADDRESS,
        value,
        Bytes::from(data),
        None,
        true,
    )
}

pub fn run(c: StakeCmd) -> Result<()> {
    match c {
        StakeCmd::Add {
            role: r,
            amount,
            signer,
        } => call(
            &signer,
            amount,
            IStaking::stakeCall { role: role(r) }.abi_encode(),
        ),
        StakeCmd::Remove {
            role: r,
            amount,
            signer,
        } => call(
            &signer,
            U256::ZERO,
            IStaking::unstakeCall {
                role: role(r),
                amount,
            }
            .abi_encode(),
        ),
        StakeCmd::Withdraw { signer } => {
            call(&signer, U256::ZERO, IStaking::withdrawCall {}.abi_encode())
        }
        StakeCmd::Lock { tier, signer } => call(
            &signer,
            U256::ZERO,
            IStaking::lockCall { tier }.abi_encode(),
        ),
        StakeCmd::Register {
            consensus_key,
            signer,
        } => {
            let key = match consensus_key.parse::<B256>() {
                Ok(k) => k,
                Err(_) => {
                    emc_crypto::ConsensusKey::read(std::path::Path::new(&consensus_key))?.public()
                }
            };
            call(
                &signer,
                U256::ZERO,
                IStaking::registerValidatorCall { consensusKey: key }.abi_encode(),
            )
        }
        StakeCmd::Claim { signer } => call(
            &signer,
            U256::ZERO,
            IStaking::claimRewardsCall {}.abi_encode(),
        ),
        StakeCmd::Show { address, rpc } => {
            let v = Rpc::new(&rpc.rpc).call("emc_staking", json!([address]))?;
            for r in ["validator", "router", "compute"] {
                let s = &v["roles"][r];
                println!(
                    "{r:<10} staked {:>14} EMC  unbonding {:>14} EMC  release at block {}",
                    emc(&s["staked"])?,
                    emc(&s["unbonding"])?,
                    parse_quantity(&s["releaseHeight"])?
                );
            }
            println!(
                "lock until block {} (x{:.2})",
                parse_quantity(&v["lock"]["untilHeight"])?,
                v["lock"]["multiplierBps"].as_f64().unwrap_or(10_000.0) / 10_000.0
            );
            println!("pending rewards {} EMC", emc(&v["pendingRewards"])?);
            let val = &v["validator"];
            if val["candidate"] == true {
                let epoch = match v.get("epoch") {
                    Some(e) => Some(parse_quantity(e)? as u64),
                    None => None,
                };
                println!(
                    "validator candidate, key {}, {}, missed {} commits this epoch",
                    val["consensusKey"].as_str().unwrap_or(""),
                    jail_text(parse_quantity(&val["jailedUntilEpoch"])? as u64, epoch),
                    parse_quantity(&val["missedThisEpoch"])?
                );
            }
            Ok(())
        }
    }
}

/// A candidate's jail, as a person reads it: a candidate is left out of elections
/// while its jail runs past the current epoch (0: never jailed).
fn jail_text(until: u64, epoch: Option<u64>) -> String {
    if until == 0 || epoch.is_some_and(|e| until <= e) {
        "not jailed".into()
    } else {
        format!("jailed until epoch {until}")
    }
}

fn emc(v: &Value) -> Result<String> {
    let Some(s) = v.as_str() else {
        bail!("expected a hex quantity, got {v}")
    };
    Ok(format_ether(U256::from_str_radix(
        s.trim_start_matches("0x"),
        16,
    )?))
}

/// `emc validators`: the set sealing the next block and every candidate.
pub fn validators(rpc: RpcArg) -> Result<()> {
    let v = Rpc::new(&rpc.rpc).call("emc_validators", json!([]))?;
    println!(
        "epoch {} (blocks of {}), at block {}",
        parse_quantity(&v["epoch"])?,
        parse_quantity(&v["epochBlocks"])?,
        parse_quantity(&v["block"])?
    );
    println!("{:<44} {:>10} {:>8}", "validator", "power", "missed");
    for m in v["validators"].as_array().into_iter().flatten() {
        println!(
            "{:<44} {:>10} {:>8}",
            m["address"].as_str().unwrap_or(""),
            parse_quantity(&m["power"])?,
            parse_quantity(&m["missedThisEpoch"])?
        );
    }
    let epoch = parse_quantity(&v["epoch"])? as u64;
    println!(
        "{:<44} {:>16} {:>8}  jail",
        "candidate", "stake (EMC)", "elected"
    );
    for c in v["candidates"].as_array().into_iter().flatten() {
        println!(
            "{:<44} {:>16} {:>8}  {}",
            c["address"].as_str().unwrap_or(""),
            emc(&c["stake"])?,
            c["elected"],
            jail_text(parse_quantity(&c["jailedUntilEpoch"])? as u64, Some(epoch))
        );
    }
    Ok(())
}

/// `emc rewards ADDRESS`: credited rewards and the network's emission so far.
pub fn rewards(address: Address, rpc: RpcArg) -> Result<()> {
    let v = Rpc::new(&rpc.rpc).call("emc_rewards", json!([address]))?;
    println!(
        "pending {} EMC (claim with `emc stake claim`)",
        emc(&v["pending"])?
    );
    println!(
        "network: staked {} EMC, minted {} EMC, slashed {} EMC",
        emc(&v["totalStaked"])?,
        emc(&v["totalMinted"])?,
        emc(&v["totalSlashed"])?
    );
    Ok(())
}
