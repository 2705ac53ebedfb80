//! Bad input gets a clear JSON-RPC error, and the node keeps serving.

mod common;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_network::TxSignerSync;
use alloy_primitives::{hex, Address, Signature, TxKind, U256};
use alloy_signer_local::PrivateKeySigner;
use serde_json::{json, Value};

fn signer() -> PrivateKeySigner {
    common::KEY0.parse().expect("key")
}

fn tx(chain_id: u64, nonce: u64, input_len: usize) -> TxEip1559 {
    TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 21_000 + 16 * input_len as u64 + 100_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(Address::repeat_byte(7)),
        value: U256::from(1),
        input: vec![1u8; input_len].into(),
        ..Default::default()
    }
}

fn signed(mut t: TxEip1559) -> String {
    let sig = signer().sign_transaction_sync(&mut t).expect("sign");
    format!(
        "0x{}",
        hex::encode(TxEnvelope::from(t.into_signed(sig)).encoded_2718())
    )
}

fn error_of(v: &Value) -> (i64, String) {
    let e = v
        .get("error")
        .unwrap_or_else(|| panic!("expected an error, got {v}"));
    (
        e["code"].as_i64().expect("code"),
        e["message"].as_str().expect("message").to_string(),
    )
}

#[test]
fn every_kind_of_garbage_gets_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let node = common::DevNode::start(dir.path(), 200);
    let send = |raw: &str| node.call("eth_sendRawTransaction", json!([raw]));

    let cases: Vec<(&str, Value, i64, &str)> = vec![
        ("malformed RLP", send("0x02f8badbeef"), -32602, ""),
        (
            "truncated RLP",
            send(&signed(tx(31337, 0, 0))[..60]),
            -32602,
            "malformed transaction",
        ),
        (
            "wrong chain id",
            send(&signed(tx(1, 0, 0))),
            -32000,
            "wrong chain id: transaction is for chain 1, this is chain 31337",
        ),
        (
            "oversized",
            send(&signed(tx(31337, 0, 200 * 1024))),
            -32602,
            "oversized transaction",
        ),
        ("not hex", send("hello"), -32602, ""),
        (
            "unknown method",
            node.call("eth_fooBar", json!([])),
            -32601,
            "",
        ),
        (
            "bad address",
            node.call("eth_getBalance", json!(["0x1234", "latest"])),
            -32602,
            "",
        ),
        (
            "future block",
            node.call("eth_getBalance", json!([Address::ZERO, "0xffffff"])),
            -32000,
            "header not found",
        ),
        (
            "parse error",
            node.raw("{\"jsonrpc\": \"2.0\", \"method\": "),
            -32700,
            "",
        ),
        // jsonrpsee answers a JSON value that is not a request object as a parse error.
        ("not an object", node.raw("42"), -32700, ""),
        (
            "a call sending more than the sender has",
            node.call(
                "eth_call",
                json!([{"from": "0x000000000000000000000000000000000000dEaD", "to": Address::ZERO, "value": "0xde0b6b3a7640000", "gasPrice": "0x3b9aca00"}]),
            ),
            -32000,
            "insufficient funds for gas * price + value: balance 0",
        ),
    ];
    for (what, resp, code, msg) in &cases {
        let (c, m) = error_of(resp);
        assert_eq!(c, *code, "{what}: {resp}");
        assert!(
            m.contains(msg),
            "{what}: message {m:?} should contain {msg:?}"
        );
    }

    // A signature that does not recover: r = 0.
    let t = tx(31337, 0, 0);
    let bad = t.into_signed(Signature::new(U256::ZERO, U256::from(1), false));
    let resp = send(&format!(
        "0x{}",
        hex::encode(TxEnvelope::from(bad).encoded_2718())
    ));
    let (c, m) = error_of(&resp);
    assert_eq!(c, -32000, "{resp}");
    assert!(m.contains("bad signature"), "{m}");

    // A high-s signature (malleated) is refused per EIP-2.
    let mut t = tx(31337, 0, 0);
    let sig = signer().sign_transaction_sync(&mut t).expect("sign");
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .expect("n");
    let high = Signature::new(sig.r(), n - sig.s(), !sig.v());
    let resp = send(&format!(
        "0x{}",
        hex::encode(TxEnvelope::from(t.into_signed(high)).encoded_2718())
    ));
    assert!(error_of(&resp).1.contains("high s"), "{resp}");

    // A batch over the limit is refused whole.
    let batch: Vec<Value> = (0..101)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}))
        .collect();
    let resp = node.raw(&Value::Array(batch).to_string());
    assert!(resp.get("error").is_some(), "{resp}");

    // The node is still serving, and a valid transaction still lands.
    let good = signed(tx(31337, 0, 0));
    let hash = node.result("eth_sendRawTransaction", json!([good]));
    common::wait_until("the receipt", std::time::Duration::from_secs(20), || {
        !node
            .result("eth_getTransactionReceipt", json!([hash]))
            .is_null()
    });
    // Nothing a bad request sent was pooled: the good one was nonce 0 and is the only one.
    assert_eq!(
        common::quantity(&node.result(
            "eth_getTransactionCount",
            json!([signer().address(), "pending"])
        )),
        1
    );
}
