//! The `Pools` system module: many computing nodes as one Ray cluster, and one job's
//! pay split on chain by what each member did.
//!
//! * An operator with router or compute stake creates a pool: its name, commission,
//!   prices per CPU-second and GPU-second, apps (Ray Serve deployments or job
//!   templates) and frameworks (the Python packages its Ray runtime provides).
//! * A registered node joins by its owner's transaction carrying the node key's
//!   signature over [`members::join_message`] (the node's declared CPUs, GPUs and
//!   memory), so neither an owner nor a node joins alone. A node is in one pool at a
//!   time. The first member is the head (the machine that runs `ray start --head`);
//!   the operator may name another. A member leaves at once if it runs no job, or as
//!   its last running job settles or expires: a job never loses a member the chain
//!   counted on.
//! * A staked router opens a job when it submits one ([`jobs::open`]): the job runs on
//!   the members of that moment, under the head of that moment, within a budget and
//!   before a deadline. The router settles it once ([`jobs::settle`]) with each
//!   member's signed report and the head's signed accounting, or anyone expires it
//!   after its deadline and nobody is paid.
//!
//! * A computing socket may name a pool as its provider ([`provider`]): its node id
//!   is the pool's provider id, its app [`JOBS_APP`], its holder's socket key pays
//!   for the pool's jobs from the socket's credits (the Sockets module's
//!   `drawForPool`), minted and offered by the pool's operator.
//!
//! Invariant: the module holds no value between transactions: a settlement draws
//! exactly the job's cost and fee from the client's escrow (or a socket's credits,
//! rounded up to whole credits, the rounding to the operator) and pays all of it out.

mod abi;
pub mod jobs;
pub mod members;
mod storage;
#[cfg(test)]
mod tests;

pub use abi::IPools;
pub use storage::job_key;

use crate::{Metered, ModuleCall, ModuleError, POOLS_ADDRESS};
use alloy_primitives::{Address, Bytes};
use alloy_sol_types::{SolCall, SolInterface};

/// Most members of one pool (every loop over a pool's or a job's members is bounded).
pub const MAX_MEMBERS: u64 = 32;
/// Most apps, and most frameworks, a pool lists; each entry's most bytes.
pub const MAX_LIST: usize = 16;
pub const MAX_ENTRY: usize = 64;
pub const MAX_NAME: usize = 64;
/// The highest commission, basis points.
pub const MAX_COMMISSION_BPS: u16 = 5_000;
/// The longest a job may run before it must settle: a week.
pub const MAX_JOB_SECONDS: u64 = 7 * 24 * 3_600;

/// The app a socket for a pool's jobs names.
pub const JOBS_APP: &str = "jobs";

/// The first 24 bytes of every pool's provider id: `keccak256("emc pool provider")`'s.
fn provider_prefix() -> [u8; 24] {
    let h = alloy_primitives::keccak256(b"emc pool provider");
    let mut p = [0u8; 24];
    p.copy_from_slice(&h[..24]);
    p
}

/// The provider id a socket names to be a socket of pool `pool`: the prefix and the
/// pool id, big-endian. No node key is it (a node id is an ed25519 key; one with
/// these 24 bytes is a 2^-192 chance).
pub fn provider(pool: u64) -> alloy_primitives::B256 {
    let mut b = [0u8; 32];
    b[..24].copy_from_slice(&provider_prefix());
    b[24..].copy_from_slice(&pool.to_be_bytes());
    b.into()
}

/// The pool a provider id names, if it is one.
pub fn pool_of_provider(node: alloy_primitives::B256) -> Option<u64> {
    if node[..24] != provider_prefix() {
        return None;
    }
    let id = u64::from_be_bytes(node[24..].try_into().ok()?);
    (id != 0).then_some(id)
}

/// Who sells what a provider id serves: a pool's operator, or the node's owner in
/// the Registry (zero for neither).
pub fn provider_owner(
    m: &mut Metered<'_>,
    node: alloy_primitives::B256,
) -> Result<Address, ModuleError> {
    match pool_of_provider(node) {
        // Read from the Pools module's own storage, whichever module asks.
        Some(pool) => {
            let slot = storage::POOLS.field(&pool, storage::pool::OPERATOR);
            Ok(crate::kit::slots::Word::from_word(
                m.sload_at(POOLS_ADDRESS, slot)?,
            ))
        }
        None => crate::registry::RegistryModule::owner(m, node),
    }
}

/// A revert in this module's name (the kit's `"<Module>: <why>"`).
fn revert(why: impl std::fmt::Display) -> ModuleError {
    crate::kit::abi::revert("Pools", why)
}

/// Whether node key `node` signed `msg` (a join request, a report, an accounting).
pub fn node_signed(node: alloy_primitives::B256, sig: &[u8], msg: &[u8]) -> bool {
    let Ok(sig) = <[u8; 64]>::try_from(sig) else {
        return false;
    };
    ed25519_consensus::VerificationKey::try_from(node.0)
        .and_then(|vk| vk.verify(&sig.into(), msg))
        .is_ok()
}

pub struct PoolsModule;

impl crate::kit::SystemModule for PoolsModule {
    fn address(&self) -> Address {
        POOLS_ADDRESS
    }

    fn name(&self) -> &'static str {
        "Pools"
    }

    fn call(&self, m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        use IPools::IPoolsCalls as C;
        let c =
            C::abi_decode(call.input).map_err(|_| revert("unknown function or bad arguments"))?;
        if !call.value.is_zero() {
            return Err(revert("this module takes no value"));
        }
        let views = matches!(
            c,
            C::pool(_) | C::members(_) | C::poolOf(_) | C::job(_) | C::poolCount(_)
        );
        if call.is_static && !views {
            return Err(revert("state change in a static call"));
        }
        let who = call.caller;
        Ok(match c {
            C::createPool(c) => {
                IPools::createPoolCall::abi_encode_returns(&members::create(m, who, &c)?).into()
            }
            C::setTerms(c) => unit(members::set_terms(m, who, &c)?),
            C::setApps(c) => unit(members::set_apps(m, who, &c)?),
            C::join(c) => unit(members::join(m, who, &c)?),
            C::leave(c) => unit(members::leave(m, who, c.nodeId)?),
            C::setHead(c) => unit(members::set_head(m, who, &c)?),
            C::openJob(c) => unit(jobs::open(m, who, &c)?),
            C::settleJob(c) => {
                IPools::settleJobCall::abi_encode_returns(&jobs::settle(m, who, &c.receipt)?).into()
            }
            C::expireJob(c) => unit(jobs::expire(m, &c)?),
            C::pool(c) => IPools::poolCall::abi_encode_returns(&members::pool(m, c.poolId)?).into(),
            C::members(c) => {
                IPools::membersCall::abi_encode_returns(&members::members(m, c.poolId)?).into()
            }
            C::poolOf(c) => {
                let p: u64 = storage::MEMBER.get(m, &c.nodeId, storage::member::POOL)?;
                IPools::poolOfCall::abi_encode_returns(&p).into()
            }
            C::job(c) => {
                IPools::jobCall::abi_encode_returns(&jobs::job(m, c.poolId, c.jobId)?).into()
            }
            C::poolCount(_) => {
                IPools::poolCountCall::abi_encode_returns(&storage::POOL_COUNT.get(m)?).into()
            }
        })
    }
}

fn unit((): ()) -> Bytes {
    Bytes::new()
}
