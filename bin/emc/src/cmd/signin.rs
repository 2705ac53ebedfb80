//! `emc gateway signin`: Sign-In with Ethereum from the command line. The signer's
//! account signs one EIP-4361 message (ReCap: an escrow budget or a socket, apps, an
//! expiry) for a fresh session key; the gateway opens the session on chain; the
//! command prints an API key the session key signed, for any client (the `openai`
//! clients' `api_key` included). The session key itself is not kept: the API key is
//! all the session is used through, and it dies with the session.

use crate::client::Rpc;
use crate::cmd::tx::{parse_amount, parse_duration, SignerArgs};
use alloy_primitives::U256;
use alloy_signer::SignerSync;
use anyhow::{bail, Context, Result};
use emc_identity::siwe::{self, Target};
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct SignInArgs {
    /// The router's gateway, e.g. http://127.0.0.1:8080 (the message names its host).
    #[arg(long)]
    pub gateway: String,
    /// How long the session lasts: seconds, or with a suffix s, m, h or d.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub valid: u64,
    /// The most the session's calls may cost together, from the signer's escrow.
    #[arg(long, value_parser = parse_amount, default_value = "1emc", conflicts_with = "socket")]
    pub limit: U256,
    /// Pay from this computing socket (which the signer holds) instead of escrow.
    #[arg(long)]
    pub socket: Option<U256>,
    /// An app the session may call (repeat for more; none: any app).
    #[arg(long = "app")]
    pub apps: Vec<String>,
    #[command(flatten)]
    pub signer: SignerArgs,
}

/// What the gateway answered, or its error's message.
fn answer(r: Result<ureq::Response, ureq::Error>) -> Result<Value> {
    match r {
        Ok(r) => Ok(r.into_json()?),
        Err(ureq::Error::Status(code, r)) => {
            let v: Value = r.into_json().unwrap_or_default();
            bail!(
                "the gateway refused ({code}): {}",
                v["error"]["message"].as_str().unwrap_or("no reason given")
            )
        }
        Err(e) => bail!("the gateway did not answer: {e}"),
    }
}

pub fn signin(a: SignInArgs) -> Result<()> {
    let account = a.signer.key()?;
    let chain_id = Rpc::new(&a.signer.rpc.rpc).quantity("eth_chainId", json!([]))? as u64;
    let base = a.gateway.trim_end_matches('/');
    let host = base
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(base)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let nonce = answer(ureq::get(&format!("{base}/v1/siwe/nonce")).call())?;
    let nonce = nonce["nonce"]
        .as_str()
        .context("the gateway sent no nonce")?;
    let session = alloy_signer_local::PrivateKeySigner::random();
    let now = emc_client::keys::now();
    let target = match a.socket {
        Some(id) => Target::Socket { id },
        None => Target::Escrow { limit: a.limit },
    };
    let message = siwe::message(
        &host,
        account.address(),
        session.address(),
        chain_id,
        nonce,
        now,
        now + a.valid,
        &target,
        &a.apps,
    );
    let sig = account.sign_message_sync(message.as_bytes())?;
    let body =
        json!({"message": message, "signature": format!("0x{}", hex::encode(sig.as_bytes()))});
    let opened = answer(ureq::post(&format!("{base}/v1/siwe")).send_json(body))?;
    let grant = emc_client::keys::grant(chain_id, Default::default(), now, a.valid, U256::MAX);
    let key = match a.socket {
        Some(id) => emc_client::keys::make_socket(&session, grant, id),
        None => emc_client::keys::make(&session, grant),
    }
    .map_err(anyhow::Error::msg)?;
    eprintln!(
        "session {} for {} until {} ({})",
        opened["sessionKey"].as_str().unwrap_or_default(),
        opened["account"].as_str().unwrap_or_default(),
        emc_identity::iso_date(now + a.valid),
        match a.socket {
            Some(id) => format!("socket {id}"),
            None => format!("{} wei of escrow", a.limit),
        }
    );
    println!("{key}");
    Ok(())
}
