//! The CLI's blocking face on the SDK's JSON-RPC client (`emc_client::JsonRpc`).

use alloy_primitives::{B256, U256};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

pub struct Rpc {
    inner: emc_client::JsonRpc,
    rt: tokio::runtime::Runtime,
}

impl Rpc {
    pub fn new(url: &str) -> Self {
        Self {
            inner: emc_client::JsonRpc::new(url),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime"),
        }
    }

    /// One JSON-RPC call through the SDK's client: its result, or the node's error
    /// (its message and code) prefixed with the method.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.rt
            .block_on(self.inner.request(method, params))
            .map_err(|e| match e {
                emc_client::ClientError::Unreachable(why) => anyhow!(why),
                e => anyhow!("{method}: {e}"),
            })
    }

    pub fn quantity(&self, method: &str, params: Value) -> Result<u128> {
        let v = self.call(method, params)?;
        parse_quantity(&v).with_context(|| format!("{method} returned {v}"))
    }
}

/// Checks an `eth_getProof` answer for `address` against `root`, a state root the
/// caller trusts: the account's fields and every storage slot's value must be what
/// the tree under that root holds. EMC's proofs are JMT proofs, one element per
/// list (see `emc_storage::proof` for the layout).
pub fn verify_proof(p: &Value, address: alloy_primitives::Address, root: B256) -> Result<()> {
    let word = |v: &Value, what: &str| -> Result<U256> {
        v.as_str()
            .and_then(|s| s.parse::<U256>().ok())
            .ok_or_else(|| anyhow!("{what} is not a hex quantity: {v}"))
    };
    let one_proof = |v: &Value, what: &str| -> Result<Vec<u8>> {
        let list = v
            .as_array()
            .ok_or_else(|| anyhow!("{what} is not a list"))?;
        let [only] = list.as_slice() else {
            bail!("{what} holds {} elements; an EMC proof is one", list.len())
        };
        let hex = only.as_str().ok_or_else(|| anyhow!("{what} is not hex"))?;
        alloy_primitives::hex::decode(hex).map_err(|e| anyhow!("{what}: {e}"))
    };
    if p["address"].as_str().and_then(|a| a.parse().ok()) != Some(address) {
        bail!("the proof is for {}, not {address}", p["address"]);
    }
    let account = emc_storage::AccountState {
        nonce: word(&p["nonce"], "nonce")?.saturating_to(),
        balance: word(&p["balance"], "balance")?,
        code_hash: p["codeHash"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("codeHash is not a hash"))?,
    };
    emc_storage::proof::verify_account(
        root,
        address,
        &account,
        &one_proof(&p["accountProof"], "accountProof")?,
    )
    .map_err(|e| anyhow!(e))?;
    for s in p["storageProof"].as_array().into_iter().flatten() {
        let slot = word(&s["key"], "storage key")?;
        let value = word(&s["value"], "storage value")?;
        emc_storage::proof::verify_slot(
            root,
            address,
            slot,
            value,
            &one_proof(&s["proof"], "storage proof")?,
        )
        .map_err(|e| anyhow!(e))?;
    }
    Ok(())
}

pub fn parse_quantity(v: &Value) -> Result<u128> {
    emc_client::rpc::quantity(v).ok_or_else(|| anyhow!("{v} is not a hex quantity"))
}
