//! The DID registry over the in-memory host: ERC-1056's rules, its events' chain of
//! previous changes, and its signed variants' hash, nonce and refusals.

use super::*;
use crate::testing::MemHost;
use alloy_primitives::FixedBytes;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolEvent;
use proptest::prelude::*;

const GAS: u64 = 10_000_000;

fn call(h: &mut MemHost, from: Address, c: impl SolCall) -> Result<Bytes, String> {
    h.call(DIDS_ADDRESS, from, U256::ZERO, &c.abi_encode(), GAS)
}

fn view<C: SolCall>(h: &mut MemHost, c: C) -> C::Return {
    let out = call(h, Address::ZERO, c).expect("a view");
    C::abi_decode_returns(&out).expect("decodes")
}

fn owner_of(h: &mut MemHost, identity: Address) -> Address {
    view(h, I::identityOwnerCall { identity })
}

fn name(s: &str) -> B256 {
    let mut b = [0u8; 32];
    b[..s.len()].copy_from_slice(s.as_bytes());
    b.into()
}

fn key(i: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(i)).expect("key")
}

/// The owner's signature over a `…Signed` call's hash, as ethr-did signs it.
fn sign(k: &PrivateKeySigner, hash: B256) -> (u8, B256, B256) {
    let s = k.sign_hash_sync(&hash).expect("signs");
    (27 + s.v() as u8, s.r().into(), s.s().into())
}

/// The events logged since `from`, decoded (owner changes only).
fn owner_events(h: &MemHost) -> Vec<I::DIDOwnerChanged> {
    h.logs
        .iter()
        .filter_map(|(t, d)| I::DIDOwnerChanged::decode_raw_log(t.iter().copied(), d).ok())
        .collect()
}

#[test]
fn only_the_owner_changes_an_identity_and_each_change_points_at_the_last() {
    let mut h = MemHost::new(DIDS_ADDRESS);
    let (alice, bob, eve) = (
        Address::repeat_byte(1),
        Address::repeat_byte(2),
        Address::repeat_byte(3),
    );
    assert_eq!(owner_of(&mut h, alice), alice, "an identity owns itself");
    let refused = call(
        &mut h,
        eve,
        I::changeOwnerCall {
            identity: alice,
            newOwner: eve,
        },
    );
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("bad_actor")),
        "{refused:?}"
    );
    h.height = 7;
    call(
        &mut h,
        alice,
        I::changeOwnerCall {
            identity: alice,
            newOwner: bob,
        },
    )
    .expect("owner moves");
    assert_eq!(owner_of(&mut h, alice), bob);
    assert!(
        call(
            &mut h,
            alice,
            I::changeOwnerCall {
                identity: alice,
                newOwner: alice
            }
        )
        .is_err(),
        "the old owner no longer acts"
    );
    h.height = 9;
    call(
        &mut h,
        bob,
        I::changeOwnerCall {
            identity: alice,
            newOwner: eve,
        },
    )
    .expect("the new owner acts");
    let ev = owner_events(&h);
    assert_eq!(ev.len(), 2);
    assert_eq!((ev[0].owner, ev[0].previousChange), (bob, U256::ZERO));
    assert_eq!((ev[1].owner, ev[1].previousChange), (eve, U256::from(7)));
    assert_eq!(
        view(&mut h, I::changedCall { identity: alice }),
        U256::from(9)
    );
    assert_eq!(view(&mut h, I::ownersCall { identity: alice }), eve);
    assert_eq!(view(&mut h, I::ownersCall { identity: bob }), Address::ZERO);
}

#[test]
fn delegates_are_valid_until_their_time_and_a_revocation_ends_them_now() {
    let mut h = MemHost::new(DIDS_ADDRESS);
    let (alice, d) = (Address::repeat_byte(1), Address::repeat_byte(4));
    let t0 = h.timestamp;
    let ty = name("veriKey");
    let add = I::addDelegateCall {
        identity: alice,
        delegateType: ty,
        delegate: d,
        validity: U256::from(100),
    };
    call(&mut h, alice, add).expect("added");
    let valid = |h: &mut MemHost| {
        view(
            h,
            I::validDelegateCall {
                identity: alice,
                delegateType: ty,
                delegate: d,
            },
        )
    };
    assert!(valid(&mut h));
    let hash = keccak256(ty.abi_encode());
    let until = view(
        &mut h,
        I::delegatesCall {
            identity: alice,
            delegateTypeHash: hash,
            delegate: d,
        },
    );
    assert_eq!(
        until,
        U256::from(t0 + 100),
        "stored under keccak256(abi.encode(type))"
    );
    assert!(!view(
        &mut h,
        I::validDelegateCall {
            identity: alice,
            delegateType: name("sigAuth"),
            delegate: d
        }
    ));
    h.timestamp = t0 + 100;
    assert!(!valid(&mut h), "valid strictly before its time");
    h.timestamp = t0;
    let revoke = I::revokeDelegateCall {
        identity: alice,
        delegateType: ty,
        delegate: d,
    };
    call(&mut h, alice, revoke).expect("revoked");
    assert!(!valid(&mut h));
    let (t, data) = h.logs.last().expect("a log").clone();
    let e = I::DIDDelegateChanged::decode_raw_log(t, &data).expect("a delegate event");
    assert_eq!(e.validTo, U256::from(t0), "a revocation is valid to now");
    let over = I::addDelegateCall {
        identity: alice,
        delegateType: ty,
        delegate: d,
        validity: U256::MAX,
    };
    assert!(call(&mut h, alice, over).is_err_and(|e| e.contains("overflows")));
}

#[test]
fn attributes_live_in_events_and_a_revocation_is_valid_to_zero() {
    let mut h = MemHost::new(DIDS_ADDRESS);
    let alice = Address::repeat_byte(1);
    let svc = name("did/svc/EMCNode");
    let value = Bytes::from_static(b"https://node.example/emc");
    let set = I::setAttributeCall {
        identity: alice,
        name: svc,
        value: value.clone(),
        validity: U256::from(3600),
    };
    call(&mut h, alice, set).expect("set");
    call(
        &mut h,
        alice,
        I::revokeAttributeCall {
            identity: alice,
            name: svc,
            value: value.clone(),
        },
    )
    .expect("revoked");
    let ev: Vec<_> = h
        .logs
        .iter()
        .map(|(t, d)| {
            I::DIDAttributeChanged::decode_raw_log(t.iter().copied(), d)
                .expect("an attribute event")
        })
        .collect();
    assert_eq!(ev.len(), 2);
    assert_eq!(
        (ev[0].name, &ev[0].value, ev[0].validTo),
        (svc, &value, U256::from(h.timestamp + 3600))
    );
    assert_eq!(ev[1].validTo, U256::ZERO);
    assert_eq!(
        h.logs[0].0[1],
        alice.into_word(),
        "the identity is the indexed topic"
    );
    let stray = I::setAttributeCall {
        identity: alice,
        name: svc,
        value,
        validity: U256::from(1),
    };
    assert!(call(&mut h, Address::repeat_byte(9), stray).is_err_and(|e| e.contains("bad_actor")));
}

#[test]
fn signed_changes_hash_as_solidity_packs_them_and_count_once() {
    let mut h = MemHost::new(DIDS_ADDRESS);
    let (owner, relayer, new) = (
        key(0x21),
        Address::repeat_byte(0x22),
        Address::repeat_byte(0x23),
    );
    let identity = owner.address();
    // The hash, packed independently of `signed_hash` with alloy's encodePacked.
    let reference = |nonce: u64| {
        keccak256(
            (
                FixedBytes::<1>::from([0x19]),
                FixedBytes::<1>::from([0x00]),
                DIDS_ADDRESS,
                U256::from(nonce),
                identity,
                "changeOwner".to_string(),
                new,
            )
                .abi_encode_packed(),
        )
    };
    let tail = packed("changeOwner", &[new.as_slice()]);
    assert_eq!(signed_hash(U256::ZERO, identity, &tail), reference(0));
    let (v, r, s) = sign(&owner, reference(0));
    let c = I::changeOwnerSignedCall {
        identity,
        sigV: v,
        sigR: r,
        sigS: s,
        newOwner: new,
    };
    call(&mut h, relayer, c.clone()).expect("a relayed, signed change");
    assert_eq!(owner_of(&mut h, identity), new);
    assert_eq!(
        view(&mut h, I::nonceCall { signer: identity }),
        U256::from(1)
    );
    // The same signature again: the owner (now `new`) signed nothing at its nonce.
    let again = call(&mut h, relayer, c);
    assert!(
        again.as_ref().is_err_and(|e| e.contains("bad_signature")),
        "{again:?}"
    );
    // A stranger's signature, and a malformed one, are refused with the reason.
    let (v, r, s) = sign(&key(0x24), signed_hash(U256::ZERO, identity, &tail));
    let c = I::changeOwnerSignedCall {
        identity,
        sigV: v,
        sigR: r,
        sigS: s,
        newOwner: new,
    };
    assert!(call(&mut h, relayer, c).is_err_and(|e| e.contains("bad_signature")));
    let c = I::changeOwnerSignedCall {
        identity,
        sigV: 5,
        sigR: r,
        sigS: s,
        newOwner: new,
    };
    assert!(call(&mut h, relayer, c).is_err_and(|e| e.contains("v is 5")));
}

#[test]
fn signed_delegates_and_attributes_carry_their_arguments() {
    let mut h = MemHost::new(DIDS_ADDRESS);
    let owner = key(0x31);
    let identity = owner.address();
    let (ty, d, validity) = (name("sigAuth"), Address::repeat_byte(0x32), U256::from(50));
    let tail = packed(
        "addDelegate",
        &[&ty[..], d.as_slice(), &validity.to_be_bytes::<32>()],
    );
    let (v, r, s) = sign(&owner, signed_hash(U256::ZERO, identity, &tail));
    let c = I::addDelegateSignedCall {
        identity,
        sigV: v,
        sigR: r,
        sigS: s,
        delegateType: ty,
        delegate: d,
        validity,
    };
    call(&mut h, Address::repeat_byte(9), c.clone()).expect("signed delegate");
    assert!(view(
        &mut h,
        I::validDelegateCall {
            identity,
            delegateType: ty,
            delegate: d
        }
    ));
    // A relayer that changes an argument has no signature for it.
    let mut changed = c;
    changed.validity = U256::from(51);
    assert!(call(&mut h, Address::repeat_byte(9), changed).is_err());
    let (n, value) = (
        name("did/pub/X25519/enc/base64"),
        Bytes::from(vec![7u8; 32]),
    );
    let tail = packed(
        "setAttribute",
        &[&n[..], &value, &validity.to_be_bytes::<32>()],
    );
    let (v, r, s) = sign(&owner, signed_hash(U256::from(1), identity, &tail));
    let c = I::setAttributeSignedCall {
        identity,
        sigV: v,
        sigR: r,
        sigS: s,
        name: n,
        value: value.clone(),
        validity,
    };
    call(&mut h, Address::repeat_byte(9), c).expect("signed attribute");
    let tail = packed("revokeAttribute", &[&n[..], &value]);
    let (v, r, s) = sign(&owner, signed_hash(U256::from(2), identity, &tail));
    let c = I::revokeAttributeSignedCall {
        identity,
        sigV: v,
        sigR: r,
        sigS: s,
        name: n,
        value,
    };
    call(&mut h, Address::repeat_byte(9), c).expect("signed revocation");
    let tail = packed("revokeDelegate", &[&ty[..], d.as_slice()]);
    let (v, r, s) = sign(&owner, signed_hash(U256::from(3), identity, &tail));
    let c = I::revokeDelegateSignedCall {
        identity,
        sigV: v,
        sigR: r,
        sigS: s,
        delegateType: ty,
        delegate: d,
    };
    call(&mut h, Address::repeat_byte(9), c).expect("signed delegate revocation");
    assert!(!view(
        &mut h,
        I::validDelegateCall {
            identity,
            delegateType: ty,
            delegate: d
        }
    ));
    assert_eq!(
        view(&mut h, I::nonceCall { signer: identity }),
        U256::from(4)
    );
}

#[test]
fn static_calls_change_nothing_and_value_is_refused() {
    let mut h = MemHost::new(DIDS_ADDRESS);
    let a = Address::repeat_byte(1);
    let input = I::changeOwnerCall {
        identity: a,
        newOwner: a,
    }
    .abi_encode();
    let c = crate::ModuleCall {
        caller: a,
        value: U256::ZERO,
        input: &input,
        is_static: true,
    };
    let d = crate::dispatch(DIDS_ADDRESS, &mut h, &c, GAS).expect("a module");
    assert!(d.out.is_err_and(|e| e.to_string().contains("static call")));
    h.balances.insert(a, U256::from(1));
    let paid = h.call(DIDS_ADDRESS, a, U256::from(1), &input, GAS);
    assert!(paid.is_err_and(|e| e.contains("no value")));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any sequence of owner changes, by owners and strangers alike: the owner is the
    /// last one a current owner named, and the events of the identity form one chain
    /// back from `changed` through each event's previous change.
    #[test]
    fn the_change_chain_walks_back_through_every_change(steps in proptest::collection::vec((0u8..4, 0u8..4), 1..24)) {
        let mut h = MemHost::new(DIDS_ADDRESS);
        let who = |i: u8| Address::repeat_byte(i + 1);
        let identity = who(0);
        let mut owner = identity;
        let mut heights = Vec::new();
        for (n, (actor, to)) in steps.into_iter().enumerate() {
            h.height = 10 + n as u64;
            let ok = call(&mut h, who(actor), I::changeOwnerCall { identity, newOwner: who(to) }).is_ok();
            prop_assert_eq!(ok, who(actor) == owner);
            if ok {
                owner = who(to);
                heights.push(h.height);
            }
        }
        prop_assert_eq!(owner_of(&mut h, identity), owner);
        let ev = owner_events(&h);
        let mut at = view(&mut h, I::changedCall { identity });
        for (e, height) in ev.iter().zip(&heights).rev() {
            prop_assert_eq!(at, U256::from(*height));
            at = e.previousChange;
        }
        prop_assert_eq!(at, U256::ZERO);
    }
}
