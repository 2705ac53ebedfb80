//! Wires an EMC node from a [`NodeConfig`]: opens the chain, starts JSON-RPC, and, on a
//! single-validator chain, runs the sealer that commits a block every block time.
//! No protocol logic lives here; multi-validator IBFT and p2p plug in beside the sealer.

use alloy_primitives::{Address, U256};
use emc_chain::Chain;
use emc_types::Genesis;
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

/// Balance of each development account: 10,000 EMC, as Hardhat and Anvil fund theirs.
pub const DEV_BALANCE_WEI: u128 = 10_000 * 1_000_000_000_000_000_000;
/// How many development accounts `--dev` funds.
pub const DEV_ACCOUNTS: u32 = 10;

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub datadir: PathBuf,
    pub rpc_addr: SocketAddr,
    pub genesis: Genesis,
    /// The validator account this node seals as; must be the genesis' only validator.
    pub proposer: Address,
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
}

impl NodeConfig {
    /// The zero-config development chain: the Hardhat accounts funded, one validator
    /// (development account index 10, unfunded, so tips are visible apart from users).
    pub fn dev(datadir: PathBuf, rpc_addr: SocketAddr) -> Result<Self, NodeError> {
        let keys = emc_crypto::dev_accounts(DEV_ACCOUNTS + 1)?;
        let accounts: Vec<Address> = keys[..DEV_ACCOUNTS as usize]
            .iter()
            .map(|k| k.address())
            .collect();
        let proposer = keys[DEV_ACCOUNTS as usize].address();
        let validator = emc_types::GenesisValidator {
            address: proposer,
            consensus_key: emc_crypto::ConsensusKey::dev(0).public(),
            power: 1,
        };
        let genesis = Genesis::dev(validator, &accounts, U256::from(DEV_BALANCE_WEI));
        Ok(Self {
            datadir,
            rpc_addr,
            genesis,
            proposer,
            rpc: Default::default(),
        })
    }

    pub fn validate(&self) -> Result<(), NodeError> {
        self.genesis
            .validate()
            .map_err(|e| NodeError::Config(e.to_string()))?;
        if self.genesis.validator_addresses() != [self.proposer] {
            return Err(NodeError::Config(format!(
                "this build seals single-validator chains only: genesis lists {} validators, and the node seals as {}",
                self.genesis.validators.len(),
                self.proposer
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
    sealer: tokio::task::JoinHandle<()>,
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
        let sealer = tokio::spawn(seal_loop(
            chain.clone(),
            cfg.proposer,
            Duration::from_millis(cfg.genesis.block_time_ms),
            stopped,
        ));
        Ok(Node {
            chain,
            rpc_addr,
            rpc,
            sealer,
            stop,
        })
    }

    /// Stops sealing after the block in progress, then stops serving.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.sealer.await;
        let _ = self.rpc.stop();
        self.rpc.stopped().await;
    }
}

async fn seal_loop(
    chain: Arc<Chain>,
    proposer: Address,
    every: Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        let c = chain.clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match tokio::task::spawn_blocking(move || c.seal(proposer, now)).await {
            Ok(Ok(h)) => {
                tracing::debug!(height = %h.height, gas = h.gas_used, hash = %h.hash(), "sealed block")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "sealing failed"),
            Err(e) => tracing::error!(error = %e, "sealer task failed"),
        }
    }
}
