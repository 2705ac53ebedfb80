//! ethers.js v6 (from npm) against a real `emc node --dev`: see tests/e2e/ethers.test.mjs
//! and, for computing sockets with OpenZeppelin's contracts and Foundry's `cast`,
//! tests/e2e/sockets.test.mjs, then web3.py's stock ERC-721 ABI
//! (tests/e2e/web3_sockets.py); the computing market (tests/e2e/market.test.mjs); and
//! DIDs against ethr-did-resolver, key-did-resolver and pkh-did-resolver
//! (tests/e2e/dids.test.mjs); Sign-In with Ethereum at a router's gateway with the
//! `siwe` package and a solc-compiled EIP-1271 wallet (tests/e2e/siwe.test.mjs).
//!
//! Needs `npm ci` in tests/e2e (`.ci/run` does it). Outside CI the test skips with a
//! message when node_modules is absent; under CI=true it fails instead.

mod common;

use std::{path::PathBuf, process::Command};

/// tests/e2e, if its npm packages are installed (under CI=true they must be).
fn e2e_dir() -> Option<PathBuf> {
    let e2e = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e");
    let have = [
        "ethers",
        "solc",
        "@openzeppelin/contracts",
        "ethr-did-resolver",
        "siwe",
    ]
    .iter()
    .all(|p| e2e.join("node_modules").join(p).exists());
    if !have {
        let msg = "tests/e2e/node_modules is missing: run `npm ci --prefix tests/e2e`";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return None;
    }
    Some(e2e)
}

/// Runs one node:test file against `rpc`; its output is printed, its failures fail.
fn node_test(e2e: &std::path::Path, file: &str, env: &[(&str, &str)]) {
    let out = Command::new("node")
        .args(["--test", "--test-concurrency=1", file])
        .current_dir(e2e)
        .envs(env.iter().copied())
        .output()
        .expect("run node (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{file} failed");
    assert!(stdout.contains("# fail 0"), "{file} reported failures");
}

/// A `--dev` node with 250 ms blocks on `dir`, and `extra` flags.
fn dev_node(dir: &tempfile::TempDir, extra: &[&str]) -> common::DevNode {
    let path = dir.path().to_str().expect("utf-8 path");
    let mut args = vec!["--dev", "--datadir", path, "--block-time-ms", "250"];
    args.extend_from_slice(extra);
    common::DevNode::spawn(&args)
}

#[test]
fn ethers_js_drives_a_dev_node() {
    let Some(e2e) = e2e_dir() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    // Short staking epochs and unbonding, so the staking flow runs in seconds.
    let node = dev_node(&dir, &["--epoch-blocks", "8", "--unbonding-blocks", "12"]);
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
    let file = file.to_str().expect("utf-8 path").to_string();
    node_test(
        &e2e,
        "ethers.test.mjs",
        &[
            ("EMC_RPC_URL", &node.url),
            ("EMC_WS_URL", &node.ws_url()),
            ("EMC_KEYSTORE_FILE", &file),
            ("EMC_KEYSTORE_ADDRESS", &address),
            ("EMC_KEYSTORE_PASSWORD", "pw"),
        ],
    );
}

#[test]
fn computing_sockets_work_with_ethers_and_openzeppelin_contracts() {
    let Some(e2e) = e2e_dir() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    // A settle window of two seconds, so an expired socket's refund opens in the test.
    let node = dev_node(&dir, &["--socket-settle-window", "2"]);
    node_test(&e2e, "sockets.test.mjs", &[("EMC_RPC_URL", &node.url)]);
    // web3.py's stock ERC-721 ABI on the sockets the JavaScript left there.
    let out = Command::new(common::python())
        .arg(e2e.join("web3_sockets.py"))
        .arg(&node.url)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "web3.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(o["name"], "EMC computing sockets", "{o}");
    assert_eq!(
        (o["erc721"].as_bool(), o["enumerable"].as_bool()),
        (Some(true), Some(true)),
        "{o}"
    );
    assert_eq!(o["uri_name"], "EMC socket #1", "{o}");
    assert!(o["total"].as_u64() > Some(5), "{o}");
    assert_eq!(
        (o["status"].as_u64(), o["new_owner_ok"].as_bool()),
        (Some(1), Some(true)),
        "{o}"
    );
    assert_eq!(
        (o["balance_of_new"].as_u64(), o["index_of_new"].clone()),
        (Some(1), o["moved"].clone()),
        "{o}"
    );
}

#[test]
fn the_market_trades_with_ethers_to_the_wei() {
    let Some(e2e) = e2e_dir() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    // Two-second blocks, so a spot auction's orders can be sent into one block.
    let node = common::DevNode::start(dir.path(), 2_000);
    node_test(&e2e, "market.test.mjs", &[("EMC_RPC_URL", &node.url)]);
}

#[test]
fn dids_resolve_on_the_node_as_the_published_resolvers_resolve_them() {
    let Some(e2e) = e2e_dir() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let node = dev_node(&dir, &[]);
    node_test(&e2e, "dids.test.mjs", &[("EMC_RPC_URL", &node.url)]);
}

/// Sign-In with Ethereum through a real router and computing node (a validator, a
/// router, a node serving two Python apps): see tests/e2e/siwe.test.mjs; then the
/// node's own DID as ethr-did-resolver reads it (tests/e2e/node_did.test.mjs); then
/// the validator's credential of the node, verified with did-jwt
/// (tests/e2e/credentials.test.mjs).
#[test]
fn wallets_sign_in_with_ethereum_nodes_publish_their_keys_and_validators_issue_credentials() {
    let Some(e2e) = e2e_dir() else { return };
    let port = common::free_port();
    let _py2 = common::python_app(port);
    const PRICE: u64 = 1_000_000;
    let py2 = format!("py2=http://127.0.0.1:{port},price={PRICE}");
    // The validator submits its PoC verdicts (from development account 7), so the
    // node's E goes on chain for its credential.
    let poc =
        alloy_primitives::hex::encode(emc_crypto::dev_accounts(8).expect("dev")[7].to_bytes());
    let v0 = ["--poc-account-key", poc.as_str()];
    let t = common::trio("siwe test router", (&v0, &[]), PRICE, &[py2], &[]);
    let price = PRICE.to_string();
    node_test(
        &e2e,
        "siwe.test.mjs",
        &[
            ("EMC_RPC_URL", &t.v0.url),
            ("EMC_GATEWAY", &t.gw),
            ("EMC_PRICE", &price),
            ("EMC_KEY_1", &t.keys[1]),
            ("EMC_KEY_2", &t.keys[2]),
        ],
    );
    // The same from the command line: `emc gateway signin` prints a session's key.
    let (rpc, gw, key) = (t.v0.url.as_str(), t.gw.as_str(), t.keys[3].as_str());
    common::cli(&["escrow", "deposit", "1", "--private-key", key, "--rpc", rpc]);
    let session_key = common::cli(&[
        "gateway",
        "signin",
        "--gateway",
        gw,
        "--limit",
        "3000000wei",
        "--app",
        "py",
        "--valid",
        "10m",
        "--private-key",
        key,
        "--rpc",
        rpc,
    ]);
    let call = |app: &str| match ureq::post(&format!("{gw}/call/{app}/echo"))
        .set("Authorization", &format!("Bearer {}", session_key.trim()))
        .send_string("from the CLI")
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(e) => panic!("transport: {e}"),
    };
    assert_eq!(call("py"), 200, "a call under the CLI's session");
    assert_eq!(call("py2"), 403, "an app outside the CLI's session");
    node_test(
        &e2e,
        "node_did.test.mjs",
        &[
            ("EMC_RPC_URL", &t.v0.url),
            ("EMC_NODE_ID", &t.node_found[0]),
            ("EMC_NODE_DID", &t.node_found[2]),
        ],
    );
    // The calls above settle; the validator states them, and the node's E, in a
    // credential anyone verifies.
    node_test(
        &e2e,
        "credentials.test.mjs",
        &[
            ("EMC_RPC_URL", &t.v0.url),
            ("EMC_NODE_RPC", &t.node.url),
            ("EMC_NODE_ID", &t.node_found[0]),
        ],
    );
}

/// `cargo nextest run --workspace --run-ignored only -E 'binary(ethers_e2e) & test(bench)' --no-capture`:
/// resolving did:ethr identities of 10 and 100 events with ethr-did-resolver and with
/// the node's resolver, side by side (tests/e2e/dids_bench.mjs prints the table).
#[test]
#[ignore = "a benchmark: run it with --run-ignored only"]
fn bench_did_resolution() {
    let Some(e2e) = e2e_dir() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let node = dev_node(&dir, &[]);
    let out = Command::new("node")
        .arg("dids_bench.mjs")
        .current_dir(&e2e)
        .env("EMC_RPC_URL", &node.url)
        .output()
        .expect("node");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
