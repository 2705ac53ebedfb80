//! The README's run command: `emc devnet` with no config starts 4 validators and a
//! full node as processes, prints their RPC URLs, makes blocks that every node agrees
//! on, and stops cleanly on Ctrl-C, leaving its data in the directory it named.

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
    let deadline = Instant::now() + Duration::from_secs(60);
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
        // "heights: validator-0=N ... full-0=N": all five at 3 or more.
        if let Some(h) = line.strip_prefix("heights: ") {
            let hs: Vec<u64> = h
                .split_whitespace()
                .filter_map(|kv| kv.split('=').nth(1)?.parse().ok())
                .collect();
            if hs.len() == 5 && hs.iter().all(|h| *h >= 3) {
                agreed = true;
                break;
            }
        }
    }
    assert_eq!(
        urls.len(),
        5,
        "four validators and a full node print their URLs: {urls:?}"
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
