//! ethers.js v6 (from npm) against a real `emc node --dev`: see tests/e2e/ethers.test.mjs.
//!
//! Needs `npm ci` in tests/e2e (`.ci/run` does it). Outside CI the test skips with a
//! message when node_modules is absent; under CI=true it fails instead.

mod common;

use std::{path::PathBuf, process::Command};

#[test]
fn ethers_js_drives_a_dev_node() {
    let e2e = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e");
    if !e2e.join("node_modules/ethers").exists() || !e2e.join("node_modules/solc").exists() {
        let msg = "tests/e2e/node_modules is missing: run `npm ci --prefix tests/e2e`";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    // Short staking epochs and unbonding, so the staking flow runs in seconds.
    let node = common::DevNode::spawn(&[
        "--dev",
        "--datadir",
        dir.path().to_str().expect("utf-8 path"),
        "--block-time-ms",
        "250",
        "--epoch-blocks",
        "8",
        "--unbonding-blocks",
        "12",
    ]);
    // A key made by our CLI, for ethers to decrypt (keystore v3 compatibility).
    let ks = dir.path().join("keystore");
    let made = common::emc()
        .args(["keys", "new", "--keystore"])
        .arg(&ks)
        .env("EMC_PASSWORD", "pw")
        .output()
        .expect("emc keys new");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let address = String::from_utf8_lossy(&made.stdout).trim().to_string();
    let file = std::fs::read_dir(&ks)
        .expect("keystore dir")
        .next()
        .expect("one file")
        .expect("entry")
        .path();
    let out = Command::new("node")
        .args(["--test", "--test-concurrency=1", "ethers.test.mjs"])
        .current_dir(&e2e)
        .env("EMC_RPC_URL", &node.url)
        .env("EMC_WS_URL", node.ws_url())
        .env("EMC_KEYSTORE_FILE", &file)
        .env("EMC_KEYSTORE_ADDRESS", &address)
        .env("EMC_KEYSTORE_PASSWORD", "pw")
        .output()
        .expect("run node (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "ethers.js tests failed");
    assert!(stdout.contains("# fail 0"), "ethers.js reported failures");
}
