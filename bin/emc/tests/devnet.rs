//! The README's run command: `emc devnet` with no config starts 4 validators, a full
//! node, 2 routers and 2 computing nodes serving the built-in models as processes,
//! prints their RPC URLs, the gateways and an API key, makes blocks that every node
//! agrees on, answers an embeddings call through the printed gateway with the printed
//! key, mints a funded computing socket per built-in model to development account 1
//! and prints its key (which pays for an embeddings call), sets E on chain from the
//! validators' own accounts, survives a validator
//! killed with SIGKILL (saying the chain goes on), starts it again with
//! `emc devnet restart`, and stops cleanly on Ctrl-C, leaving its data in the
//! directory it named.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Stops a devnet left running by a failed test with Ctrl-C, so its nodes go too.
struct Stop(u32);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.0.to_string()])
            .status();
    }
}

#[test]
fn devnet_runs_with_no_config_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("net");
    // Below the ephemeral range, apart from every other test's ports.
    let base = common::port_block();
    let mut child = common::emc()
        .args(["devnet", "--dir", data.to_str().expect("utf8")])
        .args([
            "--rpc-port",
            &base.to_string(),
            "--p2p-port",
            &(base + 10).to_string(),
        ])
        .args(["--block-time-ms", "500", "--epoch-blocks", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("emc devnet");
    let _stop = Stop(child.id());
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut urls = Vec::new();
    let mut pids = std::collections::BTreeMap::new();
    let mut gateways = Vec::new();
    let mut key = None;
    let mut key_next = false;
    let mut try_line = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut agreed = false;
    while Instant::now() < deadline {
        let line = lines.next().expect("devnet still running").expect("read");
        if let Some(url) = line
            .split_whitespace()
            .skip_while(|w| *w != "JSON-RPC")
            .nth(1)
        {
            urls.push(url.to_string());
            let mut words = line.split_whitespace();
            if let (Some(name), Some("pid"), Some(pid)) = (words.next(), words.next(), words.next())
            {
                pids.insert(name.to_string(), pid.to_string());
            }
        }
        if line.starts_with("router-") && line.trim_end().ends_with("/v1") {
            gateways.push(line.split_whitespace().nth(1).expect("url").to_string());
        }
        if key_next {
            key = Some(line.trim().to_string());
            key_next = false;
        }
        key_next |= line.starts_with("API key");
        if line.starts_with("Try: curl") {
            try_line = Some(line.clone());
        }
        // "heights: validator-0=N ... compute-1=N": all nine at 3 or more.
        if let Some(h) = line.strip_prefix("heights: ") {
            let hs: Vec<u64> = h
                .split_whitespace()
                .filter_map(|kv| kv.split('=').nth(1)?.parse().ok())
                .collect();
            if hs.len() == 9 && hs.iter().all(|h| *h >= 3) {
                agreed = true;
                break;
            }
        }
    }
    assert_eq!(
        urls.len(),
        9,
        "four validators, a full node, two routers and two computing nodes print their URLs: {urls:?}"
    );
    assert_eq!(gateways.len(), 2, "two gateways: {gateways:?}");
    let key = key.expect("an API key printed");
    assert!(key.starts_with("emc_"), "{key}");
    // The first call it suggests runs as printed: the key is in it, no variable to set.
    let try_line = try_line.expect("a first call suggested");
    assert!(
        try_line.contains(&key) && !try_line.contains("$KEY"),
        "{try_line}"
    );
    assert!(agreed, "every node reached height 3");
    // Every node reports the same block 2.
    let hashes: Vec<String> = urls
        .iter()
        .map(|u| {
            let v: serde_json::Value = ureq::post(u)
                .send_json(serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": ["0x2", false]}))
                .expect("rpc")
                .into_json()
                .expect("json");
            v["result"]["hash"].as_str().expect("hash").to_string()
        })
        .collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    // The newcomer's first call: embeddings through the printed gateway and key, once
    // the computing nodes have registered.
    let mut reply = None;
    let t = Instant::now();
    while reply.is_none() && t.elapsed() < Duration::from_secs(90) {
        reply = ureq::post(&format!("{}/embeddings", gateways[0]))
            .set("Authorization", &format!("Bearer {key}"))
            .send_json(serde_json::json!({"model": "all-minilm-l6-v2", "input": "hello"}))
            .ok()
            .and_then(|r| r.into_json::<serde_json::Value>().ok());
        std::thread::sleep(Duration::from_millis(500));
    }
    let reply = reply.expect("an embedding through the devnet's gateway");
    assert_eq!(
        reply["data"][0]["embedding"].as_array().map(Vec::len),
        Some(384),
        "{reply}"
    );
    // Proof of computing: the validators attest from their own accounts, so E is on
    // chain for both computing nodes, as each router reads it.
    let e_of = |r: usize| -> Vec<u64> {
        let base = gateways[r].trim_end_matches("/v1");
        ureq::get(&format!("{base}/nodes"))
            .call()
            .ok()
            .and_then(|r| r.into_json::<serde_json::Value>().ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n["e"].as_u64())
            .collect()
    };
    common::wait_until(
        "E on chain for both computing nodes",
        Duration::from_secs(120),
        || (0..2).all(|r| e_of(r).first().is_some_and(|e| *e > 0)),
    );

    let mut next_line = || lines.next().expect("devnet still running").expect("read");
    let mut until = |what: &str, f: &mut dyn FnMut(&str) -> bool| {
        let t = Instant::now();
        loop {
            assert!(t.elapsed() < Duration::from_secs(90), "waiting for {what}");
            let line = next_line();
            if f(&line) {
                return line;
            }
        }
    };
    // The computing socket it minted for account 1: its printed key pays for a call.
    until("a socket for all-minilm-l6-v2", &mut |l| {
        l.starts_with("Socket ") && l.contains("for all-minilm-l6-v2")
    });
    let socket_key = until("its key", &mut |_| true);
    assert!(socket_key.starts_with("emc_socket_"), "{socket_key}");
    let r = ureq::post(&format!("{}/embeddings", gateways[0]))
        .set("Authorization", &format!("Bearer {}", socket_key.trim()))
        .send_json(serde_json::json!({"model": "all-minilm-l6-v2", "input": "hello"}))
        .expect("an embedding paid from the socket");
    assert!(r.header("x-emc-charge").is_some_and(|c| c != "0"));
    // The standing offers it posted: the printed command buys compute in one go.
    until("an offer for all-minilm-l6-v2", &mut |l| {
        l.starts_with("Offer ") && l.contains("all-minilm-l6-v2")
    });
    let buy = until("its command", &mut |_| true);
    let args: Vec<&str> = buy.split_whitespace().collect();
    assert_eq!(args[..3], ["emc", "market", "buy"], "{buy}");
    let out = common::emc()
        .args(&args[1..])
        .output()
        .expect("emc market buy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("socket ")), "{stdout}");

    // A validator killed with SIGKILL: the devnet says so and the chain goes on.
    let heights = |line: &str| -> std::collections::BTreeMap<String, String> {
        line.strip_prefix("heights: ")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let victim = pids
        .get("validator-1")
        .expect("validator-1's pid printed")
        .clone();
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &victim])
        .status()
        .expect("kill")
        .success());
    until("the death reported", &mut |l| {
        l.starts_with("validator-1 exited")
    });
    let health = until("the chain's health", &mut |l| l.starts_with("the chain"));
    assert!(
        health.starts_with("the chain goes on: 3 of 4 validators are up"),
        "{health}"
    );
    let first = heights(&until("heights", &mut |l| l.starts_with("heights: ")));
    assert_eq!(first["validator-1"], "down");
    let h0: u64 = first["validator-0"].parse().expect("a height");
    until("blocks without validator-1", &mut |l| {
        let h = heights(l);
        h.get("validator-0").and_then(|v| v.parse::<u64>().ok()) >= Some(h0 + 3)
    });
    // Started again, as the devnet says to: it catches up with the others.
    let out = common::emc()
        .args(["devnet", "restart", "validator-1", "--dir"])
        .arg(&data)
        .output()
        .expect("emc devnet restart");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("validator-1 started again"));
    until("the restart reported", &mut |l| {
        l.starts_with("validator-1 started again")
    });
    until("validator-1 caught up", &mut |l| {
        let h = heights(l);
        match (
            h.get("validator-1").and_then(|v| v.parse::<u64>().ok()),
            h.get("validator-0").and_then(|v| v.parse::<u64>().ok()),
        ) {
            (Some(a), Some(b)) => a + 1 >= b && a > h0,
            _ => false,
        }
    });
    // An unknown node is refused with the names there are.
    let out = common::emc()
        .args(["devnet", "restart", "validator-9", "--dir"])
        .arg(&data)
        .output()
        .expect("emc devnet restart");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no node \"validator-9\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Ctrl-C: the devnet stops its nodes and exits cleanly.
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill")
        .success());
    std::thread::spawn(move || for _ in lines {});
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "devnet did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    assert!(
        data.join("genesis.json").exists(),
        "the data stays in the directory it named"
    );
}
