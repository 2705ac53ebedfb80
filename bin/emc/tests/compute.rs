//! Computing nodes in a real network: one validator that also routes, three
//! computing-node processes in front of a real Python HTTP app and a WASM job, each
//! dialing the router over libp2p, registering itself on chain from its owner account,
//! and answering the validator's proof-of-computing challenges. One proves on two
//! threads, one on one, one lies about its result.
//!
//! Shown: the router's table fills from the nodes' own connections and load reports;
//! calls through the router with a client's API key reach a node and come back signed
//! by it (an event stream streamed); the registry lists the nodes; E is set on chain for the honest nodes,
//! the faster one higher; the liar is marked faulty and its owner's stake slashed.

mod common;

use alloy_primitives::{B256, U256};
use common::{wait_until, DevNode};
use emc_modules::poc::IPoc;
use emc_modules::registry::IRegistry;
use emc_modules::staking::IStaking;
use std::process::Command;
use std::time::Duration;

fn region() -> u16 {
    common::port_block()
}

#[test]
fn computing_nodes_serve_through_a_router_register_and_are_measured() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = region();
    let (genesis, key) = common::small_poc_genesis(dir.path(), 6, 25);
    let accounts = emc_crypto::dev_accounts(6).expect("dev accounts");
    let hexkey = |i: usize| alloy_primitives::hex::encode(accounts[i].to_bytes());

    // The validator routes too (settling from development account 5), and attests
    // from account 3.
    let router_http = format!("127.0.0.1:{}", base + 9);
    let p2p0 = format!("/ip4/127.0.0.1/tcp/{base}");
    let v0 = DevNode::spawn(&[
        "--genesis",
        genesis.to_str().expect("utf8"),
        "--datadir",
        dir.path().join("v0").to_str().expect("utf8"),
        "--consensus-key",
        key.to_str().expect("utf8"),
        "--p2p-addr",
        &p2p0,
        "--role",
        "router",
        "--router-http",
        &router_http,
        "--router-key",
        &hexkey(5),
        "--poc-account-key",
        &hexkey(3),
    ]);
    let peer0 = emc_p2p::peer_id_of(emc_node::p2p_seed_of(&emc_crypto::ConsensusKey::dev(0)));
    let boot = format!("{p2p0}/p2p/{peer0}");

    // The real app.
    let app_port = base + 8;
    let _app = common::python_app(app_port);
    let job = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crates/compute/jobs/primes.wat"
    );

    // Three computing nodes: fast (2 threads), slow (1 thread), and a liar.
    let node = |i: usize, extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "--genesis".into(),
            genesis.display().to_string(),
            "--datadir".into(),
            dir.path().join(format!("c{i}")).display().to_string(),
            "--p2p-addr".into(),
            format!("/ip4/127.0.0.1/tcp/{}", base + 1 + i as u16),
            "--bootnode".into(),
            boot.clone(),
            "--role".into(),
            "compute".into(),
            "--app".into(),
            format!("py=http://127.0.0.1:{app_port},price=1000"),
            "--app".into(),
            format!("primes=wasm:{job},price=1"),
            "--router".into(),
            boot.clone(),
            "--owner-key".into(),
            hexkey(i),
            "--compute-http".into(),
            format!("127.0.0.1:{}", base + 5 + i as u16),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        DevNode::spawn(&refs)
    };
    let mut computes = [
        node(0, &["--poc-threads", "2"]),
        node(1, &["--poc-threads", "1"]),
        node(2, &["--poc-threads", "2", "--poc-cheat"]),
    ];

    // The liar's owner stakes as a computing node, so there is something to slash.
    let out = common::emc()
        .args([
            "stake",
            "add",
            "--role",
            "compute",
            "--amount",
            "100",
            "--private-key",
            &hexkey(2),
            "--rpc",
            &v0.url,
        ])
        .output()
        .expect("emc stake");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The router's table fills from the nodes' own connections.
    let nodes_url = format!("http://{router_http}/nodes");
    wait_until("three nodes at the router", Duration::from_secs(60), || {
        ureq::get(&nodes_url)
            .call()
            .ok()
            .and_then(|r| r.into_json::<serde_json::Value>().ok())
            .and_then(|v| v.as_array().map(|a| a.len()))
            == Some(3)
    });
    let table: serde_json::Value = ureq::get(&nodes_url)
        .call()
        .expect("nodes")
        .into_json()
        .expect("json");
    for n in table.as_array().expect("array") {
        assert_eq!(n["apps"].as_array().expect("apps").len(), 2, "{n}");
        assert!(n["load"]["capacity"].as_u64().expect("capacity") >= 1);
    }

    // All three register themselves from their owners' accounts; only then can their
    // calls be settled, so only then does the router send them any.
    wait_until("three registered nodes", Duration::from_secs(60), || {
        v0.view(emc_modules::REGISTRY_ADDRESS, IRegistry::nodesCall {})
            .len()
            == 3
    });
    // A client (account 4) deposits escrow and makes an API key.
    let client = hexkey(4);
    let key = common::client_key(&v0.url, &client, Some("10"));
    let auth = format!("Bearer {key}");
    wait_until(
        "the router to see the registrations",
        Duration::from_secs(30),
        || {
            ureq::post(&format!("http://{router_http}/call/py/echo"))
                .set("Authorization", &auth)
                .send_string("ping")
                .is_ok()
        },
    );

    // A call through the router comes back from a node, signed by it.
    let r = ureq::post(&format!("http://{router_http}/call/py/echo"))
        .set("Authorization", &auth)
        .send_string("via the router")
        .expect("call");
    let signed = emc_protocol::SignedResult::from_header(r.header("x-emc-result").expect("signed"))
        .expect("decodes");
    let body = r.into_string().expect("body");
    assert!(body.contains("via the router"), "{body}");
    signed.verify().expect("verifies");
    assert_eq!(
        signed.claim.result_hash,
        alloy_primitives::keccak256(body.as_bytes())
    );
    let r = ureq::post(&format!("http://{router_http}/call/primes"))
        .set("Authorization", &auth)
        .send_string("1000")
        .expect("wasm call");
    assert_eq!(r.into_string().expect("body"), "168");
    let events = ureq::get(&format!("http://{router_http}/call/py/events"))
        .set("Authorization", &auth)
        .call()
        .expect("stream")
        .into_string()
        .expect("body");
    assert!(
        events.starts_with("data: {\"n\": 0}\n\n") && events.ends_with("data: [DONE]\n\n"),
        "{events}"
    );
    let e = ureq::post(&format!("http://{router_http}/call/nothing"))
        .set("Authorization", &auth)
        .send_string("")
        .expect_err("no node");
    assert!(matches!(e, ureq::Error::Status(404, _)), "{e}");

    let ids: Vec<B256> = table
        .as_array()
        .expect("array")
        .iter()
        .map(|n| n["node"].as_str().expect("id").parse().expect("b256"))
        .collect();
    let owner_of = |id: B256| {
        v0.view(
            emc_modules::REGISTRY_ADDRESS,
            IRegistry::ownerOfCall { nodeId: id },
        )
    };
    let id_of = |i: usize| {
        *ids.iter()
            .find(|id| owner_of(**id) == accounts[i].address())
            .expect("registered by its owner")
    };
    let (fast, slow, liar) = (id_of(0), id_of(1), id_of(2));

    // The validator challenges each node at the start of an epoch; E goes on chain.
    let score = |id: B256| {
        v0.view(emc_modules::POC_ADDRESS, IPoc::scoreOfCall { nodeId: id })
            .score
    };
    // E per epoch for each honest node; the faster must win in most of three epochs
    // (other tests share this machine's two cores, so one epoch may be unlucky).
    let scored = |id: B256| {
        let r = v0.view(emc_modules::POC_ADDRESS, IPoc::scoreOfCall { nodeId: id });
        (r.epoch, r.score)
    };
    let mut seen: Vec<(u64, u64, u64)> = Vec::new();
    wait_until(
        "E for both honest nodes in three epochs",
        Duration::from_secs(180),
        || {
            let ((ef, sf), (es, ss)) = (scored(fast), scored(slow));
            if ef == es && sf > 0 && ss > 0 && seen.last().is_none_or(|l| l.0 != ef) {
                seen.push((ef, sf, ss));
            }
            seen.len() >= 3
        },
    );
    let wins = seen.iter().filter(|(_, f, s)| f > s).count();
    assert!(
        wins >= 2,
        "two threads prove faster than one: (epoch, E fast, E slow) {seen:?}"
    );
    assert_eq!(score(liar), 0);
    wait_until("the liar marked faulty", Duration::from_secs(60), || {
        v0.view(emc_modules::POC_ADDRESS, IPoc::faultsCall { nodeId: liar }) >= 1
    });
    let stake = v0
        .view(
            emc_modules::STAKING_ADDRESS,
            IStaking::stakeOfCall {
                account: accounts[2].address(),
                role: 2,
            },
        )
        .staked;
    assert!(
        stake < U256::from(100u64) * emc_types::EMC,
        "the liar's owner was slashed: {stake}"
    );

    // Graceful drain: SIGTERM the node serving a slow call; the call still completes,
    // then the node exits.
    let url = format!("http://{router_http}/call/py/slow");
    let slow_call = std::thread::spawn(move || {
        ureq::get(&url)
            .set("Authorization", &auth)
            .call()
            .map_err(|e| e.to_string())
            .and_then(|r| r.into_string().map_err(|e| e.to_string()))
    });
    let load = |i: usize| -> serde_json::Value {
        ureq::get(&format!("http://127.0.0.1:{}/load", base + 5 + i as u16))
            .call()
            .expect("load")
            .into_json()
            .expect("json")
    };
    let mut busy = None;
    wait_until("the slow call to start", Duration::from_secs(10), || {
        busy = (0..3).find(|i| load(*i)["running"] == 1);
        busy.is_some()
    });
    let busy = busy.expect("a busy node");
    let pid = computes[busy].child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let r = slow_call.join().expect("join").expect("the call finished");
    assert_eq!(r, "late", "the running call completed during the drain");
    wait_until("the drained node to exit", Duration::from_secs(30), || {
        matches!(computes[busy].child.try_wait(), Ok(Some(_)))
    });
}
