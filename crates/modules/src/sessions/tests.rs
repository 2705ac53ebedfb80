//! Sessions over the in-memory host: what opens, what is refused and why, and a
//! session key's grants settled by the Tasks module as its account's, within the
//! session's budget, apps and time.

use super::*;
use crate::tasks::tests::world;
use crate::tasks::ITasks;
use crate::testing::MemHost;
use crate::TASKS_ADDRESS;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use emc_identity::siwe::message;

const GAS: u64 = 10_000_000;

fn key(i: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(i)).expect("key")
}

/// A message from `account` delegating `limit` wei of escrow for `apps` to `session`.
fn escrow_message(
    h: &MemHost,
    account: Address,
    session: Address,
    nonce: &str,
    apps: &[&str],
    limit: u64,
) -> String {
    message(
        "gateway.example",
        account,
        session,
        h.chain_id,
        nonce,
        h.timestamp - 10,
        h.timestamp + 600,
        &Target::Escrow {
            limit: U256::from(limit),
        },
        &apps.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    )
}

fn sign(k: &PrivateKeySigner, m: &str) -> Bytes {
    k.sign_message_sync(m.as_bytes())
        .expect("signs")
        .as_bytes()
        .to_vec()
        .into()
}

fn open(h: &mut MemHost, m: &str, sig: Bytes) -> Result<Bytes, String> {
    let c = ISessions::openCall {
        message: m.to_string(),
        signature: sig,
    };
    h.me = SESSIONS_ADDRESS;
    h.call(
        SESSIONS_ADDRESS,
        Address::repeat_byte(0x99),
        U256::ZERO,
        &c.abi_encode(),
        GAS,
    )
}

fn session(h: &mut MemHost, k: Address) -> ISessions::Session {
    h.me = SESSIONS_ADDRESS;
    let out = h
        .call(
            SESSIONS_ADDRESS,
            Address::ZERO,
            U256::ZERO,
            &ISessions::sessionCall { sessionKey: k }.abi_encode(),
            GAS,
        )
        .expect("a view");
    ISessions::sessionCall::abi_decode_returns(&out).expect("decodes")
}

#[test]
fn a_signed_message_opens_its_session_once_and_says_why_it_refuses_others() {
    let mut h = MemHost::new(SESSIONS_ADDRESS);
    let (wallet, s1, s2) = (key(1), key(2), key(3));
    let m = escrow_message(
        &h,
        wallet.address(),
        s1.address(),
        "nonce0000001",
        &["echo"],
        500,
    );
    open(&mut h, &m, sign(&wallet, &m)).expect("opens");
    let s = session(&mut h, s1.address());
    assert_eq!(
        (s.account, s.kind, s.limit),
        (wallet.address(), ESCROW, U256::from(500))
    );
    assert_eq!(s.apps, vec![keccak256("echo")]);
    assert_eq!(s.expires, h.timestamp + 600);

    let refused = |h: &mut MemHost, m: &str, sig: Bytes, why: &str| {
        let e = open(h, m, sig).expect_err("refused");
        assert!(e.contains(why), "{why}: {e}");
    };
    // The same message again: its nonce is spent.
    refused(&mut h, &m, sign(&wallet, &m), "already used");
    // The same session key for a new nonce: a key serves one session.
    let again = escrow_message(
        &h,
        wallet.address(),
        s1.address(),
        "nonce0000002",
        &["echo"],
        500,
    );
    refused(&mut h, &again, sign(&wallet, &again), "already in use");
    // Signed by someone else, for an account without code.
    let other = escrow_message(&h, wallet.address(), s2.address(), "nonce0000003", &[], 500);
    refused(&mut h, &other, sign(&s2, &other), "no code");
    // Another chain; past its end.
    let mut far = MemHost::new(SESSIONS_ADDRESS);
    far.chain_id = 7;
    refused(&mut far, &other, sign(&wallet, &other), "chain 42");
    h.timestamp += 601;
    refused(&mut h, &other, sign(&wallet, &other), "expired");
}

#[test]
fn a_contract_wallet_is_asked_through_eip_1271_after_the_session_is_recorded() {
    let mut h = MemHost::new(SESSIONS_ADDRESS);
    let (owner, s1) = (key(4), key(5));
    let wallet = Address::repeat_byte(0x77);
    h.code.insert(wallet);
    let m = escrow_message(&h, wallet, s1.address(), "nonce0000004", &[], 900);
    let sig = sign(&owner, &m);
    open(&mut h, &m, sig.clone()).expect("opens, pending the wallet's answer");
    let c = h.call_outs.last().expect("asks the wallet").clone();
    assert_eq!(c.target, wallet);
    assert_eq!(c.expected, ERC1271_MAGIC);
    let asked = IERC1271::isValidSignatureCall::abi_decode(&c.data).expect("EIP-1271 call");
    assert_eq!(asked.hash, siwe::signing_hash(&m));
    assert_eq!(asked.signature, sig);
    assert_eq!(session(&mut h, s1.address()).account, wallet);
}

#[test]
fn only_the_account_revokes_and_a_revoked_key_pays_for_nothing() {
    let mut h = MemHost::new(SESSIONS_ADDRESS);
    let (wallet, s1) = (key(6), key(7));
    let m = escrow_message(&h, wallet.address(), s1.address(), "nonce0000005", &[], 900);
    open(&mut h, &m, sign(&wallet, &m)).expect("opens");
    let revoke = ISessions::revokeCall {
        sessionKey: s1.address(),
    }
    .abi_encode();
    let e = h
        .call(SESSIONS_ADDRESS, s1.address(), U256::ZERO, &revoke, GAS)
        .expect_err("not the account");
    assert!(e.contains("only"), "{e}");
    h.call(SESSIONS_ADDRESS, wallet.address(), U256::ZERO, &revoke, GAS)
        .expect("revokes");
    assert!(session(&mut h, s1.address()).revoked);
    let mut m2 = crate::Metered::new(&mut h, GAS).expect("metered");
    assert_eq!(payer(&mut m2, s1.address()).expect("reads"), None);
}

#[test]
fn a_session_keys_grants_settle_as_its_accounts_within_budget_apps_and_time() {
    let mut w = world();
    let wallet = w.client.clone();
    let session_key = key(0x21);
    w.tasks(wallet.address(), 1_000, ITasks::depositCall {}.abi_encode())
        .expect("deposits");
    // The session allows "embed" (the world's node serves it) for 120 wei in all.
    let m = escrow_message(
        &w.h,
        wallet.address(),
        session_key.address(),
        "nonce0000006",
        &["embed"],
        120,
    );
    open(&mut w.h, &m, sign(&wallet, &m)).expect("opens");
    w.h.me = TASKS_ADDRESS;
    w.client = session_key.clone();
    // Two grants of the session key, each allowing 1000: the session's 120 binds both.
    let g1 = w.grant(1_000, B256::ZERO);
    let mut g2 = w.grant(1_000, B256::ZERO);
    g2.nonce = 2;
    // 10 tokens at 5 wei + 5% = 52 wei each: two fit in 120, a third does not.
    let (a, b, c) = (
        w.receipt(g1.clone(), 1, 10),
        w.receipt(g2.clone(), 2, 10),
        w.receipt(g1, 3, 10),
    );
    let reasons = w.settle(vec![a, b, c]);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("limit of 120"), "{reasons:?}");
    assert_eq!(w.h.balance(w.owner), U256::from(100));
    let mut app = w.receipt(g2.clone(), 4, 1);
    app.app = "chat".into();
    assert!(w.settle(vec![app])[0].contains("does not allow"));
    w.h.timestamp += 600 + crate::tasks::SETTLE_WINDOW + 1;
    let late = w.receipt(g2, 5, 1);
    assert!(w.settle(vec![late])[0].contains("expired"));
    // Nothing left the session key's own account; the wallet's escrow paid 104.
    let out = w
        .tasks(
            wallet.address(),
            0,
            ITasks::escrowOfCall {
                account: wallet.address(),
            }
            .abi_encode(),
        )
        .expect("view");
    let e = ITasks::escrowOfCall::abi_decode_returns(&out).expect("decodes");
    assert_eq!(e.balance, U256::from(1_000 - 104));
}
