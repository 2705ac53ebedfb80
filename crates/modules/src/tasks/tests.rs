//! The Tasks module driven as transactions would drive it: deposits, receipts signed
//! by real secp256k1 and ed25519 keys, and every reason to refuse one.

use super::*;
use crate::registry::{registration_message, IRegistry};
use crate::testing::MemHost;
use crate::{REGISTRY_ADDRESS, TASKS_ADDRESS};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;

const GAS: u64 = 50_000_000;
const PRICE: u64 = 5;

struct World {
    h: MemHost,
    client: PrivateKeySigner,
    node: ed25519_consensus::SigningKey,
    owner: Address,
    router: Address,
}

fn world() -> World {
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
    fn tasks(&mut self, from: Address, value: u64, input: Vec<u8>) -> Result<Bytes, String> {
        self.h
            .call(TASKS_ADDRESS, from, U256::from(value), &input, GAS)
    }

    fn grant(&self, limit: u64, request: B256) -> ITasks::Grant {
        ITasks::Grant {
            chainId: 42,
            router: Address::ZERO,
            nonce: 1,
            expires: self.h.timestamp + 600,
            limit: U256::from(limit),
            request,
        }
    }

    fn receipt(&self, g: ITasks::Grant, call: u8, units: u64) -> ITasks::Receipt {
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
            nodeSignature: Bytes::new(),
        };
        r.nodeSignature = self
            .node
            .sign(&claim_signing_bytes(&r))
            .to_bytes()
            .to_vec()
            .into();
        r
    }

    /// Settles `receipts` and returns the reasons of the rejected ones.
    fn settle(&mut self, receipts: Vec<ITasks::Receipt>) -> Vec<String> {
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
        .sign(&claim_signing_bytes(&unregistered))
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
        let (out, used) = crate::dispatch(TASKS_ADDRESS, &mut w.h, &c, GAS).expect("module");
        out.expect("settles");
        used
    };
    let one = gas(&mut w, 0, 1);
    let hundred = gas(&mut w, 1, 100);
    let per_receipt = (hundred - one) / 99;
    // Two signature checks (6,000), the settled flag (read 2,100, write 20,000): the
    // escrow, the grant's spending, the registry and the payments are per batch.
    assert!(per_receipt < 30_000, "{per_receipt} gas per receipt");
    assert_eq!(w.h.balance(w.owner), U256::from(101 * PRICE));
}
