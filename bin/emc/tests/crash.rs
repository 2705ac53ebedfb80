//! SIGKILL the dev node at random instants while transactions stream in. After every
//! kill the database verifies offline (every block links, the state root recomputes
//! from the stored leaves), and after every restart each receipt the node ever
//! returned is still there, in the same block.
//!
//! Replay a run with EMC_CRASH_SEED=<seed>; EMC_CRASH_ROUNDS sets the number of kills.

mod common;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_network::TxSignerSync;
use alloy_primitives::{hex, Address, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn transfer(key: &PrivateKeySigner, nonce: u64, to: Address) -> String {
    let mut t = TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value: U256::from(1_000 + nonce),
        ..Default::default()
    };
    let sig = key.sign_transaction_sync(&mut t).expect("sign");
    format!(
        "0x{}",
        hex::encode(TxEnvelope::from(t.into_signed(sig)).encoded_2718())
    )
}

#[test]
fn sigkill_at_any_instant_leaves_a_consistent_chain() {
    let seed = env_u64("EMC_CRASH_SEED").unwrap_or_else(rand::random);
    let rounds = env_u64("EMC_CRASH_ROUNDS").unwrap_or(8);
    println!("crash test seed {seed} ({rounds} rounds); replay with EMC_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tmp");
    let key: PrivateKeySigner = common::KEY0.parse().expect("key");
    // tx hash -> (block number, block hash) of every receipt the node returned.
    let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut highest = 0u64;
    // Block time is part of genesis, so it is fixed for the whole run.
    let block_time = 100 + rng.gen_range(0..150);

    for round in 0..rounds {
        let mut node = common::DevNode::start(dir.path(), block_time);
        let head = node.block_number();
        assert!(
            head >= highest,
            "seed {seed} round {round}: head went back from {highest} to {head}"
        );
        for (hash, (num, bh)) in &seen {
            let rc = node.result("eth_getTransactionReceipt", json!([hash]));
            assert!(
                !rc.is_null(),
                "seed {seed} round {round}: receipt of {hash} vanished"
            );
            assert_eq!(
                (&rc["blockNumber"], &rc["blockHash"]),
                (&json!(num), &json!(bh)),
                "seed {seed}: {hash} moved"
            );
        }
        let mut nonce = common::quantity(
            &node.result("eth_getTransactionCount", json!([key.address(), "pending"])),
        );
        let kill_at = Instant::now() + Duration::from_millis(rng.gen_range(300..1_500));
        let mut pending: Vec<String> = Vec::new();
        while Instant::now() < kill_at {
            for _ in 0..rng.gen_range(1..6) {
                let r = node.call(
                    "eth_sendRawTransaction",
                    json!([transfer(&key, nonce, Address::repeat_byte(9))]),
                );
                if let Some(h) = r["result"].as_str() {
                    pending.push(h.to_string());
                    nonce += 1;
                }
            }
            pending.retain(|h| {
                let rc: Value = node.result("eth_getTransactionReceipt", json!([h]));
                if rc.is_null() {
                    return true;
                }
                assert_eq!(rc["status"], "0x1");
                seen.insert(
                    h.clone(),
                    (
                        rc["blockNumber"].as_str().unwrap_or_default().into(),
                        rc["blockHash"].as_str().unwrap_or_default().into(),
                    ),
                );
                false
            });
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..40)));
        }
        highest = node.block_number();
        node.kill();
        let out = common::emc()
            .args(["db", "verify", "--datadir"])
            .arg(dir.path())
            .output()
            .expect("emc db verify");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("ok"),
            "seed {seed} round {round}: verify failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Every block was sealed by IBFT, so every one carries a certificate that verifies.
        let line = text
            .lines()
            .find(|l| l.starts_with("commit certificates verified:"))
            .expect("certificate line");
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        assert!(
            nums.len() == 2 && nums[0] == nums[1] && nums[1] > 0,
            "seed {seed}: {line}"
        );
    }
    assert!(
        seen.len() >= rounds as usize,
        "seed {seed}: only {} receipts were ever returned",
        seen.len()
    );
    println!("{} receipts survived {rounds} SIGKILLs", seen.len());
}
