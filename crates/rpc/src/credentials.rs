//! `emc_issueCredential(nodeId, [block])`: a validator's verifiable credential of what
//! the chain says of a computing node at a block (`emc_identity::credential`), signed
//! with the validator's consensus key. Only a node whose consensus key is in the
//! validator set at that block issues one; any other answers -32000 saying so.
//!
//! The facts come from state at the block (the registration) and from the topic
//! index (the node id is an indexed argument of `Poc`'s `ScoreSet` and `Faulted` and
//! of `Tasks`' `Settled`; a fault's slash is the owner's `Staking.Slashed` in the
//! same block), each list bounded by the newest whole blocks that fit
//! (`MAX_EPOCHS`, `MAX_RECEIPTS`).

use crate::eth::resolve_block;
use crate::{internal, invalid_params, module_view as view, server_error, Ctx, RpcError};
use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolEvent;
use emc_identity::credential::{self as vc, Fault, NodeFacts, Registration, Score, Settlements};
use emc_modules::{
    chain::IChain, poc::IPoc, registry::IRegistry, staking::IStaking, tasks::ITasks,
};
use emc_modules::{CHAIN_ADDRESS, POC_ADDRESS, REGISTRY_ADDRESS, STAKING_ADDRESS, TASKS_ADDRESS};
use emc_storage::TopicLog;
use emc_types::Height;
use jsonrpsee::{types::ErrorObjectOwned, types::Params, RpcModule};
use serde_json::{json, Value};

type R = Result<Value, ErrorObjectOwned>;

/// The `Poc` logs read to find a node's newest scores and faults: each epoch logs one
/// attestation per validator beside its score.
const POC_LOGS: usize = 4_096;

pub(crate) fn register(m: &mut RpcModule<Ctx>) -> Result<(), RpcError> {
    method!(m, "emc_issueCredential", issue);
    Ok(())
}

fn issue(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let node: B256 = s
        .next()
        .map_err(|_| invalid_params("the first parameter is a node id (32 bytes, hex)"))?;
    let at = resolve_block(&c.chain, s.optional_next()?)?;
    let Some(key) = &c.cfg.issuer else {
        return Err(server_error(
            "this node holds no validator key and issues no credentials",
        ));
    };
    let set = view(c, at, CHAIN_ADDRESS, IChain::validatorSetCall {})?;
    if !set.consensusKeys.contains(&key.public()) {
        return Err(server_error(format!(
            "this node's validator key is not in the validator set at block {at}"
        )));
    }
    let facts = facts(c, node, at)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (jwt, credential) = vc::issue(&facts, key.seed(), now);
    Ok(json!({ "jwt": jwt, "credential": credential }))
}

fn facts(c: &Ctx, node: B256, at: Height) -> Result<NodeFacts, ErrorObjectOwned> {
    let header = c
        .chain
        .store()
        .header(at)
        .map_err(internal)?
        .ok_or_else(|| server_error(format!("no block {at}")))?;
    let info = view(
        c,
        at,
        REGISTRY_ADDRESS,
        IRegistry::nodeInfoCall { nodeId: node },
    )?;
    let registration = (info.owner != Address::ZERO).then(|| Registration {
        owner: info.owner,
        apps: info.apps.into_iter().zip(info.prices).collect(),
        hardware: info.hardware,
        registered_at: info.registeredAt,
    });
    let (scores, faults) = poc(c, node, at)?;
    Ok(NodeFacts {
        chain_id: c.chain.chain_id(),
        block: at.0,
        block_hash: header.hash(),
        block_time: header.timestamp,
        node,
        registration,
        scores,
        faults,
        settlements: settlements(c, node, at)?,
    })
}

fn latest(
    c: &Ctx,
    address: Address,
    topic: B256,
    to: u64,
    limit: usize,
) -> Result<(Vec<TopicLog>, bool), ErrorObjectOwned> {
    c.chain
        .store()
        .latest_logs_by_topic(address, topic, to, limit)
        .map_err(internal)
}

/// The node's newest scores and faults, newest first.
fn poc(c: &Ctx, node: B256, at: Height) -> Result<(Vec<Score>, Vec<Fault>), ErrorObjectOwned> {
    let (logs, _) = latest(c, POC_ADDRESS, node, at.0, POC_LOGS)?;
    let (mut scores, mut faults) = (Vec::new(), Vec::new());
    for l in &logs {
        let topics = l.log.topics.iter().copied();
        if l.log.topics.get(2) != Some(&node) {
            continue;
        }
        match l.log.topics.first() {
            Some(&IPoc::ScoreSet::SIGNATURE_HASH) if scores.len() < vc::MAX_EPOCHS => {
                if let Ok(e) = IPoc::ScoreSet::decode_raw_log(topics, &l.log.data) {
                    scores.push(Score {
                        epoch: e.epoch,
                        score: e.score,
                        block: l.height,
                    });
                }
            }
            Some(&IPoc::Faulted::SIGNATURE_HASH) if faults.len() < vc::MAX_EPOCHS => {
                if let Ok(e) = IPoc::Faulted::decode_raw_log(topics, &l.log.data) {
                    let slashed = slashed(c, e.owner, l.height)?;
                    faults.push(Fault {
                        epoch: e.epoch,
                        block: l.height,
                        slashed,
                    });
                }
            }
            _ => {}
        }
    }
    Ok((scores, faults))
}

/// What `Staking` slashed of `owner` in block `height` (a fault's slash is logged in
/// the fault's own transaction).
fn slashed(c: &Ctx, owner: Address, height: u64) -> Result<U256, ErrorObjectOwned> {
    let (logs, _) = latest(c, STAKING_ADDRESS, owner.into_word(), height, 64)?;
    Ok(logs
        .iter()
        .filter(|l| l.height == height)
        .filter_map(|l| {
            IStaking::Slashed::decode_raw_log(l.log.topics.iter().copied(), &l.log.data).ok()
        })
        .filter(|e| e.validator == owner)
        .fold(U256::ZERO, |sum, e| sum.saturating_add(e.amount)))
}

/// What `Tasks` settled to the node in the newest whole blocks that fit.
fn settlements(c: &Ctx, node: B256, at: Height) -> Result<Settlements, ErrorObjectOwned> {
    let (logs, complete) = latest(c, TASKS_ADDRESS, node, at.0, vc::MAX_RECEIPTS)?;
    let mut s = Settlements {
        complete,
        ..Default::default()
    };
    for l in &logs {
        if l.log.topics.get(3) != Some(&node) {
            continue;
        }
        let Ok(e) = ITasks::Settled::decode_raw_log(l.log.topics.iter().copied(), &l.log.data)
        else {
            continue;
        };
        s.receipts += 1;
        s.earned = s.earned.saturating_add(e.nodeAmount);
        s.router_fees = s.router_fees.saturating_add(e.routerFee);
        if s.latest.len() < 8 {
            s.latest.push(e.receiptId);
        }
    }
    s.from_block = match (complete, logs.last()) {
        (false, Some(oldest)) => oldest.height,
        _ => 0,
    };
    Ok(s)
}
