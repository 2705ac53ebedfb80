//! A pool member's `emc node` driving its Ray node (`--pool ID`).
//!
//! 1. Membership on chain: when the node is not yet a member of its pool, its owner
//!    sends `join`, with the node key's signature over what it brings.
//! 2. The head member (the pool's `head` on chain) starts `ray start --head` with a
//!    token it draws for this run (the lease's token: it never leaves the head except
//!    to members), and answers `/emc/pool/1`: a peer whose node the Pools module lists
//!    as a member gets the GCS address and the token over the libp2p stream, which is
//!    encrypted and names its peer by its node key; anyone else is refused.
//! 3. Every other member asks the head member for them and starts
//!    `ray start --address=…` with its declared resources and a custom resource
//!    `emc_node_<node id>` naming it, so the head maps Ray's node ids to EMC's.
//!
//! A member's Ray node lives as long as its `emc node` and its membership: when Ray
//! exits the member joins again; when the node stops, or leaves the pool on chain,
//! its Ray node stops and Ray drops it from the cluster (its tasks are retried
//! elsewhere).

use super::head::Head;
use super::jobs::JobsApi;
use super::metering::{self, TaskRecord};
use super::ray::{HeadPorts, NodePorts, RayInstall, RayNode, Resources};
use crate::CallError;
use alloy_primitives::{B256, U256};
use alloy_sol_types::SolCall;
use emc_client::{ChainClient, ChainClientExt};
use emc_modules::pools::{members::join_message, IPools};
use emc_modules::registry::IRegistry;
use emc_modules::{POOLS_ADDRESS, REGISTRY_ADDRESS};
use emc_p2p::{stream_protocol as protocol, Addr, Command, Control};
use emc_protocol::wire::pool_jobs::{self, JobsMsg, SignedUsage};
use emc_protocol::wire::{self, pool};
use futures::StreamExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// A member's pool settings (`emc node --pool …`).
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub pool: u64,
    pub ray: RayInstall,
    /// The address this member's Ray node binds and advertises.
    pub ip: String,
    /// The head's pinned ports, used when this member is the head.
    pub head_ports: HeadPorts,
    pub own: NodePorts,
    pub resources: Resources,
    /// The head member's libp2p address (`/ip4/…/tcp/…/p2p/<peer id>`).
    pub head: Option<Addr>,
    /// Ray's session folder (logs, sockets).
    pub dir: PathBuf,
}

/// The head member keeps the lease's token in `<dir>/token`, readable by its owner
/// only, so the operator can use Ray's own tools on the pool (`RAY_AUTH_TOKEN`).
fn write_token(dir: &std::path::Path, token: &str) -> Result<(), CallError> {
    use std::os::unix::fs::OpenOptionsExt;
    let config = |e: std::io::Error| CallError::Config(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(config)?;
    let path = dir.join("token");
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(config)?;
    std::io::Write::write_all(&mut f, token.as_bytes()).map_err(config)
}

/// Runs the member's side of the pool until `stopped`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    chain: Arc<dyn ChainClient>,
    mut control: Control,
    commands: mpsc::UnboundedSender<Command>,
    node: B256,
    key: emc_crypto::ConsensusKey,
    owner: Option<alloy_signer_local::PrivateKeySigner>,
    s: PoolSettings,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), CallError> {
    let requests = control
        .accept(protocol(wire::POOL_PROTOCOL))
        .map_err(|e| CallError::Config(format!("accepting {}: {e}", wire::POOL_PROTOCOL)))?;
    let mut requests = Some(requests);
    let job_requests = control
        .accept(protocol(wire::POOL_JOBS_PROTOCOL))
        .map_err(|e| CallError::Config(format!("accepting {}: {e}", wire::POOL_JOBS_PROTOCOL)))?;
    let head_service: Arc<parking_lot::Mutex<Option<Arc<Head>>>> = Arc::default();
    tokio::spawn(serve_jobs(job_requests, head_service.clone()));
    let chain_id = loop {
        match chain.chain_id().await {
            Ok(id) => break id,
            Err(_) => tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = halted(&mut stopped) => return Ok(()),
            },
        }
    };
    let res = Resources {
        name: Some(super::ray::node_resource(node)),
        ..s.resources.clone()
    };
    // One token for the run, so a head whose Ray restarts hands members the same one
    // its admissions already give out.
    let token = alloy_primitives::hex::encode(rand::random::<[u8; 32]>());
    let mut reporter: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        if let Some(r) = reporter.take() {
            r.abort();
        }
        let role = tokio::select! {
            r = membership(chain.as_ref(), node, &key, owner.as_ref(), &s) => r,
            _ = halted(&mut stopped) => return Ok(()),
        };
        let ray = match role {
            Role::Head => {
                let ray = RayNode::head(&s.ray, &s.dir, &s.ip, s.head_ports, s.own, &res, &token)?;
                write_token(&s.dir, &token)?;
                let dashboard = format!("http://127.0.0.1:{}", s.head_ports.dashboard);
                let api = JobsApi::new(&dashboard, &token)?;
                *head_service.lock() = Some(Arc::new(Head::new(
                    s.pool,
                    node,
                    chain_id,
                    &key,
                    chain.clone(),
                    api,
                    s.dir.join("jobs"),
                )));
                if let Some(r) = requests.take() {
                    let gcs = format!("{}:{}", s.ip, s.head_ports.gcs);
                    tokio::spawn(admit_members(chain.clone(), r, s.pool, gcs, token.clone()));
                }
                tracing::info!(pool = s.pool, "started the pool's Ray head");
                ray
            }
            Role::Member(head_node) => {
                match join_cluster(&mut control, &commands, &s, head_node).await {
                    Ok((gcs, token)) => {
                        tracing::info!(pool = s.pool, %gcs, "joining the pool's Ray cluster");
                        let ray =
                            RayNode::member(&s.ray, &s.dir, &s.ip, &gcs, s.own, &res, &token)?;
                        let signer = Signer {
                            pool: s.pool,
                            chain_id,
                            node,
                            key: ed25519_consensus::SigningKey::from(key.seed()),
                        };
                        reporter = Some(tokio::spawn(report_rounds(
                            control.clone(),
                            head_node,
                            signer,
                        )));
                        ray
                    }
                    Err(e) => {
                        tracing::warn!(pool = s.pool, error = %e, "the head member did not admit this node yet");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                            _ = halted(&mut stopped) => return Ok(()),
                        }
                    }
                }
            }
        };
        let mut ray = ray;
        let mut ticks = 0u32;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    if !ray.running() {
                        tracing::warn!(pool = s.pool, "the Ray node exited; starting it again");
                        break;
                    }
                    ticks += 1;
                    // Every 5 s: a node that left its pool on chain (`emc pool leave`,
                    // once its running jobs ended) takes its Ray node out of the
                    // cluster, and stays out for the rest of this run.
                    if ticks.is_multiple_of(10) && left(chain.as_ref(), node, s.pool).await {
                        tracing::info!(pool = s.pool, "left the pool on chain; stopping its Ray node");
                        if let Some(r) = reporter.take() {
                            r.abort();
                        }
                        ray.stop(Duration::from_secs(10)).await;
                        return Ok(());
                    }
                }
                _ = halted(&mut stopped) => {
                    if let Some(r) = reporter.take() {
                        r.abort();
                    }
                    ray.stop(Duration::from_secs(10)).await;
                    return Ok(());
                }
            }
        }
    }
}

/// Whether the chain says `node` is no longer in pool `pool` (a read that fails says
/// nothing).
async fn left(chain: &dyn ChainClient, node: B256, pool: u64) -> bool {
    chain
        .view(POOLS_ADDRESS, IPools::poolOfCall { nodeId: node })
        .await
        .is_ok_and(|p| p != pool)
}

/// Resolves once the node stops (the watch's guard dropped, so callers stay `Send`).
async fn halted(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

enum Role {
    Head,
    Member(B256),
}

/// Waits until the node is a member of its pool (joining it on chain when it has the
/// owner's key) and the pool has a head; which part this node plays.
async fn membership(
    chain: &dyn ChainClient,
    node: B256,
    key: &emc_crypto::ConsensusKey,
    owner: Option<&alloy_signer_local::PrivateKeySigner>,
    s: &PoolSettings,
) -> Role {
    let mut asked = None::<std::time::Instant>;
    loop {
        let of = chain
            .view(POOLS_ADDRESS, IPools::poolOfCall { nodeId: node })
            .await;
        match of {
            Ok(p) if p == s.pool => {
                if let Ok(info) = chain
                    .view(POOLS_ADDRESS, IPools::poolCall { poolId: s.pool })
                    .await
                {
                    if info.head == node {
                        return Role::Head;
                    }
                    if info.head != B256::ZERO {
                        return Role::Member(info.head);
                    }
                }
            }
            Ok(_) => {
                // Only a registered node joins, and its owner's registration goes
                // first (two transactions at once from one account share a nonce).
                let registered = chain
                    .view(REGISTRY_ADDRESS, IRegistry::nodeInfoCall { nodeId: node })
                    .await
                    .is_ok_and(|i| owner.is_some_and(|o| i.owner == o.address()));
                if let (Some(owner), true) = (owner, registered) {
                    if asked.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        asked = Some(std::time::Instant::now());
                        if let Err(e) = send_join(chain, node, key, owner, s).await {
                            tracing::warn!(pool = s.pool, error = %e, "join not submitted");
                        }
                    }
                }
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn send_join(
    chain: &dyn ChainClient,
    node: B256,
    key: &emc_crypto::ConsensusKey,
    owner: &alloy_signer_local::PrivateKeySigner,
    s: &PoolSettings,
) -> Result<(), CallError> {
    let chain_id = chain
        .chain_id()
        .await
        .map_err(|e| CallError::Unavailable(e.to_string()))?;
    let r = &s.resources;
    let msg = join_message(chain_id, s.pool, node, r.cpus, r.gpus, r.memory_mb);
    let sig = ed25519_consensus::SigningKey::from(key.seed()).sign(&msg);
    let call = IPools::joinCall {
        poolId: s.pool,
        nodeId: node,
        cpus: r.cpus,
        gpus: r.gpus,
        memoryMb: r.memory_mb,
        nodeSignature: sig.to_bytes().to_vec().into(),
    };
    let _one = crate::OWNER_SENDING.lock().await;
    let tx = chain
        .send(
            owner,
            POOLS_ADDRESS,
            U256::ZERO,
            call.abi_encode().into(),
            Some(1_000_000),
        )
        .await
        .map_err(|e| CallError::Unavailable(e.to_string()))?;
    tracing::info!(pool = s.pool, %tx, "joining the pool on chain");
    Ok(())
}

/// Asks the head member for the cluster's address and token.
async fn join_cluster(
    control: &mut Control,
    commands: &mpsc::UnboundedSender<Command>,
    s: &PoolSettings,
    head: B256,
) -> Result<(String, String), CallError> {
    let peer = emc_p2p::peer_of_key(&head.0).ok_or_else(|| {
        CallError::Config(format!("the pool's head {head} is not an ed25519 key"))
    })?;
    if let Some(addr) = &s.head {
        let _ = commands.send(Command::Dial(addr.clone()));
    }
    let mut stream = tokio::time::timeout(
        Duration::from_secs(10),
        control.open_stream(peer, protocol(wire::POOL_PROTOCOL)),
    )
    .await
    .map_err(|_| CallError::Timeout("reaching the head member".into()))?
    .map_err(|e| CallError::Unavailable(format!("reaching the head member: {e}")))?;
    pool::join(&mut stream, s.pool).await
}

/// The head's answers to `/emc/pool/1`.
async fn admit_members(
    chain: Arc<dyn ChainClient>,
    mut requests: impl futures::Stream<Item = (emc_p2p::Peer, libp2p::Stream)> + Unpin + Send + 'static,
    pool_id: u64,
    gcs: String,
    token: String,
) {
    while let Some((peer, mut stream)) = requests.next().await {
        let (chain, gcs, token) = (chain.clone(), gcs.clone(), token.clone());
        tokio::spawn(async move {
            let admit = |asked: u64| async move {
                if asked != pool_id {
                    return Err(format!("this node heads pool {pool_id}, not pool {asked}"));
                }
                let members = chain
                    .view(POOLS_ADDRESS, IPools::membersCall { poolId: pool_id })
                    .await
                    .map_err(|e| format!("the chain cannot be read: {e}"))?;
                let member = members
                    .iter()
                    .any(|m| !m.leaving && emc_p2p::peer_of_key(&m.nodeId.0) == Some(peer));
                if member {
                    Ok((gcs, token))
                } else {
                    Err(format!("{peer} is not a member of pool {pool_id}"))
                }
            };
            if let Err(e) = pool::serve(&mut stream, admit).await {
                tracing::debug!(%peer, error = %e, "pool stream");
            }
        });
    }
}

/// How often a member sends the head its reports and reads its Ray records.
const ROUND: Duration = Duration::from_secs(2);

/// What a member signs its reports with.
struct Signer {
    pool: u64,
    chain_id: u64,
    node: B256,
    key: ed25519_consensus::SigningKey,
}

impl Signer {
    /// The member's report of one job from its Ray node's records of it: the work of
    /// the tasks that ended, signed by the node key.
    fn report(&self, job: [u8; 32], tasks: &[pool_jobs::Task]) -> SignedUsage {
        let records: Vec<TaskRecord> = tasks
            .iter()
            .map(|t| TaskRecord {
                node: String::new(),
                cpus: t.cpus,
                gpus: t.gpus,
                start_ms: t.start_ms,
                end_ms: t.end_ms,
            })
            .collect();
        let spent = metering::ended_spent(&records);
        let u = IPools::Usage {
            nodeId: self.node,
            cpuMs: spent.cpu_ms,
            gpuMs: spent.gpu_ms,
        };
        let msg = emc_modules::pools::jobs::usage_message(self.chain_id, self.pool, job.into(), &u);
        SignedUsage {
            job,
            node: self.node.0,
            cpu_ms: spent.cpu_ms,
            gpu_ms: spent.gpu_ms,
            signature: self.key.sign(&msg).to_bytes().to_vec(),
        }
    }
}

/// A member's metering: every [`ROUND`], its signed reports to the head, and back
/// Ray's records of its own Ray node, from which it signs the next ones.
async fn report_rounds(mut control: Control, head: B256, signer: Signer) {
    let Some(peer) = emc_p2p::peer_of_key(&head.0) else {
        return;
    };
    let mut reports: Vec<SignedUsage> = Vec::new();
    loop {
        tokio::time::sleep(ROUND).await;
        let round = JobsMsg::Round {
            pool: signer.pool,
            reports: reports.clone(),
        };
        let answer = async {
            let mut s = control
                .open_stream(peer, protocol(wire::POOL_JOBS_PROTOCOL))
                .await
                .map_err(|e| CallError::Unavailable(format!("reaching the head: {e}")))?;
            pool_jobs::ask(&mut s, &round).await
        };
        match tokio::time::timeout(Duration::from_secs(30), answer).await {
            Ok(Ok(JobsMsg::Work { jobs })) => {
                reports = jobs
                    .iter()
                    .map(|(job, tasks)| signer.report(*job, tasks))
                    .collect();
            }
            Ok(Ok(other)) => tracing::debug!(?other, "the head answered a round oddly"),
            Ok(Err(e)) => tracing::debug!(error = %e, "metering round"),
            Err(_) => tracing::debug!("metering round timed out"),
        }
    }
}

/// Answers `/emc/pool-jobs/1` while this node heads its pool; refuses otherwise.
async fn serve_jobs(
    mut requests: impl futures::Stream<Item = (emc_p2p::Peer, libp2p::Stream)> + Unpin + Send + 'static,
    head: Arc<parking_lot::Mutex<Option<Arc<Head>>>>,
) {
    while let Some((peer, mut stream)) = requests.next().await {
        let head = head.lock().clone();
        tokio::spawn(async move {
            let r = pool_jobs::serve(&mut stream, |m| async move {
                match head {
                    Some(h) => h.answer(peer, m).await,
                    None => Err(CallError::Unavailable(
                        "this node does not head its pool".into(),
                    )),
                }
            })
            .await;
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "pool jobs stream");
            }
        });
    }
}
