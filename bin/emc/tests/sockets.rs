//! Computing sockets end to end: one validator, one router, one computing node (a real
//! Python app priced per call, all-MiniLM-L6-v2 priced per token), every step through
//! the `emc socket` commands a user would type, calls through the gateway with socket
//! keys (the official `openai` Python client for embeddings), balances read on chain.
//!
//! * A provider posts an offer and a buyer buys a socket from it; the provider mints a
//!   socket for its node to the buyer, who funds it; `emc socket list|show` and the
//!   `emc_sockets` / `emc_socket` JSON-RPC methods show them.
//! * Calls paid from sockets are routed to the socket's node and charged in its unit:
//!   one credit per call for the app priced per call, the prompt's tokens for the
//!   embeddings.
//! * The gateway refuses, each with its status and reason and charging nothing: a key
//!   for a socket its signer does not hold, the owner's key while the socket is rented
//!   out, a socket with no credits left, an expired socket, a socket for another app.
//! * A rented socket works for its renter, and keeps working for it after the owner
//!   sells it; the new owner's key waits for the rental's end.
//! * Everything served settles on chain: each socket's credits fall by exactly the
//!   units served, and the `Settled` events pay out exactly what the gateway charged.

mod common;

use alloy_primitives::U256;
use common::{cli, wait_until};
use emc_modules::sockets::ISockets;
use emc_modules::SOCKETS_ADDRESS;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const PRICE_CALL: u64 = 1_000_000;
const PRICE_TOKEN: u64 = 1_000;

/// A call through the gateway: status, the `x-emc-charge` header, the body.
fn post(url: &str, key: &str, body: &Value) -> (u16, Option<U256>, Value) {
    let req = ureq::post(url).set("Authorization", &format!("Bearer {key}"));
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

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The id an `emc socket` command printed ("socket 3", "offer 1").
fn id_of(out: &str, what: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{what} ")))
        .unwrap_or_else(|| panic!("no {what} id in {out:?}"))
        .trim()
        .to_string()
}

struct Net {
    t: common::Trio,
    v0_url: String,
    gw: String,
    node_id: String,
}

impl Net {
    fn start() -> Net {
        Self::start_with(&[])
    }

    /// With more arguments for the computing node.
    fn start_with(node_extra: &[&str]) -> Net {
        let embed = format!("embed=builtin:minilm,price={PRICE_TOKEN}");
        let t = common::trio(
            "sockets test router",
            (&[], &[]),
            PRICE_CALL,
            &[embed],
            node_extra,
        );
        Net {
            v0_url: t.v0.url.clone(),
            gw: t.gw.clone(),
            node_id: t.node_found[0].clone(),
            t,
        }
    }

    /// `emc socket ARGS --private-key <account i> --rpc <v0>`.
    fn socket(&self, i: usize, args: &[&str]) -> String {
        let mut all: Vec<&str> = vec!["socket"];
        all.extend(args);
        all.extend(["--private-key", &self.t.keys[i], "--rpc", &self.v0_url]);
        cli(&all)
    }

    fn key(&self, i: usize, socket: &str) -> String {
        self.socket(i, &["key", socket])
    }

    fn info(&self, id: &str) -> ISockets::Socket {
        self.t.v0.view(
            SOCKETS_ADDRESS,
            ISockets::socketCall {
                tokenId: id.parse().expect("id"),
            },
        )
    }
}

#[test]
fn sockets_are_bought_used_rented_sold_and_settled_to_the_wei() {
    let net = Net::start();
    let accounts = emc_crypto::dev_accounts(8).expect("dev accounts");
    let addr = |i: usize| accounts[i].address();
    let (buyer, renter, stranger, later) = (6, 7, 5, 3);
    let node = net.node_id.clone();
    let price_call = format!("{PRICE_CALL}wei");
    let price_token = format!("{PRICE_TOKEN}wei");

    // A standing offer for the app priced per call; a socket bought from it.
    let out = net.socket(
        0,
        &[
            "offer",
            "--node",
            &node,
            "--app",
            "py",
            "--unit",
            "calls",
            "--price",
            &price_call,
            "--capacity",
            "100",
            "--max",
            "10",
            "--valid",
            "1h",
        ],
    );
    let offer = id_of(&out, "offer");
    let calls = id_of(&net.socket(buyer, &["buy", &offer, "5"]), "socket");
    // The provider mints an embeddings socket to the buyer, who buys its credits.
    let out = net.socket(
        0,
        &[
            "mint",
            "--node",
            &node,
            "--app",
            "embed",
            "--unit",
            "tokens",
            "--price",
            &price_token,
            "--valid",
            "1h",
            "--to",
            &addr(buyer).to_string(),
        ],
    );
    let tokens = id_of(&out, "socket");
    net.socket(buyer, &["fund", &tokens, "10000"]);
    let listed = net.t.v0.result("emc_sockets", json!([addr(buyer)]));
    assert_eq!(
        listed["sockets"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    let shown: Value =
        serde_json::from_str(&cli(&["socket", "show", &tokens, "--rpc", &net.v0_url]))
            .expect("json");
    assert_eq!(
        (shown["app"].as_str(), shown["unit"].as_str()),
        (Some("embed"), Some("tokens")),
        "{shown}"
    );
    assert_eq!(common::quantity(&shown["credits"]), 10_000);

    // The official openai client, paying from the tokens socket.
    let py = Command::new(common::python())
        .args([
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/e2e/openai_socket.py"
            ),
            &format!("{}/v1", net.gw),
            &net.key(buyer, &tokens),
            "embed",
        ])
        .output()
        .expect("python");
    assert!(
        py.status.success(),
        "openai client: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let o: Value = serde_json::from_slice(&py.stdout).expect("json");
    assert_eq!(o["embeddings"], json!([384]), "{o}");
    assert_eq!(o["node"], json!(node), "{o}");
    let embed_tokens = o["tokens"].as_u64().expect("usage");
    let embed_charge: U256 = o["charge"].as_str().expect("charge").parse().expect("wei");
    assert_eq!(embed_charge, U256::from(embed_tokens * PRICE_TOKEN));

    // One credit per call on the calls socket.
    let echo = format!("{}/call/py/echo", net.gw);
    let buyer_key = net.key(buyer, &calls);
    let mut served = 0u64;
    let (status, charge, body) = post(&echo, &buyer_key, &json!("hi"));
    assert_eq!(
        (status, charge),
        (200, Some(U256::from(PRICE_CALL))),
        "{body}"
    );
    served += 1;

    // Refusals, each charging nothing.
    let (status, charge, body) = post(&echo, &net.key(stranger, &calls), &json!("x"));
    assert_eq!((status, charge), (401, None), "{body}");
    assert!(message(&body).contains("does not hold socket"), "{body}");
    let embeddings = format!("{}/v1/embeddings", net.gw);
    let (status, _, body) = post(
        &embeddings,
        &buyer_key,
        &json!({"model": "embed", "input": "x"}),
    );
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("is for the app \"py\""), "{body}");
    // One credit: one call, then none left.
    let one = id_of(&net.socket(buyer, &["buy", &offer, "1"]), "socket");
    let one_key = net.key(buyer, &one);
    assert_eq!(post(&echo, &one_key, &json!("x")).0, 200);
    let (status, charge, body) = post(&echo, &one_key, &json!("x"));
    assert_eq!((status, charge), (402, None), "{body}");
    assert!(message(&body).contains("credits"), "{body}");
    // A socket valid for two seconds, funded, then expired.
    let out = net.socket(
        0,
        &[
            "mint",
            "--node",
            &node,
            "--app",
            "py",
            "--price",
            &price_call,
            "--valid",
            "2s",
            "--to",
            &addr(buyer).to_string(),
        ],
    );
    let short = id_of(&out, "socket");
    net.socket(buyer, &["fund", &short, "3"]);
    std::thread::sleep(Duration::from_secs(3));
    let (status, charge, body) = post(&echo, &net.key(buyer, &short), &json!("x"));
    assert_eq!((status, charge), (402, None), "{body}");
    assert!(message(&body).contains("expired"), "{body}");

    // Rented out: the renter's key pays, the owner's does not.
    net.socket(
        buyer,
        &[
            "rent-out",
            &calls,
            "--price-per-second",
            "1000wei",
            "--max",
            "1h",
        ],
    );
    net.socket(renter, &["rent", &calls, "10m"]);
    let (status, _, body) = post(&echo, &buyer_key, &json!("x"));
    assert_eq!(status, 401, "{body}");
    assert!(
        message(&body).contains("its owner's key does not pay"),
        "{body}"
    );
    let renter_key = net.key(renter, &calls);
    assert_eq!(post(&echo, &renter_key, &json!("x")).0, 200);
    served += 1;
    // Sold during the rental: the rental goes on; the new owner waits for its end.
    net.socket(buyer, &["transfer", &calls, &addr(later).to_string()]);
    let s = net.info(&calls);
    assert_eq!(
        (s.owner, s.user, s.paidRental),
        (addr(later), addr(renter), true)
    );
    assert_eq!(post(&echo, &renter_key, &json!("x")).0, 200);
    served += 1;
    assert_eq!(post(&echo, &net.key(later, &calls), &json!("x")).0, 401);

    // Settlement: credits fall by exactly what was served, and the Settled events pay
    // out exactly what the gateway charged.
    wait_until("every served call settled", Duration::from_secs(60), || {
        net.info(&calls).credits == 5 - served
            && net.info(&one).credits == 0
            && net.info(&tokens).credits == 10_000 - embed_tokens
    });
    let settled = net.t.v0.events::<ISockets::Settled>(SOCKETS_ADDRESS);
    assert_eq!(settled.len() as u64, served + 2, "one per call served");
    let paid: U256 = settled.iter().map(|e| e.nodeAmount + e.routerFee).sum();
    assert_eq!(paid, U256::from((served + 1) * PRICE_CALL) + embed_charge);
    assert!(net
        .t
        .v0
        .events::<ISockets::Rejected>(SOCKETS_ADDRESS)
        .is_empty());
}

/// `emc market ARGS --private-key <account i> --rpc <v0>`.
fn market(net: &Net, i: usize, args: &[&str]) -> String {
    let mut all: Vec<&str> = vec!["market"];
    all.extend(args);
    all.extend(["--private-key", &net.t.keys[i], "--rpc", &net.v0_url]);
    cli(&all)
}

/// The market through the commands a user types: a standing offer found by search, a
/// buyer's order won by the node's bid, and the lease's socket used through two
/// routers and settled against its credits; the trade in the market's history. Then
/// the node dies: both routers sign that it failed, and their reports take the
/// provider's bond for the buyer.
#[test]
fn a_socket_leased_on_the_market_is_used_settled_and_its_dead_node_loses_the_bond() {
    let r2_addr = common::router_address("market test router 2");
    let mut net = Net::start_with(&["--router", &r2_addr.2]);
    let (_r2, gw2) = net.t.spawn_router(&r2_addr, 5, "r2");
    // Both routers' accounts (4 and 5) stake as routers.
    for k in [4, 5] {
        common::stake_router(&net.t.keys[k], &net.v0_url);
    }
    let buyer = 6;
    let node = net.node_id.clone();
    let out = market(
        &net,
        0,
        &[
            "offer",
            "--node",
            &node,
            "--app",
            "py",
            "--price",
            "2000000wei",
            "--capacity",
            "50",
        ],
    );
    let offer = id_of(&out, "offer");
    let found: Value = serde_json::from_str(&cli(&[
        "market",
        "show",
        "offers",
        "--model",
        "p",
        "--max-price",
        "3000000wei",
        "--rpc",
        &net.v0_url,
    ]))
    .expect("json");
    let offers = found["offers"].as_array().expect("offers");
    assert_eq!(offers.len(), 1, "{found}");
    assert_eq!(offers[0]["node"], json!(node));
    assert_eq!(
        common::quantity(&offers[0]["offerId"]),
        offer.parse::<u64>().unwrap()
    );
    let none: Value = serde_json::from_str(&cli(&[
        "market",
        "show",
        "offers",
        "--max-price",
        "1000000wei",
        "--rpc",
        &net.v0_url,
    ]))
    .expect("json");
    assert_eq!(none["offers"], json!([]), "a price filter leaves it out");
    let apps: Value = serde_json::from_str(&cli(&["market", "show", "apps", "--rpc", &net.v0_url]))
        .expect("json");
    assert!(
        apps["apps"]
            .as_array()
            .expect("apps")
            .iter()
            .any(|a| a["app"] == "py"),
        "{apps}"
    );

    // A buyer's order for four calls at most 1.5 M wei each; the node's owner bids 1 M.
    let out = market(
        &net,
        buyer,
        &[
            "order",
            "--app",
            "py",
            "--units",
            "4",
            "--max-price",
            "1500000wei",
        ],
    );
    let order = id_of(&out, "order");
    let bid = id_of(
        &market(
            &net,
            0,
            &[
                "bid",
                "--order",
                &order,
                "--node",
                &node,
                "--price",
                &format!("{PRICE_CALL}wei"),
            ],
        ),
        "bid",
    );
    let lease = id_of(&market(&net, buyer, &["accept", &order]), "socket");
    let s = net.info(&lease);
    assert_eq!((s.credits, s.pricePerUnit), (4, U256::from(PRICE_CALL)));

    // The lease's socket pays for calls through the router, one credit each.
    let echo = format!("{}/call/py/echo", net.gw);
    let key = net.key(buyer, &lease);
    for _ in 0..3 {
        let (status, charge, body) = post(&echo, &key, &json!("hi"));
        assert_eq!(
            (status, charge),
            (200, Some(U256::from(PRICE_CALL))),
            "{body}"
        );
    }
    wait_until("the calls settled", Duration::from_secs(60), || {
        net.info(&lease).credits == 1
    });
    let history: Value =
        serde_json::from_str(&cli(&["market", "history", "--rpc", &net.v0_url])).expect("json");
    let trades = history["trades"].as_array().expect("trades");
    assert!(
        trades.iter().any(|t| t["kind"] == "lease"
            && common::quantity(&t["tokenId"]) == lease.parse::<u64>().unwrap()),
        "{history}"
    );

    // The second router serves the lease too, once the node has dialled it.
    let echo2 = format!("{gw2}/call/py/echo");
    wait_until("router 2 serves the lease", Duration::from_secs(60), || {
        post(&echo2, &key, &json!("hi")).0 == 200
    });
    // The node dies: each router's call fails, and each signs that it did.
    net.t.node.kill();
    for url in [&echo, &echo2] {
        wait_until(
            "the router reports the dead node",
            Duration::from_secs(60),
            || {
                let (status, _, _) = post(url, &key, &json!("hi"));
                let gw = url.trim_end_matches("/call/py/echo");
                let r: Value = ureq::get(&format!("{gw}/v1/market/failures/{bid}"))
                    .call()
                    .ok()
                    .and_then(|r| r.into_json().ok())
                    .unwrap_or_default();
                status != 200 && r["reports"].as_array().is_some_and(|a| !a.is_empty())
            },
        );
    }
    let gw1 = net.gw.clone();
    let out = market(
        &net,
        buyer,
        &[
            "report",
            "--bid",
            &bid,
            "--gateway",
            &gw1,
            "--gateway",
            &gw2,
        ],
    );
    assert!(out.contains("paid to"), "{out}");
    let b = net.t.v0.view(
        emc_modules::MARKET_ADDRESS,
        emc_modules::market::IMarket::bidInfoCall {
            bidId: bid.parse().unwrap(),
        },
    );
    assert_eq!(b.state, 4, "the bond was slashed");
}
