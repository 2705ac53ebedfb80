//! `eth_call`, `eth_estimateGas` and `eth_createAccessList`: run a message against a
//! snapshot without committing anything.

use crate::{executor::BlockContext, overlay::Overlay, precompiles::EmcPrecompiles, ExecError};
use alloy_eips::eip2930::{AccessList, AccessListItem};
use alloy_primitives::{Address, Bytes, B256, U256};
use emc_storage::StateSnapshot;
use revm::{
    context::{Context, TxEnv},
    context_interface::result::{EVMError, ExecutionResult, Output},
    handler::{ExecuteEvm, MainBuilder, MainContext},
    primitives::TxKind,
};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct CallRequest {
    pub from: Option<Address>,
    pub to: Option<Address>,
    pub gas: Option<u64>,
    pub gas_price: Option<u128>,
    pub value: Option<U256>,
    pub data: Option<Bytes>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    Success {
        output: Bytes,
        gas_used: u64,
    },
    /// Reverted with this payload (Solidity's revert data).
    Revert {
        output: Bytes,
        gas_used: u64,
    },
    Halt {
        reason: String,
        gas_used: u64,
    },
}

pub fn call(
    state: &StateSnapshot,
    ctx: &BlockContext,
    hashes: &BTreeMap<u64, B256>,
    req: &CallRequest,
) -> Result<CallOutcome, ExecError> {
    let gas = req.gas.unwrap_or(ctx.gas_limit).min(ctx.gas_limit);
    run(state, ctx, hashes, req, gas)
}

fn run(
    state: &StateSnapshot,
    ctx: &BlockContext,
    hashes: &BTreeMap<u64, B256>,
    req: &CallRequest,
    gas: u64,
) -> Result<CallOutcome, ExecError> {
    Ok(run_with(state, ctx, hashes, req, gas, &AccessList::default())?.0)
}

/// EIP-2930's access list for `req`: every account the call loaded and every storage
/// slot it read or wrote, leaving out addresses warm anyway (the sender, the
/// recipient, the block's beneficiary, precompiles and system modules) unless the
/// call used their storage; with the gas the call uses when it carries that list.
/// Runs until the list stops changing (a list can change the path a call takes).
pub fn create_access_list(
    state: &StateSnapshot,
    ctx: &BlockContext,
    hashes: &BTreeMap<u64, B256>,
    req: &CallRequest,
) -> Result<Result<(AccessList, u64), CallOutcome>, ExecError> {
    let gas = req.gas.unwrap_or(ctx.gas_limit).min(ctx.gas_limit);
    let precompiles = EmcPrecompiles::new(ctx.chain_id);
    let warm: Vec<Address> = precompiles
        .warm()
        .chain([req.from.unwrap_or_default(), ctx.proposer])
        .chain(req.to)
        .collect();
    let mut list = AccessList::default();
    for _ in 0..4 {
        let (outcome, touched) = run_with(state, ctx, hashes, req, gas, &list)?;
        let gas_used = match outcome {
            CallOutcome::Success { gas_used, .. } => gas_used,
            failed => return Ok(Err(failed)),
        };
        let next = access_list_of(&touched, &warm);
        if next == list {
            return Ok(Ok((list, gas_used)));
        }
        list = next;
    }
    match run_with(state, ctx, hashes, req, gas, &list)?.0 {
        CallOutcome::Success { gas_used, .. } => Ok(Ok((list, gas_used))),
        failed => Ok(Err(failed)),
    }
}

/// The access list a call's touched state amounts to, sorted so it compares stably.
fn access_list_of(touched: &revm::state::EvmState, warm: &[Address]) -> AccessList {
    let mut items: Vec<AccessListItem> = touched
        .iter()
        // System modules price their storage themselves: a list cannot make it cheaper.
        .filter(|(addr, _)| !emc_modules::is_system_module(**addr))
        .filter(|(addr, acct)| !acct.storage.is_empty() || !warm.contains(addr))
        .map(|(addr, acct)| {
            let mut keys: Vec<B256> = acct.storage.keys().map(|k| B256::from(*k)).collect();
            keys.sort();
            AccessListItem {
                address: *addr,
                storage_keys: keys,
            }
        })
        .collect();
    items.sort_by_key(|i| i.address);
    AccessList(items)
}

/// Runs `req` with `gas` and `access_list`; the outcome and every account and slot
/// it loaded.
fn run_with(
    state: &StateSnapshot,
    ctx: &BlockContext,
    hashes: &BTreeMap<u64, B256>,
    req: &CallRequest,
    gas: u64,
    access_list: &AccessList,
) -> Result<(CallOutcome, revm::state::EvmState), ExecError> {
    let mut overlay = Overlay::new(state, hashes);
    let from = req.from.unwrap_or_default();
    let nonce = overlay.account(from)?.map_or(0, |a| a.nonce);
    let mut cfg = ctx.cfg_env();
    cfg.disable_nonce_check = true;
    let gas_price = req.gas_price.unwrap_or(0);
    if gas_price == 0 {
        cfg.disable_base_fee = true;
        cfg.disable_balance_check = req.value.unwrap_or_default().is_zero();
    }
    let tx = TxEnv {
        tx_type: if access_list.is_empty() { 0 } else { 1 },
        access_list: access_list.clone(),
        caller: from,
        gas_limit: gas,
        gas_price,
        kind: req.to.map_or(TxKind::Create, TxKind::Call),
        value: req.value.unwrap_or_default(),
        data: req.data.clone().unwrap_or_default(),
        nonce,
        chain_id: Some(ctx.chain_id),
        ..Default::default()
    };
    let mut evm = Context::mainnet()
        .with_db(&mut overlay)
        .with_block(ctx.block_env())
        .with_cfg(cfg)
        .build_mainnet()
        .with_precompiles(EmcPrecompiles::new(ctx.chain_id));
    let (result, touched) = match evm.transact(tx) {
        Ok(r) => (r.result, r.state),
        Err(EVMError::Transaction(e)) => return Err(ExecError::Invalid(crate::invalid_tx(&e))),
        Err(EVMError::Header(e)) => return Err(ExecError::Invalid(e.to_string())),
        Err(e) => return Err(ExecError::Evm(e.to_string())),
    };
    let gas_used = result.tx_gas_used();
    let outcome = match result {
        ExecutionResult::Success {
            output: Output::Call(b),
            ..
        } => CallOutcome::Success {
            output: b,
            gas_used,
        },
        ExecutionResult::Success {
            output: Output::Create(b, _),
            ..
        } => CallOutcome::Success {
            output: b,
            gas_used,
        },
        ExecutionResult::Revert { output, .. } => CallOutcome::Revert { output, gas_used },
        ExecutionResult::Halt { reason, .. } => CallOutcome::Halt {
            reason: format!("{reason:?}"),
            gas_used,
        },
    };
    Ok((outcome, touched))
}

/// The least gas limit under which `req` succeeds, by binary search between what
/// it used with the block's whole limit and that limit. A call that fails even with
/// the whole limit returns its failure.
pub fn estimate_gas(
    state: &StateSnapshot,
    ctx: &BlockContext,
    hashes: &BTreeMap<u64, B256>,
    req: &CallRequest,
) -> Result<Result<u64, CallOutcome>, ExecError> {
    let cap = req.gas.unwrap_or(ctx.gas_limit).min(ctx.gas_limit);
    let used = match run(state, ctx, hashes, req, cap)? {
        CallOutcome::Success { gas_used, .. } => gas_used,
        failed => return Ok(Err(failed)),
    };
    let (mut lo, mut hi) = (used.saturating_sub(1), cap);
    // Most calls succeed at `used` plus the 1/64 that CALL withholds; try that first.
    let guess = (used + used / 64 + 2_300).min(cap);
    if matches!(
        run(state, ctx, hashes, req, guess)?,
        CallOutcome::Success { .. }
    ) {
        hi = guess;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match run(state, ctx, hashes, req, mid)? {
            CallOutcome::Success { .. } => hi = mid,
            _ => lo = mid,
        }
    }
    Ok(Ok(hi))
}
