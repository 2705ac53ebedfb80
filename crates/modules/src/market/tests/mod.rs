//! The Market module over the in-memory host, with the Registry and Sockets modules
//! beside it: spot blocks cleared at the price a brute force computes, the same fills
//! whatever order a block's orders arrive in, every wei accounted for, and each bad
//! input refused with its reason.

use super::*;
use crate::registry::IRegistry;
use crate::sockets::ISockets;
use crate::testing::MemHost;
use crate::{REGISTRY_ADDRESS, SOCKETS_ADDRESS};
use alloy_primitives::B256;
use alloy_sol_types::SolEvent;
use proptest::prelude::*;

mod orders;
mod resale;

const GAS: u64 = 50_000_000;
const T0: u64 = 1_800_000_000;
const FUNDS: u64 = 10u64.pow(15);

struct World {
    h: MemHost,
    /// Two providers, each with a node serving "echo" and "chat".
    nodes: [(Address, B256); 2],
}

fn addr(i: u8) -> Address {
    Address::repeat_byte(i)
}

fn world() -> World {
    let mut h = MemHost::new(MARKET_ADDRESS);
    h.timestamp = T0;
    let mut nodes = [(Address::ZERO, B256::ZERO); 2];
    for (i, n) in nodes.iter_mut().enumerate() {
        let provider = addr(0xe0 + i as u8);
        *n = (
            provider,
            h.register_node(7 + i as u8, provider, &["echo", "chat"]),
        );
    }
    for i in 1..=9 {
        h.balances.insert(addr(i), U256::from(FUNDS));
    }
    World { h, nodes }
}

/// A spot order for a test book: `(ask?, who, units, limit)`; asks name a provider
/// index, bids a buyer.
type Spot = (bool, u8, u64, u64);

impl World {
    fn send(&mut self, from: Address, value: U256, call: impl SolCall) -> Result<Bytes, String> {
        self.h
            .call(MARKET_ADDRESS, from, value, &call.abi_encode(), GAS)
    }
    fn bid(&mut self, who: Address, units: u64, limit: u64) -> Result<Bytes, String> {
        let c = IMarket::spotBidCall {
            app: "echo".into(),
            unit: 0,
            units,
            limitPerUnit: U256::from(limit),
        };
        self.send(who, U256::from(units * limit), c)
    }
    fn ask(&mut self, provider: usize, units: u64, limit: u64) -> Result<Bytes, String> {
        let (who, node) = self.nodes[provider];
        let c = IMarket::spotAskCall {
            node,
            app: "echo".into(),
            unit: 0,
            units,
            limitPerUnit: U256::from(limit),
        };
        self.send(who, U256::ZERO, c)
    }
    fn submit(&mut self, o: Spot) -> Result<Bytes, String> {
        match o {
            (true, p, u, l) => self.ask(p as usize % 2, u, l),
            (false, b, u, l) => self.bid(addr(1 + b % 9), u, l),
        }
    }
    /// Ends the block: the chain's clearing call, then the next height. Its logs.
    fn end_block(&mut self) -> Vec<(Vec<B256>, Bytes)> {
        self.h.logs.clear();
        let c = IMarket::clearBlockCall {};
        self.h
            .call(
                MARKET_ADDRESS,
                crate::SYSTEM_CALLER,
                U256::ZERO,
                &c.abi_encode(),
                u64::MAX / 2,
            )
            .expect("clears");
        self.h.height += 1;
        self.h.timestamp += 1;
        std::mem::take(&mut self.h.logs)
    }
    fn socket(&mut self, id: U256) -> ISockets::Socket {
        let c = ISockets::socketCall { tokenId: id };
        let out = self
            .h
            .call(SOCKETS_ADDRESS, addr(1), U256::ZERO, &c.abi_encode(), GAS)
            .expect("a socket");
        ISockets::socketCall::abi_decode_returns(&out).expect("decodes")
    }
}

fn fills(logs: &[(Vec<B256>, Bytes)]) -> Vec<IMarket::SpotFilled> {
    logs.iter()
        .filter_map(|(t, d)| IMarket::SpotFilled::decode_raw_log(t.clone(), d).ok())
        .collect()
}

fn cleared(logs: &[(Vec<B256>, Bytes)]) -> Option<IMarket::Cleared> {
    logs.iter()
        .find_map(|(t, d)| IMarket::Cleared::decode_raw_log(t.clone(), d).ok())
}

/// The price a brute force picks: every limit tried, most volume, least imbalance,
/// lower median.
fn brute_price(book: &[Spot]) -> Option<(u64, u64)> {
    let mut scored = vec![];
    let mut limits: Vec<u64> = book.iter().map(|o| o.3).collect();
    limits.sort();
    limits.dedup();
    for p in limits {
        let d: u64 = book.iter().filter(|o| !o.0 && o.3 >= p).map(|o| o.2).sum();
        let s: u64 = book.iter().filter(|o| o.0 && o.3 <= p).map(|o| o.2).sum();
        scored.push((p, d.min(s), d.abs_diff(s)));
    }
    let v = scored.iter().map(|c| c.1).max().filter(|v| *v > 0)?;
    let least = scored.iter().filter(|c| c.1 == v).map(|c| c.2).min()?;
    let best: Vec<u64> = scored
        .iter()
        .filter(|c| c.1 == v && c.2 == least)
        .map(|c| c.0)
        .collect();
    Some((best[(best.len() - 1) / 2], v))
}

#[test]
fn a_spot_block_clears_at_one_price_and_buyers_get_sockets() {
    let mut w = world();
    let book: [Spot; 6] = [
        (false, 0, 5, 12),
        (false, 1, 3, 10),
        (false, 2, 2, 8),
        (true, 0, 4, 9),
        (true, 1, 2, 10),
        (true, 0, 6, 13),
    ];
    for o in book {
        w.submit(o).expect("accepted");
    }
    let sockets_before = w.h.balance(SOCKETS_ADDRESS);
    let logs = w.end_block();
    let c = cleared(&logs).expect("it clears");
    assert_eq!((c.price, c.volume), (U256::from(10), 6));
    assert_eq!(brute_price(&book), Some((10, 6)));
    let f = fills(&logs);
    // Buyer 1 (limit 12) gets all 5, buyer 2 (limit 10) the last 1; buyer 3 nothing.
    let got = |a: Address| {
        f.iter()
            .filter(|x| x.buyer == a)
            .map(|x| x.units)
            .sum::<u64>()
    };
    assert_eq!((got(addr(1)), got(addr(2)), got(addr(3))), (5, 1, 0));
    // Each paid the clearing price, not its limit; the rest came back.
    assert_eq!(w.h.balance(addr(1)), U256::from(FUNDS - 5 * 10));
    assert_eq!(w.h.balance(addr(2)), U256::from(FUNDS - 10));
    assert_eq!(w.h.balance(addr(3)), U256::from(FUNDS));
    // The sockets hold exactly what was paid; the market holds nothing.
    assert_eq!(
        w.h.balance(SOCKETS_ADDRESS),
        sockets_before + U256::from(60)
    );
    assert_eq!(w.h.balance(MARKET_ADDRESS), U256::ZERO);
    for x in &f {
        let s = w.socket(x.tokenId);
        assert_eq!((s.owner, s.node, s.credits), (x.buyer, x.node, x.units));
        assert_eq!(
            (s.pricePerUnit, s.escrow),
            (U256::from(10), U256::from(10 * x.units))
        );
        assert_eq!(s.app, "echo");
    }
    // The cheaper provider's ask (limit 9) filled whole, before the other's.
    assert_eq!(
        f.iter()
            .filter(|x| x.node == w.nodes[0].1)
            .map(|x| x.units)
            .sum::<u64>(),
        4
    );
    // The quote says it, and the next block's book starts empty.
    let q = w.send(
        addr(1),
        U256::ZERO,
        IMarket::quoteCall {
            market: spot::market_of("echo", 0),
        },
    );
    let q = IMarket::quoteCall::abi_decode_returns(&q.expect("a quote")).expect("decodes");
    assert_eq!((q.price, q.volume, q.totalVolume), (U256::from(10), 6, 6));
    assert!(cleared(&w.end_block()).is_none());
}

#[test]
fn bad_spot_orders_are_refused_with_reasons_and_move_nothing() {
    let mut w = world();
    let before = w.h.balance(addr(1));
    let short = IMarket::spotBidCall {
        app: "echo".into(),
        unit: 0,
        units: 3,
        limitPerUnit: U256::from(10),
    };
    let e = w.send(addr(1), U256::from(29), short).unwrap_err();
    assert!(e.contains("send exactly 30 wei"), "{e}");
    assert!(w
        .bid(addr(1), 0, 10)
        .unwrap_err()
        .contains("1 to 1000000000 units"));
    // A provider may ask only for its own node, and only for an app it serves.
    let (_, other_node) = w.nodes[1];
    let c = IMarket::spotAskCall {
        node: other_node,
        app: "echo".into(),
        unit: 0,
        units: 1,
        limitPerUnit: U256::from(5),
    };
    let e = w.send(w.nodes[0].0, U256::ZERO, c).unwrap_err();
    assert!(e.contains("not the caller"), "{e}");
    let c = IMarket::spotAskCall {
        node: w.nodes[0].1,
        app: "paint".into(),
        unit: 0,
        units: 1,
        limitPerUnit: U256::from(5),
    };
    let e = w.send(w.nodes[0].0, U256::ZERO, c).unwrap_err();
    assert!(e.contains("does not serve paint"), "{e}");
    // Only the chain clears.
    let e = w
        .send(addr(1), U256::ZERO, IMarket::clearBlockCall {})
        .unwrap_err();
    assert!(e.contains("only the chain"), "{e}");
    assert_eq!(w.h.balance(addr(1)), before);
    assert_eq!(w.h.balance(MARKET_ADDRESS), U256::ZERO);
    // After a clearing at 10, an ask above ten times that is refused.
    w.bid(addr(1), 1, 10).unwrap();
    w.ask(0, 1, 10).unwrap();
    w.end_block();
    let e = w.ask(1, 1, 101).unwrap_err();
    assert!(
        e.contains("more than 10 times the last clearing price 10"),
        "{e}"
    );
    w.ask(1, 1, 100).expect("ten times is allowed");
}

#[test]
fn a_full_book_refuses_the_next_order_until_the_next_block() {
    let mut w = world();
    for i in 0..spot::MAX_BOOK {
        w.bid(addr(1 + (i % 9) as u8), 1, 1).expect("fits");
    }
    let e = w.bid(addr(1), 1, 1).unwrap_err();
    assert!(e.contains("spot book is full (1000 orders)"), "{e}");
    w.end_block();
    w.bid(addr(1), 1, 1).expect("the next block has room");
}

fn spot_book() -> impl Strategy<Value = Vec<Spot>> {
    prop::collection::vec((any::<bool>(), 0..9u8, 1..20u64, 1..30u64), 1..30)
}

/// What a block's clearing gave each participant: the price and, sorted, every
/// (buyer, node, units) fill.
fn run_block(book: &[Spot]) -> (World, Option<U256>, Vec<(Address, B256, u64)>) {
    let mut w = world();
    for &o in book {
        w.submit(o).expect("a valid order");
    }
    let logs = w.end_block();
    let mut f: Vec<_> = fills(&logs)
        .into_iter()
        .map(|x| (x.buyer, x.node, x.units))
        .collect();
    f.sort();
    (w, cleared(&logs).map(|c| c.price), f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Whatever order a block's orders arrive in, the price and every fill are the
    /// same; the price is the brute force's; no buyer pays above its limit; the market
    /// keeps nothing, the sockets hold exactly what buyers paid, and no wei is made or
    /// lost.
    #[test]
    fn spot_clearing_is_order_independent_and_solvent(book in spot_book(), seed in any::<u64>()) {
        let (w, price, f) = run_block(&book);
        // The same book in a seeded shuffle. Keys count each owner's orders in its own
        // order, which a proposer cannot change, so that order is kept per owner.
        let mut shuffled: Vec<(usize, Spot)> = book.iter().copied().enumerate().collect();
        let mut r = seed;
        for i in (1..shuffled.len()).rev() {
            r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (r >> 33) as usize % (i + 1));
        }
        let owner = |o: &Spot| if o.0 { (true, o.1 % 2) } else { (false, o.1 % 9) };
        let mut per_owner: std::collections::BTreeMap<(bool, u8), Vec<Spot>> = Default::default();
        for o in &book { per_owner.entry(owner(o)).or_default().push(*o); }
        let mut next: std::collections::BTreeMap<(bool, u8), usize> = Default::default();
        let reordered: Vec<Spot> = shuffled.iter().map(|(_, o)| {
            let k = owner(o);
            let n = next.entry(k).or_default();
            *n += 1;
            per_owner[&k][*n - 1]
        }).collect();
        let (_, price2, f2) = run_block(&reordered);
        prop_assert_eq!(price2, price);
        prop_assert_eq!(&f2, &f);
        prop_assert_eq!(price.map(|p| p.to::<u64>()), brute_price(&book).map(|p| p.0));
        let start = world();
        prop_assert_eq!(w.h.supply(), start.h.supply());
        prop_assert_eq!(w.h.balance(MARKET_ADDRESS), U256::ZERO);
        let paid: u64 = f.iter().map(|x| x.2).sum::<u64>() * price.map(|p| p.to::<u64>()).unwrap_or(0);
        prop_assert_eq!(w.h.balance(SOCKETS_ADDRESS), start.h.balance(SOCKETS_ADDRESS) + U256::from(paid));
        for b in 0..9u8 {
            let a = addr(1 + b);
            let limit_bound: u64 = book.iter().filter(|o| !o.0 && o.1 % 9 == b).map(|o| o.2 * o.3).sum();
            let spent = FUNDS - w.h.balance(a).to::<u64>();
            prop_assert!(spent <= limit_bound, "a buyer paid above its limits");
            let units: u64 = f.iter().filter(|x| x.0 == a).map(|x| x.2).sum();
            prop_assert_eq!(spent, units * price.map(|p| p.to::<u64>()).unwrap_or(0));
        }
    }
}

#[test]
fn an_ask_whose_node_left_in_the_same_block_leaves_the_book_not_the_chain() {
    let mut w = world();
    w.bid(addr(1), 3, 10).unwrap();
    w.ask(0, 3, 5).unwrap();
    w.ask(1, 3, 8).unwrap();
    // Provider 0 deregisters its node after asking, in the same block.
    let (who, node) = w.nodes[0];
    let c = IRegistry::deregisterCall { nodeId: node };
    w.h.call(REGISTRY_ADDRESS, who, U256::ZERO, &c.abi_encode(), GAS)
        .expect("deregisters");
    let logs = w.end_block();
    let f = fills(&logs);
    assert!(
        f.iter().all(|x| x.node == w.nodes[1].1),
        "only the node still serving fills"
    );
    assert_eq!(cleared(&logs).expect("clears").price, U256::from(8));
}

/// Gas of one block's clearing by book size, against what its orders prepaid
/// (docs/PERFORMANCE.md; `cargo test -p emc-modules --lib spot_clearing_gas -- --nocapture`).
#[test]
fn spot_clearing_gas_stays_within_what_the_orders_prepaid() {
    for n in [10u64, 100, 1_000] {
        let mut w = world();
        // Half bids, half asks, prices crossing so about half the units trade, with
        // nine buyers and both providers.
        for i in 0..n {
            let o: Spot = if i % 2 == 0 {
                (false, (i / 2 % 9) as u8, 1 + i % 5, 10 + i % 7)
            } else {
                (true, (i / 2 % 2) as u8, 1 + i % 5, 7 + i % 7)
            };
            w.submit(o).expect("fits");
        }
        w.h.new_tx();
        w.h.logs.clear();
        let c = IMarket::clearBlockCall {};
        let call = crate::ModuleCall {
            caller: crate::SYSTEM_CALLER,
            value: U256::ZERO,
            input: &c.abi_encode(),
            is_static: false,
        };
        w.h.me = MARKET_ADDRESS;
        let t = std::time::Instant::now();
        let d = crate::dispatch(MARKET_ADDRESS, &mut w.h, &call, u64::MAX / 2).expect("module");
        let took = t.elapsed();
        d.out.expect("clears");
        let f = fills(&w.h.logs);
        let prepaid = n / 2 * spot::GAS_CLEAR_BID + n / 2 * spot::GAS_CLEAR_ASK;
        println!(
            "GAS clearing {n} spot orders: {} ({} a order, {} fills, {} sockets); prepaid {prepaid}; {took:?} on the in-memory host",
            d.gas_used,
            d.gas_used / n,
            f.len(),
            f.len()
        );
        assert!(
            d.gas_used <= prepaid,
            "the clearing cost {} but its orders prepaid {prepaid}",
            d.gas_used
        );
    }
}
