//! The README's run command: `emc devnet` with no config starts 4 validators, a full
//! node, 2 routers and 2 computing nodes serving the built-in models as processes,
//! prints their RPC URLs, the gateways and an API key, makes blocks that every node
//! agrees on, answers an embeddings call through the printed gateway with the printed
//! key, and stops cleanly on Ctrl-C, leaving its data in the directory it named.

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
    // Below the ephemeral range, apart from the other tests' regions.
    let base = 24_000 + (std::process::id() % 300) as u16 * 20;
    let mut child = common::emc()
        .args(["devnet", "--dir", data.to_str().expect("utf8")])
        .args([
            "--rpc-port",
            &base.to_string(),
            "--p2p-port",
            &(base + 10).to_string(),
        ])
        .args(["--block-time-ms", "500"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("emc devnet");
    let _stop = Stop(child.id());
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut urls = Vec::new();
    let mut gateways = Vec::new();
    let mut key = None;
    let mut key_next = false;
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
        }
        if line.starts_with("router-") && line.trim_end().ends_with("/v1") {
            gateways.push(line.split_whitespace().nth(1).expect("url").to_string());
        }
        if key_next {
            key = Some(line.trim().to_string());
            key_next = false;
        }
        key_next |= line.starts_with("API key");
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
