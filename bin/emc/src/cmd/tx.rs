//! `emc tx send`: sign a transfer (or a call with --data) and send it.

use crate::{client::Rpc, cmd::keys::KeystoreArgs, cmd::RpcArg};
use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_network::TxSignerSync;
use alloy_primitives::{utils::parse_units, Address, Bytes, TxKind, U256};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::time::{Duration, Instant};

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

/// Signs and sends a transaction to `to`; with `wait`, waits for its receipt and fails
/// if it reverted.
pub fn send(
    signer: &SignerArgs,
    to: Address,
    value: U256,
    data: Bytes,
    gas: Option<u64>,
    wait: bool,
) -> Result<()> {
    let key = signer.key()?;
    let rpc = Rpc::new(&signer.rpc.rpc);
    let from = key.address();
    let chain_id = rpc.quantity("eth_chainId", json!([]))? as u64;
    let nonce = rpc.quantity("eth_getTransactionCount", json!([from, "pending"]))? as u64;
    let tip = rpc.quantity("eth_maxPriorityFeePerGas", json!([]))?;
    let gas_price = rpc.quantity("eth_gasPrice", json!([]))?;
    let gas = match gas {
        Some(g) => g,
        None => rpc.quantity(
            "eth_estimateGas",
            json!([{"from": from, "to": to, "value": value, "data": data}]),
        )? as u64,
    };
    let mut tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: gas,
        // Room for the base fee to double before the transaction is included.
        max_fee_per_gas: gas_price * 2,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(to),
        value,
        input: data,
        ..Default::default()
    };
    let sig = key.sign_transaction_sync(&mut tx).context("signing")?;
    let raw = TxEnvelope::from(tx.into_signed(sig)).encoded_2718();
    let hash = rpc.call("eth_sendRawTransaction", json!([Bytes::from(raw)]))?;
    println!("{}", hash.as_str().unwrap_or_default());
    if !wait {
        return Ok(());
    }
    let start = Instant::now();
    loop {
        let rc = rpc.call("eth_getTransactionReceipt", json!([hash]))?;
        if !rc.is_null() {
            let ok = rc["status"] == "0x1";
            eprintln!(
                "{} in block {} (gas used {})",
                if ok { "included" } else { "REVERTED" },
                crate::client::parse_quantity(&rc["blockNumber"]).unwrap_or(0),
                crate::client::parse_quantity(&rc["gasUsed"]).unwrap_or(0)
            );
            if !ok {
                bail!("transaction reverted");
            }
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("no receipt after 60 s; the transaction is still in the pool");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
