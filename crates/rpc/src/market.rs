//! `emc_market*`: the computing market as JSON, answered from the chain's own state
//! and logs (the `Market`, `Sockets` and `Registry` modules), for dashboards, the CLI
//! and anyone searching "for suitable computing power or applications" in one place.
//!
//! * `emc_marketOffers(query?, block?)`: standing offers that can be bought now,
//!   filtered by app, model (a part of the app's name), unit, highest price, least E,
//!   provider or node, cheapest first (then the highest E).
//! * `emc_marketApps(block?)`: every app registered nodes serve, with how many nodes
//!   and providers, the cheapest node price and offer, and the last clearing price.
//! * `emc_marketPrices(block?)`: each spot market's last clearing.
//! * `emc_marketOrders(query?, block?)`, `emc_marketListings(query?, block?)`: buyers'
//!   orders with their bids, and resale listings, newest first.
//! * `emc_marketHistory(query?)`: trades from the Market's logs (spot fills, leases,
//!   resales), oldest first.
//!
//! Every scan is bounded ([`SCAN`] records, the node's log range and log count).

use crate::json::wei;
use crate::module_view as view;
use crate::{eth::resolve_block, internal, json, limit_exceeded, Ctx, RpcError};
use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolEvent;
use emc_modules::market::{spot::market_of, IMarket};
use emc_modules::registry::IRegistry;
use emc_modules::sockets::{ISockets, Unit};
use emc_modules::{MARKET_ADDRESS, REGISTRY_ADDRESS, SOCKETS_ADDRESS};
use emc_storage::LogFilter;
use emc_types::{Height, Log};
use jsonrpsee::{types::ErrorObjectOwned, types::Params, RpcModule};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Most offers, orders, listings or nodes one call looks at (the newest).
pub const SCAN: u64 = 1_024;

type R = Result<Value, ErrorObjectOwned>;

pub(crate) fn register(m: &mut RpcModule<Ctx>) -> Result<(), RpcError> {
    method!(m, "emc_marketOffers", offers);
    method!(m, "emc_marketApps", apps);
    method!(m, "emc_marketPrices", prices);
    method!(m, "emc_marketOrders", orders);
    method!(m, "emc_marketListings", listings);
    method!(m, "emc_marketHistory", history);
    Ok(())
}

fn unit_name(u: u8) -> &'static str {
    Unit::from_u8(u).map(Unit::name).unwrap_or("unknown")
}

/// A search, every field optional.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Query {
    app: Option<String>,
    model: Option<String>,
    unit: Option<u8>,
    max_price: Option<U256>,
    min_score: Option<U256>,
    provider: Option<Address>,
    node: Option<B256>,
    buyer: Option<Address>,
    seller: Option<Address>,
    /// Only what is still open (orders) or active (listings).
    open: Option<bool>,
    from_block: Option<u64>,
    to_block: Option<u64>,
}

/// The optional query and block of a call.
fn args(c: &Ctx, p: Params<'_>) -> Result<(Query, Height), ErrorObjectOwned> {
    let mut s = p.sequence();
    let query: Option<Query> = s.optional_next()?;
    let at = resolve_block(&c.chain, s.optional_next()?)?;
    Ok((query.unwrap_or_default(), at))
}

/// The newest `SCAN` ids of `count`.
fn newest(count: U256) -> impl Iterator<Item = U256> {
    let n: u64 = count.saturating_to();
    (n.saturating_sub(SCAN) + 1..=n).rev().map(U256::from)
}

struct NodeView {
    score: U256,
    leases: u64,
    failures: u64,
}

fn node_view(c: &Ctx, at: Height, node: B256) -> Result<NodeView, ErrorObjectOwned> {
    let r = view(c, at, MARKET_ADDRESS, IMarket::nodeRecordCall { node })?;
    Ok(NodeView {
        score: r.score,
        leases: r.leases,
        failures: r.failures,
    })
}

fn last_price(c: &Ctx, at: Height, app: &str, unit: u8) -> Result<U256, ErrorObjectOwned> {
    let market = market_of(app, unit);
    Ok(
        match c
            .chain
            .view(at, MARKET_ADDRESS, IMarket::quoteCall { market })
        {
            Ok(qt) => qt.price,
            Err(_) => U256::ZERO,
        },
    )
}

fn offers(c: &Ctx, p: Params<'_>) -> R {
    let (qy, at) = args(c, p)?;
    Ok(json!({"block": json::q(at.0), "offers": offer_list(c, at, &qy)?}))
}

/// The offers `qy` asks for, cheapest first.
fn offer_list(c: &Ctx, at: Height, qy: &Query) -> Result<Vec<Value>, ErrorObjectOwned> {
    let now = c
        .chain
        .store()
        .header(at)
        .map_err(internal)?
        .map(|h| h.timestamp)
        .unwrap_or(0);
    let count = view(c, at, SOCKETS_ADDRESS, ISockets::offerCountCall {})?;
    let mut out = Vec::new();
    let mut nodes: BTreeMap<B256, NodeView> = BTreeMap::new();
    for id in newest(count) {
        let o = view(
            c,
            at,
            SOCKETS_ADDRESS,
            ISockets::offerInfoCall { offerId: id },
        )?;
        let live = o.expires > now && o.capacity >= o.minUnits && o.capacity > 0;
        let wanted = qy.app.as_ref().is_none_or(|a| *a == o.app)
            && qy.model.as_ref().is_none_or(|m| o.app.contains(m.as_str()))
            && qy.unit.is_none_or(|u| u == o.unit)
            && qy.max_price.is_none_or(|p| o.pricePerUnit <= p)
            && qy.provider.is_none_or(|a| a == o.provider)
            && qy.node.is_none_or(|n| n == o.node);
        if !live || !wanted {
            continue;
        }
        // Many offers share a node: each node's record is read once.
        if let std::collections::btree_map::Entry::Vacant(v) = nodes.entry(o.node) {
            v.insert(node_view(c, at, o.node)?);
        }
        let n = &nodes[&o.node];
        if qy.min_score.is_some_and(|s| n.score < s) {
            continue;
        }
        out.push((o.pricePerUnit, std::cmp::Reverse(n.score), id, o));
    }
    out.sort_by_key(|a| (a.0, a.1, a.2));
    let mut list = Vec::with_capacity(out.len());
    let mut prices: BTreeMap<(String, u8), U256> = BTreeMap::new();
    for (_, _, id, o) in out {
        let n = &nodes[&o.node];
        let key = (o.app.clone(), o.unit);
        if let std::collections::btree_map::Entry::Vacant(v) = prices.entry(key.clone()) {
            v.insert(last_price(c, at, &o.app, o.unit)?);
        }
        list.push(json!({
            "offerId": wei(id),
            "provider": o.provider,
            "node": o.node,
            "app": o.app,
            "appHash": o.appHash,
            "unit": unit_name(o.unit),
            "pricePerUnit": wei(o.pricePerUnit),
            "minUnits": json::q(o.minUnits),
            "maxUnits": json::q(o.maxUnits),
            "capacity": json::q(o.capacity),
            "validFor": json::q(o.validFor),
            "expires": json::q(o.expires),
            "score": wei(n.score),
            "leases": json::q(n.leases),
            "failures": json::q(n.failures),
            "lastClearingPrice": wei(prices[&key]),
        }));
    }
    Ok(list)
}

fn apps(c: &Ctx, p: Params<'_>) -> R {
    let (_, at) = args(c, p)?;
    let nodes = view(c, at, REGISTRY_ADDRESS, IRegistry::nodesCall {})?;
    #[derive(Default)]
    struct App {
        nodes: u64,
        providers: BTreeSet<Address>,
        cheapest: Option<U256>,
        best_score: U256,
    }
    let mut apps: BTreeMap<String, App> = BTreeMap::new();
    for node in nodes.into_iter().take(SCAN as usize) {
        let info = view(
            c,
            at,
            REGISTRY_ADDRESS,
            IRegistry::nodeInfoCall { nodeId: node },
        )?;
        let n = node_view(c, at, node)?;
        for (app, price) in info.apps.iter().zip(&info.prices) {
            let a = apps.entry(app.clone()).or_default();
            a.nodes += 1;
            a.providers.insert(info.owner);
            a.cheapest = Some(a.cheapest.map_or(*price, |p| p.min(*price)));
            a.best_score = a.best_score.max(n.score);
        }
    }
    let offers = offer_list(c, at, &Query::default())?;
    let mut out = Vec::new();
    for (name, a) in apps {
        let cheapest_offer = offers
            .iter()
            .filter(|o| o["app"] == name)
            .filter_map(|o| {
                o["pricePerUnit"]
                    .as_str()
                    .and_then(|p| p.parse::<U256>().ok())
            })
            .min();
        out.push(json!({
            "app": name,
            "nodes": json::q(a.nodes),
            "providers": json::q(a.providers.len() as u64),
            "cheapestNodePrice": a.cheapest.map(wei),
            "cheapestOffer": cheapest_offer.map(wei),
            "bestScore": wei(a.best_score),
            "lastClearingPrice": wei(last_price(c, at, &name, 0)?),
        }));
    }
    Ok(json!({"block": json::q(at.0), "apps": out}))
}

fn prices(c: &Ctx, p: Params<'_>) -> R {
    let (_, at) = args(c, p)?;
    let markets = view(c, at, MARKET_ADDRESS, IMarket::marketsCall {})?;
    let mut out = Vec::new();
    for market in markets {
        let qt = view(c, at, MARKET_ADDRESS, IMarket::quoteCall { market })?;
        out.push(json!({
            "market": market,
            "app": qt.app,
            "unit": unit_name(qt.unit),
            "price": wei(qt.price),
            "height": json::q(qt.height),
            "volume": json::q(qt.volume),
            "totalVolume": json::q(qt.totalVolume),
        }));
    }
    Ok(json!({"block": json::q(at.0), "markets": out}))
}

fn orders(c: &Ctx, p: Params<'_>) -> R {
    let (qy, at) = args(c, p)?;
    let count = view(c, at, MARKET_ADDRESS, IMarket::orderCountCall {})?;
    let state = ["open", "leased", "unfilled"];
    let bid_state = ["open", "won", "lost", "released", "slashed"];
    let mut out = Vec::new();
    for id in newest(count) {
        let o = view(
            c,
            at,
            MARKET_ADDRESS,
            IMarket::orderInfoCall { orderId: id },
        )?;
        if qy.buyer.is_some_and(|b| b != o.buyer)
            || qy.app.as_ref().is_some_and(|a| *a != o.app)
            || (qy.open == Some(true) && o.state != 0)
        {
            continue;
        }
        let mut bids = Vec::new();
        for b in &o.bids {
            let x = view(c, at, MARKET_ADDRESS, IMarket::bidInfoCall { bidId: *b })?;
            bids.push(json!({
                "bidId": wei(*b),
                "provider": x.provider,
                "node": x.node,
                "pricePerUnit": wei(x.pricePerUnit),
                "bond": wei(x.bond),
                "state": bid_state.get(x.state as usize).copied().unwrap_or("unknown"),
            }));
        }
        out.push(json!({
            "orderId": wei(id),
            "buyer": o.buyer,
            "app": o.app,
            "unit": unit_name(o.unit),
            "units": json::q(o.units),
            "maxPricePerUnit": wei(o.maxPricePerUnit),
            "deadline": json::q(o.deadline),
            "validFor": json::q(o.validFor),
            "minScore": wei(o.minScore),
            "state": state.get(o.state as usize).copied().unwrap_or("unknown"),
            "bids": bids,
            "winner": wei(o.winner),
            "tokenId": wei(o.tokenId),
        }));
    }
    Ok(json!({"block": json::q(at.0), "orders": out}))
}

fn listings(c: &Ctx, p: Params<'_>) -> R {
    let (qy, at) = args(c, p)?;
    let count = view(c, at, MARKET_ADDRESS, IMarket::listingCountCall {})?;
    let state = ["active", "sold", "cancelled", "void"];
    let mut out = Vec::new();
    for id in newest(count) {
        let x = view(
            c,
            at,
            MARKET_ADDRESS,
            IMarket::listingInfoCall { listingId: id },
        )?;
        if qy.seller.is_some_and(|s| s != x.seller) || (qy.open == Some(true) && x.state != 0) {
            continue;
        }
        out.push(json!({
            "listingId": wei(id),
            "seller": x.seller,
            "tokenId": wei(x.tokenId),
            "kind": if x.auction { "auction" } else { "fixed" },
            "price": wei(x.price),
            "ends": json::q(x.ends),
            "state": state.get(x.state as usize).copied().unwrap_or("unknown"),
            "highBidder": x.highBidder,
            "highBid": wei(x.highBid),
        }));
    }
    Ok(json!({"block": json::q(at.0), "listings": out}))
}

/// One trade log as JSON, or `None` for other logs.
fn trade(log: &Log) -> Option<Value> {
    let (t, d) = (log.topics.clone(), log.data.clone());
    if let Ok(f) = IMarket::SpotFilled::decode_raw_log(t.clone(), &d) {
        return Some(json!({
            "kind": "spot", "market": f.market, "bidId": wei(f.bidId), "askId": wei(f.askId),
            "buyer": f.buyer, "node": f.node, "units": json::q(f.units),
            "pricePerUnit": wei(f.price), "tokenId": wei(f.tokenId),
        }));
    }
    if let Ok(l) = IMarket::Leased::decode_raw_log(t.clone(), &d) {
        return Some(json!({
            "kind": "lease", "orderId": wei(l.orderId), "bidId": wei(l.bidId), "node": l.node,
            "units": json::q(l.units), "pricePerUnit": wei(l.pricePerUnit), "tokenId": wei(l.tokenId),
        }));
    }
    if let Ok(s) = IMarket::Sold::decode_raw_log(t, &d) {
        return Some(json!({
            "kind": "resale", "listingId": wei(s.listingId), "tokenId": wei(s.tokenId),
            "seller": s.seller, "buyer": s.buyer, "price": wei(s.price),
            "royalty": wei(s.royalty), "royaltyTo": s.royaltyTo, "fee": wei(s.fee),
        }));
    }
    None
}

fn history(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let qy: Query = s.optional_next()?.unwrap_or_default();
    let head = c.chain.head().height.0;
    let to = qy.to_block.unwrap_or(head).min(head);
    let from = qy.from_block.unwrap_or(to.saturating_sub(999));
    if from > to {
        return Err(crate::invalid_params(format!(
            "fromBlock {from} is after toBlock {to}"
        )));
    }
    if to - from >= c.cfg.max_log_range {
        return Err(limit_exceeded(format!(
            "the range covers more than {} blocks",
            c.cfg.max_log_range
        )));
    }
    let topics = vec![Some(vec![
        IMarket::SpotFilled::SIGNATURE_HASH,
        IMarket::Leased::SIGNATURE_HASH,
        IMarket::Sold::SIGNATURE_HASH,
    ])];
    let f = LogFilter {
        from,
        to,
        addresses: vec![MARKET_ADDRESS],
        topics,
    };
    let logs = c
        .chain
        .store()
        .logs(&f, c.cfg.max_logs)
        .map_err(internal)?
        .ok_or_else(|| {
            limit_exceeded(format!(
                "more than {} trades; narrow the range",
                c.cfg.max_logs
            ))
        })?;
    let mut out = Vec::new();
    for (log, h, _, _, th, _) in &logs {
        let Some(mut t) = trade(log) else { continue };
        if let Some(app) = &qy.app {
            if t["kind"] == "spot" && t["market"] != json!(market_of(app, qy.unit.unwrap_or(0))) {
                continue;
            }
        }
        t["block"] = json!(json::q(*h));
        t["transactionHash"] = json!(th);
        out.push(t);
    }
    Ok(json!({"fromBlock": json::q(from), "toBlock": json::q(to), "trades": out}))
}
