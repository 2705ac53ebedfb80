//! Jobs: opened by the router that submits them, settled once by it with every
//! member's signed report and the head's signed accounting, or expired.
//!
//! Settlement pays each member the smaller of what it reported and what Ray
//! accounted for it: a report above Ray's figure is refused outright (the member is
//! paid nothing for the job, with a `MeteringRefused` event naming why), so a
//! member gains nothing by over-reporting and an honest member, whose agent reads the
//! same accounting, loses nothing. A member killed mid-job is paid for its last
//! report, the work it metered before it died.
//!
//! The client pays the members' costs plus the router's fee
//! ([`crate::tasks::ROUTER_FEE_BPS`]), drawn from its Tasks escrow under its grant,
//! never more than the `maxCost` the router reserved (a job that ran past its budget
//! pays its budget, every member's cost scaled down alike). Of the costs, the
//! operator takes its commission; the rest is split among the paid members pro rata
//! to their cost weighted by their E ([`split`]).

use super::members::{self, operator};
use super::storage::{job as jf, job_key, pool as pf, JOBS, JOB_MEMBERS, MEMBERS, POOLS};
use super::storage::{member as mf, EXPIRED, MEMBER, RUNNING, SETTLED};
use super::{revert, IPools, MAX_JOB_SECONDS, MAX_MEMBERS};
use crate::kit::abi::emit;
use crate::registry::RegistryModule;
use crate::staking::{self, Role};
use crate::tasks::{self, ITasks};
use crate::{Metered, ModuleError, TASKS_ADDRESS};
use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::{SolCall, SolValue};
use std::collections::BTreeMap;

/// What a member's node key signs: its usage of one job.
pub fn usage_message(chain_id: u64, pool: u64, job: B256, u: &IPools::Usage) -> Vec<u8> {
    let mut m = b"emc pool usage v1".to_vec();
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(&pool.to_be_bytes());
    m.extend_from_slice(job.as_slice());
    m.extend_from_slice(u.nodeId.as_slice());
    m.extend_from_slice(&u.cpuMs.to_be_bytes());
    m.extend_from_slice(&u.gpuMs.to_be_bytes());
    m
}

/// What the head member's node key signs: Ray's accounting of every member for a job.
pub fn accounting_message(chain_id: u64, pool: u64, job: B256, all: &[IPools::Usage]) -> Vec<u8> {
    let mut m = b"emc pool accounting v1".to_vec();
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(&pool.to_be_bytes());
    m.extend_from_slice(job.as_slice());
    m.extend_from_slice(&(all.len() as u64).to_be_bytes());
    for u in all {
        m.extend_from_slice(u.nodeId.as_slice());
        m.extend_from_slice(&u.cpuMs.to_be_bytes());
        m.extend_from_slice(&u.gpuMs.to_be_bytes());
    }
    m
}

/// A usage's cost: `(cpuMs · cpuPrice + gpuMs · gpuPrice) / 1000`, rounded down.
pub fn cost(u: &IPools::Usage, cpu_price: U256, gpu_price: U256) -> U256 {
    (U256::from(u.cpuMs) * cpu_price + U256::from(u.gpuMs) * gpu_price) / U256::from(1_000)
}

/// Costs scaled down alike so they sum to at most `cap`.
pub fn capped(costs: &[U256], cap: U256) -> Vec<U256> {
    let sum = costs.iter().fold(U256::ZERO, |s, c| s + c);
    if sum <= cap {
        return costs.to_vec();
    }
    costs.iter().map(|c| c * cap / sum).collect()
}

/// One job's pay, pure: `(cost, E)` per paid member and the operator's commission in
/// basis points give the commission and each member's amount. The commission is
/// `total · bps / 10,000`; the rest goes pro rata to `cost · E` (to `cost` alone when
/// no paid member has an E yet), rounded down, and the rounding's dust to the
/// operator. The amounts and the commission sum to the total exactly.
pub fn split(members: &[(U256, u64)], commission_bps: u16) -> (U256, Vec<U256>) {
    let total = members.iter().fold(U256::ZERO, |s, (c, _)| s + c);
    let mut commission = total * U256::from(commission_bps) / U256::from(10_000);
    let rest = total - commission;
    let mut weights: Vec<U256> = members.iter().map(|(c, e)| c * U256::from(*e)).collect();
    if weights.iter().all(U256::is_zero) {
        weights = members.iter().map(|(c, _)| *c).collect();
    }
    let sum = weights.iter().fold(U256::ZERO, |s, w| s + w);
    let amounts: Vec<U256> = if sum.is_zero() {
        vec![U256::ZERO; members.len()]
    } else {
        weights.iter().map(|w| rest * w / sum).collect()
    };
    commission += rest - amounts.iter().fold(U256::ZERO, |s, a| s + a);
    (commission, amounts)
}

pub fn open(
    m: &mut Metered<'_>,
    router: Address,
    c: &IPools::openJobCall,
) -> Result<(), ModuleError> {
    operator(m, c.poolId)?;
    if !staking::staked_as(m, router, Role::Router)? {
        return Err(revert("only a staked router opens a job"));
    }
    let key = job_key(c.poolId, c.jobId);
    if JOBS.get::<u64>(m, &key, jf::STATE)? != 0 {
        return Err(revert(format!(
            "pool {} already has job {}",
            c.poolId, c.jobId
        )));
    }
    let now = m.host().timestamp();
    if c.deadline <= now || c.deadline > now + MAX_JOB_SECONDS {
        return Err(revert(format!(
            "a job's deadline is within {MAX_JOB_SECONDS} seconds from now"
        )));
    }
    if c.maxCost.is_zero() {
        return Err(revert("a job's budget is above zero"));
    }
    let head: B256 = POOLS.get(m, &c.poolId, pf::HEAD)?;
    let mut n = 0;
    for node in MEMBERS.all(m, &c.poolId, MAX_MEMBERS)? {
        if MEMBER.get::<bool>(m, &node, mf::LEAVING)? {
            continue;
        }
        JOB_MEMBERS.push(m, &key, &node, MAX_MEMBERS)?;
        let r: u64 = MEMBER.get(m, &node, mf::RUNNING)?;
        MEMBER.set(m, &node, mf::RUNNING, &(r + 1))?;
        n += 1;
    }
    if n == 0 || head.is_zero() {
        return Err(revert(format!(
            "pool {} has no members to run a job",
            c.poolId
        )));
    }
    JOBS.set(m, &key, jf::STATE, &RUNNING)?;
    JOBS.set(m, &key, jf::ROUTER, &router)?;
    JOBS.set(m, &key, jf::HEAD, &head)?;
    JOBS.set(m, &key, jf::MAX_COST, &c.maxCost)?;
    JOBS.set(m, &key, jf::DEADLINE, &c.deadline)?;
    emit(
        m,
        IPools::JobOpened {
            poolId: c.poolId,
            jobId: c.jobId,
            router,
            maxCost: c.maxCost,
            deadline: c.deadline,
        },
    );
    Ok(())
}

/// A running job's key and members, refusing one that is not running.
fn running(m: &mut Metered<'_>, pool: u64, job: B256) -> Result<(B256, Vec<B256>), ModuleError> {
    let key = job_key(pool, job);
    if JOBS.get::<u64>(m, &key, jf::STATE)? != RUNNING {
        return Err(revert(format!("pool {pool} has no running job {job}")));
    }
    Ok((key, JOB_MEMBERS.all(m, &key, MAX_MEMBERS)?))
}

/// Ends a job: its state, and each of its members has one job fewer.
fn end(
    m: &mut Metered<'_>,
    pool: u64,
    key: B256,
    nodes: &[B256],
    state: u64,
) -> Result<(), ModuleError> {
    JOBS.set(m, &key, jf::STATE, &state)?;
    for n in nodes {
        members::job_ended(m, pool, *n)?;
    }
    Ok(())
}

pub fn expire(m: &mut Metered<'_>, c: &IPools::expireJobCall) -> Result<(), ModuleError> {
    let (key, nodes) = running(m, c.poolId, c.jobId)?;
    let deadline: u64 = JOBS.get(m, &key, jf::DEADLINE)?;
    if m.host().timestamp() <= deadline {
        return Err(revert(format!("the job may settle until {deadline}")));
    }
    end(m, c.poolId, key, &nodes, EXPIRED)?;
    emit(
        m,
        IPools::JobExpired {
            poolId: c.poolId,
            jobId: c.jobId,
        },
    );
    Ok(())
}

/// The members a job pays, with their usage: reports that are members', signed,
/// once each and within Ray's accounting (the others refused with events).
fn paid_usage(
    m: &mut Metered<'_>,
    r: &IPools::JobReceipt,
    nodes: &[B256],
) -> Result<Vec<IPools::Usage>, ModuleError> {
    let chain = m.host().chain_id();
    let accounted: BTreeMap<B256, &IPools::Usage> =
        r.accounted.iter().map(|u| (u.nodeId, u)).collect();
    let mut paid: Vec<IPools::Usage> = Vec::new();
    for rep in &r.reports {
        let u = &rep.usage;
        m.charge_signature()?;
        let why = if !nodes.contains(&u.nodeId) {
            Some("not a member of the job".to_string())
        } else if paid.iter().any(|p| p.nodeId == u.nodeId) {
            Some("reported twice".to_string())
        } else if !super::node_signed(
            u.nodeId,
            &rep.signature,
            &usage_message(chain, r.poolId, r.jobId, u),
        ) {
            Some("the node key did not sign this report".to_string())
        } else {
            match accounted.get(&u.nodeId) {
                None => Some("Ray accounted nothing for it".into()),
                Some(a) if u.cpuMs > a.cpuMs || u.gpuMs > a.gpuMs => Some(format!(
                    "it reported {} CPU-ms and {} GPU-ms, more than the {} and {} Ray accounted for it",
                    u.cpuMs, u.gpuMs, a.cpuMs, a.gpuMs
                )),
                Some(_) => None,
            }
        };
        match why {
            Some(reason) => emit(
                m,
                IPools::MeteringRefused {
                    jobId: r.jobId,
                    nodeId: u.nodeId,
                    reason,
                },
            ),
            None => paid.push(u.clone()),
        }
    }
    Ok(paid)
}

/// Who signed the receipt's grant: the socket key's holder, or the escrow account.
fn payer_of(r: &IPools::JobReceipt) -> Result<Address, ModuleError> {
    let g = ITasks::Grant::from(&r.grant);
    if r.socket.is_zero() {
        tasks::grant_signer(&g, &r.grantSignature).map_err(revert)
    } else {
        crate::sockets::settle::socket_grant_signer(&g, r.socket, &r.grantSignature).map_err(revert)
    }
}

/// Draws `amount` from socket `r.socket`'s credits into this module (the Sockets
/// module checks the key as for a call): the holder, and the wei drawn (whole
/// credits, so at least `amount`).
fn draw_socket(
    m: &mut Metered<'_>,
    router: Address,
    r: &IPools::JobReceipt,
    id: B256,
    amount: U256,
) -> Result<(Address, U256), ModuleError> {
    use crate::sockets::ISockets;
    let call = ISockets::drawForPoolCall {
        tokenId: r.socket,
        poolId: r.poolId,
        router,
        grant: ITasks::Grant::from(&r.grant).into(),
        grantSignature: r.grantSignature.clone(),
        drawId: id,
        requestHash: r.requestHash,
        amount,
    };
    let out = m.call_module(crate::SOCKETS_ADDRESS, &call.abi_encode())?;
    let d = ISockets::drawForPoolCall::abi_decode_returns(&out)
        .map_err(|_| revert("the Sockets module answered no draw"))?;
    Ok((d.holder, d.drawn))
}

/// Draws `amount` from the client's escrow into this module (the Tasks module checks
/// the grant as for a call): the client's account.
fn draw(
    m: &mut Metered<'_>,
    router: Address,
    r: &IPools::JobReceipt,
    id: B256,
    amount: U256,
) -> Result<Address, ModuleError> {
    let call = ITasks::drawCall {
        router,
        grant: ITasks::Grant::from(&r.grant),
        grantSignature: r.grantSignature.clone(),
        drawId: id,
        requestHash: r.requestHash,
        amount,
    };
    let out = m.call_module(TASKS_ADDRESS, &call.abi_encode())?;
    Address::abi_decode(&out).map_err(|_| revert("the Tasks module answered no account"))
}

pub fn settle(
    m: &mut Metered<'_>,
    router: Address,
    r: &IPools::JobReceipt,
) -> Result<U256, ModuleError> {
    let (key, nodes) = running(m, r.poolId, r.jobId)?;
    if JOBS.get::<Address>(m, &key, jf::ROUTER)? != router {
        return Err(revert("only the router that opened a job settles it"));
    }
    let head: B256 = JOBS.get(m, &key, jf::HEAD)?;
    m.charge_signature()?;
    let msg = accounting_message(m.host().chain_id(), r.poolId, r.jobId, &r.accounted);
    if r.accounted.len() > MAX_MEMBERS as usize || !super::node_signed(head, &r.headSignature, &msg)
    {
        return Err(revert("the job's head member did not sign this accounting"));
    }
    if r.reports.len() > nodes.len() {
        return Err(revert(format!(
            "{} reports for a job of {} members",
            r.reports.len(),
            nodes.len()
        )));
    }
    let paid = paid_usage(m, r, &nodes)?;
    let (cpu, gpu): (U256, U256) = (
        POOLS.get(m, &r.poolId, pf::CPU_PRICE)?,
        POOLS.get(m, &r.poolId, pf::GPU_PRICE)?,
    );
    let max_cost: U256 = JOBS.get(m, &key, jf::MAX_COST)?;
    let fee_of = |c: U256| c * U256::from(tasks::ROUTER_FEE_BPS) / U256::from(10_000);
    // The most the members' costs may be so that costs and fee fit the budget.
    let cap = max_cost * U256::from(10_000) / U256::from(10_000 + tasks::ROUTER_FEE_BPS);
    let costs = capped(
        &paid.iter().map(|u| cost(u, cpu, gpu)).collect::<Vec<_>>(),
        cap,
    );
    let mut shares = Vec::with_capacity(paid.len());
    for (u, c) in paid.iter().zip(&costs) {
        shares.push((*c, crate::poc::PocModule::score(m, u.nodeId)?));
    }
    let bps = POOLS.get::<u64>(m, &r.poolId, pf::COMMISSION)? as u16;
    let (commission, amounts) = split(&shares, bps);
    let total = costs.iter().fold(U256::ZERO, |s, c| s + c);
    let fee = fee_of(total);
    let (account, drawn) = if total.is_zero() {
        (payer_of(r)?, U256::ZERO)
    } else if r.socket.is_zero() {
        (draw(m, router, r, key, total + fee)?, total + fee)
    } else {
        draw_socket(m, router, r, key, total + fee)?
    };
    // A socket pays whole credits: what its rounding drew past the cost goes to the
    // operator with the commission.
    let commission = commission + (drawn.max(total + fee) - (total + fee));
    let op = operator(m, r.poolId)?;
    for (u, amount) in paid.iter().zip(&amounts) {
        // A member deregistered since it ran is paid through the operator.
        let owner = RegistryModule::owner(m, u.nodeId)?;
        let to = if owner.is_zero() { op } else { owner };
        if !amount.is_zero() {
            m.pay(to, *amount)?;
        }
        emit(
            m,
            IPools::MemberPaid {
                jobId: r.jobId,
                nodeId: u.nodeId,
                owner: to,
                cpuMs: u.cpuMs,
                gpuMs: u.gpuMs,
                amount: *amount,
            },
        );
    }
    for (to, amount) in [(op, commission), (router, fee)] {
        if !amount.is_zero() {
            m.pay(to, amount)?;
        }
    }
    end(m, r.poolId, key, &nodes, SETTLED)?;
    emit(
        m,
        IPools::JobSettled {
            poolId: r.poolId,
            jobId: r.jobId,
            account,
            cost: total,
            routerFee: fee,
            commission,
        },
    );
    Ok(total + fee)
}

// A job's grant is the Tasks module's grant tuple under the Pools ABI's name.
crate::tasks::same_grant!(IPools::Grant);

pub fn job(m: &mut Metered<'_>, pool: u64, job: B256) -> Result<IPools::Job, ModuleError> {
    let key = job_key(pool, job);
    Ok(IPools::Job {
        state: JOBS.get::<u64>(m, &key, jf::STATE)? as u8,
        router: JOBS.get(m, &key, jf::ROUTER)?,
        head: JOBS.get(m, &key, jf::HEAD)?,
        maxCost: JOBS.get(m, &key, jf::MAX_COST)?,
        deadline: JOBS.get(m, &key, jf::DEADLINE)?,
        members: JOB_MEMBERS.all(m, &key, MAX_MEMBERS)?,
    })
}
