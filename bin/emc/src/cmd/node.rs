//! `emc node`: run a node until Ctrl-C or SIGTERM.

use anyhow::{bail, Context, Result};
use emc_node::{Node, NodeConfig, P2pSettings};
use emc_types::Genesis;
use std::{io::Write, net::SocketAddr, path::PathBuf};

#[derive(clap::Args)]
pub struct NodeArgs {
    /// Zero-config development chain: the Hardhat/Anvil accounts funded, one validator.
    #[arg(long)]
    dev: bool,
    /// Genesis file (JSON from `emc genesis`); not with --dev.
    #[arg(long, conflicts_with = "dev")]
    genesis: Option<PathBuf>,
    /// The validator's ed25519 consensus key file (`emc keys consensus-new`); its
    /// genesis entry names the account the node's fees go to. Without it the node is a
    /// full node: it follows the chain and never signs.
    #[arg(long, conflicts_with = "dev")]
    consensus_key: Option<PathBuf>,
    /// Where the node keeps its database [default: ~/.emc/dev with --dev, ~/.emc/node otherwise].
    #[arg(long, env = "EMC_DATADIR")]
    datadir: Option<PathBuf>,
    /// JSON-RPC address, HTTP and WebSocket on one port (port 0 picks a free one)
    /// [default: 127.0.0.1:8545].
    #[arg(long)]
    rpc_addr: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// A TOML file with any of: genesis, consensus_key, datadir, rpc_addr, p2p_addr,
    /// bootnodes, metrics_addr, log. Flags given on the command line win.
    #[arg(long, conflicts_with = "dev")]
    config: Option<PathBuf>,
    /// Join a network: the libp2p address to listen on, e.g. /ip4/127.0.0.1/tcp/30303.
    #[arg(long, conflicts_with = "dev")]
    p2p_addr: Option<emc_p2p::Addr>,
    /// A peer to start from, as /ip4/…/tcp/…/p2p/<peer id>; repeat for several.
    #[arg(long = "bootnode", requires = "p2p_addr")]
    bootnodes: Vec<emc_p2p::Addr>,
    /// Override the block time (milliseconds), --dev only.
    #[arg(long, requires = "dev")]
    block_time_ms: Option<u64>,
    /// Override the staking epoch length in blocks, --dev only.
    #[arg(long, requires = "dev")]
    epoch_blocks: Option<u64>,
    /// Override the unbonding period in blocks, --dev only.
    #[arg(long, requires = "dev")]
    unbonding_blocks: Option<u64>,
    /// Log filter, as RUST_LOG (for example `info,emc_chain=debug`) [default: info].
    #[arg(long, env = "RUST_LOG")]
    log: Option<String>,
}

/// `node.toml`: the same settings as the flags.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    genesis: Option<PathBuf>,
    consensus_key: Option<PathBuf>,
    datadir: Option<PathBuf>,
    rpc_addr: Option<SocketAddr>,
    p2p_addr: Option<emc_p2p::Addr>,
    #[serde(default)]
    bootnodes: Vec<emc_p2p::Addr>,
    metrics_addr: Option<SocketAddr>,
    log: Option<String>,
}

impl NodeArgs {
    /// Fills what the command line left out from `--config`.
    fn merge_file(mut self) -> Result<Self> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let f: FileConfig = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        self.genesis = self.genesis.or(f.genesis);
        self.consensus_key = self.consensus_key.or(f.consensus_key);
        self.datadir = self.datadir.or(f.datadir);
        self.rpc_addr = self.rpc_addr.or(f.rpc_addr);
        self.p2p_addr = self.p2p_addr.or(f.p2p_addr);
        if self.bootnodes.is_empty() {
            self.bootnodes = f.bootnodes;
        }
        self.metrics_addr = self.metrics_addr.or(f.metrics_addr);
        self.log = self.log.or(f.log);
        Ok(self)
    }

    fn rpc(&self) -> SocketAddr {
        self.rpc_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8545)))
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn config(a: &NodeArgs) -> Result<NodeConfig> {
    if a.dev {
        let mut cfg = NodeConfig::dev(
            a.datadir.clone().unwrap_or_else(|| home().join(".emc/dev")),
            a.rpc(),
        )?;
        cfg.metrics_addr = a.metrics_addr;
        if let Some(n) = a.epoch_blocks {
            cfg.genesis.staking.epoch_blocks = n;
        }
        if let Some(n) = a.unbonding_blocks {
            cfg.genesis.staking.unbonding_blocks = n;
        }
        if let Some(ms) = a.block_time_ms {
            cfg.genesis.block_time_ms = ms;
        }
        return Ok(cfg);
    }
    let Some(path) = &a.genesis else {
        bail!(
            "give --dev for a development chain, or --genesis FILE (write one with `emc genesis`)"
        );
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let genesis = Genesis::from_json(&text).with_context(|| format!("{}", path.display()))?;
    let consensus_key = match &a.consensus_key {
        Some(f) => Some(emc_crypto::ConsensusKey::read(f)?),
        None if a.p2p_addr.is_none() => bail!(
            "give --consensus-key FILE to run a validator (make one with `emc keys consensus-new`), or --p2p-addr to follow a network as a full node"
        ),
        None => None,
    };
    let proposer = match &consensus_key {
        None => Default::default(),
        Some(k) => match genesis
            .validators
            .iter()
            .find(|v| v.consensus_key == k.public())
        {
            Some(v) => v.address,
            None => {
                eprintln!(
                    "consensus key {} is not in the genesis set of {}: this node signs once the staking module elects it (`emc stake register`)",
                    k.public(),
                    path.display()
                );
                emc_types::Address::ZERO
            }
        },
    };
    Ok(NodeConfig {
        datadir: a
            .datadir
            .clone()
            .unwrap_or_else(|| home().join(".emc/node")),
        rpc_addr: a.rpc(),
        metrics_addr: a.metrics_addr,
        genesis,
        proposer,
        consensus_key,
        rpc: Default::default(),
        p2p: a.p2p_addr.clone().map(|listen| P2pSettings {
            listen,
            bootnodes: a.bootnodes.clone(),
        }),
    })
}

pub fn run(a: NodeArgs) -> Result<()> {
    let a = a.merge_file()?;
    let log = a.log.clone().unwrap_or_else(|| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&log).context("--log")?)
        .with_writer(std::io::stderr)
        .init();
    let cfg = config(&a)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let node = Node::start(cfg.clone()).await?;
        print_banner(&cfg, &node, a.dev)?;
        wait_for_signal().await;
        eprintln!("stopping: finishing the step in progress");
        node.stop().await;
        Ok(())
    })
}

fn print_banner(cfg: &NodeConfig, node: &Node, dev: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let role = match (dev, &cfg.consensus_key) {
        (true, _) => "development chain",
        (false, Some(_)) => "validator",
        (false, None) => "full node",
    };
    writeln!(
        out,
        "EMC {role} (chain id {}, {} validators), one block every {} ms",
        cfg.genesis.chain_id,
        cfg.genesis.validators.len(),
        cfg.genesis.block_time_ms
    )?;
    writeln!(out, "Data directory: {}", cfg.datadir.display())?;
    writeln!(out, "JSON-RPC: http://{}", node.rpc_addr)?;
    writeln!(out, "WebSocket: ws://{}", node.rpc_addr)?;
    if let Some(m) = node.metrics_addr {
        writeln!(out, "Metrics: http://{m}/metrics")?;
    }
    if let (Some(p), Some(id)) = (&cfg.p2p, node.peer_id) {
        writeln!(out, "P2P: {}/p2p/{id}", p.listen)?;
    }
    if dev {
        writeln!(
            out,
            "\nDevelopment accounts (10000 EMC each), mnemonic \"{}\":",
            emc_crypto::DEV_MNEMONIC
        )?;
        for (i, k) in emc_crypto::dev_accounts(emc_node::DEV_ACCOUNTS)?
            .iter()
            .enumerate()
        {
            writeln!(
                out,
                "({i}) {}  private key 0x{}",
                k.address(),
                hex::encode(k.to_bytes())
            )?;
        }
        writeln!(
            out,
            "\nThese keys are public: never use them on a real network."
        )?;
    }
    out.flush()?;
    Ok(())
}

pub async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
