//! Pools and their members: an operator's pool and its terms, nodes joining by a
//! signed request and leaving once their running jobs end, and the head member.

use super::storage::{member as mf, pool as pf, MEMBER, MEMBERS, POOLS, POOL_COUNT};
use super::{revert, IPools, MAX_COMMISSION_BPS, MAX_ENTRY, MAX_LIST, MAX_MEMBERS, MAX_NAME};
use crate::kit::abi::emit;
use crate::registry::RegistryModule;
use crate::staking::{self, Role};
use crate::{Metered, ModuleError};
use alloy_primitives::{Address, B256, U256};

/// What a node key signs to join pool `pool` on chain `chain_id` with its resources.
pub fn join_message(
    chain_id: u64,
    pool: u64,
    node: B256,
    cpus: u32,
    gpus: u32,
    mem: u64,
) -> Vec<u8> {
    let mut m = b"emc pool join v1".to_vec();
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(&pool.to_be_bytes());
    m.extend_from_slice(node.as_slice());
    m.extend_from_slice(&cpus.to_be_bytes());
    m.extend_from_slice(&gpus.to_be_bytes());
    m.extend_from_slice(&mem.to_be_bytes());
    m
}

/// A list of apps or frameworks, checked and stored one per line.
fn list_text(what: &str, items: &[String]) -> Result<String, ModuleError> {
    if items.len() > MAX_LIST {
        return Err(revert(format!("at most {MAX_LIST} {what}")));
    }
    for i in items {
        if i.is_empty() || i.len() > MAX_ENTRY || i.contains('\n') {
            return Err(revert(format!(
                "each of the {what} is 1 to {MAX_ENTRY} bytes on one line"
            )));
        }
    }
    Ok(items.join("\n"))
}

pub fn list_of(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// The operator of `pool`, refusing a pool that does not exist.
pub fn operator(m: &mut Metered<'_>, pool: u64) -> Result<Address, ModuleError> {
    let op: Address = POOLS.get(m, &pool, pf::OPERATOR)?;
    if op.is_zero() {
        return Err(revert(format!("no pool {pool}")));
    }
    Ok(op)
}

fn only_operator(m: &mut Metered<'_>, pool: u64, caller: Address) -> Result<(), ModuleError> {
    if operator(m, pool)? != caller {
        return Err(revert(format!("only pool {pool}'s operator may do this")));
    }
    Ok(())
}

pub fn create(
    m: &mut Metered<'_>,
    caller: Address,
    c: &IPools::createPoolCall,
) -> Result<u64, ModuleError> {
    if !staking::staked_as(m, caller, Role::Router)?
        && !staking::staked_as(m, caller, Role::Compute)?
    {
        return Err(revert(
            "a pool's operator needs router or compute stake (emc stake --role router)",
        ));
    }
    if c.name.is_empty() || c.name.len() > MAX_NAME {
        return Err(revert(format!("a pool's name is 1 to {MAX_NAME} bytes")));
    }
    let id = POOL_COUNT.get(m)? + 1;
    POOL_COUNT.set(m, &id)?;
    POOLS.set(m, &id, pf::OPERATOR, &caller)?;
    POOLS.set_str(m, &id, pf::NAME, &c.name)?;
    POOLS.set(m, &id, pf::CREATED, &m.host().height())?;
    terms(m, id, c.commissionBps, c.cpuPrice, c.gpuPrice)?;
    apps(m, id, &c.apps, &c.frameworks)?;
    emit(
        m,
        IPools::PoolCreated {
            poolId: id,
            operator: caller,
            name: c.name.clone(),
            commissionBps: c.commissionBps,
        },
    );
    Ok(id)
}

pub fn set_terms(
    m: &mut Metered<'_>,
    caller: Address,
    c: &IPools::setTermsCall,
) -> Result<(), ModuleError> {
    only_operator(m, c.poolId, caller)?;
    terms(m, c.poolId, c.commissionBps, c.cpuPrice, c.gpuPrice)
}

fn terms(
    m: &mut Metered<'_>,
    pool: u64,
    bps: u16,
    cpu: U256,
    gpu: U256,
) -> Result<(), ModuleError> {
    if bps > MAX_COMMISSION_BPS {
        return Err(revert(format!(
            "a commission is at most {MAX_COMMISSION_BPS} basis points"
        )));
    }
    if cpu.is_zero() && gpu.is_zero() {
        return Err(revert(
            "a pool prices CPU-seconds or GPU-seconds above zero",
        ));
    }
    POOLS.set(m, &pool, pf::COMMISSION, &U256::from(bps))?;
    POOLS.set(m, &pool, pf::CPU_PRICE, &cpu)?;
    POOLS.set(m, &pool, pf::GPU_PRICE, &gpu)?;
    emit(
        m,
        IPools::TermsSet {
            poolId: pool,
            commissionBps: bps,
            cpuPrice: cpu,
            gpuPrice: gpu,
        },
    );
    Ok(())
}

pub fn set_apps(
    m: &mut Metered<'_>,
    caller: Address,
    c: &IPools::setAppsCall,
) -> Result<(), ModuleError> {
    only_operator(m, c.poolId, caller)?;
    apps(m, c.poolId, &c.apps, &c.frameworks)
}

fn apps(
    m: &mut Metered<'_>,
    pool: u64,
    apps: &[String],
    frameworks: &[String],
) -> Result<(), ModuleError> {
    let (a, f) = (
        list_text("apps", apps)?,
        list_text("frameworks", frameworks)?,
    );
    POOLS.set_str(m, &pool, pf::APPS, &a)?;
    POOLS.set_str(m, &pool, pf::FRAMEWORKS, &f)?;
    emit(
        m,
        IPools::AppsSet {
            poolId: pool,
            apps: apps.to_vec(),
            frameworks: frameworks.to_vec(),
        },
    );
    Ok(())
}

/// Refuses anyone but `node`'s registered owner.
fn only_owner(m: &mut Metered<'_>, node: B256, caller: Address) -> Result<(), ModuleError> {
    let owner = RegistryModule::owner(m, node)?;
    if owner.is_zero() {
        return Err(revert(format!("node {node} is not registered")));
    }
    if owner != caller {
        return Err(revert(format!(
            "only node {node}'s owner {owner} may do this"
        )));
    }
    Ok(())
}

pub fn join(m: &mut Metered<'_>, caller: Address, c: &IPools::joinCall) -> Result<(), ModuleError> {
    operator(m, c.poolId)?;
    only_owner(m, c.nodeId, caller)?;
    let now: u64 = MEMBER.get(m, &c.nodeId, mf::POOL)?;
    if now != 0 {
        return Err(revert(format!(
            "node {} is already in pool {now}",
            c.nodeId
        )));
    }
    if c.cpus == 0 {
        return Err(revert("a member brings at least one CPU"));
    }
    m.charge_signature()?;
    let msg = join_message(
        m.host().chain_id(),
        c.poolId,
        c.nodeId,
        c.cpus,
        c.gpus,
        c.memoryMb,
    );
    let ok = super::node_signed(c.nodeId, &c.nodeSignature, &msg);
    if !ok {
        return Err(revert("the node key did not sign this join request"));
    }
    let i = MEMBERS
        .push(m, &c.poolId, &c.nodeId, MAX_MEMBERS)
        .map_err(|_| revert(format!("a pool has at most {MAX_MEMBERS} members")))?;
    let k = &c.nodeId;
    MEMBER.set(m, k, mf::POOL, &c.poolId)?;
    MEMBER.set(m, k, mf::CPUS, &u64::from(c.cpus))?;
    MEMBER.set(m, k, mf::GPUS, &u64::from(c.gpus))?;
    MEMBER.set(m, k, mf::MEMORY, &c.memoryMb)?;
    MEMBER.set(m, k, mf::INDEX, &(i + 1))?;
    emit(
        m,
        IPools::Joined {
            poolId: c.poolId,
            nodeId: c.nodeId,
            cpus: c.cpus,
            gpus: c.gpus,
            memoryMb: c.memoryMb,
        },
    );
    let head: B256 = POOLS.get(m, &c.poolId, pf::HEAD)?;
    if head.is_zero() {
        set_head_to(m, c.poolId, c.nodeId)?;
    }
    Ok(())
}

pub fn leave(m: &mut Metered<'_>, caller: Address, node: B256) -> Result<(), ModuleError> {
    only_owner(m, node, caller)?;
    let pool: u64 = MEMBER.get(m, &node, mf::POOL)?;
    if pool == 0 {
        return Err(revert(format!("node {node} is in no pool")));
    }
    let running: u64 = MEMBER.get(m, &node, mf::RUNNING)?;
    if running == 0 {
        return remove(m, pool, node);
    }
    MEMBER.set(m, &node, mf::LEAVING, &true)?;
    emit(
        m,
        IPools::Leaving {
            poolId: pool,
            nodeId: node,
            running,
        },
    );
    Ok(())
}

pub fn set_head(
    m: &mut Metered<'_>,
    caller: Address,
    c: &IPools::setHeadCall,
) -> Result<(), ModuleError> {
    only_operator(m, c.poolId, caller)?;
    let pool: u64 = MEMBER.get(m, &c.nodeId, mf::POOL)?;
    if pool != c.poolId {
        return Err(revert(format!(
            "node {} is not a member of pool {}",
            c.nodeId, c.poolId
        )));
    }
    set_head_to(m, c.poolId, c.nodeId)
}

fn set_head_to(m: &mut Metered<'_>, pool: u64, node: B256) -> Result<(), ModuleError> {
    POOLS.set(m, &pool, pf::HEAD, &node)?;
    emit(
        m,
        IPools::HeadSet {
            poolId: pool,
            nodeId: node,
        },
    );
    Ok(())
}

/// One job of `node`'s ended: a leaving member with none left goes.
pub fn job_ended(m: &mut Metered<'_>, pool: u64, node: B256) -> Result<(), ModuleError> {
    if MEMBER.get::<u64>(m, &node, mf::POOL)? != pool {
        return Ok(());
    }
    let running = MEMBER.get::<u64>(m, &node, mf::RUNNING)?.saturating_sub(1);
    MEMBER.set(m, &node, mf::RUNNING, &running)?;
    if running == 0 && MEMBER.get::<bool>(m, &node, mf::LEAVING)? {
        remove(m, pool, node)?;
    }
    Ok(())
}

/// Takes `node` out of `pool`'s list (the last member moves into its place) and
/// clears its record; a head that leaves passes the head to the first member left.
fn remove(m: &mut Metered<'_>, pool: u64, node: B256) -> Result<(), ModuleError> {
    let n = MEMBERS.len(m, &pool)?;
    let i = MEMBER.get::<u64>(m, &node, mf::INDEX)?.saturating_sub(1);
    if n > 0 && i < n - 1 {
        let last = MEMBERS.element(m, &pool, n - 1)?;
        m.sstore(MEMBERS.element_slot(&pool, i), last.into())?;
        MEMBER.set(m, &last, mf::INDEX, &(i + 1))?;
    }
    if n > 0 {
        m.sstore(MEMBERS.element_slot(&pool, n - 1), U256::ZERO)?;
        m.sstore(MEMBERS.len_slot(&pool), U256::from(n - 1))?;
    }
    for f in [
        mf::POOL,
        mf::CPUS,
        mf::GPUS,
        mf::MEMORY,
        mf::LEAVING,
        mf::RUNNING,
        mf::INDEX,
    ] {
        MEMBER.set(m, &node, f, &U256::ZERO)?;
    }
    emit(
        m,
        IPools::Left {
            poolId: pool,
            nodeId: node,
        },
    );
    let head: B256 = POOLS.get(m, &pool, pf::HEAD)?;
    if head == node {
        let next = if n > 1 {
            MEMBERS.element(m, &pool, 0)?
        } else {
            B256::ZERO
        };
        set_head_to(m, pool, next)?;
    }
    Ok(())
}

/// `pool`'s members as the ABI returns them, with their E.
pub fn members(m: &mut Metered<'_>, pool: u64) -> Result<Vec<IPools::Member>, ModuleError> {
    let ids = MEMBERS.all(m, &pool, MAX_MEMBERS)?;
    ids.into_iter()
        .map(|id| {
            Ok(IPools::Member {
                nodeId: id,
                owner: RegistryModule::owner(m, id)?,
                cpus: MEMBER.get::<u64>(m, &id, mf::CPUS)? as u32,
                gpus: MEMBER.get::<u64>(m, &id, mf::GPUS)? as u32,
                memoryMb: MEMBER.get(m, &id, mf::MEMORY)?,
                score: crate::poc::PocModule::score(m, id)?,
                leaving: MEMBER.get(m, &id, mf::LEAVING)?,
                running: MEMBER.get(m, &id, mf::RUNNING)?,
            })
        })
        .collect()
}

pub fn pool(m: &mut Metered<'_>, pool: u64) -> Result<IPools::Pool, ModuleError> {
    let operator = operator(m, pool)?;
    Ok(IPools::Pool {
        operator,
        name: POOLS.get_str(m, &pool, pf::NAME, MAX_NAME)?,
        commissionBps: POOLS.get::<u64>(m, &pool, pf::COMMISSION)? as u16,
        cpuPrice: POOLS.get(m, &pool, pf::CPU_PRICE)?,
        gpuPrice: POOLS.get(m, &pool, pf::GPU_PRICE)?,
        head: POOLS.get(m, &pool, pf::HEAD)?,
        apps: list_of(&POOLS.get_str(m, &pool, pf::APPS, MAX_LIST * (MAX_ENTRY + 1))?),
        frameworks: list_of(&POOLS.get_str(
            m,
            &pool,
            pf::FRAMEWORKS,
            MAX_LIST * (MAX_ENTRY + 1),
        )?),
        members: MEMBERS.len(m, &pool)?,
        createdAt: POOLS.get(m, &pool, pf::CREATED)?,
    })
}
