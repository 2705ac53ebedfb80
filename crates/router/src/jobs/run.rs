//! The I/O of a job's life (see [`super`]): opening it on chain, speaking to the
//! pool's head member, following it to its end and settling it.

use super::pools::{choose, Directory, Outcomes, Want};
use super::{ended, JobBook, RouterJob, Settled};
use crate::ledger::Reservation;
use alloy_primitives::{B256, U256};
use alloy_sol_types::SolCall;
use emc_client::keys::ApiKey;
use emc_client::{ChainClient, ChainClientExt};
use emc_modules::pools::IPools;
use emc_modules::POOLS_ADDRESS;
use emc_p2p::{stream_protocol, Control};
use emc_protocol::wire::pool_jobs::{JobSpec, JobsMsg};
use emc_protocol::wire::{self, pool_jobs};
use emc_protocol::CallError;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// Gas for `openJob` (a pool of up to 32 members) and for `settleJob`.
const OPEN_GAS: u64 = 2_000_000;
const SETTLE_GAS: u64 = 4_000_000;
/// How often a running job is asked after.
const FOLLOW: Duration = Duration::from_secs(1);
/// How long one exchange with a head member may take (settlement waits for the
/// members' last reports, up to 20 s of it).
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// What a client asks for: the job, what it needs, how long it may run.
pub struct Submission {
    pub spec: JobSpec,
    pub want: Want,
    pub timeout_s: u64,
}

pub struct Jobs {
    chain: Arc<dyn ChainClient>,
    account: alloy_signer_local::PrivateKeySigner,
    control: Control,
    pub book: JobBook,
    directory: Directory,
    outcomes: Mutex<Outcomes>,
}

fn unavailable(e: emc_client::ClientError) -> CallError {
    CallError::Unavailable(format!("the chain: {e}"))
}

impl Jobs {
    pub fn new(
        chain: Arc<dyn ChainClient>,
        account: alloy_signer_local::PrivateKeySigner,
        control: Control,
    ) -> Self {
        Jobs {
            directory: Directory::new(chain.clone()),
            chain,
            account,
            control,
            book: JobBook::default(),
            outcomes: Mutex::default(),
        }
    }

    /// Sends a transaction from the router's account (one at a time: each takes the
    /// next nonce) and waits for it; its hash and gas, or the revert as a refusal.
    async fn transact(&self, data: Vec<u8>, gas: u64) -> Result<(B256, bool, u64), CallError> {
        let tx = {
            let _one = crate::chain::SENDING.lock().await;
            self.chain
                .send(
                    &self.account,
                    POOLS_ADDRESS,
                    U256::ZERO,
                    data.into(),
                    Some(gas),
                )
                .await
                .map_err(unavailable)?
        };
        let out = self
            .chain
            .wait(tx, Duration::from_secs(60))
            .await
            .map_err(unavailable)?;
        Ok((tx, out.success, out.gas_used))
    }

    /// Opens and submits a job for `key`, paid within `reservation`: its view.
    pub async fn submit(
        self: &Arc<Self>,
        key: ApiKey,
        reservation: Reservation,
        sub: Submission,
    ) -> Result<serde_json::Value, CallError> {
        self.book.admit(key.account)?;
        let pools = self.directory.pools().await?;
        let pool = choose(&pools, &sub.want, &self.outcomes.lock())?;
        let salt: [u8; 32] = rand::random();
        let id = B256::from(pool_jobs::job_id(
            self.account.address().0 .0,
            &sub.spec,
            salt,
        ));
        let now = emc_client::keys::now();
        let deadline = now + sub.timeout_s;
        let max_cost = reservation.amount();
        let open = IPools::openJobCall {
            poolId: pool.id,
            jobId: id,
            maxCost: max_cost,
            deadline,
        };
        // The chain's own reason for a refusal, before paying gas for it.
        if let Err(e) = self
            .chain
            .estimate_gas(
                self.account.address(),
                POOLS_ADDRESS,
                U256::ZERO,
                open.abi_encode().into(),
            )
            .await
        {
            return Err(CallError::Payment(format!("the pool refused the job: {e}")));
        }
        let (_, ok, open_gas) = self.transact(open.abi_encode(), OPEN_GAS).await?;
        if !ok {
            return Err(CallError::Unavailable("openJob reverted".into()));
        }
        let submit = JobsMsg::Submit {
            pool: pool.id,
            job: id.0,
            salt,
            spec: sub.spec.clone(),
        };
        let submitted = self.ask_head(pool.head, &submit).await;
        self.count(pool.id, submitted.is_err());
        submitted?;
        let job = RouterJob {
            id,
            pool: pool.id,
            head: pool.head,
            request_hash: B256::from(sub.spec.hash()),
            key,
            created: now,
            max_cost,
            deadline,
            status: "PENDING".into(),
            message: String::new(),
            open_gas,
            accounted: vec![],
            reports: vec![],
            settled: None,
            error: None,
            reservation: Some(reservation),
        };
        let view = job.view();
        self.book.insert(job);
        tokio::spawn(self.clone().follow(id));
        tracing::info!(job = %id, pool = pool.id, "job submitted");
        Ok(view)
    }

    fn count(&self, pool: u64, failed: bool) {
        let mut o = self.outcomes.lock();
        let e = o.entry(pool).or_default();
        e.0 += 1;
        e.1 += u64::from(failed);
    }

    /// One request to a pool's head member.
    async fn ask_head(&self, head: B256, m: &JobsMsg) -> Result<JobsMsg, CallError> {
        let peer = emc_p2p::peer_of_key(&head.0)
            .ok_or_else(|| CallError::Runtime(format!("head {head} is not an ed25519 key")))?;
        let mut control = self.control.clone();
        let exchange = async {
            let mut s = control
                .open_stream(peer, stream_protocol(wire::POOL_JOBS_PROTOCOL))
                .await
                .map_err(|e| {
                    CallError::Unavailable(format!("the pool's head member is not reachable: {e}"))
                })?;
            pool_jobs::ask(&mut s, m).await
        };
        tokio::time::timeout(HEAD_TIMEOUT, exchange)
            .await
            .map_err(|_| CallError::Timeout("the pool's head member did not answer".into()))?
    }

    /// The head of job `id` if `account` may see it.
    fn head_of(&self, id: B256, account: alloy_primitives::Address) -> Result<B256, CallError> {
        self.book
            .with(id, Some(account), |j| j.head)
            .ok_or_else(|| CallError::NotFound(format!("no job {id}")))
    }

    /// A page of the job's logs from byte `from`, and whether the job has ended.
    pub async fn logs(
        &self,
        id: B256,
        account: alloy_primitives::Address,
        from: u64,
    ) -> Result<(String, u64, bool), CallError> {
        let head = self.head_of(id, account)?;
        match self
            .ask_head(head, &JobsMsg::Logs { job: id.0, from })
            .await?
        {
            JobsMsg::LogPage { text, next } => {
                let done = self
                    .book
                    .with(id, None, |j| ended(&j.status))
                    .unwrap_or(true);
                Ok((text, next, done))
            }
            other => Err(odd(&other)),
        }
    }

    /// The files job `id` wrote to its output directory: `(path, bytes)`.
    pub async fn outputs(
        &self,
        id: B256,
        account: alloy_primitives::Address,
    ) -> Result<Vec<(String, u64)>, CallError> {
        let head = self.head_of(id, account)?;
        match self.ask_head(head, &JobsMsg::Outputs { job: id.0 }).await? {
            JobsMsg::OutputList { files } => Ok(files),
            other => Err(odd(&other)),
        }
    }

    /// A page of output file `path` of job `id` from byte `from`: the bytes, where
    /// the next page starts, the file's size.
    pub async fn output(
        &self,
        id: B256,
        account: alloy_primitives::Address,
        path: String,
        from: u64,
    ) -> Result<(Vec<u8>, u64, u64), CallError> {
        let head = self.head_of(id, account)?;
        let ask = JobsMsg::Output {
            job: id.0,
            path,
            from,
        };
        match self.ask_head(head, &ask).await? {
            JobsMsg::OutputPage { bytes, next, size } => Ok((bytes, next, size)),
            other => Err(odd(&other)),
        }
    }

    /// Asks the head to stop job `id`: whether it was running.
    pub async fn stop(
        &self,
        id: B256,
        account: alloy_primitives::Address,
    ) -> Result<bool, CallError> {
        let head = self.head_of(id, account)?;
        match self.ask_head(head, &JobsMsg::Stop { job: id.0 }).await? {
            JobsMsg::Stopped(was) => Ok(was),
            other => Err(odd(&other)),
        }
    }

    /// Follows job `id` to its end, then settles it.
    async fn follow(self: Arc<Self>, id: B256) {
        let Some((head, deadline)) = self.book.with(id, None, |j| (j.head, j.deadline)) else {
            return;
        };
        loop {
            tokio::time::sleep(FOLLOW).await;
            match self.ask_head(head, &JobsMsg::Status { job: id.0 }).await {
                Ok(JobsMsg::State { status, message }) => {
                    let done = ended(&status);
                    self.book.with(id, None, |j| {
                        j.status = status;
                        j.message = message;
                    });
                    if done {
                        break;
                    }
                }
                Ok(other) => tracing::warn!(job = %id, ?other, "odd status answer"),
                Err(e) => tracing::debug!(job = %id, error = %e, "job status"),
            }
            if emc_client::keys::now() > deadline {
                self.fail(
                    id,
                    "the job passed its deadline; its budget is released".into(),
                );
                return;
            }
        }
        for _ in 0..5 {
            match self.settle(id, head).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "settling the job; trying again");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
        self.fail(id, "the job could not be settled".into());
    }

    fn fail(&self, id: B256, why: String) {
        tracing::warn!(job = %id, reason = %why, "job given up");
        self.book.with(id, None, |j| {
            j.error = Some(why);
            j.reservation = None;
        });
    }

    async fn settle(&self, id: B256, head: B256) -> Result<(), CallError> {
        let JobsMsg::Accounts {
            accounted,
            head_signature,
            reports,
        } = self
            .ask_head(head, &JobsMsg::Settlement { job: id.0 })
            .await?
        else {
            return Err(CallError::Runtime("the head answered no settlement".into()));
        };
        let receipt = self
            .book
            .with(id, None, |j| {
                j.accounted = accounted.clone();
                j.reports = reports.clone();
                j.receipt(&accounted, &head_signature, &reports)
            })
            .ok_or_else(|| CallError::NotFound(format!("no job {id}")))?;
        let call = IPools::settleJobCall { receipt };
        let (tx, success, gas_used) = self.transact(call.abi_encode(), SETTLE_GAS).await?;
        tracing::info!(job = %id, %tx, success, gas_used, "job settled");
        self.book.with(id, None, |j| {
            j.settled = Some(Settled {
                tx,
                success,
                gas_used,
            });
            j.reservation = None;
        });
        Ok(())
    }
}

fn odd(m: &JobsMsg) -> CallError {
    CallError::Runtime(format!(
        "the head answered {}",
        emc_protocol::error::clip(&format!("{m:?}"))
    ))
}
