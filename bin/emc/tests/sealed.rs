//! Sealed calls end to end: a validator, two routers that are peers of one mesh, and a
//! computing node serving the built-in models (all-MiniLM-L6-v2 and SmolLM2) that
//! dials only router B. A client calls through router A, so each call crosses both
//! routers (A relays to B, B to the node).
//!
//! Shown:
//! * router A's offer names the node, with the X25519 key the node's DID document
//!   publishes (resolved on chain) and a binding the client checks;
//! * a sealed embeddings call and a sealed streamed chat (from `emc_client::sealed`),
//!   and a sealed chat made by `emc gateway call --sealed`, all answer; the prompt and
//!   the reply appear nowhere in what router A received from the client (a recording
//!   proxy in front of it), in either router's debug log, or in either router's
//!   memory (read from `/proc/<pid>/mem` once the calls are done), while a plain call
//!   made alongside shows up in A's traffic and memory, so the search can see;
//! * the signed result and the settled receipts cover the ciphertext: the request
//!   hash is the envelope's, the result hash the sealed records', and the receipt's
//!   node signature verifies;
//! * a ciphertext changed by one byte is refused by the node with a 400 naming the
//!   reason, and nothing is charged or settled for it.

mod common;

use alloy_primitives::{keccak256, B256};
use alloy_sol_types::SolCall;
use base64::Engine;
use common::{wait_until, DevNode};
use emc_modules::tasks::ITasks;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything a TCP proxy in front of `upstream` carried, both ways.
type Capture = Arc<Mutex<Vec<u8>>>;

/// A proxy to `upstream` (host:port) that records every byte: what the router
/// behind it receives from its clients and sends them. Returns its URL.
fn recording_proxy(upstream: String) -> (String, Capture) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let capture: Capture = Arc::default();
    let c = capture.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            for (mut from, mut to) in [
                (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                ),
                (server, client),
            ] {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 << 10];
                    while let Ok(n @ 1..) = from.read(&mut buf) {
                        c.lock().expect("capture").extend_from_slice(&buf[..n]);
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (url, capture)
}

/// Which of `needles` occur anywhere in the readable memory of process `pid`.
fn in_memory(pid: u32, needles: &[Vec<u8>]) -> Vec<bool> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem"))
        .expect("this test reads the routers' memory through /proc/<pid>/mem");
    let finders: Vec<_> = needles.iter().map(memchr::memmem::Finder::new).collect();
    let longest = needles.iter().map(Vec::len).max().unwrap_or(0);
    let mut found = vec![false; needles.len()];
    let mut scanned = 0u64;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let (lo, hi) = range.split_once('-').expect("range");
        let lo = u64::from_str_radix(lo, 16).expect("hex");
        let hi = u64::from_str_radix(hi, 16).expect("hex");
        let mut at = lo;
        let mut tail: Vec<u8> = Vec::new();
        while at < hi {
            let len = (hi - at).min(16 << 20) as usize;
            let mut buf = vec![0u8; len];
            use std::io::Seek;
            if mem.seek(std::io::SeekFrom::Start(at)).is_err() || mem.read_exact(&mut buf).is_err()
            {
                break; // a region the kernel will not show (guard pages and the like)
            }
            scanned += len as u64;
            // The end of the previous piece, so a needle across the cut is seen.
            let mut hay = std::mem::take(&mut tail);
            hay.extend_from_slice(&buf);
            for (i, f) in finders.iter().enumerate() {
                found[i] |= f.find(&hay).is_some();
            }
            tail = hay[hay.len().saturating_sub(longest)..].to_vec();
            at += len as u64;
        }
    }
    assert!(
        scanned > 1 << 20,
        "read only {scanned} bytes of process {pid}"
    );
    found
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Two routers (A and B, each naming the other as mesh peer) with debug logs in
/// `dir/<name>.log`: their processes, gateways and p2p addresses to dial.
fn two_routers(
    gen: &str,
    boot: &str,
    dir: &Path,
    keys: &[String],
) -> Vec<(DevNode, String, String)> {
    let at: Vec<_> = ["sealed test router A", "sealed test router B"]
        .iter()
        .map(|n| common::router_address(n))
        .collect();
    (0..2)
        .map(|r| {
            let name = ["ra", "rb"][r];
            let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log");
            let (node, gw) = common::spawn_router_with(
                (gen, boot, dir),
                &at[r],
                &keys[4 + r],
                name,
                &["--peer-router", &at[1 - r].2],
                ("debug", Stdio::from(log)),
            );
            (node, gw, at[r].2.clone())
        })
        .collect()
}

/// A sealed call made as the SDK makes one: offer, seal, send. Returns the status,
/// the response headers asked for, the raw (sealed) reply, the plaintext, the
/// envelope sent to the answering node and the call id.
struct Sealed {
    status: u16,
    node: Option<B256>,
    result: Option<String>,
    charge: Option<String>,
    raw: Vec<u8>,
    plain: Vec<u8>,
    envelope: Vec<u8>,
    call: B256,
}

fn offer(gw: &str, key: &str, app: &str) -> Value {
    ureq::post(&format!("{gw}/v1/sealed/offer"))
        .set("Authorization", &format!("Bearer {key}"))
        .send_json(json!({ "app": app }))
        .expect("an offer")
        .into_json()
        .expect("json")
}

fn sealed_call(gw: &str, key: &str, app: &str, path: &str, body: &Value, tamper: bool) -> Sealed {
    let offered = emc_client::sealed::Offer::from_json(&offer(gw, key, app)).expect("offer");
    let mut s = emc_client::sealed::seal(
        &offered,
        path,
        "application/json",
        body.to_string().as_bytes(),
    )
    .expect("seal");
    let b64 = base64::engine::general_purpose::STANDARD;
    let first = s.body["sealed"][0]["envelope"]
        .as_str()
        .expect("envelope")
        .to_string();
    let mut envelope = b64.decode(first).expect("base64");
    if tamper {
        let last = envelope.len() - 1;
        envelope[last] ^= 1;
        s.body["sealed"][0]["envelope"] = json!(b64.encode(&envelope));
    }
    let r = match ureq::post(&format!("{gw}/call/{app}{path}"))
        .set("Authorization", &format!("Bearer {key}"))
        .set("x-emc-sealed", &s.call.to_string())
        .send_json(&s.body)
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("sealed call: {e}"),
    };
    let status = r.status();
    let h = |n: &str| r.header(n).map(str::to_string);
    let (node, result, charge) = (
        h("x-emc-node").and_then(|n| n.parse().ok()),
        h("x-emc-result"),
        h("x-emc-charge"),
    );
    let mut raw = Vec::new();
    r.into_reader().read_to_end(&mut raw).expect("reply");
    let mut plain = Vec::new();
    if status == 200 {
        let opener = s
            .openers
            .get_mut(&node.expect("x-emc-node"))
            .expect("sealed to it");
        plain = opener.push(&raw).expect("the reply opens");
        opener.finish().expect("the reply is whole");
    }
    Sealed {
        status,
        node,
        result,
        charge,
        raw,
        plain,
        envelope,
        call: s.call,
    }
}

/// Every receipt the routers settled, from the settlement transactions.
fn settled_receipts(v0: &DevNode) -> Vec<ITasks::Receipt> {
    let logs = v0.result(
        "eth_getLogs",
        json!([{"fromBlock": "0x0", "toBlock": "latest", "address": emc_modules::TASKS_ADDRESS,
                "topics": [<ITasks::Settled as alloy_sol_types::SolEvent>::SIGNATURE_HASH]}]),
    );
    let mut txs: Vec<String> = logs
        .as_array()
        .expect("logs")
        .iter()
        .map(|l| l["transactionHash"].as_str().expect("tx").to_string())
        .collect();
    txs.dedup();
    txs.iter()
        .flat_map(|t| {
            let tx = v0.result("eth_getTransactionByHash", json!([t]));
            let input =
                alloy_primitives::hex::decode(tx["input"].as_str().expect("input")).expect("hex");
            ITasks::settleCall::abi_decode(&input)
                .expect("a settle call")
                .receipts
        })
        .collect()
}

/// The receipt's node signature, checked as the chain checks it.
fn receipt_verifies(r: &ITasks::Receipt) -> bool {
    let claim = emc_protocol::ResultClaim {
        request_hash: r.requestHash,
        call: r.callId,
        result_hash: r.resultHash,
        node: emc_protocol::NodeId(r.nodeId),
        metering: emc_protocol::Metering {
            unit: match r.unit {
                0 => emc_protocol::Unit::Call,
                1 => emc_protocol::Unit::Fuel,
                _ => emc_protocol::Unit::Tokens,
            },
            units: r.units,
            bytes: r.bytesOut,
            wall_us: r.wallUs,
        },
        max_units: r.maxUnits,
        extensions: Vec::new(),
    };
    let Ok(signature) = <[u8; 64]>::try_from(r.nodeSignature.as_ref()) else {
        return false;
    };
    emc_protocol::SignedResult { claim, signature }
        .verify()
        .is_ok()
}

#[test]
fn sealed_calls_cross_two_routers_that_never_see_the_prompt_or_the_reply() {
    let dir = tempfile::tempdir().expect("tmp");
    let (genesis, vkey) = common::small_poc_genesis(dir.path(), 8, 150);
    let gen = genesis.to_str().expect("utf8").to_string();
    let keys: Vec<String> = emc_crypto::dev_accounts(8)
        .expect("dev accounts")
        .iter()
        .map(|a| alloy_primitives::hex::encode(a.to_bytes()))
        .collect();
    let p2p0 = format!("/ip4/127.0.0.1/tcp/{}", common::free_port());
    let v0 = DevNode::spawn(&[
        "--genesis",
        &gen,
        "--datadir",
        dir.path().join("v0").to_str().expect("utf8"),
        "--consensus-key",
        vkey.to_str().expect("utf8"),
        "--p2p-addr",
        &p2p0,
    ]);
    let boot = format!(
        "{p2p0}/p2p/{}",
        emc_p2p::peer_id_of(emc_node::p2p_seed_of(&emc_crypto::ConsensusKey::dev(0)))
    );
    let routers = two_routers(&gen, &boot, dir.path(), &keys);
    let rb_dial = routers[1].2.clone();
    let (_node, found) = DevNode::spawn_with(
        &[
            "--genesis",
            &gen,
            "--datadir",
            dir.path().join("c0").to_str().expect("utf8"),
            "--p2p-addr",
            "/ip4/127.0.0.1/tcp/0",
            "--bootnode",
            &boot,
            "--role",
            "compute",
            "--app",
            "minilm=builtin:minilm,price=1000",
            "--app",
            "smollm=builtin:smollm2,price=100000",
            "--owner-key",
            &keys[0],
            "--router",
            &rb_dial,
            "--compute-http",
            "127.0.0.1:0",
        ],
        &["Computing node id: ", "Node DID: "],
    );
    let (node_id, node_did) = (found[0].clone(), found[1].clone());
    let gw_a = routers[0].1.clone();

    // The node is registered and reaches A through B; its DID publishes its key.
    let mesh_a = || {
        ureq::get(&format!("{gw_a}/mesh"))
            .call()
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };
    let nodes_b = || {
        ureq::get(&format!("{}/nodes", routers[1].1))
            .call()
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };
    wait_until(
        "router A to see the node through B",
        Duration::from_secs(120),
        || {
            mesh_a().iter().any(|n| n["node"] == json!(node_id))
                && nodes_b().iter().any(|n| {
                    n["node"] == json!(node_id)
                        && n["registered"].as_object().is_some_and(|m| m.len() == 2)
                })
        },
    );
    let published = || {
        let doc = v0.result("emc_resolveDid", json!([node_did]));
        doc["didDocument"]["verificationMethod"]
            .as_array()
            .and_then(|m| {
                m.iter()
                    .find(|m| m["type"] == "X25519KeyAgreementKey2019")
                    .cloned()
            })
            .and_then(|m| m["publicKeyBase64"].as_str().map(str::to_string))
    };
    wait_until(
        "the node's DID to publish its key",
        Duration::from_secs(60),
        || published().is_some(),
    );
    let published = base64::engine::general_purpose::STANDARD
        .decode(published().expect("published"))
        .expect("base64");

    let key = common::client_key(&v0.url, &keys[6], Some("50"));
    let upstream = gw_a.trim_start_matches("http://").to_string();
    let (gw, capture) = recording_proxy(upstream);

    // The offer: the node, its DID, the key its DID publishes, a binding that holds.
    // A has B's summary of the node as registered (it trails B's by a period).
    wait_until(
        "router A to offer the node",
        Duration::from_secs(30),
        || {
            ureq::post(&format!("{gw}/v1/sealed/offer"))
                .set("Authorization", &format!("Bearer {key}"))
                .send_json(json!({ "app": "minilm" }))
                .is_ok()
        },
    );
    let o = offer(&gw, &key, "minilm");
    let offered = emc_client::sealed::Offer::from_json(&o).expect("offer");
    assert_eq!(offered.candidates.len(), 1, "{o}");
    let c = &offered.candidates[0];
    assert_eq!(c.node.to_string(), node_id, "{o}");
    assert_eq!(c.did, node_did, "{o}");
    assert_eq!(
        c.x25519.to_vec(),
        published,
        "the offered key is the DID document's"
    );
    assert_eq!(offered.checked().len(), 1, "the binding holds");

    let nonce = alloy_primitives::hex::encode(rand::random::<[u8; 8]>());
    let embed_secret = format!("the violet heron nests at dawn {nonce}");
    let chat_secret = format!("Say something about foxes and {nonce}.");
    let cli_secret = format!("Name a colour the cli sealed {nonce}.");
    let plain_secret = format!("a plain call anyone may read {nonce}");

    // Sealed embeddings: answered, the result signed over the ciphertext.
    let embed = sealed_call(
        &gw,
        &key,
        "minilm",
        "/v1/embeddings",
        &json!({"model": "minilm", "input": embed_secret}),
        false,
    );
    assert_eq!(embed.status, 200, "{}", String::from_utf8_lossy(&embed.raw));
    let reply: Value = serde_json::from_slice(&embed.plain).expect("an embeddings reply");
    assert_eq!(
        reply["data"][0]["embedding"].as_array().map(Vec::len),
        Some(384)
    );
    let signed =
        emc_protocol::SignedResult::from_header(&embed.result.clone().expect("x-emc-result"))
            .expect("a signed result");
    signed.verify().expect("the node signed it");
    assert_eq!(
        signed.claim.request_hash,
        emc_protocol::request_hash("minilm", "/v1/embeddings", &embed.envelope)
    );
    assert_eq!(
        signed.claim.result_hash,
        keccak256(&embed.raw),
        "the hash of the sealed records"
    );
    assert_eq!(signed.claim.call, embed.call);
    assert!(embed.charge.is_some());
    assert!(!contains(&embed.raw, embed_secret.as_bytes()));

    // A sealed streamed chat: server-sent events, each in its sealed record.
    let chat = sealed_call(
        &gw,
        &key,
        "smollm",
        "/v1/chat/completions",
        &json!({"model": "smollm", "stream": true, "max_tokens": 16,
                "messages": [{"role": "user", "content": chat_secret}]}),
        false,
    );
    assert_eq!(chat.status, 200, "{}", String::from_utf8_lossy(&chat.raw));
    let text = String::from_utf8(chat.plain.clone()).expect("utf8");
    let events: Vec<&str> = text.lines().filter(|l| l.starts_with("data: {")).collect();
    assert!(events.len() > 2, "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    // A sealed chat from the CLI.
    let out = common::emc()
        .args([
            "gateway",
            "call",
            "--gateway",
            &gw,
            "--key",
            &key,
            "--sealed",
            "smollm",
        ])
        .args(["/v1/chat/completions", "-d"])
        .arg(
            json!({"model": "smollm", "max_tokens": 16,
                    "messages": [{"role": "user", "content": cli_secret}]})
            .to_string(),
        )
        .output()
        .expect("emc");
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "emc gateway call --sealed: {said}");
    let cli_reply: Value = serde_json::from_slice(&out.stdout).expect("a chat reply");
    let cli_text = cli_reply["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_string();
    assert!(!cli_text.is_empty(), "{cli_reply}");
    let cli_call: B256 = said
        .split_whitespace()
        .skip_while(|w| *w != "call")
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("the CLI names the call: {said}"));

    // One byte of ciphertext changed: the node refuses it, nothing is charged.
    let bad = sealed_call(
        &gw,
        &key,
        "minilm",
        "/v1/embeddings",
        &json!({"model": "minilm", "input": embed_secret}),
        true,
    );
    let why = String::from_utf8_lossy(&bad.raw).to_string();
    assert_eq!(bad.status, 400, "{why}");
    assert!(why.contains("sealed call") && why.contains("open"), "{why}");
    assert_eq!(bad.charge, None);

    // A plain call, for the search below to find.
    let plain = common::cli(&[
        "gateway",
        "call",
        "--gateway",
        &gw,
        "--key",
        &key,
        "minilm",
        "/v1/embeddings",
        "-d",
        &json!({"model": "minilm", "input": plain_secret}).to_string(),
    ]);
    assert!(plain.contains("embedding"), "{plain}");

    // What must be nowhere the routers can see: the prompts and the replies.
    let embedding_text = {
        let s = String::from_utf8_lossy(&embed.plain);
        let at = s.find("\"embedding\"").expect("an embedding");
        s[at..at + 48].to_string()
    };
    let mut secrets: Vec<Vec<u8>> = vec![
        embed_secret.clone().into(),
        chat_secret.clone().into(),
        cli_secret.clone().into(),
        embedding_text.into(),
        cli_text.clone().into(),
    ];
    secrets.extend(events.iter().map(|e| e.as_bytes().to_vec()));
    let traffic = capture.lock().expect("capture").clone();
    assert!(
        contains(&traffic, plain_secret.as_bytes()),
        "the proxy records calls"
    );
    for s in &secrets {
        let shown = String::from_utf8_lossy(s);
        assert!(!contains(&traffic, s), "router A received {shown:?}");
        for name in ["ra", "rb"] {
            let log = std::fs::read(dir.path().join(format!("{name}.log"))).expect("log");
            assert!(!contains(&log, s), "router {name} logged {shown:?}");
        }
    }
    let mut needles = secrets.clone();
    needles.push(plain_secret.clone().into());
    let in_a = in_memory(routers[0].0.child.id(), &needles);
    assert!(
        in_a[secrets.len()],
        "router A's memory holds the plain call's input"
    );
    let in_b = in_memory(routers[1].0.child.id(), &secrets);
    for (i, s) in secrets.iter().enumerate() {
        let shown = String::from_utf8_lossy(s);
        assert!(!in_a[i], "router A's memory holds {shown:?}");
        assert!(!in_b[i], "router B's memory holds {shown:?}");
    }

    // Settlement: the sealed calls and the plain one, each once; never the tampered one.
    let receipts = || settled_receipts(&v0);
    wait_until("the calls settled", Duration::from_secs(90), || {
        receipts().len() >= 4
    });
    std::thread::sleep(Duration::from_secs(3));
    let receipts = receipts();
    assert_eq!(receipts.len(), 4, "four calls served, four settled");
    let of = |call: B256| receipts.iter().find(|r| r.callId == call);
    let r = of(embed.call).expect("the sealed embeddings call settled");
    assert_eq!(r.requestHash, signed.claim.request_hash);
    assert_eq!(r.resultHash, keccak256(&embed.raw));
    assert!(receipt_verifies(r));
    let r = of(chat.call).expect("the sealed chat settled");
    assert_eq!(
        r.requestHash,
        emc_protocol::request_hash("smollm", "/v1/chat/completions", &chat.envelope)
    );
    assert_eq!(
        r.resultHash,
        keccak256(&chat.raw),
        "the streamed records' hash"
    );
    assert_eq!(Some(r.nodeId), chat.node);
    assert!(receipt_verifies(r));
    let r = of(cli_call).expect("the CLI's sealed chat settled");
    assert!(receipt_verifies(r));
    assert!(of(bad.call).is_none(), "the tampered call is not charged");
}
