//! Jobs on computing pools, through the gateway (`/v1/jobs`).
//!
//! A job's life at the router:
//!
//! 1. **Submit.** The client's key is checked and a budget reserved from its escrow
//!    as for a call; the policy ([`pools`]) picks a pool; the router opens the job on
//!    chain (`IPools.openJob`, from its account, with the reserved budget and a
//!    deadline), under an id that commits to the spec and a random salt
//!    (`emc_protocol::wire::pool_jobs::job_id`), then hands the spec to the pool's
//!    head member over `/emc/pool-jobs/1`, which checks the id against the chain and
//!    submits it to Ray.
//! 2. **Follow** ([`run`]). The router asks the head after the job every second; a
//!    client reads its status, streams its logs and may stop it.
//! 3. **Settle.** Once Ray says it ended (succeeded, failed or stopped), the router
//!    asks the head for the settlement, Ray's accounting of every member signed by
//!    the head and each member's latest signed report, and sends `IPools.settleJob`
//!    with the client's grant: the chain pays each member the smaller figure,
//!    weighted by E, and the operator's commission, and the router its fee.
//!
//! Only the account whose key submitted a job sees it; another gets 404. Jobs are
//! paid from escrow, or from the credits of a socket that names the pool as its
//! provider (`emc_modules::pools::provider`); a socket of a node is refused (it pays
//! calls).

pub mod pools;
pub mod run;

use crate::ledger::Reservation;
use alloy_primitives::{Address, B256, U256};
use emc_client::keys::ApiKey;
use emc_modules::pools::IPools;
use emc_protocol::wire::pool_jobs::SignedUsage;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Jobs a router remembers (the oldest settled ones are forgotten first).
pub const MAX_JOBS: usize = 10_000;
/// Unsettled jobs one account may have at once.
pub const MAX_RUNNING_PER_ACCOUNT: usize = 16;

/// What a job's settlement was.
#[derive(Clone, Debug)]
pub struct Settled {
    pub tx: B256,
    pub success: bool,
    pub gas_used: u64,
}

/// A job as the router follows it.
pub struct RouterJob {
    pub id: B256,
    pub pool: u64,
    pub head: B256,
    pub key: ApiKey,
    pub request_hash: B256,
    pub created: u64,
    pub max_cost: U256,
    pub deadline: u64,
    /// Ray's status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED) and message.
    pub status: String,
    pub message: String,
    pub open_gas: u64,
    pub accounted: Vec<([u8; 32], u64, u64)>,
    pub reports: Vec<SignedUsage>,
    pub settled: Option<Settled>,
    pub error: Option<String>,
    /// The budget held off the client's escrow until the job settles.
    pub reservation: Option<Reservation>,
}

/// OpenAI's job statuses (as its fine-tuning jobs have them) for Ray's.
pub fn status_name(ray: &str) -> &'static str {
    match ray {
        "PENDING" => "queued",
        "RUNNING" => "running",
        "SUCCEEDED" => "succeeded",
        "FAILED" => "failed",
        "STOPPED" => "cancelled",
        _ => "unknown",
    }
}

pub fn ended(ray: &str) -> bool {
    matches!(ray, "SUCCEEDED" | "FAILED" | "STOPPED")
}

fn usage_json(node: &[u8; 32], cpu_ms: u64, gpu_ms: u64) -> Value {
    json!({"node": B256::from(*node).to_string(), "cpu_ms": cpu_ms, "gpu_ms": gpu_ms})
}

impl RouterJob {
    /// The job as a client reads it (`GET /v1/jobs/{id}`).
    pub fn view(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "object": "job",
            "pool": self.pool,
            "head": self.head.to_string(),
            "created_at": self.created,
            "status": status_name(&self.status),
            "ray_status": self.status,
            "message": self.message,
            "max_cost": self.max_cost.to_string(),
            "deadline": self.deadline,
            "open_gas": self.open_gas,
            "metering": {
                "accounted": self.accounted.iter().map(|(n, c, g)| usage_json(n, *c, *g)).collect::<Vec<_>>(),
                "reports": self.reports.iter().map(|r| usage_json(&r.node, r.cpu_ms, r.gpu_ms)).collect::<Vec<_>>(),
            },
            "settlement": self.settled.as_ref().map(|s| json!({
                "tx": s.tx.to_string(), "success": s.success, "gas_used": s.gas_used,
            })),
            "error": self.error,
        })
    }

    /// The chain's settlement of this job from the head's answer.
    pub fn receipt(
        &self,
        accounted: &[([u8; 32], u64, u64)],
        head_signature: &[u8],
        reports: &[SignedUsage],
    ) -> IPools::JobReceipt {
        let usage = |n: &[u8; 32], c: u64, gpu: u64| IPools::Usage {
            nodeId: B256::from(*n),
            cpuMs: c,
            gpuMs: gpu,
        };
        IPools::JobReceipt {
            grant: IPools::Grant::from(&self.key.grant),
            grantSignature: self.key.signature.clone(),
            socket: self.key.socket.unwrap_or_default(),
            poolId: self.pool,
            jobId: self.id,
            requestHash: self.request_hash,
            reports: reports
                .iter()
                .filter(|r| r.job == self.id.0)
                .map(|r| IPools::Report {
                    usage: usage(&r.node, r.cpu_ms, r.gpu_ms),
                    signature: r.signature.clone().into(),
                })
                .collect(),
            accounted: accounted.iter().map(|(n, c, g)| usage(n, *c, *g)).collect(),
            headSignature: head_signature.to_vec().into(),
        }
    }
}

/// The router's jobs.
#[derive(Default)]
pub struct JobBook {
    jobs: Mutex<BTreeMap<B256, RouterJob>>,
}

impl JobBook {
    /// Room for one more job of `account`, or why not.
    pub fn admit(&self, account: Address) -> Result<(), emc_protocol::CallError> {
        let mut jobs = self.jobs.lock();
        let running = jobs
            .values()
            .filter(|j| j.key.account == account && j.settled.is_none() && j.error.is_none())
            .count();
        if running >= MAX_RUNNING_PER_ACCOUNT {
            return Err(emc_protocol::CallError::Saturated(format!(
                "{account} has {running} jobs unsettled; at most {MAX_RUNNING_PER_ACCOUNT}"
            )));
        }
        if jobs.len() >= MAX_JOBS {
            let old = jobs
                .iter()
                .find(|(_, j)| j.settled.is_some() || j.error.is_some())
                .map(|(k, _)| *k);
            match old {
                Some(k) => {
                    jobs.remove(&k);
                }
                None => {
                    return Err(emc_protocol::CallError::Saturated(format!(
                        "this router follows {MAX_JOBS} unsettled jobs"
                    )))
                }
            }
        }
        Ok(())
    }

    pub fn insert(&self, j: RouterJob) {
        self.jobs.lock().insert(j.id, j);
    }

    /// Runs `f` on job `id` if `account` submitted it.
    pub fn with<T>(
        &self,
        id: B256,
        account: Option<Address>,
        f: impl FnOnce(&mut RouterJob) -> T,
    ) -> Option<T> {
        let mut jobs = self.jobs.lock();
        let j = jobs.get_mut(&id)?;
        if account.is_some_and(|a| a != j.key.account) {
            return None;
        }
        Some(f(j))
    }

    /// The jobs of `account`, newest first.
    pub fn of(&self, account: Address) -> Vec<Value> {
        let jobs = self.jobs.lock();
        let mut mine: Vec<&RouterJob> =
            jobs.values().filter(|j| j.key.account == account).collect();
        mine.sort_by_key(|j| std::cmp::Reverse(j.created));
        mine.into_iter().map(RouterJob::view).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ray_statuses_read_as_openais_and_only_ended_ones_settle() {
        assert_eq!(status_name("RUNNING"), "running");
        assert_eq!(status_name("STOPPED"), "cancelled");
        assert!(ended("FAILED") && ended("STOPPED") && !ended("PENDING"));
    }
}
