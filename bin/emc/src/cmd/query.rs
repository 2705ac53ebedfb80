//! `emc query`: read from a node.

use crate::{client::Rpc, cmd::RpcArg};
use alloy_primitives::{utils::format_ether, Address, B256, U256};
use anyhow::{bail, Result};
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum QueryCmd {
    /// An account's balance (latest, or at --block N).
    Balance {
        address: Address,
        #[arg(long)]
        block: Option<u64>,
        #[command(flatten)]
        rpc: RpcArg,
    },
    /// A block by number, "latest", or hash.
    Block {
        #[arg(default_value = "latest")]
        id: String,
        /// Include whole transactions.
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        rpc: RpcArg,
    },
    /// A transaction and its receipt.
    Tx {
        hash: B256,
        #[command(flatten)]
        rpc: RpcArg,
    },
    /// An account (and storage slots) with its eth_getProof proof, checked here
    /// against the block's state root, or against --state-root, one you trust.
    Proof {
        address: Address,
        /// A storage slot to prove as well; repeat for several.
        #[arg(long = "slot")]
        slots: Vec<U256>,
        #[arg(long)]
        block: Option<u64>,
        /// The state root to check against (e.g. from a header whose commit
        /// certificate you verified) [default: the block's, as the node reports it].
        #[arg(long)]
        state_root: Option<B256>,
        #[command(flatten)]
        rpc: RpcArg,
    },
}

pub fn run(c: QueryCmd) -> Result<()> {
    match c {
        QueryCmd::Balance {
            address,
            block,
            rpc,
        } => {
            let tag = block.map_or_else(|| "latest".to_string(), |b| format!("{b:#x}"));
            let wei = Rpc::new(&rpc.rpc).quantity("eth_getBalance", json!([address, tag]))?;
            println!("{} EMC ({wei} wei)", format_ether(U256::from(wei)));
        }
        QueryCmd::Block { id, full, rpc } => {
            let rpc = Rpc::new(&rpc.rpc);
            let v = if let Ok(hash) = id.parse::<B256>() {
                rpc.call("eth_getBlockByHash", json!([hash, full]))?
            } else if id == "latest" || id == "earliest" {
                rpc.call("eth_getBlockByNumber", json!([id, full]))?
            } else {
                let Ok(n) = id.parse::<u64>() else {
                    bail!("block must be a number, latest, earliest or a hash, not {id:?}")
                };
                rpc.call("eth_getBlockByNumber", json!([format!("{n:#x}"), full]))?
            };
            if v.is_null() {
                bail!("no block {id}");
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        QueryCmd::Proof {
            address,
            slots,
            block,
            state_root,
            rpc,
        } => {
            let rpc = Rpc::new(&rpc.rpc);
            let tag = block.map_or_else(|| "latest".to_string(), |b| format!("{b:#x}"));
            let header = rpc.call("eth_getBlockByNumber", json!([tag, false]))?;
            let number = header["number"].clone();
            let root = match state_root {
                Some(r) => r,
                None => header["stateRoot"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("block {tag} has no stateRoot"))?,
            };
            // Pinned to the header's number, so proof and root are of one block.
            let proof = rpc.call("eth_getProof", json!([address, slots, number]))?;
            crate::client::verify_proof(&proof, address, root)?;
            println!("{}", serde_json::to_string_pretty(&proof)?);
            eprintln!(
                "verified: the account and {} slot(s) match state root {root} (block {})",
                slots.len(),
                number.as_str().unwrap_or("?")
            );
        }
        QueryCmd::Tx { hash, rpc } => {
            let rpc = Rpc::new(&rpc.rpc);
            let tx = rpc.call("eth_getTransactionByHash", json!([hash]))?;
            if tx.is_null() {
                bail!("no transaction {hash}");
            }
            let receipt = rpc.call("eth_getTransactionReceipt", json!([hash]))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"transaction": tx, "receipt": receipt}))?
            );
        }
    }
    Ok(())
}
