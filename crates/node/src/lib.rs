//! Wires an EMC node from a [`NodeConfig`]: opens the chain, starts JSON-RPC, and runs
//! IBFT through [`consensus`], the shell around the pure consensus core. No protocol
//! logic lives here. Until the p2p layer lands a node has no peers, so only a
//! single-validator chain makes progress (`emc node --dev` is one, sealed by real IBFT
//! with a quorum of one).

pub mod consensus;

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
    /// The validator account this node seals as (its fees go there).
    pub proposer: Address,
    /// The ed25519 key this validator signs consensus messages with.
    pub consensus_key: emc_crypto::ConsensusKey,
    pub rpc: emc_rpc::RpcConfig,
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
}

impl NodeConfig {
    /// The zero-config development chain: the Hardhat accounts funded, one validator
    /// (development account index 10, unfunded, so tips are visible apart from users',
    /// with development consensus key 0).
    pub fn dev(datadir: PathBuf, rpc_addr: SocketAddr) -> Result<Self, NodeError> {
        let keys = emc_crypto::dev_accounts(DEV_ACCOUNTS + 1)?;
        let accounts: Vec<Address> = keys[..DEV_ACCOUNTS as usize]
            .iter()
            .map(|k| k.address())
            .collect();
        let proposer = keys[DEV_ACCOUNTS as usize].address();
        let consensus_key = emc_crypto::ConsensusKey::dev(0);
        let validator = emc_types::GenesisValidator {
            address: proposer,
            consensus_key: consensus_key.public(),
            power: 1,
        };
        let genesis = Genesis::dev(validator, &accounts, U256::from(DEV_BALANCE_WEI));
        Ok(Self {
            datadir,
            rpc_addr,
            genesis,
            proposer,
            consensus_key,
            rpc: Default::default(),
        })
    }

    pub fn validate(&self) -> Result<(), NodeError> {
        self.genesis
            .validate()
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let key = self.consensus_key.public();
        match self
            .genesis
            .validators
            .iter()
            .find(|v| v.consensus_key == key)
        {
            None => {
                return Err(NodeError::Config(format!(
                    "consensus key {key} is not a validator in this genesis"
                )))
            }
            Some(v) if v.address != self.proposer => {
                return Err(NodeError::Config(format!(
                    "consensus key {key} belongs to validator {}, not {}",
                    v.address, self.proposer
                )))
            }
            Some(_) => {}
        }
        if self.genesis.validators.len() > 1 {
            return Err(NodeError::Config(format!(
                "genesis lists {} validators, but this build has no p2p layer yet: only a single-validator chain can make progress",
                self.genesis.validators.len()
            )));
        }
        Ok(())
    }
}

/// A running node.
pub struct Node {
    pub chain: Arc<Chain>,
    pub rpc_addr: SocketAddr,
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
        let (rpc, rpc_addr) = emc_rpc::start(chain.clone(), cfg.rpc_addr, cfg.rpc.clone()).await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // No peers yet: nothing arrives on the inbound channel until p2p lands.
        let (inbound_tx, inbound) = tokio::sync::mpsc::channel(1024);
        let consensus = tokio::spawn({
            let chain = chain.clone();
            async move {
                let gossip = Arc::new(consensus::NoPeers);
                let r = consensus::run(
                    chain,
                    cfg.consensus_key,
                    cfg.proposer,
                    gossip,
                    inbound,
                    stopped,
                )
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
            rpc,
            consensus,
            stop,
        })
    }

    /// Stops consensus after the step in progress, then stops serving.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.consensus.await;
        let _ = self.rpc.stop();
        self.rpc.stopped().await;
    }
}
