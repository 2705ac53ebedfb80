//! Resale of sockets: a fixed price and an English auction, the provider's EIP-2981
//! royalty and the burnt market fee paid to the wei, and listings whose seller no
//! longer holds the token refused cleanly.

use super::*;

impl World {
    /// A socket for `who`, bought on the spot market from provider 0.
    fn socket_for(&mut self, who: Address) -> U256 {
        self.bid(who, 2, 10).unwrap();
        self.ask(0, 2, 10).unwrap();
        let logs = self.end_block();
        fills(&logs)[0].tokenId
    }
    fn sockets(&mut self, from: Address, call: impl SolCall) -> Result<Bytes, String> {
        self.h
            .call(SOCKETS_ADDRESS, from, U256::ZERO, &call.abi_encode(), GAS)
    }
    fn approve_market(&mut self, from: Address, token: U256) {
        let c = ISockets::approveCall {
            approved: MARKET_ADDRESS,
            tokenId: token,
        };
        self.sockets(from, c).expect("approves");
    }
    fn list(
        &mut self,
        seller: Address,
        token: U256,
        price: u64,
        ends: u64,
    ) -> Result<Bytes, String> {
        let c = IMarket::listCall {
            tokenId: token,
            price: U256::from(price),
            ends,
        };
        self.send(seller, U256::ZERO, c)
    }
    fn buy_listing(&mut self, buyer: Address, id: U256, value: u64) -> Result<Bytes, String> {
        self.send(
            buyer,
            U256::from(value),
            IMarket::buyListingCall { listingId: id },
        )
    }
    fn owner(&mut self, token: U256) -> Address {
        self.socket(token).owner
    }
    fn royalty(&mut self, bps: u16) {
        let (who, node) = self.nodes[0];
        self.sockets(who, ISockets::setRoyaltyCall { node, bps })
            .expect("sets");
    }
}

fn listed(out: Result<Bytes, String>) -> U256 {
    U256::abi_decode(&out.expect("listed")).expect("id")
}

#[test]
fn a_fixed_price_resale_pays_royalty_fee_and_seller_to_the_wei() {
    let mut w = world();
    let token = w.socket_for(addr(1));
    w.royalty(500);
    let ends = w.h.timestamp + 1_000;
    // Not approved yet: refused, with what to do.
    let e = w.list(addr(1), token, 10_000, ends).unwrap_err();
    assert!(e.contains("approve the Market"), "{e}");
    let e = w.list(addr(2), token, 10_000, ends).unwrap_err();
    assert!(e.contains("does not hold socket"), "{e}");
    w.approve_market(addr(1), token);
    let id = listed(w.list(addr(1), token, 10_000, ends));
    let e = w.buy_listing(addr(2), id, 9_999).unwrap_err();
    assert!(e.contains("send exactly 10000 wei"), "{e}");
    let before = (
        w.h.balance(addr(1)),
        w.h.balance(addr(2)),
        w.h.balance(w.nodes[0].0),
        w.h.supply(),
    );
    w.buy_listing(addr(2), id, 10_000).expect("buys");
    assert_eq!(w.owner(token), addr(2));
    // 5% royalty to the node's owner, 1% fee burnt, 94% to the seller.
    assert_eq!(w.h.balance(addr(2)), before.1 - U256::from(10_000));
    assert_eq!(w.h.balance(w.nodes[0].0), before.2 + U256::from(500));
    assert_eq!(w.h.balance(addr(1)), before.0 + U256::from(9_400));
    assert_eq!(w.h.supply(), before.3 - U256::from(100));
    assert_eq!(w.h.balance(MARKET_ADDRESS), U256::ZERO);
    let e = w.buy_listing(addr(3), id, 10_000).unwrap_err();
    assert!(e.contains("is closed"), "{e}");
}

#[test]
fn a_listing_whose_seller_moved_the_token_fails_cleanly_until_it_comes_back() {
    let mut w = world();
    let token = w.socket_for(addr(1));
    w.sockets(
        addr(1),
        ISockets::setApprovalForAllCall {
            operator: MARKET_ADDRESS,
            approved: true,
        },
    )
    .unwrap();
    let ends = w.h.timestamp + 1_000;
    let id = listed(w.list(addr(1), token, 500, ends));
    let away = ISockets::transferFromCall {
        from: addr(1),
        to: addr(4),
        tokenId: token,
    };
    w.sockets(addr(1), away).unwrap();
    let before = w.h.balance(addr(2));
    let e = w.buy_listing(addr(2), id, 500).unwrap_err();
    assert!(e.contains("the seller no longer holds socket"), "{e}");
    assert_eq!((w.h.balance(addr(2)), w.owner(token)), (before, addr(4)));
    let back = ISockets::transferFromCall {
        from: addr(4),
        to: addr(1),
        tokenId: token,
    };
    w.sockets(addr(4), back).unwrap();
    w.buy_listing(addr(2), id, 500).expect("valid again");
    assert_eq!(w.owner(token), addr(2));
}

#[test]
fn an_english_auction_refunds_the_outbid_extends_against_snipes_and_settles() {
    let mut w = world();
    let token = w.socket_for(addr(1));
    w.royalty(1_000);
    w.approve_market(addr(1), token);
    let ends = w.h.timestamp + 3_600;
    let id = listed(w.send(
        addr(1),
        U256::ZERO,
        IMarket::auctionCall {
            tokenId: token,
            reservePrice: U256::from(1_000),
            ends,
        },
    ));
    let bid = |w: &mut World, who: u8, v: u64| {
        w.send(
            addr(who),
            U256::from(v),
            IMarket::bidAuctionCall { listingId: id },
        )
    };
    assert!(bid(&mut w, 2, 999)
        .unwrap_err()
        .contains("at least 1000 wei"));
    assert!(bid(&mut w, 1, 1_000)
        .unwrap_err()
        .contains("cannot bid on its own"));
    bid(&mut w, 2, 1_000).expect("meets the reserve");
    // A raise must beat the last by 1%.
    assert!(bid(&mut w, 3, 1_009)
        .unwrap_err()
        .contains("at least 1010 wei"));
    let b2 = w.h.balance(addr(2));
    bid(&mut w, 3, 1_010).expect("outbids");
    assert_eq!(
        w.h.balance(addr(2)),
        b2 + U256::from(1_000),
        "the outbid get theirs back at once"
    );
    // In an hour's auction, a bid in the last five minutes moves the end to five
    // minutes after it (a short auction's stretch is a tenth of its length).
    w.h.timestamp = ends - 10;
    bid(&mut w, 2, 2_000).expect("late bid");
    let info = |w: &mut World| {
        let out = w
            .send(
                addr(9),
                U256::ZERO,
                IMarket::listingInfoCall { listingId: id },
            )
            .unwrap();
        IMarket::listingInfoCall::abi_decode_returns(&out).unwrap()
    };
    assert_eq!(info(&mut w).ends, ends - 10 + super::super::resale::EXTEND);
    w.h.timestamp = ends + 1;
    let e = w
        .send(
            addr(9),
            U256::ZERO,
            IMarket::settleAuctionCall { listingId: id },
        )
        .unwrap_err();
    assert!(e.contains("runs until"), "{e}");
    assert!(w
        .send(
            addr(1),
            U256::ZERO,
            IMarket::cancelListingCall { listingId: id }
        )
        .unwrap_err()
        .contains("has a bid"));
    w.h.timestamp = ends - 10 + super::super::resale::EXTEND;
    let (seller, provider, supply) = (
        w.h.balance(addr(1)),
        w.h.balance(w.nodes[0].0),
        w.h.supply(),
    );
    w.send(
        addr(9),
        U256::ZERO,
        IMarket::settleAuctionCall { listingId: id },
    )
    .expect("anyone settles");
    assert_eq!(w.owner(token), addr(2));
    assert_eq!(w.h.balance(w.nodes[0].0), provider + U256::from(200));
    assert_eq!(w.h.balance(addr(1)), seller + U256::from(2_000 - 200 - 20));
    assert_eq!(w.h.supply(), supply - U256::from(20));
    assert_eq!(w.h.balance(MARKET_ADDRESS), U256::ZERO);
    assert_eq!(info(&mut w).state, 1);
}
