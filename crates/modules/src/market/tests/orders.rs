//! Buyers' orders and providers' bids: the cheaper bid wins (then the higher E), the
//! lease is a socket at the winning price, every bond and deposit comes back or goes
//! where the rule says, and only two staked routers' reports take a bond.

use super::*;
use crate::kit::slots::{DoubleMapping, Mapping, Value};
use crate::staking::Role;
use crate::STAKING_ADDRESS;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;

const DEADLINE: u64 = 600;
const LEASE: u64 = 3_600;

impl World {
    fn order(&mut self, buyer: Address, units: u64, max: u64, min_score: u64) -> U256 {
        let c = IMarket::placeOrderCall {
            app: "echo".into(),
            unit: 0,
            units,
            maxPricePerUnit: U256::from(max),
            deadline: self.h.timestamp + DEADLINE,
            validFor: LEASE,
            minScore: U256::from(min_score),
            maxBids: 3,
        };
        let out = self
            .send(buyer, U256::from(units * max), c)
            .expect("an order");
        U256::abi_decode(&out).expect("id")
    }
    fn bond(&self, units: u64, price: u64) -> u64 {
        (units * price / 10).max(1)
    }
    fn bid_on(
        &mut self,
        order: U256,
        provider: usize,
        units: u64,
        price: u64,
    ) -> Result<U256, String> {
        let (who, node) = self.nodes[provider];
        let c = IMarket::bidCall {
            orderId: order,
            node,
            pricePerUnit: U256::from(price),
        };
        let bond = self.bond(units, price);
        self.h.balances.entry(who).or_insert(U256::from(FUNDS));
        let out = self.send(who, U256::from(bond), c)?;
        Ok(U256::abi_decode(&out).expect("id"))
    }
    fn score(&mut self, provider: usize, e: u64) {
        let slot = Mapping::<Address, U256>::at(120).slot(&self.nodes[provider].0);
        self.h
            .storage
            .insert((STAKING_ADDRESS, slot), U256::from(e));
    }
    fn stake_router(&mut self, a: Address) {
        let min = Value::<U256>::at(3).slot();
        self.h
            .storage
            .insert((STAKING_ADDRESS, min), U256::from(1_000));
        let slot = DoubleMapping::<Address, Role, U256>::at(110).slot(&a, &Role::Router);
        self.h
            .storage
            .insert((STAKING_ADDRESS, slot), U256::from(1_000));
    }
    fn info(&mut self, id: U256) -> IMarket::Order {
        let out = self.send(addr(1), U256::ZERO, IMarket::orderInfoCall { orderId: id });
        IMarket::orderInfoCall::abi_decode_returns(&out.expect("an order")).expect("decodes")
    }
    fn report(
        &self,
        router: &PrivateKeySigner,
        bid: U256,
        node: B256,
        at: u64,
    ) -> IMarket::FailureReport {
        let mut r = IMarket::FailureReport {
            bidId: bid,
            node,
            at,
            kind: 2,
            requestHash: B256::repeat_byte(0x77),
            signature: Bytes::new(),
        };
        let digest = super::super::orders::failure_message(42, &r);
        let sig = router.sign_message_sync(digest.as_slice()).expect("signs");
        r.signature = sig.as_bytes().to_vec().into();
        r
    }
}

fn provider_balance(w: &World, i: usize) -> U256 {
    w.h.balance(w.nodes[i].0)
}

#[test]
fn the_cheaper_bid_wins_by_rule_and_the_lease_is_a_socket_at_its_price() {
    let mut w = world();
    for i in 0..2 {
        w.h.balances.insert(w.nodes[i].0, U256::from(FUNDS));
    }
    w.score(0, 50);
    w.score(1, 90);
    let order = w.order(addr(1), 10, 100, 10);
    // Provider 1 has more E but asks more; provider 0 is cheaper and wins.
    let b1 = w.bid_on(order, 1, 10, 80).expect("bids");
    let b0 = w.bid_on(order, 0, 10, 60).expect("bids");
    let before = (w.h.balance(addr(1)), provider_balance(&w, 1));
    // Nobody picks: past the deadline's bucket, the end of a block awards it.
    w.h.timestamp += DEADLINE + 2 * super::super::orders::BUCKET;
    w.end_block();
    let o = w.info(order);
    assert_eq!((o.state, o.winner), (1, b0));
    let s = w.socket(o.tokenId);
    assert_eq!((s.owner, s.node, s.credits), (addr(1), w.nodes[0].1, 10));
    assert_eq!(
        (s.pricePerUnit, s.escrow),
        (U256::from(60), U256::from(600))
    );
    // The buyer got back its deposit less the winning price; the loser its bond.
    assert_eq!(w.h.balance(addr(1)), before.0 + U256::from(1_000 - 600));
    assert_eq!(
        provider_balance(&w, 1),
        before.1 + U256::from(w.bond(10, 80))
    );
    // The market holds the winner's bond and nothing else.
    assert_eq!(w.h.balance(MARKET_ADDRESS), U256::from(w.bond(10, 60)));
    let bid = |w: &mut World, id| {
        let out = w
            .send(addr(1), U256::ZERO, IMarket::bidInfoCall { bidId: id })
            .unwrap();
        IMarket::bidInfoCall::abi_decode_returns(&out).unwrap()
    };
    assert_eq!((bid(&mut w, b0).state, bid(&mut w, b1).state), (1, 2));
    let lease = w
        .send(
            addr(1),
            U256::ZERO,
            IMarket::leaseOfCall { tokenId: o.tokenId },
        )
        .unwrap();
    assert_eq!(
        U256::abi_decode(&lease).unwrap(),
        b0,
        "the socket names its lease"
    );
    // After the lease and its report window, the bond goes back to the winner.
    let e = w
        .send(addr(5), U256::ZERO, IMarket::releaseBondCall { bidId: b0 })
        .unwrap_err();
    assert!(e.contains("is held until"), "{e}");
    w.h.timestamp += LEASE + super::super::orders::REPORT_WINDOW + 1;
    let p0 = provider_balance(&w, 0);
    w.send(addr(5), U256::ZERO, IMarket::releaseBondCall { bidId: b0 })
        .expect("released");
    assert_eq!(provider_balance(&w, 0), p0 + U256::from(w.bond(10, 60)));
    assert_eq!(w.h.balance(MARKET_ADDRESS), U256::ZERO);
}

#[test]
fn at_one_price_the_higher_e_wins_and_the_buyer_may_accept_early() {
    let mut w = world();
    for i in 0..2 {
        w.h.balances.insert(w.nodes[i].0, U256::from(FUNDS));
    }
    w.score(0, 50);
    w.score(1, 90);
    let order = w.order(addr(2), 4, 100, 0);
    w.bid_on(order, 0, 4, 70).unwrap();
    let b1 = w.bid_on(order, 1, 4, 70).unwrap();
    let e = w
        .send(addr(3), U256::ZERO, IMarket::acceptCall { orderId: order })
        .unwrap_err();
    assert!(e.contains("is 0x0202"), "{e}");
    w.send(addr(2), U256::ZERO, IMarket::acceptCall { orderId: order })
        .expect("accepts");
    assert_eq!(w.info(order).winner, b1);
}

#[test]
fn an_order_no_one_bids_on_refunds_its_deposit() {
    let mut w = world();
    let before = w.h.balance(addr(3));
    let order = w.order(addr(3), 5, 20, 0);
    assert_eq!(w.h.balance(addr(3)), before - U256::from(100));
    let e = w
        .send(addr(4), U256::ZERO, IMarket::closeCall { orderId: order })
        .unwrap_err();
    assert!(e.contains("is open until"), "{e}");
    w.h.timestamp += DEADLINE;
    w.send(addr(4), U256::ZERO, IMarket::closeCall { orderId: order })
        .expect("anyone closes it");
    assert_eq!(w.info(order).state, 2);
    assert_eq!(w.h.balance(addr(3)), before);
    assert_eq!(w.h.balance(MARKET_ADDRESS), U256::ZERO);
}

#[test]
fn bad_orders_and_bids_are_refused_with_reasons_and_move_nothing() {
    let mut w = world();
    for i in 0..2 {
        w.h.balances.insert(w.nodes[i].0, U256::from(FUNDS));
    }
    let unfunded = IMarket::placeOrderCall {
        app: "echo".into(),
        unit: 0,
        units: 5,
        maxPricePerUnit: U256::from(20),
        deadline: w.h.timestamp + DEADLINE,
        validFor: LEASE,
        minScore: U256::ZERO,
        maxBids: 1,
    };
    let e = w
        .send(addr(1), U256::from(99), unfunded.clone())
        .unwrap_err();
    assert!(e.contains("send exactly 100 wei"), "{e}");
    let mut late = unfunded.clone();
    late.deadline = w.h.timestamp;
    let e = w.send(addr(1), U256::from(100), late).unwrap_err();
    assert!(e.contains("is not within the next"), "{e}");
    let order = U256::abi_decode(&w.send(addr(1), U256::from(100), unfunded).unwrap()).unwrap();
    let market = w.h.balance(MARKET_ADDRESS);
    // Above the order's maximum; the wrong bond; under the minimum E.
    let e = w.bid_on(order, 0, 5, 21).unwrap_err();
    assert!(e.contains("at most the order's 20 wei"), "{e}");
    let c = IMarket::bidCall {
        orderId: order,
        node: w.nodes[0].1,
        pricePerUnit: U256::from(10),
    };
    let e = w.send(w.nodes[0].0, U256::from(4), c).unwrap_err();
    assert!(e.contains("send exactly the bond, 5 wei"), "{e}");
    // Over the cap of one bid; a node twice.
    w.bid_on(order, 0, 5, 10).expect("the one bid");
    let e = w.bid_on(order, 1, 5, 9).unwrap_err();
    assert!(e.contains("takes at most 1 bids"), "{e}");
    // After the deadline.
    let order2 = w.order(addr(2), 5, 20, 0);
    w.bid_on(order2, 0, 5, 10).unwrap();
    let e = w.bid_on(order2, 0, 5, 9).unwrap_err();
    assert!(e.contains("has bid on order 2 already"), "{e}");
    let order3 = w.order(addr(2), 5, 20, 1_000);
    let e = w.bid_on(order3, 1, 5, 9).unwrap_err();
    assert!(e.contains("below the order's minimum 1000"), "{e}");
    w.h.timestamp += DEADLINE;
    let e = w.bid_on(order2, 1, 5, 9).unwrap_err();
    assert!(e.contains("bidding closed"), "{e}");
    // Held: one bond on each of two orders, and orders 2 and 3's deposits.
    assert_eq!(
        w.h.balance(MARKET_ADDRESS),
        market + U256::from(5 + 100 + 5 + 100)
    );
}

#[test]
fn two_staked_routers_take_a_failing_winners_bond_and_a_buyer_alone_cannot() {
    let mut w = world();
    w.h.balances.insert(w.nodes[0].0, U256::from(FUNDS));
    let order = w.order(addr(1), 10, 100, 0);
    let bid = w.bid_on(order, 0, 10, 50).unwrap();
    w.send(addr(1), U256::ZERO, IMarket::acceptCall { orderId: order })
        .unwrap();
    let node = w.nodes[0].1;
    let at = w.h.timestamp + 10;
    // The buyer signs reports itself, twice over with two keys: neither is a router.
    let buyer_keys = [PrivateKeySigner::random(), PrivateKeySigner::random()];
    let fake: Vec<_> = buyer_keys
        .iter()
        .map(|k| w.report(k, bid, node, at))
        .collect();
    let send = |w: &mut World, reports| {
        w.send(
            addr(1),
            U256::ZERO,
            IMarket::reportFailureCall {
                bidId: bid,
                reports,
            },
        )
    };
    let e = send(&mut w, fake).unwrap_err();
    assert!(e.contains("is not a staked router"), "{e}");
    // One staked router is not enough, however many times it reports.
    let routers = [PrivateKeySigner::random(), PrivateKeySigner::random()];
    for r in &routers {
        w.stake_router(r.address());
    }
    let one = vec![
        w.report(&routers[0], bid, node, at),
        w.report(&routers[0], bid, node, at + 1),
    ];
    let e = send(&mut w, one).unwrap_err();
    assert!(e.contains("from 2 staked routers, not 1"), "{e}");
    // A report from outside the lease does not count.
    let early = vec![
        w.report(&routers[0], bid, node, at - 100),
        w.report(&routers[1], bid, node, at),
    ];
    assert!(send(&mut w, early)
        .unwrap_err()
        .contains("outside the lease"));
    // Two routers: the bond goes to the buyer, and the node's record shows it.
    let before = w.h.balance(addr(1));
    let two = routers.iter().map(|r| w.report(r, bid, node, at)).collect();
    send(&mut w, two).expect("slashes");
    assert_eq!(w.h.balance(addr(1)), before + U256::from(w.bond(10, 50)));
    assert_eq!(w.h.balance(MARKET_ADDRESS), U256::ZERO);
    let e = w
        .send(addr(1), U256::ZERO, IMarket::releaseBondCall { bidId: bid })
        .unwrap_err();
    assert!(e.contains("holds no lease's bond"), "{e}");
}

/// One step of a random order flow.
#[derive(Clone, Debug)]
enum Step {
    Order(u8, u64, u64),
    Bid(u8, u8, u64),
    Accept(u8),
    Close(u8),
    Wait(u64),
    EndBlock,
    Release(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (1..6u8, 1..20u64, 5..50u64).prop_map(|(b, u, p)| Step::Order(b, u, p)),
        2 => (0..8u8, 0..2u8, 1..50u64).prop_map(|(o, p, price)| Step::Bid(o, p, price)),
        1 => (0..8u8).prop_map(Step::Accept),
        1 => (0..8u8).prop_map(Step::Close),
        1 => (1..400u64).prop_map(Step::Wait),
        1 => Just(Step::EndBlock),
        1 => (0..16u8).prop_map(Step::Release),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Across random order flow the market holds exactly what it owes (open orders'
    /// deposits, open bids' bonds, won bonds not yet released), no buyer pays above
    /// its maximum, and no wei is made or lost.
    #[test]
    fn order_flow_keeps_the_market_solvent(steps in prop::collection::vec(step(), 1..60)) {
        let mut w = world();
        for i in 0..2 {
            w.h.balances.insert(w.nodes[i].0, U256::from(FUNDS));
        }
        let supply = w.h.supply();
        let mut orders: Vec<(U256, Address, u64, u64)> = vec![];
        let mut bids: Vec<U256> = vec![];
        for s in steps {
            match s {
                Step::Order(b, u, p) => orders.push((w.order(addr(b), u, p, 0), addr(b), u, p)),
                Step::Bid(o, p, price) => if let Some(&(id, _, u, _)) = orders.get(o as usize % orders.len().max(1)) {
                    if let Ok(b) = w.bid_on(id, p as usize, u, price) { bids.push(b) }
                },
                Step::Accept(o) => if let Some(&(id, buyer, _, _)) = orders.get(o as usize % orders.len().max(1)) {
                    let _ = w.send(buyer, U256::ZERO, IMarket::acceptCall { orderId: id });
                },
                Step::Close(o) => if let Some(&(id, _, _, _)) = orders.get(o as usize % orders.len().max(1)) {
                    let _ = w.send(addr(9), U256::ZERO, IMarket::closeCall { orderId: id });
                },
                Step::Wait(s) => w.h.timestamp += s * 10,
                Step::EndBlock => { w.end_block(); }
                Step::Release(b) => if let Some(&id) = bids.get(b as usize % bids.len().max(1)) {
                    let _ = w.send(addr(9), U256::ZERO, IMarket::releaseBondCall { bidId: id });
                },
            }
        }
        let mut owed = U256::ZERO;
        for &(id, _, units, max) in &orders {
            let o = w.info(id);
            if o.state == 0 {
                owed += U256::from(units * max);
            }
            if o.state == 1 {
                // The lease's price never exceeds the order's maximum.
                let s = w.socket(o.tokenId);
                prop_assert!(s.pricePerUnit <= U256::from(max));
            }
        }
        for &b in &bids {
            let out = w.send(addr(1), U256::ZERO, IMarket::bidInfoCall { bidId: b }).unwrap();
            let bid = IMarket::bidInfoCall::abi_decode_returns(&out).unwrap();
            if bid.state == 0 || bid.state == 1 {
                owed += bid.bond;
            }
        }
        prop_assert_eq!(w.h.balance(MARKET_ADDRESS), owed);
        prop_assert_eq!(w.h.supply(), supply);
    }
}
