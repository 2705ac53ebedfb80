//! The CLI as an operator uses it: keys, genesis, tx send from a keystore account,
//! queries, and the errors it gives for mistakes.

mod common;

use serde_json::json;

fn run(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut c = common::emc();
    c.args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().expect("run emc");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn keys_tx_and_query_round_trip() {
    let dir = tempfile::tempdir().expect("tmp");
    let ks = dir.path().join("ks");
    let ks = ks.to_str().expect("utf8");
    let pw = [("EMC_PASSWORD", "correct horse")];

    // Import dev key 1, list it, export it back.
    let key1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    let (ok, addr, err) = run(&["keys", "import", key1, "--keystore", ks], &pw);
    assert!(ok, "{err}");
    let addr = addr.trim().to_string();
    assert_eq!(
        addr.to_lowercase(),
        "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
    );
    let (ok, list, _) = run(&["keys", "list", "--keystore", ks], &[]);
    assert!(ok && list.contains(&addr), "{list}");
    let (ok, exported, _) = run(&["keys", "export", &addr, "--keystore", ks], &pw);
    assert!(ok);
    assert_eq!(exported.trim(), key1);
    let (ok, _, err) = run(
        &["keys", "export", &addr, "--keystore", ks],
        &[("EMC_PASSWORD", "wrong")],
    );
    assert!(!ok && err.contains("keystore"), "{err}");
    let (ok, _, err) = run(&["keys", "export", &addr, "--keystore", ks], &[]);
    assert!(!ok && err.contains("password is needed"), "{err}");

    // Send from the keystore account to a fresh address; query it.
    let node = common::DevNode::start(&dir.path().join("data"), 200);
    let rpc = node.url.as_str();
    let to = "0x000000000000000000000000000000000000bEEF";
    let (ok, hash, err) = run(
        &[
            "tx",
            "send",
            "--from",
            &addr,
            "--to",
            to,
            "--value",
            "2.5",
            "--keystore",
            ks,
            "--rpc",
            rpc,
        ],
        &pw,
    );
    assert!(ok, "{err}");
    assert!(err.contains("included in block"), "{err}");
    let (ok, bal, _) = run(&["query", "balance", to, "--rpc", rpc], &[]);
    assert!(ok);
    assert!(bal.starts_with("2.500000000000000000 EMC"), "{bal}");
    let (ok, tx, _) = run(&["query", "tx", hash.trim(), "--rpc", rpc], &[]);
    let v: serde_json::Value = serde_json::from_str(&tx).expect("json");
    assert!(ok);
    assert_eq!(v["receipt"]["status"], json!("0x1"));
    let (ok, block, _) = run(&["query", "block", "1", "--rpc", rpc], &[]);
    assert!(ok && block.contains("\"number\": \"0x1\""), "{block}");

    // The validator's jail reads as a person would say it.
    let (ok, vals, err) = run(&["validators", "--rpc", rpc], &[]);
    assert!(ok, "{err}");
    assert!(!vals.contains("jailed<"), "{vals}");
    assert!(vals.contains("not jailed"), "{vals}");
    let validator = emc_crypto::dev_accounts(11).expect("dev")[10]
        .address()
        .to_string();
    let (ok, show, err) = run(&["stake", "show", &validator, "--rpc", rpc], &[]);
    assert!(ok, "{err}");
    assert!(
        show.contains("not jailed") && !show.contains("until epoch 0"),
        "{show}"
    );
    // Every devnet flag says what it does.
    let (ok, help, _) = run(&["devnet", "--help"], &[]);
    assert!(ok);
    for (flag, says) in [
        ("--validators", "Validator processes"),
        ("--block-time-ms", "Milliseconds between blocks"),
        ("--epoch-blocks", "Blocks per staking epoch"),
    ] {
        let line = help
            .lines()
            .skip_while(|l| !l.contains(flag))
            .take(2)
            .collect::<String>();
        assert!(line.contains(says), "{flag}: {help}");
    }

    // Mistakes name the problem.
    let (ok, _, err) = run(&["tx", "send", "--to", to, "--rpc", rpc], &[]);
    assert!(!ok && err.contains("say who signs"), "{err}");
    let (ok, _, err) = run(&["query", "block", "nope", "--rpc", rpc], &[]);
    assert!(!ok && err.contains("block must be"), "{err}");
    let (ok, _, err) = run(
        &["query", "balance", to, "--rpc", "http://127.0.0.1:9"],
        &[],
    );
    assert!(!ok && err.contains("cannot reach the node"), "{err}");
}

#[test]
fn genesis_file_runs_a_node_and_bad_files_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let g = dir.path().join("genesis.json");
    let g = g.to_str().expect("utf8");
    let key = dir.path().join("validator.json");
    let key = key.to_str().expect("utf8");
    let (ok, public, err) = run(&["keys", "consensus-new", "--out", key], &[]);
    assert!(
        ok && public.trim().starts_with("0x") && public.trim().len() == 66,
        "{public} {err}"
    );
    let validator = format!("0x000000000000000000000000000000000000fEE5={key}");
    let (ok, _, err) = run(
        &[
            "genesis",
            "--chain-id",
            "777",
            "--dev-accounts",
            "2",
            "--alloc",
            "0x000000000000000000000000000000000000bEEF=5",
            "--validator",
            &validator,
            "--out",
            g,
        ],
        &[],
    );
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(g).expect("written");
    assert!(text.contains("\"chainId\": 777"), "{text}");
    let data = dir.path().join("data");
    assert!(
        text.contains(public.trim()),
        "the genesis names the key: {text}"
    );
    let node = common::DevNode::spawn(&[
        "--genesis",
        g,
        "--consensus-key",
        key,
        "--datadir",
        data.to_str().expect("utf8"),
    ]);
    // Blocks are sealed by IBFT and carry a commit certificate; the validator earns the tips.
    common::wait_until("block 2", std::time::Duration::from_secs(20), || {
        node.block_number() >= 2
    });
    let b1 = node.result("eth_getBlockByNumber", json!(["0x1", false]));
    assert_eq!(
        b1["miner"].as_str().map(str::to_lowercase),
        Some("0x000000000000000000000000000000000000fee5".into())
    );
    assert_eq!(node.result("eth_chainId", json!([])), json!("0x309"));
    let beef = node.result(
        "eth_getBalance",
        json!(["0x000000000000000000000000000000000000bEEF", "latest"]),
    );
    assert_eq!(beef, json!("0x4563918244f40000")); // 5 EMC
    drop(node);

    std::fs::write(
        dir.path().join("bad.json"),
        text.replace("\"blockTimeMs\": 1000", "\"blockTimeMs\": 1"),
    )
    .expect("write");
    let bad = dir.path().join("bad.json");
    let (ok, _, err) = run(
        &[
            "node",
            "--genesis",
            bad.to_str().expect("utf8"),
            "--datadir",
            dir.path().join("d").to_str().expect("utf8"),
        ],
        &[],
    );
    assert!(!ok && err.contains("blockTimeMs"), "{err}");
    let (ok, _, err) = run(&["node"], &[]);
    assert!(!ok && err.contains("--dev"), "{err}");
    let stranger = dir.path().join("stranger.json");
    let stranger = stranger.to_str().expect("utf8");
    assert!(run(&["keys", "consensus-new", "--out", stranger], &[]).0);
    let (ok, _, err) = run(
        &[
            "node",
            "--genesis",
            g,
            "--consensus-key",
            stranger,
            "--datadir",
            dir.path().join("e").to_str().expect("utf8"),
        ],
        &[],
    );
    assert!(!ok && err.contains("is not a validator"), "{err}");
}
