//! The Sockets module driven as transactions would drive it, on the in-memory host:
//! minting, offers and purchases, ERC-721 transfers and approvals, rentals, renewal,
//! refunds, and a property test over random sequences of all of them.

use super::*;
use crate::testing::MemHost;
use alloy_primitives::B256;
use alloy_sol_types::SolValue;
use base64::Engine;
use proptest::prelude::*;

mod settle;

const GAS: u64 = 50_000_000;
const PRICE: u64 = 1_000;
const T0: u64 = 1_800_000_000;

struct World {
    h: MemHost,
    node: B256,
    provider: Address,
}

fn addr(i: u8) -> Address {
    Address::repeat_byte(i)
}

fn world() -> World {
    let mut h = MemHost::new(SOCKETS_ADDRESS);
    h.timestamp = T0;
    let provider = addr(0xe0);
    let node = h.register_node(7, provider, &["echo", "chat"]);
    for i in 1..=9 {
        h.balances.insert(addr(i), U256::from(10u64.pow(12)));
    }
    World { h, node, provider }
}

impl World {
    fn send(&mut self, from: Address, value: U256, call: impl SolCall) -> Result<Bytes, String> {
        self.h
            .call(SOCKETS_ADDRESS, from, value, &call.abi_encode(), GAS)
    }
    fn ok(&mut self, from: Address, call: impl SolCall) -> Bytes {
        self.send(from, U256::ZERO, call).expect("succeeds")
    }
    fn offer(&mut self, capacity: u64) -> U256 {
        let c = ISockets::offerCall {
            node: self.node,
            app: "echo".into(),
            appHash: B256::repeat_byte(0xaa),
            unit: 0,
            pricePerUnit: U256::from(PRICE),
            minUnits: 1,
            maxUnits: 1_000,
            validFor: 1_000,
            capacity,
            expires: T0 + 500,
            renewalPricePerSecond: U256::from(3),
        };
        let out = self.ok(self.provider, c);
        U256::abi_decode(&out).expect("id")
    }
    fn buy(&mut self, who: Address, offer: U256, units: u64) -> Result<U256, String> {
        let v = U256::from(units * PRICE);
        let out = self.send(
            who,
            v,
            ISockets::buyCall {
                offerId: offer,
                units,
            },
        )?;
        Ok(U256::abi_decode(&out).expect("id"))
    }
    fn info(&mut self, id: U256) -> ISockets::Socket {
        let out = self.ok(addr(1), ISockets::socketCall { tokenId: id });
        ISockets::socketCall::abi_decode_returns(&out).expect("socket")
    }
    fn owner(&mut self, id: U256) -> Address {
        Address::abi_decode(&self.ok(addr(1), ISockets::ownerOfCall { tokenId: id }))
            .expect("owner")
    }
    fn owned(&mut self, who: Address) -> Vec<U256> {
        let n =
            U256::abi_decode(&self.ok(addr(1), ISockets::balanceOfCall { owner: who })).unwrap();
        (0..n.to::<u64>())
            .map(|i| {
                let c = ISockets::tokenOfOwnerByIndexCall {
                    owner: who,
                    index: U256::from(i),
                };
                U256::abi_decode(&self.ok(addr(1), c)).unwrap()
            })
            .collect()
    }
    fn transfer(
        &mut self,
        by: Address,
        from: Address,
        to: Address,
        id: U256,
    ) -> Result<Bytes, String> {
        self.send(
            by,
            U256::ZERO,
            ISockets::transferFromCall {
                from,
                to,
                tokenId: id,
            },
        )
    }
}

#[test]
fn only_the_nodes_owner_mints_and_a_minted_socket_has_no_credits() {
    let mut w = world();
    let node = w.node;
    let mint = |to| ISockets::mintCall {
        to,
        node,
        app: "echo".into(),
        appHash: B256::ZERO,
        unit: 2,
        pricePerUnit: U256::from(PRICE),
        validFor: 3_600,
        renewalPricePerSecond: U256::ZERO,
    };
    let stranger = w.send(addr(1), U256::ZERO, mint(addr(1))).unwrap_err();
    assert!(stranger.contains("belongs to"), "{stranger}");
    let other_app = ISockets::mintCall {
        app: "sd".into(),
        ..mint(addr(1))
    };
    let e = w.send(w.provider, U256::ZERO, other_app).unwrap_err();
    assert!(e.contains("does not serve sd"), "{e}");
    let provider = w.provider;
    let id = U256::abi_decode(&w.ok(provider, mint(addr(1)))).unwrap();
    let s = w.info(id);
    assert_eq!(
        (s.owner, s.credits, s.escrow, s.unit),
        (addr(1), 0, U256::ZERO, 2)
    );
    assert_eq!(s.expires, T0 + 3_600);
    // Credits are bought at the socket's price, exactly.
    let fund = ISockets::fundCall {
        tokenId: id,
        units: 5,
    };
    let e = w
        .send(addr(2), U256::from(4 * PRICE), fund.clone())
        .unwrap_err();
    assert!(e.contains("send exactly 5000 wei"), "{e}");
    w.send(addr(2), U256::from(5 * PRICE), fund).expect("funds");
    assert_eq!(w.info(id).escrow, U256::from(5 * PRICE));
    assert_eq!(w.h.balance(SOCKETS_ADDRESS), U256::from(5 * PRICE));
}

#[test]
fn buying_from_an_offer_mints_a_backed_socket_until_the_offer_lapses() {
    let mut w = world();
    let offer = w.offer(100);
    let id = w.buy(addr(1), offer, 60).expect("buys");
    assert_eq!(w.owner(id), addr(1));
    let s = w.info(id);
    assert_eq!((s.credits, s.escrow), (60, U256::from(60 * PRICE)));
    assert_eq!(s.app, "echo");
    let e = w.buy(addr(2), offer, 41).unwrap_err();
    assert!(e.contains("40 units left"), "{e}");
    w.h.timestamp = T0 + 500;
    let e = w.buy(addr(2), offer, 10).unwrap_err();
    assert!(e.contains("lapsed"), "{e}");
    assert_eq!(w.h.balance(SOCKETS_ADDRESS), U256::from(60 * PRICE));
}

#[test]
fn transfers_follow_erc721_and_keep_the_enumerations() {
    let mut w = world();
    let offer = w.offer(1_000);
    let ids: Vec<U256> = (0..3).map(|_| w.buy(addr(1), offer, 1).unwrap()).collect();
    assert_eq!(w.owned(addr(1)), ids);
    // A stranger cannot move it; the owner can; an approved address can, once.
    assert!(w
        .transfer(addr(2), addr(1), addr(2), ids[0])
        .unwrap_err()
        .contains("neither the owner"));
    w.transfer(addr(1), addr(1), addr(2), ids[0])
        .expect("owner moves it");
    assert_eq!(w.owned(addr(1)), vec![ids[2], ids[1]]);
    assert_eq!(w.owned(addr(2)), vec![ids[0]]);
    w.ok(
        addr(1),
        ISockets::approveCall {
            approved: addr(3),
            tokenId: ids[1],
        },
    );
    w.transfer(addr(3), addr(1), addr(3), ids[1])
        .expect("approved moves it");
    let approved = w.ok(addr(1), ISockets::getApprovedCall { tokenId: ids[1] });
    assert_eq!(
        Address::abi_decode(&approved).unwrap(),
        Address::ZERO,
        "approval cleared"
    );
    // An operator moves any of the owner's sockets.
    w.ok(
        addr(1),
        ISockets::setApprovalForAllCall {
            operator: addr(4),
            approved: true,
        },
    );
    w.transfer(addr(4), addr(1), addr(5), ids[2])
        .expect("operator moves it");
    assert!(w.owned(addr(1)).is_empty());
    let e = w.transfer(addr(5), addr(1), addr(6), ids[2]).unwrap_err();
    assert!(e.contains("does not own"), "{e}");
    // ERC-165 and the enumeration of all sockets.
    for id in INTERFACES {
        let c = ISockets::supportsInterfaceCall {
            interfaceId: id.into(),
        };
        assert!(bool::abi_decode(&w.ok(addr(1), c)).unwrap());
    }
    let c = ISockets::supportsInterfaceCall {
        interfaceId: [0xff; 4].into(),
    };
    assert!(!bool::abi_decode(&w.ok(addr(1), c)).unwrap());
    let c = ISockets::tokenByIndexCall {
        index: U256::from(2),
    };
    assert_eq!(U256::abi_decode(&w.ok(addr(1), c)).unwrap(), ids[2]);
}

#[test]
fn erc165_ids_are_the_xor_of_their_selectors() {
    use ISockets::*;
    let x = |s: &[[u8; 4]]| {
        s.iter()
            .fold([0u8; 4], |a, b| std::array::from_fn(|i| a[i] ^ b[i]))
    };
    assert_eq!(
        x(&[
            setUserCall::SELECTOR,
            userOfCall::SELECTOR,
            userExpiresCall::SELECTOR
        ]),
        INTERFACES[4]
    );
    assert_eq!(
        x(&[
            renewSubscriptionCall::SELECTOR,
            cancelSubscriptionCall::SELECTOR,
            expiresAtCall::SELECTOR,
            isRenewableCall::SELECTOR
        ]),
        INTERFACES[5]
    );
    assert_eq!(
        x(&[
            nameCall::SELECTOR,
            symbolCall::SELECTOR,
            tokenURICall::SELECTOR
        ]),
        INTERFACES[2]
    );
    assert_eq!(
        x(&[
            totalSupplyCall::SELECTOR,
            tokenByIndexCall::SELECTOR,
            tokenOfOwnerByIndexCall::SELECTOR
        ]),
        INTERFACES[3]
    );
    assert_eq!(x(&[royaltyInfoCall::SELECTOR]), INTERFACES[6], "ERC-2981");
}

#[test]
fn safe_transfer_asks_the_trampoline_to_call_on_erc721_received() {
    let mut w = world();
    let offer = w.offer(10);
    let id = w.buy(addr(1), offer, 1).unwrap();
    let c = ISockets::safeTransferFrom_0Call {
        from: addr(1),
        to: addr(9),
        tokenId: id,
        data: Bytes::from_static(b"hi"),
    };
    w.ok(addr(1), c);
    let out = w.h.call_outs.last().expect("a call-out").clone();
    assert_eq!(out.target, addr(9));
    assert_eq!(out.expected, [0x15, 0x0b, 0x7a, 0x02]);
    let hook = IERC721Receiver::onERC721ReceivedCall::abi_decode(&out.data).expect("the hook");
    assert_eq!(
        (hook.operator, hook.from, hook.tokenId),
        (addr(1), addr(1), id)
    );
    assert_eq!(hook.data, Bytes::from_static(b"hi"));
}

#[test]
fn a_paid_rental_cannot_be_cut_short_survives_a_sale_and_pays_each_owner_its_share() {
    let mut w = world();
    let offer = w.offer(10);
    let id = w.buy(addr(1), offer, 5).unwrap();
    w.ok(
        addr(1),
        ISockets::listRentalCall {
            tokenId: id,
            pricePerSecond: U256::from(10),
            maxSeconds: 400,
        },
    );
    let e = w
        .send(
            addr(2),
            U256::from(999),
            ISockets::rentCall {
                tokenId: id,
                duration: 100,
            },
        )
        .unwrap_err();
    assert!(e.contains("send exactly 1000 wei"), "{e}");
    let before = (
        w.h.balance(addr(1)),
        w.h.balance(addr(2)),
        w.h.balance(addr(3)),
    );
    w.send(
        addr(2),
        U256::from(1_000),
        ISockets::rentCall {
            tokenId: id,
            duration: 100,
        },
    )
    .expect("rents");
    assert_eq!(w.info(id).user, addr(2));
    // The owner can neither replace the renter nor end the socket.
    let e = w
        .send(
            addr(1),
            U256::ZERO,
            ISockets::setUserCall {
                tokenId: id,
                user: addr(1),
                expires: 0,
            },
        )
        .unwrap_err();
    assert!(e.contains("paid rental"), "{e}");
    let e = w
        .send(
            addr(1),
            U256::ZERO,
            ISockets::cancelSubscriptionCall { tokenId: id },
        )
        .unwrap_err();
    assert!(e.contains("paid rental"), "{e}");
    // Sold 30 s in: the seller is paid for 30 s, the rental goes on.
    w.h.timestamp = T0 + 30;
    w.transfer(addr(1), addr(1), addr(3), id).expect("sells");
    assert_eq!(w.h.balance(addr(1)), before.0 + U256::from(300));
    let s = w.info(id);
    assert_eq!((s.owner, s.user, s.paidRental), (addr(3), addr(2), true));
    // After the rental the new owner has the rest; nothing is paid twice.
    w.h.timestamp = T0 + 150;
    w.ok(addr(7), ISockets::releaseRentCall { tokenId: id });
    w.ok(addr(7), ISockets::releaseRentCall { tokenId: id });
    assert_eq!(w.h.balance(addr(3)), before.2 + U256::from(700));
    assert_eq!(w.h.balance(addr(2)), before.1 - U256::from(1_000));
    assert_eq!(w.info(id).user, Address::ZERO);
    assert_eq!(w.h.balance(SOCKETS_ADDRESS), U256::from(5 * PRICE));
}

#[test]
fn a_free_user_is_the_owners_to_change_and_a_transfer_clears_it() {
    let mut w = world();
    let offer = w.offer(10);
    let id = w.buy(addr(1), offer, 1).unwrap();
    w.ok(
        addr(1),
        ISockets::setUserCall {
            tokenId: id,
            user: addr(2),
            expires: T0 + 100,
        },
    );
    w.ok(
        addr(1),
        ISockets::setUserCall {
            tokenId: id,
            user: addr(4),
            expires: T0 + 50,
        },
    );
    assert_eq!(w.info(id).user, addr(4));
    w.transfer(addr(1), addr(1), addr(3), id).unwrap();
    assert_eq!(w.info(id).user, Address::ZERO);
}

#[test]
fn renewal_pays_the_provider_and_refunds_open_after_the_settle_window() {
    let mut w = world();
    let offer = w.offer(10);
    let id = w.buy(addr(1), offer, 4).unwrap();
    let provider_before = w.h.balance(w.provider);
    w.send(
        addr(2),
        U256::from(300),
        ISockets::renewSubscriptionCall {
            tokenId: id,
            duration: 100,
        },
    )
    .expect("renews");
    assert_eq!(w.h.balance(w.provider), provider_before + U256::from(300));
    assert_eq!(w.info(id).expires, T0 + 1_100);
    // Sold, then it ends: the holder of record at the refund gets the escrow.
    w.transfer(addr(1), addr(1), addr(5), id).unwrap();
    w.h.timestamp = T0 + 1_100;
    let fund = ISockets::fundCall {
        tokenId: id,
        units: 1,
    };
    let e = w.send(addr(5), U256::from(PRICE), fund).unwrap_err();
    assert!(e.contains("expired"), "{e}");
    let e = w
        .send(addr(9), U256::ZERO, ISockets::refundCall { tokenId: id })
        .unwrap_err();
    assert!(e.contains("refund opens at"), "{e}");
    w.h.timestamp = T0 + 1_100 + economy::SETTLE_WINDOW;
    let holder = w.h.balance(addr(5));
    w.ok(addr(9), ISockets::refundCall { tokenId: id });
    assert_eq!(w.h.balance(addr(5)), holder + U256::from(4 * PRICE));
    let e = w
        .send(addr(9), U256::ZERO, ISockets::refundCall { tokenId: id })
        .unwrap_err();
    assert!(e.contains("no unused credits"), "{e}");
    assert_eq!(w.h.balance(SOCKETS_ADDRESS), U256::ZERO);
}

#[test]
fn token_uri_is_an_on_chain_json_document() {
    let mut w = world();
    let offer = w.offer(10);
    let id = w.buy(addr(1), offer, 7).unwrap();
    let out = w.ok(addr(1), ISockets::tokenURICall { tokenId: id });
    let uri = String::abi_decode(&out).unwrap();
    let b64 = uri
        .strip_prefix("data:application/json;base64,")
        .expect("a data URI");
    let doc: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["name"], "EMC socket #1");
    let attr = |t: &str| {
        doc["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["trait_type"] == t)
            .map(|a| a["value"].clone())
    };
    assert_eq!(attr("app"), Some(serde_json::json!("echo")));
    assert_eq!(attr("credits left"), Some(serde_json::json!(7)));
    assert_eq!(attr("unit"), Some(serde_json::json!("calls")));
    assert_eq!(
        attr("provider"),
        Some(serde_json::json!(w.node.to_string()))
    );
    assert_eq!(attr("expires"), Some(serde_json::json!(T0 + 1_000)));
}

/// One step of a random history.
#[derive(Clone, Debug)]
enum Step {
    Buy(u8, u64),
    Transfer(u8, u8),
    Rent(u8, u8, u64),
    Renew(u8, u64),
    Wait(u64),
    Refund(u8),
    Release(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        // Few holders and many buys, so lists grow past their first word.
        3 => (1..4u8, 1..50u64).prop_map(|(a, u)| Step::Buy(a, u)),
        2 => (0..64u8, 1..4u8).prop_map(|(t, a)| Step::Transfer(t, a)),
        1 => (0..8u8, 1..6u8, 1..300u64).prop_map(|(t, a, d)| Step::Rent(t, a, d)),
        1 => (0..8u8, 1..500u64).prop_map(|(t, d)| Step::Renew(t, d)),
        1 => (1..2_000u64).prop_map(Step::Wait),
        1 => (0..8u8).prop_map(Step::Refund),
        1 => (0..8u8).prop_map(Step::Release),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    /// Across random histories, supply, enumerations and balances agree, the module
    /// holds exactly the unused credits' escrow plus unreleased rent, and no wei is
    /// created or lost.
    #[test]
    fn histories_keep_supply_enumerations_and_escrow_consistent(steps in prop::collection::vec(step(), 1..90)) {
        let mut w = world();
        let offer = {
            let c = ISockets::offerCall {
                node: w.node, app: "echo".into(), appHash: B256::ZERO, unit: 0,
                pricePerUnit: U256::from(PRICE), minUnits: 1, maxUnits: 1_000, validFor: 1_000,
                capacity: 1_000_000, expires: u64::MAX / 2, renewalPricePerSecond: U256::from(2),
            };
            U256::abi_decode(&w.ok(w.provider, c)).unwrap()
        };
        let supply = w.h.supply();
        let mut minted: Vec<U256> = Vec::new();
        let pick = |minted: &Vec<U256>, t: u8| minted.get(t as usize % minted.len().max(1)).copied();
        for s in steps {
            match s {
                Step::Buy(a, u) => { if let Ok(id) = w.buy(addr(a), offer, u) { minted.push(id) } }
                Step::Transfer(t, a) => if let Some(id) = pick(&minted, t) {
                    let o = w.owner(id);
                    let moved = w.transfer(o, o, addr(a), id);
                    prop_assert!(moved.is_ok(), "the owner's transfer of {} failed: {:?}", id, moved);
                },
                Step::Rent(t, a, d) => if let Some(id) = pick(&minted, t) {
                    let o = w.owner(id);
                    let _ = w.send(o, U256::ZERO, ISockets::listRentalCall { tokenId: id, pricePerSecond: U256::from(3), maxSeconds: 300 });
                    let _ = w.send(addr(a), U256::from(3 * d), ISockets::rentCall { tokenId: id, duration: d });
                },
                Step::Renew(t, d) => if let Some(id) = pick(&minted, t) {
                    let _ = w.send(addr(1), U256::from(2 * d), ISockets::renewSubscriptionCall { tokenId: id, duration: d });
                },
                Step::Wait(s) => w.h.timestamp += s,
                Step::Refund(t) => if let Some(id) = pick(&minted, t) {
                    let _ = w.send(addr(9), U256::ZERO, ISockets::refundCall { tokenId: id });
                },
                Step::Release(t) => if let Some(id) = pick(&minted, t) {
                    let _ = w.send(addr(9), U256::ZERO, ISockets::releaseRentCall { tokenId: id });
                },
            }
        }
        let total = U256::abi_decode(&w.ok(addr(1), ISockets::totalSupplyCall {})).unwrap();
        prop_assert_eq!(total, U256::from(minted.len()));
        let mut listed: Vec<U256> = (1..=9u8).flat_map(|a| w.owned(addr(a))).collect();
        listed.sort();
        prop_assert_eq!(&listed, &minted);
        // Past the list's first word, each token's holding records its exact position.
        for a in 1..=9u8 {
            for (p, id) in w.owned(addr(a)).into_iter().enumerate().skip(erc721::IN_FIRST_WORD as usize) {
                let h = w.h.storage.get(&(SOCKETS_ADDRESS, storage::HOLDINGS.slot(&id))).copied().unwrap_or_default();
                prop_assert_eq!(storage::Holding::decode(h).index, p as u64);
            }
        }
        let mut held = U256::ZERO;
        for id in &minted {
            let s = w.info(*id);
            prop_assert_eq!(s.escrow, U256::from(s.credits) * s.pricePerUnit);
            let paid: U256 = w.h.storage.get(&(SOCKETS_ADDRESS, storage::SOCKETS.field(id, storage::socket::RENT_PAID))).copied().unwrap_or_default();
            let released: U256 = w.h.storage.get(&(SOCKETS_ADDRESS, storage::SOCKETS.field(id, storage::socket::RENT_RELEASED))).copied().unwrap_or_default();
            held += s.escrow + paid - released;
        }
        prop_assert_eq!(w.h.balance(SOCKETS_ADDRESS), held);
        prop_assert_eq!(w.h.supply(), supply);
    }
}

#[test]
fn a_holder_of_many_keeps_a_dense_list_whichever_token_leaves() {
    let mut w = world();
    let offer = w.offer(1_000);
    // Three list words: seven ids beside the count, then eight, then four.
    let ids: Vec<U256> = (0..19).map(|_| w.buy(addr(1), offer, 1).unwrap()).collect();
    assert_eq!(w.owned(addr(1)), ids);
    let dense = |w: &mut World, n: usize| {
        let owned = w.owned(addr(1));
        assert_eq!(owned.len(), n);
        for (p, t) in owned.into_iter().enumerate() {
            let c = ISockets::tokenOfOwnerByIndexCall {
                owner: addr(1),
                index: U256::from(p),
            };
            assert_eq!(U256::abi_decode(&w.ok(addr(1), c)).unwrap(), t);
            assert_eq!(w.owner(t), addr(1));
        }
    };
    // The last (in the third word), one from the second word, then the first.
    let gone = [ids[18], ids[10], ids[0]];
    for (k, id) in gone.into_iter().enumerate() {
        w.transfer(addr(1), addr(1), addr(2), id).expect("moves");
        dense(&mut w, 18 - k);
        let mut held = w.owned(addr(1));
        held.sort();
        let mut want: Vec<U256> = ids.clone();
        want.retain(|i| !gone[..=k].contains(i));
        assert_eq!(held, want);
    }
    assert_eq!(w.owned(addr(2)), gone.to_vec());
    // ids[17] was moved into ids[10]'s place, past the first word: it leaves from there.
    w.transfer(addr(1), addr(1), addr(2), ids[17])
        .expect("moves from its new place");
    dense(&mut w, 15);
    // And every token can leave again, in any order.
    let mut rest = w.owned(addr(1));
    rest.reverse();
    rest.swap(0, 7);
    for id in rest {
        w.transfer(addr(1), addr(1), addr(3), id).expect("moves");
    }
    assert_eq!(w.owned(addr(1)), Vec::<U256>::new());
    assert_eq!(w.owned(addr(3)).len(), 15);
}
