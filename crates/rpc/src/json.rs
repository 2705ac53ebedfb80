//! The JSON shapes Ethereum clients expect for blocks, transactions, receipts and logs.

use alloy_consensus::{transaction::Recovered, TxEnvelope};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, Bytes, B256};
use emc_types::{Block, Header, Log, Receipt};
use serde_json::{json, Value};

/// A 256-bit quantity (wei, ids) as JSON-RPC writes quantities: `0x`-hex.
pub fn wei(v: alloy_primitives::U256) -> serde_json::Value {
    serde_json::json!(format!("{v:#x}"))
}

pub fn q(n: impl Into<u128>) -> String {
    format!("{:#x}", n.into())
}

pub fn decode_stored(raw: &Bytes) -> Option<TxEnvelope> {
    TxEnvelope::decode_2718(&mut raw.as_ref()).ok()
}

/// A transaction with its position; `None` for one still in the pool.
pub fn tx_json(env: TxEnvelope, sender: Address, at: Option<(B256, u64, u32, u64)>) -> Value {
    use alloy_consensus::Transaction as _;
    let effective = at.map(|(_, _, _, base_fee)| {
        let base = base_fee as u128;
        match env.max_priority_fee_per_gas() {
            Some(tip) => base + tip.min(env.max_fee_per_gas().saturating_sub(base)),
            None => env.max_fee_per_gas(),
        }
    });
    let tx = alloy_rpc_types_eth::Transaction {
        inner: Recovered::new_unchecked(env, sender),
        block_hash: at.map(|a| a.0),
        block_number: at.map(|a| a.1),
        transaction_index: at.map(|a| a.2 as u64),
        effective_gas_price: effective,
        block_timestamp: None,
    };
    serde_json::to_value(tx).unwrap_or(Value::Null)
}

pub fn header_json(h: &Header) -> Value {
    json!({
        "hash": h.hash(),
        "parentHash": h.parent_hash,
        "number": q(h.height.0),
        "timestamp": q(h.timestamp),
        "miner": h.proposer,
        "stateRoot": h.state_root,
        "transactionsRoot": h.transactions_root,
        "receiptsRoot": h.receipts_root,
        "logsBloom": h.logs_bloom,
        "gasUsed": q(h.gas_used),
        "gasLimit": q(h.gas_limit),
        "baseFeePerGas": q(h.base_fee),
        "extraData": h.extra_data,
        "difficulty": "0x0",
        "totalDifficulty": "0x0",
        "nonce": "0x0000000000000000",
        "mixHash": h.parent_hash,
        "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
        "validatorSetHash": h.validator_set_hash,
    })
}

pub fn block_json(block: &Block, senders: &[Address], full: bool) -> Value {
    let mut v = header_json(&block.header);
    let hash = block.hash();
    let txs: Vec<Value> = block
        .transactions
        .iter()
        .zip(senders)
        .enumerate()
        .filter_map(|(i, (raw, sender))| {
            let env = decode_stored(raw)?;
            Some(if full {
                tx_json(
                    env,
                    *sender,
                    Some((hash, block.header.height.0, i as u32, block.header.base_fee)),
                )
            } else {
                json!(env.tx_hash())
            })
        })
        .collect();
    v["transactions"] = Value::Array(txs);
    v["uncles"] = json!([]);
    v["size"] = json!(q(block.size() as u64));
    v
}

pub fn log_json(
    log: &Log,
    height: u64,
    block_hash: B256,
    tx_index: u32,
    tx_hash: B256,
    log_index: u32,
) -> Value {
    json!({
        "address": log.address,
        "topics": log.topics,
        "data": log.data,
        "blockNumber": q(height),
        "blockHash": block_hash,
        "transactionHash": tx_hash,
        "transactionIndex": q(tx_index as u64),
        "logIndex": q(log_index as u64),
        "removed": false,
    })
}

/// `first_log_index` is the block-wide index of the receipt's first log.
pub fn receipt_json(rc: &Receipt, header: &Header, first_log_index: u32) -> Value {
    let hash = header.hash();
    let logs: Vec<Value> = rc
        .logs
        .iter()
        .enumerate()
        .map(|(i, l)| {
            log_json(
                l,
                header.height.0,
                hash,
                rc.tx_index,
                rc.tx_hash,
                first_log_index + i as u32,
            )
        })
        .collect();
    json!({
        "transactionHash": rc.tx_hash,
        "transactionIndex": q(rc.tx_index as u64),
        "blockHash": hash,
        "blockNumber": q(header.height.0),
        "from": rc.from,
        "to": rc.to,
        "contractAddress": rc.contract_address,
        "cumulativeGasUsed": q(rc.cumulative_gas_used),
        "gasUsed": q(rc.gas_used),
        "effectiveGasPrice": q(rc.effective_gas_price),
        "status": if rc.success { "0x1" } else { "0x0" },
        "type": q(rc.tx_type as u64),
        "logs": logs,
        "logsBloom": rc.bloom(),
    })
}
