//! `emc_` methods: the staking module's state in one call each, for dashboards and the
//! CLI. Each is a view of the `Staking` and `Chain` system contracts at a block (the
//! same data their ABIs give ethers.js), shaped as JSON with quantities in hex.

use crate::json::wei;
use crate::module_view as view;
use crate::{eth::resolve_block, json, Ctx, RpcError};
use alloy_primitives::Address;
use emc_modules::{chain::IChain, staking::IStaking, CHAIN_ADDRESS, STAKING_ADDRESS};
use jsonrpsee::{types::ErrorObjectOwned, types::Params, RpcModule};
use serde_json::{json, Value};

type R = Result<Value, ErrorObjectOwned>;

pub(crate) fn register(m: &mut RpcModule<Ctx>) -> Result<(), RpcError> {
    method!(m, "emc_validators", validators);
    method!(m, "emc_staking", staking);
    method!(m, "emc_rewards", rewards);
    Ok(())
}

/// `emc_validators([block])`: the set sealing the next block (with each member's missed
/// commits this epoch) and every registered candidate.
fn validators(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let at = resolve_block(&c.chain, s.optional_next()?)?;
    let set = view(c, at, CHAIN_ADDRESS, IChain::validatorSetCall {})?;
    let epoch = view(c, at, STAKING_ADDRESS, IStaking::currentEpochCall {})?;
    let mut members = Vec::new();
    for ((a, k), p) in set
        .validators
        .iter()
        .zip(&set.consensusKeys)
        .zip(&set.powers)
    {
        let info = view(
            c,
            at,
            STAKING_ADDRESS,
            IStaking::validatorInfoCall { validator: *a },
        )?;
        members.push(json!({
            "address": a, "consensusKey": k, "power": wei(*p),
            "missedThisEpoch": json::q(info.missedThisEpoch),
        }));
    }
    let mut candidates = Vec::new();
    for a in view(c, at, STAKING_ADDRESS, IStaking::candidatesCall {})? {
        let info = view(
            c,
            at,
            STAKING_ADDRESS,
            IStaking::validatorInfoCall { validator: a },
        )?;
        let st = view(
            c,
            at,
            STAKING_ADDRESS,
            IStaking::stakeOfCall {
                account: a,
                role: 0,
            },
        )?;
        candidates.push(json!({
            "address": a, "consensusKey": info.consensusKey, "stake": wei(st.staked),
            "jailedUntilEpoch": json::q(info.jailedUntilEpoch),
            "elected": set.validators.contains(&a),
        }));
    }
    Ok(json!({
        "block": json::q(at.0),
        "epoch": json::q(epoch),
        "epochBlocks": json::q(c.chain.genesis().staking.epoch_blocks),
        "validators": members,
        "candidates": candidates,
    }))
}

/// `emc_staking(address, [block])`: stake by role, lock, rewards and validator record.
fn staking(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let a: Address = s.next()?;
    let at = resolve_block(&c.chain, s.optional_next()?)?;
    let mut roles = serde_json::Map::new();
    for (role, name) in [(0u8, "validator"), (1, "router"), (2, "compute")] {
        let st = view(
            c,
            at,
            STAKING_ADDRESS,
            IStaking::stakeOfCall { account: a, role },
        )?;
        roles.insert(
            name.into(),
            json!({"staked": wei(st.staked), "unbonding": wei(st.unbonding), "releaseHeight": json::q(st.releaseHeight)}),
        );
    }
    let lock = view(c, at, STAKING_ADDRESS, IStaking::lockOfCall { account: a })?;
    let info = view(
        c,
        at,
        STAKING_ADDRESS,
        IStaking::validatorInfoCall { validator: a },
    )?;
    let pending = view(
        c,
        at,
        STAKING_ADDRESS,
        IStaking::pendingRewardsCall { account: a },
    )?;
    let epoch = view(c, at, STAKING_ADDRESS, IStaking::currentEpochCall {})?;
    Ok(json!({
        "address": a,
        "block": json::q(at.0),
        "epoch": json::q(epoch),
        "roles": roles,
        "lock": {"untilHeight": json::q(lock.untilHeight), "multiplierBps": lock.multiplierBps},
        "pendingRewards": wei(pending),
        "validator": {
            "consensusKey": info.consensusKey, "candidate": info.candidate,
            "jailedUntilEpoch": json::q(info.jailedUntilEpoch),
            "missedThisEpoch": json::q(info.missedThisEpoch),
        },
    }))
}

/// `emc_rewards(address, [block])`: rewards credited and not yet claimed, and the
/// network's emission and slashing so far.
fn rewards(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let a: Address = s.next()?;
    let at = resolve_block(&c.chain, s.optional_next()?)?;
    Ok(json!({
        "address": a,
        "block": json::q(at.0),
        "pending": wei(view(c, at, STAKING_ADDRESS, IStaking::pendingRewardsCall { account: a })?),
        "totalMinted": wei(view(c, at, STAKING_ADDRESS, IStaking::totalMintedCall {})?),
        "totalSlashed": wei(view(c, at, STAKING_ADDRESS, IStaking::totalSlashedCall {})?),
        "totalStaked": wei(view(c, at, STAKING_ADDRESS, IStaking::totalStakedCall {})?),
    }))
}
