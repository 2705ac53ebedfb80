//! Wires an EMC node from a [`NodeConfig`]: opens the chain, starts JSON-RPC, joins
//! the p2p network ([`network`]) and runs IBFT through [`consensus`], the shell around
//! the pure consensus core; starts the roles it is configured with (the router from
//! `emc-router`, the compute role and the challenger from `emc-compute`), each over
//! [`chain_client::Local`], the in-process `ChainClient`. No protocol logic lives here. A node without p2p settings
//! has no peers: only a single-validator chain can progress (`emc node --dev`, sealed
//! by real IBFT with a quorum of one). A node without a consensus key is a full node:
//! it follows by verifying commit certificates and never signs.

pub mod chain_client;
mod consensus;
pub mod metrics;
pub mod network;

pub use emc_compute::role::ComputeSettings;
pub use emc_router::RouterSettings;

use alloy_primitives::{Address, U256};
use emc_chain::Chain;
use emc_types::Genesis;
use std::{net::SocketAddr, path::PathBuf, sync::Arc};

/// Balance of each development account: 10,000 EMC, as Hardhat and Anvil fund theirs.
pub const DEV_BALANCE_WEI: u128 = 10_000 * 1_000_000_000_000_000_000;
/// How many development accounts `--dev` funds.
pub const DEV_ACCOUNTS: u32 = 10;

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub datadir: PathBuf,
    pub rpc_addr: SocketAddr,
    pub genesis: Genesis,
    /// The validator account this node seals as (its fees go there) while the genesis
    /// set is in force; once the staking module elects sets, the account registered
    /// with the node's consensus key. Unused by a full node.
    pub proposer: Address,
    /// The ed25519 key this validator signs consensus messages with; `None` for a full node.
    pub consensus_key: Option<emc_crypto::ConsensusKey>,
    pub rpc: emc_rpc::RpcConfig,
    pub p2p: Option<P2pSettings>,
    /// Serve Prometheus metrics at `http://<addr>/metrics`.
    pub metrics_addr: Option<SocketAddr>,
    /// The computing-node role: apps, routers, owner.
    pub compute: Option<ComputeSettings>,
    /// The router role: the table of computing nodes that connect, the client
    /// gateway, settlement.
    pub router: Option<RouterSettings>,
    /// The account a validator submits its proof-of-computing attestations from.
    pub poc_account: Option<alloy_signer_local::PrivateKeySigner>,
}

#[derive(Clone, Debug)]
pub struct P2pSettings {
    pub listen: emc_p2p::Addr,
    pub bootnodes: Vec<emc_p2p::Addr>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("config: {0}")]
    Config(String),
    #[error(transparent)]
    Chain(#[from] emc_chain::ChainError),
    #[error(transparent)]
    Rpc(#[from] emc_rpc::RpcError),
    #[error(transparent)]
    Crypto(#[from] emc_crypto::CryptoError),
    #[error(transparent)]
    Storage(#[from] emc_storage::StorageError),
    #[error("router: {0}")]
    Router(#[from] emc_router::RouterError),
    #[error("compute: {0}")]
    Compute(#[from] emc_compute::CallError),
}

/// Per-topic gossip limits: the largest consensus message and the largest
/// transaction, each with room for gossipsub's envelope (source, sequence number,
/// signature and topic, well under 1 KiB).
pub fn gossip_limits() -> emc_p2p::GossipLimits {
    const ENVELOPE: usize = 1024;
    emc_p2p::GossipLimits {
        consensus: emc_consensus::messages::MAX_MESSAGE_BYTES + ENVELOPE,
        transactions: emc_types::MAX_TX_SIZE + ENVELOPE,
    }
}

/// The network identity seed of a validator, derived from its consensus key, so a
/// devnet can name its bootnodes before starting them.
pub fn p2p_seed_of(key: &emc_crypto::ConsensusKey) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest([b"emc p2p identity".as_slice(), &key.seed()].concat()).into()
}

/// The first `n` development validators: validator `i` earns into development account
/// `DEV_ACCOUNTS + i` (unfunded, so its tips stand apart from users' balances) and signs
/// with development consensus key `i`; power 1 each.
pub fn dev_validators(n: u32) -> Result<Vec<emc_types::GenesisValidator>, NodeError> {
    let accounts = emc_crypto::dev_accounts(DEV_ACCOUNTS + n)?;
    Ok((0..n)
        .map(|i| emc_types::GenesisValidator {
            address: accounts[(DEV_ACCOUNTS + i) as usize].address(),
            consensus_key: emc_crypto::ConsensusKey::dev(i).public(),
            power: 1_000,
        })
        .collect())
}

/// Builds the computing node's runtimes (loading models: seconds, so off the
/// async threads).
async fn build_agent(
    key: emc_crypto::ConsensusKey,
    c: &ComputeSettings,
    chain_id: u64,
) -> Result<emc_compute::Agent, NodeError> {
    let (apps, capacity, max_queue) = (c.apps.clone(), c.capacity, c.max_queue);
    tokio::task::spawn_blocking(move || {
        let mut agent = emc_compute::Agent::new(key, capacity, max_queue);
        agent.seal_for(chain_id);
        for spec in &apps {
            let rt = spec
                .build()
                .map_err(|e| NodeError::Config(format!("app {}: {e}", spec.name)))?;
            agent.add_app(spec, rt);
        }
        Ok(agent)
    })
    .await
    .map_err(|e| NodeError::Config(e.to_string()))?
}

/// A full node's network identity, kept in its data directory.
fn p2p_seed_in(datadir: &std::path::Path) -> Result<[u8; 32], NodeError> {
    let path = datadir.join("p2p.key");
    if let Ok(bytes) = std::fs::read(&path) {
        return bytes
            .try_into()
            .map_err(|_| NodeError::Config(format!("{} is not 32 bytes", path.display())));
    }
    let seed: [u8; 32] = rand::random();
    std::fs::create_dir_all(datadir).map_err(|e| NodeError::Config(e.to_string()))?;
    std::fs::write(&path, seed)
        .map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))?;
    Ok(seed)
}

impl NodeConfig {
    /// The zero-config development chain: the Hardhat accounts funded, one validator
    /// (development account index 10, unfunded, so tips are visible apart from users',
    /// with development consensus key 0).
    pub fn dev(datadir: PathBuf, rpc_addr: SocketAddr) -> Result<Self, NodeError> {
        let accounts: Vec<Address> = emc_crypto::dev_accounts(DEV_ACCOUNTS)?
            .iter()
            .map(|k| k.address())
            .collect();
        let validator = dev_validators(1)?.remove(0);
        let proposer = validator.address;
        let consensus_key = emc_crypto::ConsensusKey::dev(0);
        let genesis = Genesis::dev(validator, &accounts, U256::from(DEV_BALANCE_WEI));
        Ok(Self {
            datadir,
            rpc_addr,
            genesis,
            proposer,
            consensus_key: Some(consensus_key),
            rpc: Default::default(),
            p2p: None,
            metrics_addr: None,
            compute: None,
            router: None,
            poc_account: None,
        })
    }

    pub fn validate(&self) -> Result<(), NodeError> {
        self.genesis
            .validate()
            .map_err(|e| NodeError::Config(e.to_string()))?;
        if let Some(key) = &self.consensus_key {
            let key = key.public();
            match self
                .genesis
                .validators
                .iter()
                .find(|v| v.consensus_key == key)
            {
                // A candidate not in the genesis set: it signs once the staking module
                // elects it, as the account it registered with; alone it never could.
                None if self.p2p.is_none() => {
                    return Err(NodeError::Config(format!(
                        "consensus key {key} is not a validator of this genesis, and without p2p settings this node could never be elected or follow the chain"
                    )))
                }
                None => {}
                Some(v) if v.address != self.proposer => {
                    return Err(NodeError::Config(format!(
                        "consensus key {key} belongs to validator {}, not {}",
                        v.address, self.proposer
                    )))
                }
                Some(_) => {}
            }
        }
        if self.p2p.is_none() && (self.genesis.validators.len() > 1 || self.consensus_key.is_none())
        {
            return Err(NodeError::Config(
                "without p2p settings a node has no peers: only a lone validator can run that way"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// A running node.
pub struct Node {
    pub chain: Arc<Chain>,
    pub rpc_addr: SocketAddr,
    /// This node's network identity, when it joined a network.
    pub peer_id: Option<emc_p2p::Peer>,
    /// Where `/metrics` is served, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// The computing node's own HTTP port, when it serves one.
    pub compute_http: Option<SocketAddr>,
    /// The router's HTTP port, when this node routes.
    pub router_http: Option<SocketAddr>,
    /// The computing node's agent (its node id, apps and load), when it computes.
    pub agent: Option<Arc<emc_compute::Agent>>,
    /// The computing node's own DID (`emc_identity::node`), when it computes.
    pub node_did: Option<String>,
    rpc: jsonrpsee::server::ServerHandle,
    consensus: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Node {
    pub async fn start(cfg: NodeConfig) -> Result<Node, NodeError> {
        cfg.validate()?;
        let chain = {
            let (dir, g) = (cfg.datadir.clone(), cfg.genesis.clone());
            tokio::task::spawn_blocking(move || Chain::open(&dir, g))
                .await
                .map_err(|e| NodeError::Config(e.to_string()))??
        };
        let net = Arc::new(emc_rpc::NetInfo::default());
        let rpc_cfg = emc_rpc::RpcConfig {
            issuer: cfg.consensus_key.clone(),
            ..cfg.rpc.clone()
        };
        let (rpc, rpc_addr) =
            emc_rpc::start(chain.clone(), cfg.rpc_addr, rpc_cfg, net.clone()).await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (inbound_tx, inbound) = tokio::sync::mpsc::channel(4096);
        // Refuse a genesis set consensus cannot use before starting anything.
        emc_chain::consensus_set(&chain.genesis().validators)
            .map_err(|e| NodeError::Config(format!("genesis validators: {e}")))?;
        let metrics = Arc::new(metrics::Metrics::default());
        tokio::spawn(metrics.clone().follow(chain.clone()));
        let metrics_addr = match cfg.metrics_addr {
            None => None,
            Some(a) => Some(
                metrics::serve(metrics.clone(), a)
                    .await
                    .map_err(|e| NodeError::Config(format!("metrics on {a}: {e}")))?,
            ),
        };
        let mut peer_id = None;
        let (mut compute_http, mut router_http, mut agent_out) = (None, None, None);
        let mut node_did = None;
        let gossip: Arc<dyn consensus::Gossip> = match &cfg.p2p {
            None => Arc::new(consensus::NoPeers),
            Some(p) => {
                let key_seed = match &cfg.consensus_key {
                    Some(k) => p2p_seed_of(k),
                    None => p2p_seed_in(&cfg.datadir)?,
                };
                let p2p = emc_p2p::start(emc_p2p::P2pConfig {
                    key_seed,
                    listen: p.listen.clone(),
                    bootnodes: p.bootnodes.clone(),
                    chain_id: chain.chain_id(),
                    limits: gossip_limits(),
                })
                .map_err(|e| NodeError::Config(e.to_string()))?;
                peer_id = Some(p2p.peer_id);
                let (control, commands) = (p2p.streams.clone(), p2p.commands.clone());
                emc_compute::role::serve_pings(control.clone())?;
                let client: Arc<dyn emc_client::ChainClient> =
                    Arc::new(chain_client::Local(chain.clone()));
                if let Some(c) = &cfg.compute {
                    let node_key = emc_crypto::ConsensusKey::from_seed(key_seed);
                    let agent = Arc::new(build_agent(node_key.clone(), c, chain.chain_id()).await?);
                    compute_http = emc_compute::role::start(
                        client.clone(),
                        agent.clone(),
                        control.clone(),
                        commands.clone(),
                        node_key,
                        c.clone(),
                        stopped.clone(),
                    )
                    .await?;
                    agent_out = Some(agent);
                    node_did = Some(
                        emc_identity::node::NodeIdentity::derive(&key_seed).did(chain.chain_id()),
                    );
                }
                if let Some(r) = &cfg.router {
                    router_http = Some(
                        emc_router::start(
                            client.clone(),
                            control.clone(),
                            commands.clone(),
                            r.clone(),
                            stopped.clone(),
                        )
                        .await?,
                    );
                }
                if let Some(k) = &cfg.consensus_key {
                    let p = chain.genesis().poc;
                    let challenger = emc_compute::challenger::Challenger {
                        key: k.clone(),
                        account: cfg.poc_account.clone(),
                        params: emc_protocol::poc::PocParams {
                            lanes: p.lanes,
                            segments: p.segments,
                            seg_steps: p.seg_steps,
                            samples: p.samples,
                        },
                        epoch_blocks: chain.genesis().staking.epoch_blocks,
                    };
                    tokio::spawn(emc_compute::challenger::run(
                        client.clone(),
                        control.clone(),
                        challenger,
                        stopped.clone(),
                    ));
                }
                let gossip = Arc::new(network::P2pGossip(p2p.commands.clone()));
                tokio::spawn(network::run(
                    chain.clone(),
                    p2p,
                    inbound_tx.clone(),
                    stopped.clone(),
                    metrics.clone(),
                    net,
                ));
                gossip
            }
        };
        let consensus = tokio::spawn({
            let chain = chain.clone();
            // A full node runs the core as a follower: a key outside the set never signs.
            let key = cfg
                .consensus_key
                .clone()
                .unwrap_or_else(emc_crypto::ConsensusKey::random);
            async move {
                let r = consensus::run(chain, key, cfg.proposer, gossip, inbound, stopped, metrics)
                    .await;
                drop(inbound_tx);
                if let Err(e) = r {
                    tracing::error!(error = %e, "consensus stopped");
                }
            }
        });
        Ok(Node {
            chain,
            rpc_addr,
            peer_id,
            metrics_addr,
            compute_http,
            router_http,
            agent: agent_out,
            node_did,
            rpc,
            consensus,
            stop,
        })
    }

    /// Drains the computing node (if any: no new calls, running ones finish, for up
    /// to 30 s), stops consensus after the step in progress, then stops serving.
    pub async fn stop(self) {
        if let Some(a) = &self.agent {
            if !a.drain(std::time::Duration::from_secs(30)).await {
                tracing::warn!("calls still running after 30 s; stopping anyway");
            }
            // The last replies are written; give the connections a moment to carry
            // them out before the process goes.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        let _ = self.stop.send(true);
        let _ = self.consensus.await;
        let _ = self.rpc.stop();
        self.rpc.stopped().await;
    }
}
