//! `emc gateway key`, `emc escrow ...`, `emc apps`: what a client of the network
//! needs. Keys are grants signed by the client's account (see `emc_client::keys`);
//! escrow lives in the `Tasks` module; apps are read from the `Registry` module, so
//! they list the whole network, not one router's view.

use crate::client::Rpc;
use crate::cmd::tx::{parse_amount, parse_duration, send, SignerArgs};
use crate::cmd::RpcArg;
use alloy_primitives::{utils::format_ether, Address, Bytes, B256, U256};
use alloy_sol_types::SolCall;
use anyhow::{bail, Context, Result};
use emc_modules::registry::IRegistry;
use emc_modules::tasks::ITasks;
use emc_modules::{REGISTRY_ADDRESS, TASKS_ADDRESS};
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum GatewayCmd {
    /// Make an API key for the signer's account: a grant its routers may spend its
    /// escrow under, usable as the `openai` clients' api_key.
    Key(KeyArgs),
    /// Sign in with Ethereum at a gateway (EIP-4361 with a ReCap): the signer signs once
    /// for a session key scoped to an escrow budget or a socket, apps and an expiry,
    /// and gets an API key the session key signed.
    Signin(crate::cmd::signin::SignInArgs),
    /// One call through a gateway, the reply body to stdout; `--sealed` seals it to the
    /// node end to end (HPKE), so the routers carry only ciphertext.
    Call(crate::cmd::call::CallArgs),
}

#[derive(clap::Args)]
pub struct KeyArgs {
    /// How long the key is valid: seconds, or with a suffix s, m, h or d.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub valid: u64,
    /// Most the key may spend in all ("5" or "5emc", "1000wei").
    #[arg(long, value_parser = parse_amount, default_value = "100emc")]
    pub limit: U256,
    /// Only this router (its account) may use the key [default: any].
    #[arg(long)]
    pub router: Option<Address>,
    /// Tells this key from others with the same fields.
    #[arg(long)]
    pub nonce: Option<u64>,
    /// Sign for this chain without asking a node [default: the node's eth_chainId].
    #[arg(long)]
    pub chain_id: Option<u64>,
    #[command(flatten)]
    pub signer: SignerArgs,
}

#[derive(clap::Subcommand)]
pub enum EscrowCmd {
    /// Deposit AMOUNT into the signer's escrow ("5" or "5emc").
    Deposit {
        #[arg(value_parser = parse_amount)]
        amount: U256,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Start withdrawing AMOUNT; it can be claimed after a delay (routers may still
    /// settle calls already served against it meanwhile).
    Withdraw {
        #[arg(value_parser = parse_amount)]
        amount: U256,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Pay out a withdrawal whose delay has passed.
    Claim {
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// An account's escrow.
    Show {
        address: Address,
        #[command(flatten)]
        rpc: RpcArg,
    },
}

/// The signer and the grant a key's arguments describe (the chain id asked of the node
/// unless given), for an escrow key or a socket key alike.
pub fn signed_grant(
    a: &KeyArgs,
) -> Result<(
    alloy_signer_local::PrivateKeySigner,
    emc_modules::tasks::ITasks::Grant,
)> {
    let signer = a.signer.key()?;
    let chain_id = match a.chain_id {
        Some(c) => c,
        None => Rpc::new(&a.signer.rpc.rpc).quantity("eth_chainId", json!([]))? as u64,
    };
    let nonce = a.nonce.unwrap_or_else(emc_client::keys::now);
    let grant = emc_client::keys::grant(
        chain_id,
        a.router.unwrap_or(Address::ZERO),
        nonce,
        a.valid,
        a.limit,
    );
    Ok((signer, grant))
}

pub fn key(a: KeyArgs) -> Result<()> {
    let (signer, grant) = signed_grant(&a)?;
    let key = emc_client::keys::make(&signer, grant).map_err(anyhow::Error::msg)?;
    println!("{key}");
    Ok(())
}

pub fn view<C: SolCall>(rpc: &Rpc, to: Address, c: C) -> Result<C::Return> {
    let out = rpc.call(
        "eth_call",
        json!([{"to": to, "data": Bytes::from(c.abi_encode())}, "latest"]),
    )?;
    let hex = out.as_str().context("eth_call returned no hex")?;
    let bytes = alloy_primitives::hex::decode(hex)?;
    C::abi_decode_returns(&bytes).context("the module's answer does not decode")
}

pub fn escrow(c: EscrowCmd) -> Result<()> {
    let tx = |signer: &SignerArgs, value: U256, data: Vec<u8>| {
        send(signer, TASKS_ADDRESS, value, data.into(), None, true)
    };
    match c {
        EscrowCmd::Deposit { amount, signer } => {
            if amount.is_zero() {
                bail!("deposit more than 0");
            }
            tx(&signer, amount, ITasks::depositCall {}.abi_encode())
        }
        EscrowCmd::Withdraw { amount, signer } => tx(
            &signer,
            U256::ZERO,
            ITasks::requestWithdrawCall { amount }.abi_encode(),
        ),
        EscrowCmd::Claim { signer } => {
            tx(&signer, U256::ZERO, ITasks::withdrawCall {}.abi_encode())
        }
        EscrowCmd::Show { address, rpc } => {
            let e = view(
                &Rpc::new(&rpc.rpc),
                TASKS_ADDRESS,
                ITasks::escrowOfCall { account: address },
            )?;
            println!("balance {} EMC", format_ether(e.balance));
            if !e.pending.is_zero() {
                println!(
                    "withdrawing {} EMC, claimable from block {}",
                    format_ether(e.pending),
                    e.unlockAt
                );
            }
            Ok(())
        }
    }
}

/// `emc apps`: every registered node's apps and prices, grouped by app.
pub fn apps(rpc: RpcArg, json_out: bool) -> Result<()> {
    let rpc = Rpc::new(&rpc.rpc);
    let nodes = view(&rpc, REGISTRY_ADDRESS, IRegistry::nodesCall {})?;
    let mut by_app: std::collections::BTreeMap<String, Vec<(B256, U256, Address)>> =
        Default::default();
    for n in nodes {
        let i = view(
            &rpc,
            REGISTRY_ADDRESS,
            IRegistry::nodeInfoCall { nodeId: n },
        )?;
        for (app, price) in i.apps.into_iter().zip(i.prices) {
            by_app.entry(app).or_default().push((n, price, i.owner));
        }
    }
    if json_out {
        let v: serde_json::Value = by_app
            .iter()
            .map(|(app, ns)| {
                let list: Vec<_> = ns
                    .iter()
                    .map(|(n, p, o)| json!({"node": n, "price": p.to_string(), "owner": o}))
                    .collect();
                (app.clone(), serde_json::Value::Array(list))
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if by_app.is_empty() {
        println!("no registered node serves anything yet");
    }
    for (app, ns) in by_app {
        let cheapest = ns.iter().map(|n| n.1).min().unwrap_or_default();
        println!("{app}: {} node(s), from {cheapest} wei per unit", ns.len());
        for (n, p, _) in ns {
            println!("  {n}  {p} wei");
        }
    }
    Ok(())
}
