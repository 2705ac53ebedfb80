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
    /// Override the computing sockets' settle window (seconds after a socket ends
    /// before its refund opens), --dev only.
    #[arg(long, requires = "dev")]
    socket_settle_window: Option<u64>,
    /// Log filter, as RUST_LOG (for example `info,emc_chain=debug`) [default: info].
    #[arg(long, env = "RUST_LOG")]
    log: Option<String>,
    /// Extra roles: `compute` (serve apps, answer PoC challenges) and `router`
    /// (keep the table of computing nodes, serve calls to them); repeat for both.
    #[arg(long = "role", value_enum)]
    roles: Vec<Role>,
    /// An app this computing node serves: NAME=SOURCE[,price=WEI][,fuel=N][,memory_mb=N],
    /// SOURCE one of http://HOST:PORT, builtin:minilm, builtin:smollm2, wasm:FILE.
    #[arg(long = "app")]
    apps: Vec<emc_compute::AppSpec>,
    /// A router this computing node dials and keeps a connection to
    /// (/ip4/…/tcp/…/p2p/<peer id>); repeat for several.
    #[arg(long = "router")]
    routers: Vec<emc_p2p::Addr>,
    /// The computing node's own HTTP port (apps, load, direct calls).
    #[arg(long)]
    compute_http: Option<SocketAddr>,
    /// Calls a computing node runs at once [default: the number of CPUs].
    #[arg(long)]
    capacity: Option<u32>,
    /// Calls that may wait for a slot before new ones are refused as saturated.
    #[arg(long, default_value_t = 16)]
    max_queue: u32,
    /// The account (hex private key, or EMC_OWNER_KEY) that owns this computing node:
    /// the node registers itself from it (without it, it serves but is not registered).
    #[arg(long, env = "EMC_OWNER_KEY", hide_env_values = true)]
    owner_key: Option<String>,
    /// Threads the computing node proves with (PoC) [default: the number of CPUs].
    #[arg(long)]
    poc_threads: Option<usize>,
    /// Test networks only: answer PoC challenges with a wrong result.
    #[arg(long, hide = true)]
    poc_cheat: bool,
    /// The router's gateway address: OpenAI endpoints, `/call/APP/...`, `/nodes`.
    #[arg(long)]
    router_http: Option<SocketAddr>,
    /// The router's account (hex private key, or EMC_ROUTER_KEY): it settles calls on
    /// chain, paying the gas, and receives the router's fee. Required by --role router.
    #[arg(long, env = "EMC_ROUTER_KEY", hide_env_values = true)]
    router_key: Option<String>,
    /// What a call reserves of the client's escrow unless it sends x-emc-max-cost
    /// ("0.01emc", "1000wei").
    #[arg(long, value_parser = crate::cmd::tx::parse_amount, default_value = "0.01emc")]
    reserve: alloy_primitives::U256,
    /// A peer router of the mesh (/ip4/…/tcp/…/p2p/<peer id>): exchange table
    /// summaries with it and relay calls to each other's nodes; repeat for several.
    /// Both routers must name each other.
    #[arg(long = "peer-router")]
    peer_routers: Vec<emc_p2p::Addr>,
    /// The account (hex private key, or EMC_POC_ACCOUNT_KEY) a validator submits its
    /// proof-of-computing attestations from; without it they are only logged.
    #[arg(long, env = "EMC_POC_ACCOUNT_KEY", hide_env_values = true)]
    poc_account_key: Option<String>,
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    pool: PoolArgs,
}

/// A computing node's pool (docs/ARCHITECTURE.md, "Computing pools"): the node joins
/// the pool on chain from its owner account, and runs a Ray node in the pool's
/// cluster: the head when the pool names it, a worker of the head otherwise.
#[derive(clap::Args)]
struct PoolArgs {
    /// The pool this computing node is a member of (its id in the Pools module).
    #[arg(long)]
    pool: Option<u64>,
    /// The `bin` folder of the Python environment with Ray (`pip install "ray[default]"`).
    #[arg(long, env = "EMC_RAY")]
    ray: Option<PathBuf>,
    /// The address this node's Ray node binds and the other members reach.
    #[arg(long, default_value = "127.0.0.1")]
    pool_ip: String,
    /// The head member's libp2p address (/ip4/…/tcp/…/p2p/<peer id>), for members.
    #[arg(long)]
    pool_head: Option<emc_p2p::Addr>,
    /// CPUs this node gives the pool [default: the number of CPUs].
    #[arg(long)]
    pool_cpus: Option<u32>,
    /// GPUs this node gives the pool.
    #[arg(long, default_value_t = 0)]
    pool_gpus: u32,
    /// Memory this node gives the pool, in MiB.
    #[arg(long, default_value_t = 2048)]
    pool_memory_mb: u64,
    /// On the head: Ray's GCS port, the one port members reach.
    #[arg(long, default_value_t = 6380)]
    ray_gcs_port: u16,
    /// On the head: Ray's dashboard (Jobs and state APIs), bound to loopback.
    #[arg(long, default_value_t = 8266)]
    ray_dashboard_port: u16,
    /// On the head: Ray Client's server (unused, pinned off Ray's default).
    #[arg(long, default_value_t = 10011)]
    ray_client_port: u16,
    /// This node's Ray dashboard agent (one per machine per node).
    #[arg(long, default_value_t = 52366)]
    ray_agent_port: u16,
}

impl PoolArgs {
    fn settings(
        &self,
        datadir: &std::path::Path,
        cpus: usize,
    ) -> anyhow::Result<Option<emc_compute::pool::member::PoolSettings>> {
        use emc_compute::pool::ray;
        let Some(pool) = self.pool else {
            if self.ray.is_some() || self.pool_head.is_some() {
                bail!("--ray and --pool-head are for a pool member: name its --pool");
            }
            return Ok(None);
        };
        let bin = self.ray.clone().context(
            "--pool needs --ray DIR (or EMC_RAY): the bin folder of a Python environment with Ray",
        )?;
        Ok(Some(emc_compute::pool::member::PoolSettings {
            pool,
            ray: ray::RayInstall::new(bin).map_err(|e| anyhow::anyhow!("--ray: {e}"))?,
            ip: self.pool_ip.clone(),
            head_ports: ray::HeadPorts {
                gcs: self.ray_gcs_port,
                dashboard: self.ray_dashboard_port,
                client: self.ray_client_port,
            },
            own: ray::NodePorts {
                agent: self.ray_agent_port,
            },
            resources: ray::Resources {
                cpus: self.pool_cpus.unwrap_or(cpus as u32),
                gpus: self.pool_gpus,
                memory_mb: self.pool_memory_mb,
                name: None,
            },
            head: self.pool_head.clone(),
            dir: datadir.join("pool"),
        }))
    }
}

/// Connection bounds of the node's HTTP ports (docs/ARCHITECTURE.md lists every
/// listener's limits and timeouts). Behind a reverse proxy every client shares the
/// proxy's address: raise the per-address limits there.
#[derive(clap::Args)]
struct ListenArgs {
    /// JSON-RPC connections open at once, from everyone [default: 1024].
    #[arg(long)]
    rpc_max_connections: Option<usize>,
    /// JSON-RPC connections open at once from one IP address [default: 64].
    #[arg(long)]
    rpc_max_per_ip: Option<usize>,
    /// Gateway connections open at once, from everyone [default: 4096].
    #[arg(long)]
    gateway_max_connections: Option<usize>,
    /// Gateway connections open at once from one IP address [default: 256].
    #[arg(long)]
    gateway_max_per_ip: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Compute,
    Router,
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
        if !a.roles.is_empty() {
            bail!("--role needs a network (--genesis and --p2p-addr); `emc devnet` starts one");
        }
        if let Some(n) = a.epoch_blocks {
            cfg.genesis.staking.epoch_blocks = n;
        }
        if let Some(n) = a.unbonding_blocks {
            cfg.genesis.staking.unbonding_blocks = n;
        }
        if let Some(s) = a.socket_settle_window {
            cfg.genesis.sockets.settle_window_secs = s;
        }
        if let Some(ms) = a.block_time_ms {
            cfg.genesis.block_time_ms = ms;
        }
        cfg.rpc = rpc_config(a)?;
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
    let mut cfg = NodeConfig {
        datadir: a
            .datadir
            .clone()
            .unwrap_or_else(|| home().join(".emc/node")),
        rpc_addr: a.rpc(),
        metrics_addr: a.metrics_addr,
        genesis,
        proposer,
        consensus_key,
        rpc: rpc_config(a)?,
        p2p: a.p2p_addr.clone().map(|listen| P2pSettings {
            listen,
            bootnodes: a.bootnodes.clone(),
        }),
        compute: None,
        router: None,
        poc_account: None,
    };
    roles(a, &mut cfg)?;
    Ok(cfg)
}

/// The JSON-RPC bounds, the flags applied to the defaults.
fn rpc_config(a: &NodeArgs) -> Result<emc_rpc::RpcConfig> {
    let mut rpc = emc_rpc::RpcConfig::default();
    if let Some(n) = a.listen.rpc_max_connections {
        rpc.http.max_connections = n;
    }
    if let Some(n) = a.listen.rpc_max_per_ip {
        rpc.http.max_per_ip = n;
    }
    rpc.http
        .validate()
        .map_err(|e| anyhow::anyhow!("JSON-RPC limits: {e}"))?;
    Ok(rpc)
}

fn roles(a: &NodeArgs, cfg: &mut NodeConfig) -> Result<()> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let computes = a.roles.contains(&Role::Compute);
    if computes && a.apps.is_empty() {
        bail!("--role compute needs at least one --app NAME=SOURCE");
    }
    if !computes && (!a.apps.is_empty() || !a.routers.is_empty() || a.compute_http.is_some()) {
        bail!("--app, --router and --compute-http are for --role compute");
    }
    if (computes || a.roles.contains(&Role::Router)) && cfg.p2p.is_none() {
        bail!("the compute and router roles need --p2p-addr (they talk over libp2p)");
    }
    if computes {
        cfg.compute = Some(emc_node::ComputeSettings {
            apps: a.apps.clone(),
            routers: a.routers.clone(),
            http: a.compute_http,
            capacity: a.capacity.unwrap_or(cpus as u32),
            max_queue: a.max_queue,
            owner: a
                .owner_key
                .as_deref()
                .map(emc_crypto::key_from_hex)
                .transpose()
                .context("--owner-key")?,
            hardware: hardware(cpus),
            poc_threads: a.poc_threads.unwrap_or(cpus),
            poc_behaviour: if a.poc_cheat {
                emc_protocol::poc::Behaviour::WrongResult
            } else {
                emc_protocol::poc::Behaviour::Honest
            },
            pool: a.pool.settings(&cfg.datadir, cpus)?,
        });
    } else if a.pool.pool.is_some() {
        bail!("--pool is for --role compute: a pool's members are computing nodes");
    }
    if a.roles.contains(&Role::Router) {
        let account = a
            .router_key
            .as_deref()
            .map(emc_crypto::key_from_hex)
            .transpose()
            .context("--router-key")?
            .context("--role router needs --router-key (or EMC_ROUTER_KEY): the account that settles calls and earns the router's fee")?;
        let mut http_limits = emc_router::gateway::limits();
        if let Some(n) = a.listen.gateway_max_connections {
            http_limits.max_connections = n;
        }
        if let Some(n) = a.listen.gateway_max_per_ip {
            http_limits.max_per_ip = n;
        }
        http_limits
            .validate()
            .map_err(|e| anyhow::anyhow!("gateway limits: {e}"))?;
        cfg.router = Some(emc_node::RouterSettings {
            http: a
                .router_http
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8600))),
            http_limits,
            account,
            reserve: a.reserve,
            peers: a.peer_routers.clone(),
        });
    } else if a.router_http.is_some() || a.router_key.is_some() || !a.peer_routers.is_empty() {
        bail!("--router-http, --router-key and --peer-router are for --role router");
    }
    cfg.poc_account = a
        .poc_account_key
        .as_deref()
        .map(emc_crypto::key_from_hex)
        .transpose()
        .context("--poc-account-key")?;
    Ok(())
}

/// A one-line hardware summary for the registry.
pub fn hardware(cpus: usize) -> String {
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| format!(", {} GiB", kb / (1 << 20)))
        .unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| format!(" ({})", m.trim()))
        })
        .unwrap_or_default();
    format!("{cpus} CPUs{model}{mem}")
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
    if let Some(agent) = &node.agent {
        writeln!(out, "Computing node id: {}", agent.id())?;
        for app in agent.apps() {
            writeln!(
                out,
                "  app {} ({}), {} wei per {:?}",
                app.name, app.kind, app.price, app.unit
            )?;
        }
    }
    if let Some(did) = &node.node_did {
        writeln!(out, "Node DID: {did}")?;
    }
    if let Some(h) = node.compute_http {
        writeln!(out, "Compute HTTP: http://{h}")?;
    }
    if let Some(h) = node.router_http {
        writeln!(out, "Router HTTP: http://{h}")?;
        writeln!(out, "Gateway (OpenAI base_url): http://{h}/v1")?;
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
