//! Hostile clients against a real node's JSON-RPC port, from loopback addresses of
//! their own (127.0.0.0/8 all reaches the node; honest calls come from 127.0.0.1):
//!
//! * hundreds of connections that send full headers and then a body a byte at a time,
//!   and hundreds of WebSockets that upgrade and then say nothing: honest calls and
//!   subscriptions keep being served all along, an address over its share is told
//!   so (429 with the reason), and the slow bodies are cut at the body timeout;
//! * WebSockets that subscribe as often as they may and never read while blocks and
//!   pending transactions pour in: subscriptions past the bound are refused, the node
//!   keeps making blocks, its memory at the peak stays within 192 MiB of what it was
//!   before, and within 45 s of the attack's end within 16 MiB of it (the allocator
//!   gives freed memory back to the system).

mod common;

use common::{connect_from, DevNode};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("host:port")
}

/// The resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .expect("VmRSS")
        / 1024
}

/// The next text message of `ws` (pings and pongs passed over).
fn text_of(
    ws: &mut tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
) -> String {
    loop {
        match ws.read().expect("a message") {
            tungstenite::Message::Text(t) => return t.to_string(),
            tungstenite::Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// A WebSocket upgrade request, raw.
const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Honest calls from 127.0.0.1 while an attack runs: every one answered, in time.
fn honest_calls(node: &DevNode, n: usize) {
    for i in 0..n {
        let t = Instant::now();
        let v = node.call("eth_blockNumber", json!([]));
        assert!(
            v.get("result").is_some(),
            "honest call {i} during the attack: {v}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "honest call {i} took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn slow_bodies_and_idle_websockets_cannot_lock_honest_clients_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let node = DevNode::start(dir.path(), 500);
    let to = addr_of(&node.url);
    // 480 slow bodies from 8 addresses and 160 idle WebSockets from 4 more: more than
    // the 512 connections the port took in all before these bounds, each address
    // within its share of 64.
    let mut slow = Vec::new();
    for a in 0..8u8 {
        for _ in 0..60 {
            let mut s = connect_from([127, 0, 0, 10 + a], to);
            s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{")
                .expect("head");
            slow.push(s);
        }
    }
    let mut idle = Vec::new();
    for a in 0..4u8 {
        for _ in 0..40 {
            let mut s = connect_from([127, 0, 0, 30 + a], to);
            s.write_all(UPGRADE).expect("upgrade");
            idle.push(s);
        }
    }
    let started = Instant::now();
    // A byte a second on every slow body, from another thread, until cut off.
    let dribbler = std::thread::spawn(move || {
        let mut cut = 0;
        for _ in 0..45 {
            cut = 0;
            for s in &mut slow {
                if s.write_all(b" ").is_err() {
                    cut += 1;
                }
            }
            if cut == slow.len() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        (cut, slow.len())
    });
    honest_calls(&node, 20);
    // An honest WebSocket subscription is served too.
    let (mut ws, _) = tungstenite::connect(node.ws_url()).expect("honest websocket");
    ws.send(tungstenite::Message::text(
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})
            .to_string(),
    ))
    .expect("subscribe");
    let reply = text_of(&mut ws);
    assert!(reply.contains("\"result\""), "{reply}");
    let head = text_of(&mut ws);
    assert!(head.contains("eth_subscription"), "{head}");
    // An address over its share is refused at once, with the reason.
    let mut over = Vec::new();
    for _ in 0..24 {
        over.push(connect_from([127, 0, 0, 10], to));
    }
    let mut refused = over.pop().expect("one");
    refused
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        .expect("write");
    refused
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = Vec::new();
    let r = refused.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(r.is_ok(), "{r:?}");
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(
        text.contains("too many connections from 127.0.0.10"),
        "{text}"
    );
    assert!(text.contains("-32005"), "in JSON-RPC's error shape: {text}");
    honest_calls(&node, 10);
    // The slow bodies are cut at the body timeout (30 s), not held forever.
    let (cut, all) = dribbler.join().expect("dribbler");
    assert_eq!(cut, all, "every slow body was cut off");
    assert!(started.elapsed() < Duration::from_secs(45));
    drop(idle);
}

/// A client WebSocket frame: text, masked (as RFC 6455 asks of clients).
fn frame(text: &str) -> Vec<u8> {
    let p = text.as_bytes();
    let mut f = vec![0x81];
    match p.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    let mask = [7u8, 1, 8, 3];
    f.extend_from_slice(&mask);
    f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[test]
fn subscribers_that_never_read_cannot_grow_memory_or_stall_the_chain() {
    let dir = tempfile::tempdir().expect("tmp");
    let node = DevNode::start(dir.path(), 200);
    let to = addr_of(&node.url);
    let pid = node.child.id();
    common::wait_until("a few blocks", Duration::from_secs(30), || {
        node.block_number() >= 5
    });
    let before = rss_mib(pid);

    // An honest client learns the bound: past 128 subscriptions one connection is
    // refused with a reason.
    let (mut ws, _) = tungstenite::connect(node.ws_url()).expect("websocket");
    let mut errors = Vec::new();
    for i in 0..130 {
        ws.send(tungstenite::Message::text(
            json!({"jsonrpc": "2.0", "id": i, "method": "eth_subscribe", "params": ["newHeads"]})
                .to_string(),
        ))
        .expect("send");
        loop {
            let m = text_of(&mut ws);
            let v: serde_json::Value = serde_json::from_str(&m).expect("json");
            if v["id"] == json!(i) {
                if v.get("error").is_some() {
                    errors.push(v["error"]["message"].to_string());
                }
                break;
            }
        }
    }
    assert_eq!(
        errors.len(),
        2,
        "subscriptions 129 and 130 are refused: {errors:?}"
    );
    assert!(errors[0].contains("at most 128"), "{errors:?}");
    drop(ws);

    // The attack: 80 connections from 8 addresses subscribe to everything as often as
    // they may and never read, while blocks come every 200 ms and transactions arrive.
    let mut attackers = Vec::new();
    for a in 0..8u8 {
        for _ in 0..10 {
            let mut s = connect_from([127, 0, 0, 40 + a], to);
            s.write_all(UPGRADE).expect("upgrade");
            for i in 0..128 {
                let kind = if i % 2 == 0 {
                    "newHeads"
                } else {
                    "newPendingTransactions"
                };
                let m =
                    json!({"jsonrpc": "2.0", "id": i, "method": "eth_subscribe", "params": [kind]});
                s.write_all(&frame(&m.to_string())).expect("subscribe");
            }
            attackers.push(s);
        }
    }
    let h0 = node.block_number();
    let t0 = Instant::now();
    let mut peak = before;
    let key = alloy_signer_local::PrivateKeySigner::from_bytes(
        &common::KEY0.parse::<alloy_primitives::B256>().expect("key"),
    )
    .expect("key");
    let mut nonce = 0u64;
    while t0.elapsed() < Duration::from_secs(20) {
        for _ in 0..5 {
            let raw = transfer(&key, nonce);
            let v = node.call("eth_sendRawTransaction", json!([raw]));
            assert!(v.get("result").is_some(), "{v}");
            nonce += 1;
        }
        peak = peak.max(rss_mib(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    let made = node.block_number() - h0;
    // 20 s of 200 ms blocks is 100; a node that fell behind makes far fewer.
    assert!(made >= 60, "only {made} blocks in 20 s under the attack");
    assert!(
        peak <= before + 192,
        "{peak} MiB at the peak, {before} MiB before"
    );
    // Gone, the attack leaves nothing behind: the memory goes back to the system.
    drop(attackers);
    let t1 = Instant::now();
    let mut after = rss_mib(pid);
    while after > before + 16 && t1.elapsed() < Duration::from_secs(45) {
        std::thread::sleep(Duration::from_secs(1));
        after = rss_mib(pid);
    }
    eprintln!(
        "memory: {before} MiB before, {peak} MiB at the peak, {after} MiB {:?} after",
        t1.elapsed()
    );
    assert!(
        after <= before + 16,
        "{after} MiB 45 s after the attack, {before} MiB before"
    );
}

/// A signed 1-wei transfer from `key` with `nonce`, as 0x-hex.
fn transfer(key: &alloy_signer_local::PrivateKeySigner, nonce: u64) -> String {
    use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
    use alloy_eips::eip2718::Encodable2718;
    use alloy_network::TxSignerSync;
    let mut tx = TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: alloy_primitives::TxKind::Call(alloy_primitives::Address::repeat_byte(7)),
        value: alloy_primitives::U256::from(1),
        ..Default::default()
    };
    let sig = key.sign_transaction_sync(&mut tx).expect("sign");
    alloy_primitives::hex::encode_prefixed(TxEnvelope::from(tx.into_signed(sig)).encoded_2718())
}
