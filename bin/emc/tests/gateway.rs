//! Smart routers end to end: one validator, two routers, three computing-node
//! processes serving a real Python HTTP app and the built-in models (all-MiniLM-L6-v2
//! and SmolLM2), a client with escrow and an API key made by `emc gateway key`.
//!
//! The nodes differ: K proves on two threads and is idle (the best), S proves on one
//! thread (a lower E: slow), L has room for two calls and is kept busy (loaded). K
//! dials both routers, S only router 1, L only router 0: the routers are peers of one
//! mesh, so each reaches the other's node through it.
//!
//! Shown:
//! * the official `openai` Python client (base_url and api_key only) gets embeddings,
//!   a streamed chat and a plain chat from K, lists the models, and gets a clear
//!   not-found for a model nobody serves; curl calls through the other router;
//! * K is killed (SIGKILL) during a call: the call is retried on S and completes, and
//!   the next calls go to S (from router 0, through router 1), never to the loaded L;
//! * a deterministic call the caller allows to be cached is answered from the cache,
//!   with the first node's signed result, and charged nothing;
//! * a message published on a WebSocket channel at one router reaches a subscriber
//!   at the other, naming the publisher's account;
//! * unsigned, malformed, expired, replayed, over-escrow, over-cap, oversized and
//!   malformed-body requests each get their HTTP error;
//! * every served call is settled on chain once: the escrow went down by exactly what
//!   the node owners received plus the routers' fees, one settlement per call served,
//!   none for the call cut off by the kill nor for any refused request.

mod common;

use alloy_primitives::{Address, B256, U256};
use common::{wait_until, DevNode};
use emc_modules::poc::IPoc;
use emc_modules::tasks::ITasks;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

fn base() -> u16 {
    common::port_block()
}

fn balance(node: &DevNode, a: Address) -> U256 {
    let v = node.result("eth_getBalance", json!([a, "latest"]));
    v.as_str().expect("hex").parse().expect("quantity")
}

/// An HTTP reply: status, headers (lower-case names), body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// curl, as a user would run it.
fn curl(args: &[&str]) -> Reply {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "120"])
        .args(args)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let text = text
        .strip_prefix("HTTP/1.1 100 Continue\r\n\r\n")
        .unwrap_or(&text);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

#[test]
fn routers_route_to_the_best_node_survive_a_kill_and_settle_every_call_once() {
    let python = common::python();
    let dir = tempfile::tempdir().expect("tmp");
    let base = base();
    let (genesis, vkey) = common::small_poc_genesis(dir.path(), 8, 150);
    let accounts = emc_crypto::dev_accounts(8).expect("dev accounts");
    let hexkey = |i: usize| alloy_primitives::hex::encode(accounts[i].to_bytes());
    let gen = genesis.to_str().expect("utf8").to_string();

    let p2p0 = format!("/ip4/127.0.0.1/tcp/{base}");
    let v0 = DevNode::spawn(&[
        "--genesis",
        &gen,
        "--datadir",
        dir.path().join("v0").to_str().expect("utf8"),
        "--consensus-key",
        vkey.to_str().expect("utf8"),
        "--p2p-addr",
        &p2p0,
        "--poc-account-key",
        &hexkey(3),
    ]);
    let boot = format!(
        "{p2p0}/p2p/{}",
        emc_p2p::peer_id_of(emc_node::p2p_seed_of(&emc_crypto::ConsensusKey::dev(0)))
    );

    // Two routers (accounts 4 and 5), with identities fixed in advance so nodes can
    // name them.
    let mut routers = Vec::new();
    let mut gateways = Vec::new();
    let mut router_addrs = Vec::new();
    for r in 0..2usize {
        let data = dir.path().join(format!("r{r}"));
        std::fs::create_dir_all(&data).expect("dir");
        // Fixed identities, so nodes and the other router can name each router.
        let seed = alloy_primitives::keccak256(format!("gateway test router {r}")).0;
        std::fs::write(data.join("p2p.key"), seed).expect("key");
        let p2p = format!("/ip4/127.0.0.1/tcp/{}", base + 1 + r as u16);
        router_addrs.push(format!("{p2p}/p2p/{}", emc_p2p::peer_id_of(seed)));
    }
    for r in 0..2usize {
        let data = dir.path().join(format!("r{r}"));
        let p2p = format!("/ip4/127.0.0.1/tcp/{}", base + 1 + r as u16);
        let (node, found) = DevNode::spawn_with(
            &[
                "--genesis",
                &gen,
                "--datadir",
                data.to_str().expect("utf8"),
                "--p2p-addr",
                &p2p,
                "--bootnode",
                &boot,
                "--role",
                "router",
                "--router-http",
                "127.0.0.1:0",
                "--router-key",
                &hexkey(4 + r),
                "--peer-router",
                &router_addrs[1 - r],
            ],
            &["Router HTTP: "],
        );
        routers.push(node);
        gateways.push(found[0].clone());
    }

    // The real HTTP app.
    let app_port = base + 3;
    let _app = common::python_app(app_port);

    // K (best) dials both routers; S (slow: one proving thread) only router 1 and L
    // (room for two calls) only router 0, so each router reaches one of them through
    // the other.
    let node = |i: usize, routers: &[usize], extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "--genesis".into(),
            gen.clone(),
            "--datadir".into(),
            dir.path().join(format!("c{i}")).display().to_string(),
            "--p2p-addr".into(),
            "/ip4/127.0.0.1/tcp/0".into(),
            "--bootnode".into(),
            boot.clone(),
            "--role".into(),
            "compute".into(),
            "--app".into(),
            format!("py=http://127.0.0.1:{app_port},price=1000000"),
            "--app".into(),
            "minilm=builtin:minilm,price=1000".into(),
            "--app".into(),
            "smollm=builtin:smollm2,price=100000".into(),
            "--owner-key".into(),
            hexkey(i),
            "--compute-http".into(),
            "127.0.0.1:0".into(),
        ];
        for r in routers {
            args.extend(["--router".into(), router_addrs[*r].clone()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        DevNode::spawn_with(&refs, &["Computing node id: ", "Compute HTTP: "])
    };
    let (mut k_node, k) = node(0, &[0, 1], &["--poc-threads", "2", "--capacity", "4"]);
    let (_s_node, s) = node(1, &[1], &["--poc-threads", "1", "--capacity", "4"]);
    let (_l_node, l) = node(
        2,
        &[0],
        &["--poc-threads", "2", "--capacity", "2", "--max-queue", "4"],
    );
    let (k_id, s_id, l_id) = (k[0].clone(), s[0].clone(), l[0].clone());
    let owners: Vec<Address> = (0..3).map(|i| accounts[i].address()).collect();

    // Both routers see all three, registered on chain.
    let get = |r: usize, what: &str| -> Vec<Value> {
        ureq::get(&format!("{}/{what}", gateways[r]))
            .call()
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };
    let table = |r: usize| get(r, "nodes");
    let mesh = |r: usize| get(r, "mesh");
    wait_until(
        "both routers' nodes registered, and each other's in the mesh",
        Duration::from_secs(120),
        || {
            (0..2).all(|r| {
                let t = table(r);
                t.len() == 2
                    && t.iter()
                        .all(|n| n["registered"].as_object().is_some_and(|m| m.len() == 3))
                    && mesh(r)
                        .iter()
                        .any(|n| n["node"] == json!(if r == 0 { &s_id } else { &l_id }))
            })
        },
    );

    // E on chain for K and S in the same epoch, K's the higher (two threads against
    // one; an epoch measured while the machine was busy elsewhere is waited out).
    let scored = |id: &str| {
        v0.view(
            emc_modules::POC_ADDRESS,
            IPoc::scoreOfCall {
                nodeId: id.parse().expect("id"),
            },
        )
    };
    wait_until("E for K above S's", Duration::from_secs(300), || {
        let (ek, es) = (scored(&k_id), scored(&s_id));
        ek.epoch == es.epoch && es.score > 0 && ek.score * 2 > es.score * 3
    });
    wait_until("the routers to read E", Duration::from_secs(30), || {
        (0..2).all(|r| {
            table(r)
                .iter()
                .chain(mesh(r).iter())
                .all(|n| n["node"] == json!(l_id) || n["e"].as_u64() > Some(0))
        })
    });

    // The client (account 6): escrow and an API key, from the CLI.
    let client = accounts[6].address();
    let key = common::client_key(&v0.url, &hexkey(6), Some("50"));
    let bearer = format!("Authorization: Bearer {key}");
    let escrow = || {
        v0.view(
            emc_modules::TASKS_ADDRESS,
            ITasks::escrowOfCall { account: client },
        )
        .balance
    };
    let escrow_before = escrow();
    let owners_before: Vec<U256> = owners.iter().map(|o| balance(&v0, *o)).collect();
    let mut paid_calls = 0usize;

    // Keep L busy: a long call straight to its own port, past the router.
    let l_http = l[1].clone();
    // Two calls running and one queued: load 1.5, far above what distance and E add.
    let holds: Vec<_> = (0..3)
        .map(|_| {
            let url = format!("{l_http}/call/py/hold/60");
            std::thread::spawn(move || ureq::get(&url).call().is_ok())
        })
        .collect();
    wait_until(
        "the routers to see L loaded",
        Duration::from_secs(20),
        || {
            (0..2).all(|r| {
                table(r).iter().chain(mesh(r).iter()).any(|n| {
                    n["node"] == json!(l_id)
                        && n["load"]["running"].as_u64() >= Some(2)
                        && n["load"]["queued"].as_u64() >= Some(1)
                })
            })
        },
    );

    // The official openai client, through router 0.
    let out = Command::new(&python)
        .args([
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/e2e/openai_client.py"
            ),
            &format!("{}/v1", gateways[0]),
            &key,
            "minilm",
            "smollm",
        ])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "openai client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let o: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(o["embeddings"], json!([384, 384]), "{o}");
    assert_eq!(
        o["embed_node"],
        json!(k_id),
        "embeddings from the best node: {o}"
    );
    assert!(o["stream_chunks"].as_u64() > Some(2), "{o}");
    assert!(!o["stream_text"].as_str().unwrap_or("").is_empty(), "{o}");
    assert!(o["chat_tokens"].as_u64() > Some(0), "{o}");
    assert_eq!(o["chat_node"], json!(k_id), "{o}");
    assert_eq!(o["models"], json!(["minilm", "py", "smollm"]), "{o}");
    assert!(
        o["unknown_model"]
            .as_str()
            .unwrap_or("")
            .starts_with("NotFoundError"),
        "{o}"
    );
    paid_calls += 3;

    // curl through router 1: a call and an event stream, both from K.
    let r = curl(&[
        "-H",
        &bearer,
        "--data",
        "via curl",
        &format!("{}/call/py/echo", gateways[1]),
    ]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("via curl"), "{}", r.body);
    assert_eq!(
        r.header("x-emc-node"),
        Some(k_id.as_str()),
        "router 1's table: {:?}",
        table(1)
    );
    let charge: U256 = r
        .header("x-emc-charge")
        .expect("charge")
        .parse()
        .expect("wei");
    assert_eq!(
        charge,
        U256::from(1_050_000),
        "1 call at 1,000,000 wei plus the 5% fee"
    );
    let r = curl(&[
        "-N",
        "-H",
        &bearer,
        &format!("{}/call/py/events", gateways[1]),
    ]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.matches("data: ").count(), 6, "{}", r.body);
    paid_calls += 2;

    // A deterministic call the caller lets the router cache: the second is answered
    // from the cache, with the first node's signed result, and charged nothing.
    let embed = |cache: bool| {
        let mut args = vec![
            "-H",
            bearer.as_str(),
            "-H",
            "content-type: application/json",
            "--data",
            r#"{"model": "minilm", "input": "cache me"}"#,
        ];
        if cache {
            args.extend(["-H", "x-emc-cache: allow"]);
        }
        let url = format!("{}/v1/embeddings", gateways[0]);
        args.push(url.as_str());
        curl(&args)
    };
    let first = embed(true);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("x-emc-cache"), None);
    let second = embed(true);
    assert_eq!(second.header("x-emc-cache"), Some("hit"));
    assert_eq!(second.header("x-emc-charge"), Some("0"));
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("x-emc-result"), first.header("x-emc-result"));
    let third = embed(false);
    assert_eq!(third.header("x-emc-cache"), None, "not allowed, not cached");
    paid_calls += 2;

    // K dies during a call: the router retries it on S.
    let (g1, auth) = (gateways[1].clone(), bearer.clone());
    let slow = std::thread::spawn(move || curl(&["-H", &auth, &format!("{g1}/call/py/slow")]));
    let k_load = format!("{}/load", k[1]);
    wait_until("the slow call to run on K", Duration::from_secs(10), || {
        ureq::get(&k_load)
            .call()
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .is_some_and(|v| v["running"] == 1)
    });
    k_node.kill();
    let r = slow.join().expect("join");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "late"),
        "the call survived the kill"
    );
    assert_eq!(r.header("x-emc-node"), Some(s_id.as_str()), "retried on S");
    paid_calls += 1;
    // Router 0 reaches S only through router 1's mesh relay.
    for g in &gateways {
        let r = curl(&[
            "-H",
            &bearer,
            "--data",
            "after",
            &format!("{g}/call/py/echo"),
        ]);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.header("x-emc-node"),
            Some(s_id.as_str()),
            "S, not the loaded L"
        );
        paid_calls += 1;
    }

    // Pub/sub: a subscriber at router 1, a publisher at router 0; the message
    // crosses the mesh and names the publisher's account. No key, no socket.
    let ws = |r: usize, channel: &str, key: Option<&str>| {
        let url = format!(
            "{}/pubsub/{channel}{}",
            gateways[r].replacen("http", "ws", 1),
            key.map(|k| format!("?key={k}")).unwrap_or_default()
        );
        tungstenite::connect(url.as_str())
    };
    match ws(0, "news", None) {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("a socket without a key: {:?}", other.map(|_| ())),
    }
    let (mut sub, _) = ws(1, "news", Some(&key)).expect("subscriber");
    let (mut publisher, _) = ws(0, "news", Some(&key)).expect("publisher");
    let mut got = None;
    wait_until(
        "a publication across the mesh",
        Duration::from_secs(20),
        || {
            // Until the subscription is known, publications before it are missed.
            publisher
                .send(tungstenite::Message::text("hello mesh"))
                .expect("send");
            if let tungstenite::stream::MaybeTlsStream::Plain(s) = sub.get_ref() {
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .expect("timeout");
            }
            match sub.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    got = Some(t.to_string());
                    true
                }
                _ => false,
            }
        },
    );
    let m: Value = serde_json::from_str(&got.expect("a message")).expect("json");
    assert_eq!(m["data"], "hello mesh");
    assert_eq!(m["channel"], "news");
    assert_eq!(m["from"], json!(client));

    // Bad input: each refused with its status and reason, none charged.
    let g0 = &gateways[0];
    let echo = format!("{g0}/call/py/echo");
    let expect = |what: &str, status: u16, reason: &str, args: &[&str]| {
        let r = curl(args);
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert!(r.body.contains(reason), "{what}: {}", r.body);
    };
    let signer = &accounts[6];
    let chain_id = 31337;
    let mut expired = emc_client::keys::grant(
        chain_id,
        Address::ZERO,
        9,
        60,
        U256::from(10u64).pow(U256::from(18)),
    );
    expired.expires = emc_client::keys::now() - 10;
    let expired = format!(
        "Authorization: Bearer {}",
        emc_client::keys::make(signer, expired).expect("key")
    );
    // A key signed for exactly one request: good once, then a replay.
    let mut once =
        emc_client::keys::grant(chain_id, Address::ZERO, 10, 60, U256::from(10_000_000u64));
    once.request = emc_protocol::request_hash("py", "/echo", b"once");
    let once = format!(
        "Authorization: Bearer {}",
        emc_client::keys::make(signer, once).expect("key")
    );
    let cost = "x-emc-max-cost: 2000000";
    expect(
        "the one request",
        200,
        "once",
        &["-H", &once, "-H", cost, "--data", "once", &echo],
    );
    paid_calls += 1;
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 9 << 20]).expect("write");
    let big = format!("@{}", big.display());
    let embeddings = format!("{g0}/v1/embeddings");
    let nothing = format!("{g0}/call/nothing");
    let json = "content-type: application/json";
    // A development account that never deposited: its key is valid, its escrow empty.
    let broke = format!(
        "Authorization: Bearer {}",
        common::client_key(&v0.url, &hexkey(7), None)
    );
    let cases: [(&str, u16, &str, Vec<&str>); 12] = [
        ("unsigned", 401, "no API key", vec!["--data", "x", &echo]),
        (
            "not an EMC key",
            401,
            "starts with",
            vec!["-H", "Authorization: Bearer sk-123", "--data", "x", &echo],
        ),
        (
            "expired",
            401,
            "expired",
            vec!["-H", &expired, "--data", "x", &echo],
        ),
        (
            "replayed",
            409,
            "already used",
            vec!["-H", &once, "-H", cost, "--data", "once", &echo],
        ),
        (
            "another request under a one-request key",
            401,
            "signed for request",
            vec!["-H", &once, "-H", cost, "--data", "other", &echo],
        ),
        (
            "no escrow at all, a cap of zero",
            402,
            "has 0 wei free",
            vec![
                "-H",
                &broke,
                "-H",
                "x-emc-max-cost: 0",
                "--data",
                "x",
                &echo,
            ],
        ),
        (
            "a cap below one unit",
            402,
            "x-emc-max-cost of 1 wei",
            vec![
                "-H",
                &bearer,
                "-H",
                "x-emc-max-cost: 1",
                "--data",
                "x",
                &echo,
            ],
        ),
        (
            "over the price cap",
            402,
            "cap of 10 wei",
            vec![
                "-H",
                &bearer,
                "-H",
                "x-emc-max-price: 10",
                "--data",
                "x",
                &echo,
            ],
        ),
        (
            "oversized, in OpenAI's error shape",
            413,
            r#"{"error":{"message":"too large: the request body is over 8388608 bytes""#,
            vec!["-H", &bearer, "--data-binary", &big, &echo],
        ),
        (
            "malformed",
            400,
            "not JSON",
            vec![
                "-H",
                &bearer,
                "-H",
                json,
                "--data",
                "{not json",
                &embeddings,
            ],
        ),
        (
            "bad weights",
            400,
            "unknown weight",
            vec![
                "-H",
                &bearer,
                "-H",
                "x-emc-weights: speed=9",
                "--data",
                "x",
                &echo,
            ],
        ),
        (
            "no such app",
            404,
            r#"no app \"nothing\" is served here (GET /v1/models lists the ones that are)"#,
            vec!["-H", &bearer, "--data", "x", &nothing],
        ),
    ];
    for (what, status, reason, args) in &cases {
        expect(what, *status, reason, args);
    }

    // Settlement: every served call once, and the sums add up to the wei.
    let settled = || v0.events::<ITasks::Settled>(emc_modules::TASKS_ADDRESS);
    wait_until("every served call settled", Duration::from_secs(60), || {
        settled().len() >= paid_calls
    });
    std::thread::sleep(Duration::from_secs(3));
    let events = settled();
    assert_eq!(events.len(), paid_calls, "one settlement per call served");
    let (mut node_total, mut fees) = (U256::ZERO, U256::ZERO);
    let mut per_owner = [U256::ZERO; 3];
    let ids = [&k_id, &s_id, &l_id];
    for e in &events {
        assert_eq!(e.account, client);
        assert_eq!(
            e.routerFee,
            e.nodeAmount * U256::from(500) / U256::from(10_000)
        );
        node_total += e.nodeAmount;
        fees += e.routerFee;
        let i = ids
            .iter()
            .position(|id| id.parse::<B256>().ok() == Some(e.nodeId))
            .expect("one of ours");
        per_owner[i] += e.nodeAmount;
    }
    assert_eq!(
        escrow_before - escrow(),
        node_total + fees,
        "the escrow paid exactly the nodes and the fees"
    );
    for i in 0..3 {
        assert_eq!(
            balance(&v0, owners[i]) - owners_before[i],
            per_owner[i],
            "owner {i} received its calls' charges"
        );
    }
    assert_eq!(
        per_owner[2],
        U256::ZERO,
        "the loaded node got no routed call"
    );
    drop(holds);
}
