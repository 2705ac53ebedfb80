//! The Tasks module driven as transactions would drive it: deposits, receipts signed
//! by real secp256k1 and ed25519 keys, and every reason to refuse one.

use super::*;
use crate::registry::{registration_message, IRegistry};
use crate::testing::MemHost;
use crate::{REGISTRY_ADDRESS, TASKS_ADDRESS};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolEvent;

const GAS: u64 = 50_000_000;
const PRICE: u64 = 5;

pub(crate) struct World {
    pub(crate) h: MemHost,
    /// Who signs grants (a test may swap in a session key).
    pub(crate) client: PrivateKeySigner,
    node: ed25519_consensus::SigningKey,
    pub(crate) owner: Address,
    router: Address,
}

pub(crate) fn world() -> World {
    let mut h = MemHost::new(TASKS_ADDRESS);
    let client = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).expect("key");
    let node = ed25519_consensus::SigningKey::from([9u8; 32]);
    let (owner, router) = (Address::repeat_byte(0x0e), Address::repeat_byte(0x0f));
    let id = B256::from(node.verification_key().to_bytes());
    let reg = IRegistry::registerCall {
        nodeId: id,
        nodeSignature: node
            .sign(&registration_message(42, owner, id))
            .to_bytes()
            .to_vec()
            .into(),
        apps: vec!["embed".into()],
        prices: vec![U256::from(PRICE)],
        hardware: String::new(),
    };
    h.call(REGISTRY_ADDRESS, owner, U256::ZERO, &reg.abi_encode(), GAS)
        .expect("registers");
    h.balances.insert(client.address(), U256::from(10_000));
    World {
        h,
        client,
        node,
        owner,
        router,
    }
}

impl World {
    pub(crate) fn tasks(
        &mut self,
        from: Address,
        value: u64,
        input: Vec<u8>,
    ) -> Result<Bytes, String> {
        self.h
            .call(TASKS_ADDRESS, from, U256::from(value), &input, GAS)
    }

    pub(crate) fn grant(&self, limit: u64, request: B256) -> ITasks::Grant {
        ITasks::Grant {
            chainId: 42,
            router: Address::ZERO,
            nonce: 1,
            expires: self.h.timestamp + 600,
            limit: U256::from(limit),
            request,
        }
    }

    pub(crate) fn receipt(&self, g: ITasks::Grant, call: u8, units: u64) -> ITasks::Receipt {
        let sig = self
            .client
            .sign_message_sync(grant_message(&g).as_bytes())
            .expect("signs");
        let mut r = ITasks::Receipt {
            grant: g,
            grantSignature: sig.as_bytes().to_vec().into(),
            app: "embed".into(),
            requestHash: B256::repeat_byte(0xaa),
            callId: B256::repeat_byte(call),
            resultHash: B256::repeat_byte(0xbb),
            nodeId: B256::from(self.node.verification_key().to_bytes()),
            unit: 2,
            units,
            bytesOut: 100,
            wallUs: 1_000,
            maxUnits: units,
            nodeSignature: Bytes::new(),
            maxCost: total(units, U256::from(PRICE)),
        };
        r.nodeSignature = self
            .node
            .sign(&claim_of(&r).expect("a known unit").signing_bytes())
            .to_bytes()
            .to_vec()
            .into();
        r
    }

    /// Signs `r`'s claim again as the node (after a test changed a signed field).
    fn resign(&self, mut r: ITasks::Receipt) -> ITasks::Receipt {
        r.nodeSignature = self
            .node
            .sign(&claim_of(&r).expect("a known unit").signing_bytes())
            .to_bytes()
            .to_vec()
            .into();
        r
    }

    /// What `check` says of `receipts`: a reason per receipt, "" for one that settles.
    fn check(&mut self, receipts: Vec<ITasks::Receipt>) -> Vec<String> {
        let router = self.router;
        let input = ITasks::checkCall { router, receipts }.abi_encode();
        self.h.me = TASKS_ADDRESS;
        let c = crate::ModuleCall {
            caller: Address::ZERO,
            value: U256::ZERO,
            input: &input,
            is_static: true,
        };
        let d = crate::dispatch(TASKS_ADDRESS, &mut self.h, &c, GAS).expect("module");
        ITasks::checkCall::abi_decode_returns(&d.out.expect("a view")).expect("decodes")
    }

    /// Settles `receipts` and returns the reasons of the rejected ones.
    pub(crate) fn settle(&mut self, receipts: Vec<ITasks::Receipt>) -> Vec<String> {
        let before = self.h.logs.len();
        let router = self.router;
        self.tasks(router, 0, ITasks::settleCall { receipts }.abi_encode())
            .expect("settle itself succeeds");
        self.h.logs[before..]
            .iter()
            .filter_map(|(t, d)| ITasks::Rejected::decode_raw_log(t.clone(), d).ok())
            .map(|r| r.reason)
            .collect()
    }

    fn escrow(&mut self) -> (U256, U256) {
        let a = self.client.address();
        let out = self
            .tasks(a, 0, ITasks::escrowOfCall { account: a }.abi_encode())
            .expect("view");
        let r = ITasks::escrowOfCall::abi_decode_returns(&out).expect("decodes");
        (r.balance, r.pending)
    }
}

#[test]
fn a_receipt_pays_node_and_router_from_escrow_exactly_once() {
    let mut w = world();
    let client = w.client.address();
    w.tasks(client, 1_000, ITasks::depositCall {}.abi_encode())
        .expect("deposits");
    let supply = w.h.supply();
    let r = w.receipt(w.grant(500, B256::ZERO), 1, 10);
    assert_eq!(w.settle(vec![r.clone()]), Vec::<String>::new());
    // 10 tokens at 5 wei: 50 to the node's owner, 5% (2 wei) to the router.
    assert_eq!(w.h.balance(w.owner), U256::from(50));
    assert_eq!(w.h.balance(w.router), U256::from(2));
    assert_eq!(w.escrow().0, U256::from(948));
    assert_eq!(w.h.supply(), supply, "settlement moves value, creates none");
    // The same receipt again, alone or in a batch with a new one: only the new one pays.
    let r2 = w.receipt(w.grant(500, B256::ZERO), 2, 4);
    assert_eq!(w.settle(vec![r, r2]), vec!["already settled".to_string()]);
    assert_eq!(w.h.balance(w.owner), U256::from(70));
    assert_eq!(w.h.balance(w.router), U256::from(3));
    assert_eq!(w.escrow().0, U256::from(927));
}

#[test]
fn bad_receipts_are_rejected_with_reasons_and_charge_nothing() {
    let mut w = world();
    let client = w.client.address();
    w.tasks(client, 100, ITasks::depositCall {}.abi_encode())
        .expect("deposits");
    let mut tampered = w.receipt(w.grant(500, B256::ZERO), 1, 10);
    tampered.units = 1;
    let mut forged = w.receipt(w.grant(500, B256::ZERO), 2, 10);
    forged.grant.limit = U256::from(1_000_000);
    let mut expired = w.grant(500, B256::ZERO);
    expired.expires = w.h.timestamp - SETTLE_WINDOW - 1;
    let mut other_router = w.grant(500, B256::ZERO);
    other_router.router = Address::repeat_byte(0x99);
    let mut other_chain = w.grant(500, B256::ZERO);
    other_chain.chainId = 7;
    let mut unregistered = w.receipt(w.grant(500, B256::ZERO), 8, 1);
    unregistered.app = "chat".into();
    unregistered.nodeSignature = w
        .node
        .sign(
            &claim_of(&unregistered)
                .expect("a known unit")
                .signing_bytes(),
        )
        .to_bytes()
        .to_vec()
        .into();
    let reasons = w.settle(vec![
        tampered,
        w.receipt(expired, 3, 1),
        w.receipt(other_router, 4, 1),
        w.receipt(other_chain, 5, 1),
        w.receipt(w.grant(500, B256::repeat_byte(0x01)), 6, 1),
        w.receipt(w.grant(10, B256::ZERO), 7, 10),
        w.receipt(w.grant(50_000, B256::ZERO), 9, 1_000),
        unregistered,
    ]);
    let expect = [
        "the node did not sign this result",
        "the grant expired",
        "the grant names router",
        "the grant is for chain 7",
        "the grant pays for another request",
        "the grant's limit of 10 wei would be passed",
        "the escrow holds 100 wei, the call costs 5250",
        "the node is not registered for \"chat\"",
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
    for (got, want) in reasons.iter().zip(expect) {
        assert!(got.starts_with(want), "{got:?} should start with {want:?}");
    }
    // A grant whose fields were changed after signing recovers another account, which
    // has no escrow: it is refused too, for that reason.
    assert!(w.settle(vec![forged])[0].starts_with("the escrow holds 0 wei"));
    assert_eq!(w.escrow().0, U256::from(100));
    assert_eq!(w.h.balance(w.owner), U256::ZERO);
    assert_eq!(w.h.balance(w.router), U256::ZERO);
}

#[test]
fn nothing_is_charged_past_the_budget_the_node_signed_or_the_cost_the_router_reserved() {
    let mut w = world();
    let client = w.client.address();
    w.tasks(client, 1_000, ITasks::depositCall {}.abi_encode())
        .expect("deposits");
    // A node that meters past the budget it was sent with (and signs it).
    let mut greedy = w.receipt(w.grant(500, B256::ZERO), 1, 10);
    greedy.maxUnits = 8;
    let greedy = w.resign(greedy);
    // A receipt that would cost more than the router reserved: the node's price rose
    // after the call, or a router lied about the cap.
    let mut dear = w.receipt(w.grant(500, B256::ZERO), 2, 10);
    dear.maxCost = U256::from(51);
    let reasons = w.settle(vec![greedy, dear]);
    assert!(
        reasons[0].starts_with("the node metered 10 units, more than the call's budget of 8"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("the call costs 52 wei at the node's price, more than the 51"),
        "{reasons:?}"
    );
    assert_eq!(w.escrow().0, U256::from(1_000), "nothing charged");
}

#[test]
fn check_says_what_settle_would_refuse_and_writes_nothing() {
    let mut w = world();
    let client = w.client.address();
    w.tasks(client, 100, ITasks::depositCall {}.abi_encode())
        .expect("deposits");
    let ok = w.receipt(w.grant(500, B256::ZERO), 1, 10);
    // 100 wei of escrow: the first receipt (52) fits, a second of 52 no longer does.
    let second = w.receipt(w.grant(500, B256::ZERO), 2, 10);
    let reasons = w.check(vec![ok.clone(), second.clone(), ok.clone()]);
    assert_eq!(reasons[0], "");
    assert!(
        reasons[1].starts_with("the escrow holds 48 wei"),
        "{reasons:?}"
    );
    assert_eq!(reasons[2], "already settled", "a copy in the same batch");
    assert_eq!(w.escrow().0, U256::from(100), "a check writes nothing");
    // settle agrees with check, receipt by receipt.
    assert_eq!(w.settle(vec![ok.clone(), second]).len(), 1);
    assert_eq!(w.check(vec![ok]), vec!["already settled".to_string()]);
}

#[test]
fn units_within_a_budget_buy_exactly_what_it_pays_for() {
    let p = U256::from(PRICE);
    for budget in [0u64, 1, 5, 6, 52, 53, 1_049, 1_050, 1_051, 10_000] {
        let u = units_within(U256::from(budget), p);
        assert!(
            total(u, p) <= U256::from(budget),
            "{budget}: {u} units cost too much"
        );
        assert!(
            total(u + 1, p) > U256::from(budget),
            "{budget}: {u} is not the most"
        );
    }
    // A budget that is a whole number of units' cost buys exactly those units.
    let gwei = U256::from(1_000_000_000u64);
    assert_eq!(units_within(total(37, gwei), gwei), 37);
    assert_eq!(
        units_within(U256::from(1), U256::ZERO),
        u64::MAX,
        "free apps"
    );
    assert_eq!(units_within(U256::MAX, U256::from(1)), u64::MAX);
}

#[test]
fn a_one_request_grant_pays_for_its_request_only() {
    let mut w = world();
    let client = w.client.address();
    w.tasks(client, 100, ITasks::depositCall {}.abi_encode())
        .expect("deposits");
    let g = w.grant(60, B256::repeat_byte(0xaa));
    assert!(w.settle(vec![w.receipt(g.clone(), 1, 10)]).is_empty());
    // The limit is the per-request price cap: a second call under it is refused.
    let r = w.settle(vec![w.receipt(g, 2, 10)]);
    assert!(r[0].contains("limit of 60 wei"), "{r:?}");
}

#[test]
fn withdrawals_wait_and_settlement_can_still_draw_on_them() {
    let mut w = world();
    let client = w.client.address();
    w.tasks(client, 1_000, ITasks::depositCall {}.abi_encode())
        .expect("deposits");
    let e = w
        .tasks(
            client,
            0,
            ITasks::requestWithdrawCall {
                amount: U256::from(2_000),
            }
            .abi_encode(),
        )
        .expect_err("more than the balance");
    assert!(
        e.contains("cannot withdraw 2000 wei of a balance of 1000"),
        "{e}"
    );
    w.tasks(
        client,
        0,
        ITasks::requestWithdrawCall {
            amount: U256::from(1_000),
        }
        .abi_encode(),
    )
    .expect("requests");
    let e = w
        .tasks(client, 0, ITasks::withdrawCall {}.abi_encode())
        .expect_err("locked");
    assert!(e.contains("unlocks at block"), "{e}");
    // A call served before the request still settles, from the pending amount.
    assert!(w
        .settle(vec![w.receipt(w.grant(500, B256::ZERO), 1, 10)])
        .is_empty());
    assert_eq!(w.escrow(), (U256::ZERO, U256::from(948)));
    w.h.height += WITHDRAW_DELAY;
    let before = w.h.balance(client);
    w.tasks(client, 0, ITasks::withdrawCall {}.abi_encode())
        .expect("withdraws");
    assert_eq!(w.h.balance(client), before + U256::from(948));
    assert_eq!(w.escrow(), (U256::ZERO, U256::ZERO));
    let e = w
        .tasks(client, 5, ITasks::withdrawCall {}.abi_encode())
        .expect_err("payable");
    assert!(e.contains("only deposit is payable"), "{e}");
}

#[test]
fn a_batch_costs_little_more_than_its_signatures_and_flags_per_receipt() {
    let mut w = world();
    let client = w.client.address();
    w.tasks(client, 5_000, ITasks::depositCall {}.abi_encode())
        .expect("deposits");
    let gas = |w: &mut World, first: u8, n: u8| {
        let receipts: Vec<_> = (0..n)
            .map(|i| w.receipt(w.grant(5_000, B256::ZERO), first + i, 1))
            .collect();
        let input = ITasks::settleCall { receipts }.abi_encode();
        w.h.me = TASKS_ADDRESS;
        let c = crate::ModuleCall {
            caller: w.router,
            value: U256::ZERO,
            input: &input,
            is_static: false,
        };
        let d = crate::dispatch(TASKS_ADDRESS, &mut w.h, &c, GAS).expect("module");
        d.out.expect("settles");
        d.gas_used
    };
    let one = gas(&mut w, 0, 1);
    let hundred = gas(&mut w, 1, 100);
    let per_receipt = (hundred - one) / 99;
    println!("GAS tasks settle: {per_receipt} a receipt in a batch of 100, one signer");
    // Two signature checks (6,000), the settled flag (read 2,100, write 20,000) and the
    // `Settled` log (four topics and three words, 2,643): the escrow, the grant's
    // spending, the registry and the payments are per batch.
    assert!(per_receipt < 32_000, "{per_receipt} gas per receipt");
    assert_eq!(w.h.balance(w.owner), U256::from(101 * PRICE));
}
