//! `emc tx send`: sign a transfer (or a call with --data) and send it.

use crate::{cmd::keys::KeystoreArgs, cmd::RpcArg};
use alloy_primitives::{utils::parse_units, Address, Bytes, U256};
use anyhow::{bail, Context, Result};
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum TxCmd {
    /// Send value (and optionally call data) to an address.
    Send(SendArgs),
}

#[derive(clap::Args)]
pub struct SendArgs {
    #[arg(long)]
    to: Address,
    /// Amount: "1.5" or "1.5emc" (EMC), "20gwei", or "1000wei".
    #[arg(long, default_value = "0", value_parser = parse_amount)]
    value: U256,
    /// Call data, hex.
    #[arg(long)]
    data: Option<Bytes>,
    /// Gas limit (estimated when omitted).
    #[arg(long)]
    gas: Option<u64>,
    #[command(flatten)]
    signer: SignerArgs,
    /// Return once the node accepts the transaction instead of waiting for its receipt.
    #[arg(long)]
    no_wait: bool,
}

/// Who signs, and which node to send to.
#[derive(clap::Args)]
pub struct SignerArgs {
    /// Sign with this hex private key (or EMC_PRIVATE_KEY) instead of a keystore account.
    #[arg(
        long,
        env = "EMC_PRIVATE_KEY",
        hide_env_values = true,
        conflicts_with = "from"
    )]
    private_key: Option<String>,
    /// Sign as this keystore account.
    #[arg(long)]
    from: Option<Address>,
    #[command(flatten)]
    ks: KeystoreArgs,
    #[command(flatten)]
    pub rpc: RpcArg,
}

pub fn parse_amount(s: &str) -> Result<U256, String> {
    let s = s.trim().to_lowercase();
    let (num, unit) = if let Some(n) = s.strip_suffix("gwei") {
        (n, "gwei")
    } else if let Some(n) = s.strip_suffix("wei") {
        (n, "wei")
    } else if let Some(n) = s.strip_suffix("emc") {
        (n, "ether")
    } else {
        (s.as_str(), "ether")
    };
    parse_units(num.trim(), unit)
        .map(Into::into)
        .map_err(|e| format!("amount {s}: {e}"))
}

pub fn run(c: TxCmd) -> Result<()> {
    let TxCmd::Send(a) = c;
    send(
        &a.signer,
        a.to,
        a.value,
        a.data.unwrap_or_default(),
        a.gas,
        !a.no_wait,
    )
}

impl SignerArgs {
    pub fn key(&self) -> Result<alloy_signer_local::PrivateKeySigner> {
        Ok(match (&self.private_key, self.from) {
            (Some(k), _) => emc_crypto::key_from_hex(k)?,
            (None, Some(from)) => {
                emc_crypto::keystore_open(&self.ks.dir(), from, &self.ks.password()?)?
            }
            (None, None) => bail!(
                "say who signs: --from ADDRESS (a keystore account) or --private-key / EMC_PRIVATE_KEY"
            ),
        })
    }
}

/// Signs and sends a transaction to `to` through the SDK's `ChainClient` (the one
/// transaction builder); with `wait`, waits for its receipt and fails if it reverted.
pub fn send(
    signer: &SignerArgs,
    to: Address,
    value: U256,
    data: Bytes,
    gas: Option<u64>,
    wait: bool,
) -> Result<()> {
    send_tx(signer, to, value, data, gas, wait).map(drop)
}

/// [`send`], answering the transaction's hash.
pub fn send_tx(
    signer: &SignerArgs,
    to: Address,
    value: U256,
    data: Bytes,
    gas: Option<u64>,
    wait: bool,
) -> Result<alloy_primitives::B256> {
    use emc_client::ChainClientExt;
    let key = signer.key()?;
    let rpc = emc_client::JsonRpc::new(&signer.rpc.rpc);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    rt.block_on(async {
        let hash = rpc.send(&key, to, value, data, gas).await?;
        println!("{hash}");
        if !wait {
            return Ok(hash);
        }
        let o = rpc.wait(hash, Duration::from_secs(60)).await?;
        eprintln!(
            "{} in block {} (gas used {})",
            if o.success { "included" } else { "REVERTED" },
            o.block,
            o.gas_used
        );
        if !o.success {
            bail!("transaction reverted");
        }
        Ok(hash)
    })
}

/// A duration from the command line: seconds, or with a suffix s, m, h or d.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (n, mul) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3_600),
        Some('d') => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    n.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s:?} is not a duration (for example 3600, 90m, 12h, 30d)"))
}
