//! `emc node`: run a node until Ctrl-C or SIGTERM.

use anyhow::{bail, Context, Result};
use emc_node::{Node, NodeConfig};
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
    /// genesis entry names the account the node's fees go to. Not with --dev.
    #[arg(long, conflicts_with = "dev")]
    consensus_key: Option<PathBuf>,
    /// Where the node keeps its database [default: ~/.emc/dev with --dev, ~/.emc/node otherwise].
    #[arg(long, env = "EMC_DATADIR")]
    datadir: Option<PathBuf>,
    /// JSON-RPC address, HTTP and WebSocket on one port (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8545")]
    rpc_addr: SocketAddr,
    /// Override the block time (milliseconds), --dev only.
    #[arg(long, requires = "dev")]
    block_time_ms: Option<u64>,
    /// Log filter, as RUST_LOG (for example `info,emc_chain=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn run(a: NodeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&a.log).context("--log")?)
        .with_writer(std::io::stderr)
        .init();
    let cfg = if a.dev {
        let mut cfg = NodeConfig::dev(
            a.datadir.clone().unwrap_or_else(|| home().join(".emc/dev")),
            a.rpc_addr,
        )?;
        if let Some(ms) = a.block_time_ms {
            cfg.genesis.block_time_ms = ms;
        }
        cfg
    } else {
        let Some(path) = &a.genesis else {
            bail!("give --dev for a development chain, or --genesis FILE (write one with `emc genesis`)");
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let genesis = Genesis::from_json(&text).with_context(|| format!("{}", path.display()))?;
        let Some(key_file) = &a.consensus_key else {
            bail!("give --consensus-key FILE: the validator's ed25519 key (make one with `emc keys consensus-new`)");
        };
        let consensus_key = emc_crypto::ConsensusKey::read(key_file)?;
        let proposer = genesis
            .validators
            .iter()
            .find(|v| v.consensus_key == consensus_key.public())
            .map(|v| v.address)
            .with_context(|| {
                format!(
                    "consensus key {} is not a validator in {}",
                    consensus_key.public(),
                    path.display()
                )
            })?;
        NodeConfig {
            datadir: a
                .datadir
                .clone()
                .unwrap_or_else(|| home().join(".emc/node")),
            rpc_addr: a.rpc_addr,
            genesis,
            proposer,
            consensus_key,
            rpc: Default::default(),
        }
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let node = Node::start(cfg.clone()).await?;
        print_banner(&cfg, node.rpc_addr, a.dev)?;
        wait_for_signal().await;
        eprintln!("stopping: finishing the block in progress");
        node.stop().await;
        Ok(())
    })
}

fn print_banner(cfg: &NodeConfig, rpc: SocketAddr, dev: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "EMC {} chain (chain id {}), one block every {} ms",
        if dev {
            "development"
        } else {
            "single-validator"
        },
        cfg.genesis.chain_id,
        cfg.genesis.block_time_ms
    )?;
    writeln!(out, "Data directory: {}", cfg.datadir.display())?;
    writeln!(out, "JSON-RPC: http://{rpc}")?;
    writeln!(out, "WebSocket: ws://{rpc}")?;
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

async fn wait_for_signal() {
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
