//! Calls paid from a socket, settled: real secp256k1 keys sign socket grants, a real
//! ed25519 node key signs results; what each receipt pays, and every reason to refuse.

use super::*;
use crate::sockets::settle::{socket_grant_message, units_used};
use crate::tasks::{self, ITasks};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use emc_protocol::{Metering, NodeId, ResultClaim, SignedResult};

const ROUTER: Address = Address::repeat_byte(0x0f);

struct Settling {
    w: World,
    holder: PrivateKeySigner,
    node_key: ed25519_consensus::SigningKey,
    socket: U256,
    call: u8,
}

fn settling(units: u64) -> Settling {
    let mut w = world();
    let holder = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x21)).unwrap();
    w.h.balances
        .insert(holder.address(), U256::from(10u64.pow(12)));
    let offer = w.offer(1_000);
    let socket = w.buy(holder.address(), offer, units).unwrap();
    Settling {
        w,
        holder,
        node_key: ed25519_consensus::SigningKey::from([7u8; 32]),
        socket,
        call: 0,
    }
}

impl Settling {
    fn receipt(&mut self, signer: &PrivateKeySigner, app: &str) -> ISockets::Receipt {
        self.call += 1;
        let grant = ITasks::Grant {
            chainId: 42,
            router: ROUTER,
            nonce: 1,
            expires: T0 + 10_000,
            limit: U256::MAX,
            request: B256::ZERO,
        };
        let sig = signer
            .sign_message_sync(socket_grant_message(&grant, self.socket).as_bytes())
            .unwrap();
        let claim = ResultClaim {
            request_hash: B256::repeat_byte(1),
            call: B256::repeat_byte(self.call),
            result_hash: B256::repeat_byte(3),
            node: NodeId(B256::from(self.node_key.verification_key().to_bytes())),
            metering: Metering {
                unit: emc_protocol::Unit::Call,
                units: 1,
                bytes: 10,
                wall_us: 500,
            },
            max_units: 1,
            extensions: vec![],
        };
        let signed = SignedResult::sign(&self.node_key, claim.clone());
        ITasks::Receipt {
            grant,
            grantSignature: sig.as_bytes().to_vec().into(),
            app: app.into(),
            requestHash: claim.request_hash,
            callId: claim.call,
            resultHash: claim.result_hash,
            nodeId: claim.node.0,
            unit: 0,
            units: 1,
            bytesOut: 10,
            wallUs: 500,
            maxUnits: 1,
            nodeSignature: signed.signature.to_vec().into(),
            maxCost: U256::from(PRICE),
        }
        .into()
    }

    fn reasons(&mut self, receipts: &[ISockets::Receipt]) -> Vec<String> {
        let c = ISockets::checkCall {
            router: ROUTER,
            sockets: vec![self.socket; receipts.len()],
            receipts: receipts.to_vec(),
        };
        ISockets::checkCall::abi_decode_returns(&self.w.ok(ROUTER, c)).unwrap()
    }

    fn settle(&mut self, receipts: Vec<ISockets::Receipt>) -> (U256, U256) {
        let c = ISockets::settleCall {
            sockets: vec![self.socket; receipts.len()],
            receipts,
        };
        let r = ISockets::settleCall::abi_decode_returns(&self.w.ok(ROUTER, c)).unwrap();
        (r.settled, r.charged)
    }
}

#[test]
fn a_settled_call_takes_its_credits_and_pays_the_node_owner_and_the_router() {
    let mut s = settling(3);
    let holder = s.holder.clone();
    let (provider, module) = (s.w.provider, SOCKETS_ADDRESS);
    let before = (
        s.w.h.balance(provider),
        s.w.h.balance(ROUTER),
        s.w.h.balance(module),
    );
    let batch = vec![s.receipt(&holder, "echo"), s.receipt(&holder, "echo")];
    assert_eq!(s.reasons(&batch), vec![String::new(), String::new()]);
    let (settled, charged) = s.settle(batch.clone());
    assert_eq!((settled, charged), (U256::from(2), U256::from(2 * PRICE)));
    assert_eq!(s.w.info(s.socket).credits, 1);
    let fee = U256::from(2 * PRICE * tasks::ROUTER_FEE_BPS / 10_000);
    assert_eq!(
        s.w.h.balance(provider),
        before.0 + U256::from(2 * PRICE) - fee
    );
    assert_eq!(s.w.h.balance(ROUTER), before.1 + fee);
    assert_eq!(s.w.h.balance(module), before.2 - U256::from(2 * PRICE));
    // Nothing is paid twice.
    assert_eq!(s.reasons(&batch[..1]), vec!["already settled".to_string()]);
    assert_eq!(s.settle(batch).0, U256::ZERO);
}

#[test]
fn receipts_are_refused_for_every_reason_a_holder_would_expect() {
    let mut s = settling(1);
    let holder = s.holder.clone();
    let stranger = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x22)).unwrap();
    let r = s.receipt(&stranger, "echo");
    assert!(s.reasons(&[r])[0].contains("does not hold socket"));
    let r = s.receipt(&holder, "chat");
    assert!(s.reasons(&[r])[0].contains("is for echo"));
    // Two calls on one credit: the second is refused.
    let (a, b) = (s.receipt(&holder, "echo"), s.receipt(&holder, "echo"));
    let reasons = s.reasons(&[a, b]);
    assert_eq!(reasons[0], "");
    assert!(reasons[1].contains("has 0 credits"), "{reasons:?}");
    // While a user is set, the owner's key does not pay.
    let renter = addr(3);
    let c = ISockets::setUserCall {
        tokenId: s.socket,
        user: renter,
        expires: T0 + 100,
    };
    s.w.ok(holder.address(), c);
    let r = s.receipt(&holder, "echo");
    assert!(s.reasons(&[r])[0].contains("does not hold socket"));
    // After the socket's end and the settle window, nothing settles.
    s.w.h.timestamp = T0 + 1_000 + economy::SETTLE_WINDOW + 1;
    let c = ISockets::setUserCall {
        tokenId: s.socket,
        user: Address::ZERO,
        expires: 0,
    };
    s.w.ok(holder.address(), c);
    let r = s.receipt(&holder, "echo");
    assert!(s.reasons(&[r])[0].contains("ended at"), "ended");
}

#[test]
fn units_follow_the_sockets_unit() {
    assert_eq!(units_used(Unit::Call, 2, 500, 9, 10), Ok(1));
    assert_eq!(units_used(Unit::Tokens, 2, 37, 9, 100), Ok(37));
    assert!(units_used(Unit::Tokens, 0, 1, 9, 100).is_err());
    assert_eq!(units_used(Unit::Seconds, 0, 1, 2_500_000, 100), Ok(3));
    assert_eq!(units_used(Unit::Seconds, 0, 1, 10, 100), Ok(1));
    assert_eq!(units_used(Unit::Seconds, 0, 1, 900_000_000, 100), Ok(100));
}

#[test]
fn a_batch_costs_its_signatures_flag_and_log_per_receipt() {
    let mut s = settling(200);
    let holder = s.holder.clone();
    let gas = |s: &mut Settling, n: usize| {
        let receipts: Vec<_> = (0..n).map(|_| s.receipt(&holder, "echo")).collect();
        let c = ISockets::settleCall {
            sockets: vec![s.socket; n],
            receipts,
        };
        s.w.h.new_tx();
        s.w.h.me = SOCKETS_ADDRESS;
        let call = crate::ModuleCall {
            caller: ROUTER,
            value: U256::ZERO,
            input: &c.abi_encode(),
            is_static: false,
        };
        let d = crate::dispatch(SOCKETS_ADDRESS, &mut s.w.h, &call, GAS).expect("module");
        d.out.expect("settles");
        d.gas_used
    };
    let one = gas(&mut s, 1);
    let hundred = gas(&mut s, 100);
    let per_receipt = (hundred - one) / 99;
    println!(
        "GAS per socket-metered receipt in a batch of 100: {per_receipt} (a batch of one: {one})"
    );
    // Two signature checks (6,000), the settled flag (read 2,100, write 20,000), the
    // `Settled` log (2,643) and the warm reads of the socket's fields: the credits,
    // the key's spending and the payments are written once per batch.
    assert!(per_receipt < 33_000, "{per_receipt} gas per receipt");
    assert_eq!(s.w.info(s.socket).credits, 200 - 101);
}

/// A Sign-In with Ethereum message from `holder` giving `session` socket `id`.
fn socket_session(
    s: &mut Settling,
    holder: &PrivateKeySigner,
    session: Address,
    id: U256,
    nonce: &str,
) {
    use crate::sessions::ISessions;
    let now = s.w.h.timestamp;
    let m = emc_identity::siwe::message(
        "gateway.example",
        holder.address(),
        session,
        42,
        nonce,
        now - 1,
        now + 3_600,
        &emc_identity::siwe::Target::Socket { id },
        &[],
    );
    let sig = holder.sign_message_sync(m.as_bytes()).unwrap();
    let c = ISessions::openCall {
        message: m,
        signature: sig.as_bytes().to_vec().into(),
    };
    s.w.h
        .call(
            crate::SESSIONS_ADDRESS,
            ROUTER,
            U256::ZERO,
            &c.abi_encode(),
            10_000_000,
        )
        .expect("the session opens");
    s.w.h.me = SOCKETS_ADDRESS;
}

#[test]
fn a_session_key_the_holder_signed_in_pays_from_that_socket_only_while_the_holder_holds_it() {
    let mut s = settling(3);
    let holder = s.holder.clone();
    let (session, other) = (
        PrivateKeySigner::from_bytes(&B256::repeat_byte(0x31)).unwrap(),
        PrivateKeySigner::from_bytes(&B256::repeat_byte(0x32)).unwrap(),
    );
    let id = s.socket;
    socket_session(&mut s, &holder, session.address(), id, "nonce0000011");
    socket_session(
        &mut s,
        &holder,
        other.address(),
        id + U256::from(1),
        "nonce0000012",
    );
    let r = s.receipt(&session, "echo");
    assert_eq!(s.reasons(std::slice::from_ref(&r)), vec![String::new()]);
    // A session for another socket does not pay for this one.
    let wrong = s.receipt(&other, "echo");
    assert!(s.reasons(&[wrong])[0].contains("does not hold socket"));
    assert_eq!(s.settle(vec![r]).0, U256::from(1));
    // Once the socket moves to someone else, the old holder's session pays nothing.
    let c = ISockets::transferFromCall {
        from: holder.address(),
        to: addr(9),
        tokenId: id,
    };
    s.w.ok(holder.address(), c);
    let late = s.receipt(&session, "echo");
    assert!(s.reasons(&[late])[0].contains("does not hold socket"));
}
