//! `emc_` methods: the staking module's state in one call each, for dashboards and the
//! CLI. Each is a view of the `Staking` and `Chain` system contracts at a block (the
//! same data their ABIs give ethers.js), shaped as JSON with quantities in hex.

use crate::{eth::resolve_block, internal, json, server_error, Ctx, RpcError};
use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use emc_modules::{chain::IChain, staking::IStaking, CHAIN_ADDRESS, STAKING_ADDRESS};
use emc_types::Height;
use jsonrpsee::{types::ErrorObjectOwned, types::Params, RpcModule};
use serde_json::{json, Value};
use std::sync::Arc;

type R = Result<Value, ErrorObjectOwned>;
type Handler = fn(&Ctx, Params<'_>) -> R;

pub(crate) fn register(m: &mut RpcModule<Ctx>) -> Result<(), RpcError> {
    let methods: [(&'static str, Handler); 3] = [
        ("emc_validators", validators),
        ("emc_staking", staking),
        ("emc_rewards", rewards),
    ];
    for (name, f) in methods {
        m.register_blocking_method(name, move |p: Params<'_>, ctx: Arc<Ctx>, _| f(&ctx, p))
            .map_err(|e| RpcError::Register(name, e.to_string()))?;
    }
    Ok(())
}

fn view<C: SolCall>(
    c: &Ctx,
    at: Height,
    to: alloy_primitives::Address,
    call: C,
) -> Result<C::Return, ErrorObjectOwned> {
    c.chain.view(at, to, call).map_err(|e| match e {
        emc_chain::ChainError::View(m) => server_error(format!("system contract call failed: {m}")),
        other => internal(other),
    })
}

fn q(v: U256) -> Value {
    json!(format!("{v:#x}"))
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
            "address": a, "consensusKey": k, "power": q(*p),
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
            "address": a, "consensusKey": info.consensusKey, "stake": q(st.staked),
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
            json!({"staked": q(st.staked), "unbonding": q(st.unbonding), "releaseHeight": json::q(st.releaseHeight)}),
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
        "pendingRewards": q(pending),
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
        "pending": q(view(c, at, STAKING_ADDRESS, IStaking::pendingRewardsCall { account: a })?),
        "totalMinted": q(view(c, at, STAKING_ADDRESS, IStaking::totalMintedCall {})?),
        "totalSlashed": q(view(c, at, STAKING_ADDRESS, IStaking::totalSlashedCall {})?),
        "totalStaked": q(view(c, at, STAKING_ADDRESS, IStaking::totalStakedCall {})?),
    }))
}
