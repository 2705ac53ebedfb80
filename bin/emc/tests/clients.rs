//! Standard Ethereum clients' expectations, met by a real development node:
//! web3.py (`tests/e2e/web3_client.py`) sends a few hundred transactions from one
//! account at once, uses the filter family, block receipts, access lists, proofs and
//! transactions by index, and follows the end-of-block system call's logs; the CLI's
//! Rust verifier checks an `eth_getProof` answer against the state root and refuses
//! one against another root; keystore files are written as geth writes them.

mod common;

use common::DevNode;
use std::process::Command;

#[test]
fn web3_py_uses_the_node_as_it_would_geth_and_proofs_verify_in_rust() {
    let dir = tempfile::tempdir().expect("tmp");
    let node = DevNode::spawn(&[
        "--dev",
        "--datadir",
        dir.path().to_str().expect("utf8"),
        "--block-time-ms",
        "300",
        "--epoch-blocks",
        "5",
    ]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/e2e/web3_client.py"
    );
    let out = Command::new(common::python())
        .args([script, &node.url])
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "web3.py: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let contract = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CONTRACT "))
        .expect("the script names its contract")
        .trim()
        .to_string();

    // The Rust client checks the proof of the counter's slot 0 against the root.
    let proof = common::emc()
        .args([
            "query", "proof", &contract, "--slot", "0", "--rpc", &node.url,
        ])
        .output()
        .expect("emc query proof");
    assert!(
        proof.status.success(),
        "{}",
        String::from_utf8_lossy(&proof.stderr)
    );
    let text = String::from_utf8_lossy(&proof.stderr);
    assert!(
        text.contains("verified: the account and 1 slot(s) match"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_slice(&proof.stdout).expect("json");
    assert_eq!(v["storageProof"][0]["value"], "0x1");
    // Against any other root the same answer is refused, naming what failed.
    let lie = common::emc()
        .args([
            "query", "proof", &contract, "--slot", "0", "--rpc", &node.url,
        ])
        .args(["--state-root", &format!("0x{}", "11".repeat(32))])
        .output()
        .expect("emc query proof");
    assert!(!lie.status.success());
    let text = String::from_utf8_lossy(&lie.stderr);
    assert!(text.contains("does not match state root 0x1111"), "{text}");
}

#[test]
fn keystore_files_are_owner_only_at_geths_cost_and_a_wrong_password_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let ks = dir.path().join("keystore");
    let ks_arg = ks.to_str().expect("utf8");
    let out = common::emc()
        .args(["keys", "new", "--keystore", ks_arg])
        .env("EMC_PASSWORD", "correct horse")
        .output()
        .expect("emc keys new");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let address = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let file = std::fs::read_dir(&ks)
        .expect("keystore")
        .next()
        .expect("a file")
        .expect("entry")
        .path();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", file.display());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    assert_eq!(
        json["crypto"]["kdfparams"]["n"], 262_144,
        "geth's standard scrypt cost"
    );
    let wrong = common::emc()
        .args(["keys", "export", &address, "--keystore", ks_arg])
        .env("EMC_PASSWORD", "battery staple")
        .output()
        .expect("emc keys export");
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("wrong password"), "{err}");
    assert!(!err.contains("Mac Mismatch"), "{err}");
    let right = common::emc()
        .args(["keys", "export", &address, "--keystore", ks_arg])
        .env("EMC_PASSWORD", "correct horse")
        .output()
        .expect("emc keys export");
    assert!(right.status.success());
}
