//! The Pools module's storage, declared as a Solidity contract would declare it.

use crate::kit::slots::{ArrayMapping, Records, Value};
use alloy_primitives::{keccak256, B256};

/// Pools made so far (the last id; ids start at 1).
pub const POOL_COUNT: Value<u64> = Value::at(0);
/// `mapping(uint64 => Pool)`, fields in [`pool`].
pub const POOLS: Records<u64> = Records::at(1);
/// `[poolId]` = its members' node ids.
pub const MEMBERS: ArrayMapping<u64, B256> = ArrayMapping::at(2);
/// `mapping(bytes32 => Member)` by node id, fields in [`member`].
pub const MEMBER: Records<B256> = Records::at(3);
/// `mapping(bytes32 => Job)` by [`job_key`], fields in [`job`].
pub const JOBS: Records<B256> = Records::at(4);
/// `[job_key]` = the members the job was opened on.
pub const JOB_MEMBERS: ArrayMapping<B256, B256> = ArrayMapping::at(5);

pub mod pool {
    pub const OPERATOR: u64 = 0;
    pub const COMMISSION: u64 = 1;
    pub const CPU_PRICE: u64 = 2;
    pub const GPU_PRICE: u64 = 3;
    pub const HEAD: u64 = 4;
    pub const CREATED: u64 = 5;
    pub const NAME: u64 = 6;
    /// Its apps, one per line.
    pub const APPS: u64 = 7;
    /// Its frameworks, one per line.
    pub const FRAMEWORKS: u64 = 8;
}

pub mod member {
    /// The pool it is in (zero: none).
    pub const POOL: u64 = 0;
    pub const CPUS: u64 = 1;
    pub const GPUS: u64 = 2;
    pub const MEMORY: u64 = 3;
    pub const LEAVING: u64 = 4;
    pub const RUNNING: u64 = 5;
    /// Its index in the pool's member list, plus one.
    pub const INDEX: u64 = 6;
}

pub mod job {
    /// 0 none, 1 running, 2 settled, 3 expired.
    pub const STATE: u64 = 0;
    pub const ROUTER: u64 = 1;
    pub const HEAD: u64 = 2;
    pub const MAX_COST: u64 = 3;
    pub const DEADLINE: u64 = 4;
}

pub const RUNNING: u64 = 1;
pub const SETTLED: u64 = 2;
pub const EXPIRED: u64 = 3;

/// A job's key: `keccak256(poolId . jobId)` (job ids are the router's, unique per pool).
pub fn job_key(pool: u64, job: B256) -> B256 {
    keccak256([&pool.to_be_bytes()[..], job.as_slice()].concat())
}
