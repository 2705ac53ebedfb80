//! `emc pool ...`: computing pools, the `Pools` module's Ray clusters of computing
//! nodes, and their jobs through a router's gateway (`/v1/jobs`).
//!
//! A node joins a pool by running `emc node --role compute --pool ID --ray DIR`,
//! which signs its join with the node key; these commands are the operator's and the
//! client's side.

use crate::client::Rpc;
use crate::cmd::gateway::view;
use crate::cmd::tx::{parse_amount, send, SignerArgs};
use crate::cmd::RpcArg;
use alloy_primitives::{Bytes, B256, U256};
use alloy_sol_types::SolCall;
use anyhow::{bail, Context, Result};
use emc_modules::pools::IPools;
use emc_modules::POOLS_ADDRESS;
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum PoolCmd {
    /// Create a pool you operate (your account needs router or compute stake).
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        terms: TermsArgs,
        /// An app the pool serves (a Ray Serve deployment or a job template); repeat.
        #[arg(long = "app")]
        apps: Vec<String>,
        /// A Python package its runtime environment provides; repeat.
        #[arg(long = "framework")]
        frameworks: Vec<String>,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Change pool ID's commission and prices.
    Terms {
        id: u64,
        #[command(flatten)]
        terms: TermsArgs,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Name the member that runs Ray's head.
    Head {
        id: u64,
        #[arg(long)]
        node: B256,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Take your node out of its pool (once its running jobs end).
    Leave {
        #[arg(long)]
        node: B256,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// One pool, with its members, as JSON.
    Show {
        id: u64,
        #[command(flatten)]
        rpc: RpcArg,
    },
    /// Every pool, one line each.
    List {
        #[command(flatten)]
        rpc: RpcArg,
    },
    /// Jobs through a router's gateway.
    #[command(subcommand)]
    Job(JobCmd),
}

#[derive(clap::Args)]
pub struct TermsArgs {
    /// The operator's share of every job, in basis points (at most 5,000).
    #[arg(long, default_value_t = 1_000)]
    commission_bps: u16,
    /// Price per CPU-second and per GPU-second ("0.001emc", "1000wei").
    #[arg(long, value_parser = parse_amount)]
    cpu_price: U256,
    #[arg(long, value_parser = parse_amount, default_value = "0wei")]
    gpu_price: U256,
}

#[derive(clap::Args)]
pub struct GatewayArgs {
    /// The router's gateway.
    #[arg(long, env = "EMC_GATEWAY", default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// Your API key (`emc gateway key`).
    #[arg(long, env = "EMC_API_KEY", hide_env_values = true)]
    key: String,
}

#[derive(clap::Subcommand)]
pub enum JobCmd {
    /// Submit a job: ENTRYPOINT runs in a directory of the given files.
    Submit {
        entrypoint: String,
        /// A file of the job's working directory (its name is kept); repeat.
        #[arg(long = "file")]
        files: Vec<std::path::PathBuf>,
        /// Ray's runtime environment, as JSON (`{"env_vars": {...}}`).
        #[arg(long)]
        runtime_env: Option<String>,
        #[arg(long, default_value_t = 1)]
        cpus: u32,
        #[arg(long, default_value_t = 0)]
        gpus: u32,
        /// Run it on this pool [default: the router's choice].
        #[arg(long)]
        pool: Option<u64>,
        /// The most it may cost, reserved from your escrow ("0.5emc").
        #[arg(long, value_parser = parse_amount)]
        max_cost: Option<U256>,
        /// Seconds it may run.
        #[arg(long, default_value_t = 3_600)]
        timeout: u64,
        #[command(flatten)]
        gw: GatewayArgs,
    },
    /// A job's status, metering and settlement.
    Status {
        id: B256,
        #[command(flatten)]
        gw: GatewayArgs,
    },
    /// A job's logs, followed until it ends.
    Logs {
        id: B256,
        #[command(flatten)]
        gw: GatewayArgs,
    },
    /// Stop a job (what it metered until then is paid).
    Stop {
        id: B256,
        #[command(flatten)]
        gw: GatewayArgs,
    },
}

pub fn run(c: PoolCmd) -> Result<()> {
    let tx = |signer: &SignerArgs, data: Vec<u8>| {
        send(
            signer,
            POOLS_ADDRESS,
            U256::ZERO,
            Bytes::from(data),
            None,
            true,
        )
    };
    match c {
        PoolCmd::Create {
            name,
            terms: t,
            apps,
            frameworks,
            signer,
        } => tx(
            &signer,
            IPools::createPoolCall {
                name,
                commissionBps: t.commission_bps,
                cpuPrice: t.cpu_price,
                gpuPrice: t.gpu_price,
                apps,
                frameworks,
            }
            .abi_encode(),
        ),
        PoolCmd::Terms {
            id,
            terms: t,
            signer,
        } => tx(
            &signer,
            IPools::setTermsCall {
                poolId: id,
                commissionBps: t.commission_bps,
                cpuPrice: t.cpu_price,
                gpuPrice: t.gpu_price,
            }
            .abi_encode(),
        ),
        PoolCmd::Head { id, node, signer } => tx(
            &signer,
            IPools::setHeadCall {
                poolId: id,
                nodeId: node,
            }
            .abi_encode(),
        ),
        PoolCmd::Leave { node, signer } => {
            tx(&signer, IPools::leaveCall { nodeId: node }.abi_encode())
        }
        PoolCmd::Show { id, rpc } => {
            let rpc = Rpc::new(&rpc.rpc);
            println!("{:#}", pool_json(&rpc, id)?);
            Ok(())
        }
        PoolCmd::List { rpc } => {
            let rpc = Rpc::new(&rpc.rpc);
            let count = view(&rpc, POOLS_ADDRESS, IPools::poolCountCall {})?;
            for id in 1..=count {
                let p = view(&rpc, POOLS_ADDRESS, IPools::poolCall { poolId: id })?;
                println!(
                    "{id}\t{}\t{} members\t{} wei/CPU-s\t{} bps\t{}",
                    p.name, p.members, p.cpuPrice, p.commissionBps, p.operator
                );
            }
            Ok(())
        }
        PoolCmd::Job(j) => job(j),
    }
}

fn pool_json(rpc: &Rpc, id: u64) -> Result<serde_json::Value> {
    let count = view(rpc, POOLS_ADDRESS, IPools::poolCountCall {})?;
    if id == 0 || id > count {
        bail!("there is no pool {id} ({count} pools)");
    }
    let p = view(rpc, POOLS_ADDRESS, IPools::poolCall { poolId: id })?;
    let members = view(rpc, POOLS_ADDRESS, IPools::membersCall { poolId: id })?;
    Ok(json!({
        "id": id,
        "name": p.name,
        "operator": p.operator,
        "commissionBps": p.commissionBps,
        "cpuPrice": p.cpuPrice.to_string(),
        "gpuPrice": p.gpuPrice.to_string(),
        "head": p.head,
        // The node id a socket of this pool names (`emc socket mint --node …
        // --app jobs`): its holder's key pays for jobs on the pool.
        "provider": emc_modules::pools::provider(id),
        "apps": p.apps,
        "frameworks": p.frameworks,
        "members": members.iter().map(|m| json!({
            "node": m.nodeId, "owner": m.owner, "cpus": m.cpus, "gpus": m.gpus,
            "memoryMb": m.memoryMb, "score": m.score, "leaving": m.leaving, "running": m.running,
        })).collect::<Vec<_>>(),
    }))
}

/// A request to the gateway with the key; the reply's body, or an error naming the
/// gateway's reason.
fn gateway(
    method: &str,
    gw: &GatewayArgs,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<ureq::Response> {
    let url = format!("{}{path}", gw.gateway.trim_end_matches('/'));
    let req = ureq::request(method, &url).set("authorization", &format!("Bearer {}", gw.key));
    let resp = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    match resp {
        Ok(r) => Ok(r),
        Err(ureq::Error::Status(code, r)) => {
            let v: serde_json::Value = r.into_json().unwrap_or_default();
            let why = v["error"]["message"].as_str().unwrap_or("no reason given");
            bail!("the gateway answered {code}: {why}")
        }
        Err(e) => Err(e).with_context(|| format!("reaching {url}")),
    }
}

fn job(c: JobCmd) -> Result<()> {
    let print = |r: ureq::Response| -> Result<()> {
        let v: serde_json::Value = r.into_json().context("the gateway's answer")?;
        println!("{v:#}");
        Ok(())
    };
    match c {
        JobCmd::Submit {
            entrypoint,
            files,
            runtime_env,
            cpus,
            gpus,
            pool,
            max_cost,
            timeout,
            gw,
        } => {
            let mut named = serde_json::Map::new();
            for f in &files {
                let name = f
                    .file_name()
                    .and_then(|n| n.to_str())
                    .with_context(|| format!("{} has no file name", f.display()))?;
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading {} (job files are text)", f.display()))?;
                named.insert(name.to_string(), text.into());
            }
            let env: Option<serde_json::Value> = runtime_env
                .map(|s| serde_json::from_str(&s).context("--runtime-env is not JSON"))
                .transpose()?;
            let body = json!({
                "entrypoint": entrypoint,
                "files": named,
                "runtime_env": env,
                "resources": {"cpus": cpus, "gpus": gpus},
                "pool": pool,
                "max_cost": max_cost.map(|c| c.to_string()),
                "timeout_s": timeout,
            });
            print(gateway("POST", &gw, "/v1/jobs", Some(body))?)
        }
        JobCmd::Status { id, gw } => print(gateway("GET", &gw, &format!("/v1/jobs/{id}"), None)?),
        JobCmd::Stop { id, gw } => print(gateway("DELETE", &gw, &format!("/v1/jobs/{id}"), None)?),
        JobCmd::Logs { id, gw } => {
            let r = gateway("GET", &gw, &format!("/v1/jobs/{id}/logs"), None)?;
            std::io::copy(&mut r.into_reader(), &mut std::io::stdout().lock())
                .context("reading the logs")?;
            Ok(())
        }
    }
}
