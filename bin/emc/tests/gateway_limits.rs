//! The gateway against clients that try not to pay or to lock others out: one
//! validator, one router, one computing node (a real Python app priced per call and
//! SmolLM2 priced per token, room for one call and two waiting), balances read on
//! chain.
//!
//! * Money: a key whose account never deposited, sending `x-emc-max-cost: 0`, is
//!   refused before any node runs and the router sends no settlement for it; a cap
//!   below one unit is refused; a chat whose budget runs out ends there and pays
//!   exactly the cap, on chain; every settlement the router sends settles.
//! * A burst of calls on a node that is merely busy gets 200s and 429s, never 503,
//!   and the node gets no failed marks.
//! * Connections that never finish their headers are cut at the header timeout while
//!   honest calls are served; an address over its share of connections is told so in
//!   OpenAI's error shape.

mod common;

use alloy_primitives::{Address, U256};
use common::{connect_from, wait_until};
use emc_modules::tasks::{self, ITasks};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A POST through the gateway: status, the `x-emc-charge` header, the body as JSON.
fn post(
    url: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, Option<U256>, Value) {
    let mut req = ureq::post(url).set("Authorization", &format!("Bearer {key}"));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.send_json(body.clone()) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport: {e}"),
    };
    let status = resp.status();
    let charge = resp.header("x-emc-charge").and_then(|c| c.parse().ok());
    let text = resp.into_string().expect("body");
    (
        status,
        charge,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const PRICE_CALL: u64 = 1_000_000;
const PRICE_TOKEN: u64 = 100_000;

#[test]
fn the_gateway_charges_within_budgets_and_stays_open_to_honest_clients() {
    let accounts = emc_crypto::dev_accounts(8).expect("dev accounts");
    let hexkey = |i: usize| alloy_primitives::hex::encode(accounts[i].to_bytes());
    let chat_app = format!("chat=builtin:smollm2,price={PRICE_TOKEN}");
    let net = common::trio(
        "gateway limits test router",
        (&["--metrics-addr", "127.0.0.1:0"], &["Metrics: "]),
        PRICE_CALL,
        &[chat_app],
        &["--capacity", "1", "--max-queue", "2"],
    );
    let (v0, metrics, gw, ids) = (&net.v0, &net.v0_found, net.gw.clone(), &net.node_found);
    let router_account = accounts[4].address();
    let node_id = ids[0].clone();
    let table = || -> Vec<Value> {
        ureq::get(&format!("{gw}/nodes"))
            .call()
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };
    let client = accounts[6].address();
    let key = common::client_key(&v0.url, &hexkey(6), Some("10"));
    let broke = common::client_key(&v0.url, &hexkey(7), None);
    let escrow = || {
        v0.view(
            emc_modules::TASKS_ADDRESS,
            ITasks::escrowOfCall { account: client },
        )
        .balance
    };
    let escrow_before = escrow();
    let nonce =
        |a: Address| common::quantity(&v0.result("eth_getTransactionCount", json!([a, "latest"])));
    let router_nonce_before = nonce(router_account);
    let echo = format!("{gw}/call/py/echo");

    // An account that never deposited, asking for a free call: refused before any node
    // runs, so no settlement the chain would refuse is ever sent for it.
    let (status, charge, body) = post(&echo, &broke, &[("x-emc-max-cost", "0")], &json!("x"));
    assert_eq!(status, 402, "{body}");
    assert!(charge.is_none());
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("0 wei free")),
        "{body}"
    );
    // A cap below one unit is not a way to a free call either.
    let (status, _, body) = post(&echo, &key, &[("x-emc-max-cost", "1")], &json!("x"));
    assert_eq!(status, 402, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("x-emc-max-cost of 1 wei")),
        "{body}"
    );
    let mut paid = U256::ZERO;
    let (status, charge, body) = post(&echo, &key, &[], &json!("x"));
    assert_eq!(status, 200, "{body}");
    let one_call = tasks::total(1, U256::from(PRICE_CALL));
    assert_eq!(charge, Some(one_call));
    paid += one_call;

    // A chat whose budget ends mid-reply stops there and pays exactly its cap.
    let chat = format!("{gw}/v1/chat/completions");
    let ask = json!({"model": "chat", "messages": [{"role": "user", "content": "Count from one to fifty in words."}], "max_tokens": 4});
    let (status, charge, body) = post(&chat, &key, &[], &ask);
    assert_eq!(status, 200, "{body}");
    let prompt = body["usage"]["prompt_tokens"].as_u64().expect("usage");
    paid += charge.expect("charged");
    let cap = tasks::total(prompt + 3, U256::from(PRICE_TOKEN));
    let mut long = ask.clone();
    long["max_tokens"] = json!(200);
    let (status, charge, body) = post(&chat, &key, &[("x-emc-max-cost", &cap.to_string())], &long);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "length", "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 3, "{body}");
    assert_eq!(charge, Some(cap), "charged exactly the cap");
    paid += cap;

    // A burst on a node with room for three calls: busy, not broken.
    let hold = format!("{gw}/call/py/hold/1");
    let burst: Vec<_> = (0..24)
        .map(|_| {
            let (url, key) = (hold.clone(), key.clone());
            std::thread::spawn(move || {
                match ureq::get(&url)
                    .set("Authorization", &format!("Bearer {key}"))
                    .call()
                {
                    Ok(r) => (r.status(), r.header("x-emc-charge").map(str::to_string)),
                    Err(ureq::Error::Status(s, r)) => (s, r.into_string().ok()),
                    Err(e) => panic!("transport: {e}"),
                }
            })
        })
        .collect();
    let statuses: Vec<(u16, Option<String>)> =
        burst.into_iter().map(|t| t.join().expect("join")).collect();
    let served = statuses.iter().filter(|(s, _)| *s == 200).count();
    let busy = statuses.iter().filter(|(s, _)| *s == 429).count();
    assert_eq!(
        served + busy,
        statuses.len(),
        "only 200s and 429s: {statuses:?}"
    );
    assert!(served >= 1 && busy >= 1, "{statuses:?}");
    paid += one_call * U256::from(served);
    let n = table()
        .into_iter()
        .find(|n| n["node"] == json!(node_id))
        .expect("the node");
    assert_eq!(n["failed"], 0, "a busy node is not a failing one: {n}");
    // A megabyte of model name is not echoed back.
    let (status, _, body) = post(
        &chat,
        &key,
        &[],
        &json!({"model": "m".repeat(1 << 20), "messages": []}),
    );
    assert_eq!(status, 404, "{body}");
    let said = body["error"]["message"].as_str().expect("a message");
    assert!(
        said.len() < 200 && said.contains("(1048576 bytes)"),
        "{} bytes",
        said.len()
    );

    // Every call served is settled once, for exactly what it was charged; nothing the
    // router sent was refused.
    wait_until("the calls settled", Duration::from_secs(60), || {
        escrow_before - escrow() >= paid
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        escrow_before - escrow(),
        paid,
        "the escrow paid exactly the charges"
    );
    let settled = v0.events::<ITasks::Settled>(emc_modules::TASKS_ADDRESS);
    assert!(
        settled.iter().any(|e| e.nodeAmount + e.routerFee == cap),
        "the capped chat settled for its cap"
    );
    assert!(
        v0.events::<ITasks::Rejected>(emc_modules::TASKS_ADDRESS)
            .is_empty(),
        "no settlement the chain refused"
    );
    assert!(nonce(router_account) > router_nonce_before);

    // Connections that never finish their headers: cut at the header timeout (10 s),
    // while honest calls are served.
    let to: SocketAddr = gw.trim_start_matches("http://").parse().expect("addr");
    let mut slow: Vec<TcpStream> = (0..200u16)
        .map(|i| {
            let mut s = connect_from([127, 0, 0, 50 + (i % 4) as u8], to);
            s.write_all(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n")
                .expect("head");
            s
        })
        .collect();
    let started = Instant::now();
    for _ in 0..10 {
        let r = ureq::get(&format!("{gw}/v1/models"))
            .call()
            .expect("honest call served");
        assert_eq!(r.status(), 200);
    }
    let mut open = slow.len();
    while open > 0 && started.elapsed() < Duration::from_secs(25) {
        open = 0;
        for s in &mut slow {
            if s.write_all(b"x").is_ok() {
                open += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(open, 0, "every slow head was cut off");
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "not before the header timeout"
    );
    drop(slow);

    // One address's share of each port: 256 connections to the gateway, 128 to the
    // computing node's own port, 16 to metrics. The next is refused and says why, in
    // the port's error shape, while other addresses are served.
    for (url, share, shape, probe) in [
        (gw.clone(), 256, r#""type":"rate_limit_error""#, "/health"),
        (
            ids[1].clone(),
            128,
            r#""type":"rate_limit_error""#,
            "/health",
        ),
        (
            metrics[0].trim_end_matches("/metrics").to_string(),
            16,
            "too many connections",
            "/metrics",
        ),
    ] {
        let to: SocketAddr = url.trim_start_matches("http://").parse().expect("addr");
        let held: Vec<TcpStream> = (0..share)
            .map(|_| connect_from([127, 0, 0, 70], to))
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut over = connect_from([127, 0, 0, 70], to);
        over.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .expect("write");
        over.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut text = String::new();
        over.read_to_string(&mut text).expect("the refusal");
        assert!(
            text.starts_with("HTTP/1.1 429") && text.contains(shape) && text.contains("127.0.0.70"),
            "{url}: {text}"
        );
        let r = ureq::get(&format!("{url}{probe}"))
            .call()
            .expect("another address is served");
        assert_eq!(r.status(), 200);
        drop(held);
    }
}
