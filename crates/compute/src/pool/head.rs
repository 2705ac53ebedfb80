//! The head member's jobs service, `/emc/pool-jobs/1` ([`emc_protocol::wire::pool_jobs`]).
//!
//! * A router submits a job it opened on chain. The head runs it only if the chain
//!   lists the job as running in this pool and its id is the one the spec and salt
//!   commit to for the router that opened it ([`pool_jobs::job_id`]); the job's
//!   inline files become a working-directory package in Ray's GCS and the job goes to
//!   Ray's Jobs API under its hex id. Only the peer that submitted a job may ask after
//!   it, read its logs, stop it or settle it.
//! * Members send rounds of signed reports; each answer is Ray's task records on that
//!   member's Ray node for every job the head knows, so the member meters its own
//!   work from Ray's accounting and signs it. The head keeps each member's latest
//!   report per job.
//! * Outputs: a job's driver writes the files its client gets to `$EMC_OUTPUT_DIR`
//!   ([`super::outputs`]), which its submitter lists and reads in pages.
//! * Settlement, once Ray says the job ended: the head waits (a bounded while) until
//!   every member still alive in Ray has reported from records read after the end,
//!   then signs Ray's accounting of every member and hands it over with the reports.
//!   A member that died is settled on its last report.

use super::jobs::{JobSpec as RaySpec, JobsApi};
use super::metering::{self, TaskRecord};
use super::ray::node_resource;
use crate::CallError;
use alloy_primitives::B256;
use emc_client::{ChainClient, ChainClientExt};
use emc_modules::pools::jobs::{accounting_message, usage_message};
use emc_modules::pools::IPools;
use emc_modules::POOLS_ADDRESS;
use emc_p2p::Peer;
use emc_protocol::wire::pool_jobs::{self, JobSpec, JobsMsg, SignedUsage, Task};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Jobs the head remembers (the oldest settled ones are forgotten first).
const MAX_JOBS: usize = 1024;
/// How long settlement waits for living members' final reports.
const FINAL_REPORTS: Duration = Duration::from_secs(20);

struct HeadJob {
    submitter: Peer,
    /// Ray's job id (hex), once its driver started.
    ray_id: Option<String>,
    ended: Option<Instant>,
    settled: bool,
    reports: BTreeMap<B256, SignedUsage>,
}

#[derive(Default)]
struct MemberRounds {
    /// When the member was last sent Ray's records.
    last_work: Option<Instant>,
    /// When the records its current reports come from were read.
    basis: Option<Instant>,
}

pub struct Head {
    pool: u64,
    node: B256,
    chain_id: u64,
    key: ed25519_consensus::SigningKey,
    chain: Arc<dyn ChainClient>,
    api: JobsApi,
    /// Each job's output directory is `<outputs>/<job id>`.
    outputs: std::path::PathBuf,
    jobs: Mutex<BTreeMap<B256, HeadJob>>,
    rounds: Mutex<HashMap<B256, MemberRounds>>,
    /// Ray's node ids and the EMC node each runs (learnt while alive, kept after).
    ray_nodes: Mutex<HashMap<String, B256>>,
}

fn b(x: [u8; 32]) -> B256 {
    B256::from(x)
}

impl Head {
    pub fn new(
        pool: u64,
        node: B256,
        chain_id: u64,
        key: &emc_crypto::ConsensusKey,
        chain: Arc<dyn ChainClient>,
        api: JobsApi,
        outputs: std::path::PathBuf,
    ) -> Self {
        Head {
            outputs,
            pool,
            node,
            chain_id,
            key: ed25519_consensus::SigningKey::from(key.seed()),
            chain,
            api,
            jobs: Mutex::default(),
            rounds: Mutex::default(),
            ray_nodes: Mutex::default(),
        }
    }

    /// Answers one request from `peer`.
    pub async fn answer(&self, peer: Peer, m: JobsMsg) -> Result<JobsMsg, CallError> {
        match m {
            JobsMsg::Submit {
                pool,
                job,
                salt,
                spec,
            } => self.submit(peer, pool, b(job), salt, spec).await,
            JobsMsg::Status { job } => {
                let s = self.status(peer, b(job)).await?;
                Ok(JobsMsg::State {
                    status: s.status,
                    message: s.message,
                })
            }
            JobsMsg::Logs { job, from } => {
                self.owned(peer, b(job))?;
                let all = self.api.logs(&hex(b(job))).await?;
                let (text, next) = log_page(&all, from);
                Ok(JobsMsg::LogPage { text, next })
            }
            JobsMsg::Stop { job } => {
                self.owned(peer, b(job))?;
                Ok(JobsMsg::Stopped(self.api.stop(&hex(b(job))).await?))
            }
            JobsMsg::Settlement { job } => self.settlement(peer, b(job)).await,
            JobsMsg::Outputs { job } => {
                self.owned(peer, b(job))?;
                let files = super::outputs::list(&self.output_dir(b(job)))?;
                Ok(JobsMsg::OutputList { files })
            }
            JobsMsg::Output { job, path, from } => {
                self.owned(peer, b(job))?;
                let (bytes, next, size) =
                    super::outputs::read(&self.output_dir(b(job)), &path, from)?;
                Ok(JobsMsg::OutputPage { bytes, next, size })
            }
            JobsMsg::Round { pool, reports } => self.round(peer, pool, reports).await,
            other => Err(CallError::BadRequest(format!(
                "{} is an answer, not a request",
                emc_protocol::error::clip(&format!("{other:?}"))
            ))),
        }
    }

    fn output_dir(&self, job: B256) -> std::path::PathBuf {
        self.outputs.join(hex(job))
    }

    fn owned(&self, peer: Peer, job: B256) -> Result<(), CallError> {
        match self.jobs.lock().get(&job) {
            Some(j) if j.submitter == peer => Ok(()),
            Some(_) => Err(CallError::Forbidden(format!(
                "job {job} was submitted by another router"
            ))),
            None => Err(CallError::NotFound(format!(
                "pool {} runs no job {job}",
                self.pool
            ))),
        }
    }

    async fn submit(
        &self,
        peer: Peer,
        pool: u64,
        job: B256,
        salt: [u8; 32],
        spec: JobSpec,
    ) -> Result<JobsMsg, CallError> {
        if pool != self.pool {
            return Err(CallError::BadRequest(format!(
                "this node heads pool {}, not pool {pool}",
                self.pool
            )));
        }
        let runtime_env = spec.check()?;
        let on_chain = self
            .chain
            .view(
                POOLS_ADDRESS,
                IPools::jobCall {
                    poolId: pool,
                    jobId: job,
                },
            )
            .await
            .map_err(|e| CallError::Unavailable(format!("the chain: {e}")))?;
        if on_chain.state != 1 {
            return Err(CallError::Payment(format!(
                "job {job} is not open in pool {pool} on chain"
            )));
        }
        if b(pool_jobs::job_id(on_chain.router.0 .0, &spec, salt)) != job {
            return Err(CallError::Forbidden(format!(
                "job {job} was opened for another spec or by another router"
            )));
        }
        {
            let mut jobs = self.jobs.lock();
            if jobs.contains_key(&job) {
                return Err(CallError::Replayed(format!("job {job} was submitted")));
            }
            if jobs.len() >= MAX_JOBS {
                let old = jobs.iter().find(|(_, j)| j.settled).map(|(k, _)| *k);
                match old {
                    Some(k) => {
                        jobs.remove(&k);
                    }
                    None => {
                        return Err(CallError::Saturated(format!(
                            "the pool's head holds {MAX_JOBS} unsettled jobs"
                        )))
                    }
                }
            }
            jobs.insert(
                job,
                HeadJob {
                    submitter: peer,
                    ray_id: None,
                    ended: None,
                    settled: false,
                    reports: BTreeMap::new(),
                },
            );
        }
        let submitted = self.submit_to_ray(job, &spec, runtime_env).await;
        if submitted.is_err() {
            self.jobs.lock().remove(&job);
        }
        submitted.map(|_| JobsMsg::Submitted)
    }

    async fn submit_to_ray(
        &self,
        job: B256,
        spec: &JobSpec,
        mut env: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), CallError> {
        let zip = package(&spec.files)?;
        let name = format!(
            "_ray_pkg_{}.zip",
            &alloy_primitives::hex::encode(alloy_primitives::keccak256(&zip))[..16]
        );
        self.api.upload_package(&name, zip).await?;
        env.insert("working_dir".into(), format!("gcs://{name}").into());
        let vars = env
            .entry("env_vars")
            .or_insert_with(|| serde_json::json!({}));
        let out = self.output_dir(job);
        std::fs::create_dir_all(&out)
            .map_err(|e| CallError::Runtime(format!("{}: {e}", out.display())))?;
        if let Some(v) = vars.as_object_mut() {
            v.insert("EMC_OUTPUT_DIR".into(), out.display().to_string().into());
            v.insert("EMC_JOB_ID".into(), hex(job).into());
            v.insert("EMC_JOB_CPUS".into(), spec.cpus.to_string().into());
        }
        let ray = RaySpec {
            entrypoint: spec.entrypoint.clone(),
            runtime_env: serde_json::Value::Object(env),
            entrypoint_cpus: 0.0,
        };
        self.api.submit(&hex(job), &ray).await.map(|_| ())
    }

    async fn status(&self, peer: Peer, job: B256) -> Result<super::jobs::JobState, CallError> {
        self.owned(peer, job)?;
        let s = self.api.status(&hex(job)).await?;
        let mut jobs = self.jobs.lock();
        if let Some(j) = jobs.get_mut(&job) {
            if j.ray_id.is_none() {
                j.ray_id = s.job_id.clone();
            }
            if s.finished() && j.ended.is_none() {
                j.ended = Some(Instant::now());
            }
        }
        Ok(s)
    }

    /// Learns which EMC node each Ray node runs, from the `emc_node_<id>` resource.
    async fn learn_nodes(&self, members: &[B256]) -> Result<Vec<String>, CallError> {
        let nodes = self.api.all_nodes().await?;
        let names: HashMap<String, B256> =
            members.iter().map(|m| (node_resource(*m), *m)).collect();
        let mut alive = Vec::new();
        let mut map = self.ray_nodes.lock();
        for (ray_id, n) in nodes {
            let Some(res) = n["resources_total"].as_object() else {
                continue;
            };
            if let Some(node) = res.keys().find_map(|k| names.get(k)) {
                if n["state"] == "ALIVE" {
                    alive.push(ray_id.clone());
                }
                if map.len() < 4 * emc_modules::pools::MAX_MEMBERS as usize {
                    map.insert(ray_id, *node);
                }
            }
        }
        Ok(alive)
    }

    /// The job's members on chain.
    async fn job_members(&self, job: B256) -> Result<Vec<B256>, CallError> {
        self.chain
            .view(
                POOLS_ADDRESS,
                IPools::jobCall {
                    poolId: self.pool,
                    jobId: job,
                },
            )
            .await
            .map(|j| j.members)
            .map_err(|e| CallError::Unavailable(format!("the chain: {e}")))
    }

    async fn settlement(&self, peer: Peer, job: B256) -> Result<JobsMsg, CallError> {
        let state = self.status(peer, job).await?;
        if !state.finished() {
            return Err(CallError::BadRequest(format!(
                "job {job} is {}; it settles once it ends",
                state.status
            )));
        }
        let members = self.job_members(job).await?;
        let ended = self.jobs.lock().get(&job).and_then(|j| j.ended);
        let deadline = Instant::now() + FINAL_REPORTS;
        loop {
            let alive = self.learn_nodes(&members).await?;
            let alive: Vec<B256> = {
                let map = self.ray_nodes.lock();
                alive.iter().filter_map(|r| map.get(r).copied()).collect()
            };
            let waiting = alive.iter().any(|n| {
                *n != self.node
                    && self
                        .rounds
                        .lock()
                        .get(n)
                        .and_then(|r| r.basis)
                        .is_none_or(|b| ended.is_none_or(|e| b <= e))
            });
            if !waiting || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let tasks = match state.job_id.as_deref() {
            Some(id) => self.api.tasks(id).await?,
            None => Vec::new(),
        };
        let accounted = self.accounted(&tasks, &members);
        let usage: Vec<IPools::Usage> = accounted
            .iter()
            .map(|(n, s)| IPools::Usage {
                nodeId: *n,
                cpuMs: s.cpu_ms,
                gpuMs: s.gpu_ms,
            })
            .collect();
        let msg = accounting_message(self.chain_id, self.pool, job, &usage);
        let head_signature = self.key.sign(&msg).to_bytes().to_vec();
        let mut reports: Vec<SignedUsage> = {
            let mut jobs = self.jobs.lock();
            let j = jobs.get_mut(&job);
            j.map(|j| {
                j.settled = true;
                j.reports.values().cloned().collect()
            })
            .unwrap_or_default()
        };
        reports.retain(|r| b(r.node) != self.node);
        let own = self.own_spent(&tasks);
        reports.push(self.sign(job, self.node, own));
        Ok(JobsMsg::Accounts {
            accounted: usage
                .iter()
                .map(|u| (u.nodeId.0, u.cpuMs, u.gpuMs))
                .collect(),
            head_signature,
            reports,
        })
    }

    /// Ray's accounting of `tasks` per EMC node among `members`.
    fn accounted(&self, tasks: &[TaskRecord], members: &[B256]) -> BTreeMap<B256, metering::Spent> {
        let map = self.ray_nodes.lock();
        let now = unix_ms();
        let mut out: BTreeMap<B256, metering::Spent> = BTreeMap::new();
        for (ray, spent) in metering::by_node(tasks, now) {
            if let Some(n) = map.get(&ray).filter(|n| members.contains(n)) {
                let e = out.entry(*n).or_default();
                e.cpu_ms += spent.cpu_ms;
                e.gpu_ms += spent.gpu_ms;
            }
        }
        out
    }

    /// What the head's own Ray node spent on the job's ended tasks.
    fn own_spent(&self, tasks: &[TaskRecord]) -> metering::Spent {
        let map = self.ray_nodes.lock();
        let mine: Vec<TaskRecord> = tasks
            .iter()
            .filter(|t| map.get(&t.node) == Some(&self.node))
            .cloned()
            .collect();
        metering::ended_spent(&mine)
    }

    fn sign(&self, job: B256, node: B256, s: metering::Spent) -> SignedUsage {
        let u = IPools::Usage {
            nodeId: node,
            cpuMs: s.cpu_ms,
            gpuMs: s.gpu_ms,
        };
        let sig = self
            .key
            .sign(&usage_message(self.chain_id, self.pool, job, &u));
        SignedUsage {
            job: job.0,
            node: node.0,
            cpu_ms: s.cpu_ms,
            gpu_ms: s.gpu_ms,
            signature: sig.to_bytes().to_vec(),
        }
    }

    /// A member's round: keeps its reports, answers its Ray node's task records.
    async fn round(
        &self,
        peer: Peer,
        pool: u64,
        reports: Vec<SignedUsage>,
    ) -> Result<JobsMsg, CallError> {
        if pool != self.pool {
            return Err(CallError::BadRequest(format!(
                "this node heads pool {}, not pool {pool}",
                self.pool
            )));
        }
        let members = self
            .chain
            .view(POOLS_ADDRESS, IPools::membersCall { poolId: pool })
            .await
            .map_err(|e| CallError::Unavailable(format!("the chain: {e}")))?;
        let Some(node) = members
            .iter()
            .map(|m| m.nodeId)
            .find(|n| emc_p2p::peer_of_key(&n.0) == Some(peer))
        else {
            return Err(CallError::Forbidden(format!(
                "{peer} is not a member of pool {pool}"
            )));
        };
        self.keep_reports(node, reports)?;
        let all: Vec<B256> = members.iter().map(|m| m.nodeId).collect();
        self.learn_nodes(&all).await?;
        let open: Vec<(B256, String)> = self
            .jobs
            .lock()
            .iter()
            .filter(|(_, j)| !j.settled)
            .filter_map(|(k, j)| Some((*k, j.ray_id.clone()?)))
            .collect();
        let mut jobs = Vec::with_capacity(open.len());
        for (job, ray_id) in open {
            let tasks = self.api.tasks(&ray_id).await?;
            let map = self.ray_nodes.lock();
            let mine: Vec<Task> = tasks
                .iter()
                .filter(|t| map.get(&t.node) == Some(&node))
                .map(|t| Task {
                    cpus: t.cpus,
                    gpus: t.gpus,
                    start_ms: t.start_ms,
                    end_ms: t.end_ms,
                })
                .collect();
            jobs.push((job.0, mine));
        }
        let mut rounds = self.rounds.lock();
        let r = rounds.entry(node).or_default();
        r.basis = r.last_work;
        r.last_work = Some(Instant::now());
        Ok(JobsMsg::Work { jobs })
    }

    /// Keeps `node`'s own reports of jobs the head runs, checked against its key.
    fn keep_reports(&self, node: B256, reports: Vec<SignedUsage>) -> Result<(), CallError> {
        let mut jobs = self.jobs.lock();
        for r in reports {
            let u = IPools::Usage {
                nodeId: b(r.node),
                cpuMs: r.cpu_ms,
                gpuMs: r.gpu_ms,
            };
            let msg = usage_message(self.chain_id, self.pool, b(r.job), &u);
            if b(r.node) != node || !emc_modules::pools::node_signed(node, &r.signature, &msg) {
                return Err(CallError::BadSignature(format!(
                    "a report of job {} is not signed by {node}",
                    b(r.job)
                )));
            }
            if let Some(j) = jobs.get_mut(&b(r.job)).filter(|j| !j.settled) {
                j.reports.insert(node, r);
            }
        }
        Ok(())
    }
}

/// The job's files as a zip, stored (Ray unpacks it as the working directory).
fn package(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, CallError> {
    use std::io::Write;
    let err = |e: zip::result::ZipError| CallError::Runtime(format!("packaging the job: {e}"));
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (path, content) in files {
        w.start_file(path.as_str(), opts).map_err(err)?;
        w.write_all(content)
            .map_err(|e| CallError::Runtime(format!("packaging the job: {e}")))?;
    }
    Ok(w.finish().map_err(err)?.into_inner())
}

/// The page of `all` from byte `from`: at most [`pool_jobs::MAX_LOG_PAGE`] bytes, cut
/// at a character boundary; and where the next page starts.
fn log_page(all: &str, from: u64) -> (String, u64) {
    let start = (from as usize).min(all.len());
    let mut start = start;
    while !all.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + pool_jobs::MAX_LOG_PAGE).min(all.len());
    while !all.is_char_boundary(end) {
        end -= 1;
    }
    (all[start..end].to_string(), end as u64)
}

pub fn hex(job: B256) -> String {
    alloy_primitives::hex::encode(job)
}

pub fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_pages_cut_at_characters_and_say_where_the_next_starts() {
        let all = "héllo";
        assert_eq!(log_page(all, 0), ("héllo".into(), 6));
        assert_eq!(log_page(all, 2), ("éllo".into(), 6));
        assert_eq!(log_page(all, 3), ("llo".into(), 6));
        assert_eq!(log_page(all, 99), (String::new(), 6));
    }

    #[test]
    fn a_package_holds_the_files_it_was_given() {
        let z = package(&[("main.py".into(), b"print(1)".to_vec())]).expect("zip");
        assert_eq!(&z[..2], b"PK");
        assert!(
            z.windows(8).any(|w| w == b"print(1)"),
            "stored, not compressed"
        );
    }
}
