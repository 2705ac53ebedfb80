use super::*;

fn facts() -> NodeFacts {
    NodeFacts {
        chain_id: 1337,
        block: 120,
        block_hash: B256::repeat_byte(0xab),
        block_time: 1_796_000_000,
        node: B256::repeat_byte(0x42),
        registration: Some(Registration {
            owner: Address::repeat_byte(0x11),
            apps: vec![("echo".into(), U256::from(5u64))],
            hardware: "2 cores".into(),
            registered_at: 3,
        }),
        scores: vec![Score {
            epoch: 4,
            score: 1_000,
            block: 100,
        }],
        faults: vec![Fault {
            epoch: 2,
            block: 50,
            slashed: U256::from(10u64).pow(U256::from(18u64)),
        }],
        settlements: Settlements {
            receipts: 3,
            earned: U256::from(15u64),
            router_fees: U256::from(1u64),
            from_block: 0,
            complete: true,
            latest: vec![B256::repeat_byte(9)],
        },
    }
}

fn issuer() -> ([u8; 32], [u8; 32]) {
    let seed = [7u8; 32];
    let public = ed25519_consensus::SigningKey::from(seed)
        .verification_key()
        .to_bytes();
    (seed, public)
}

#[test]
fn an_issued_credential_verifies_and_says_what_the_facts_say() {
    let (seed, public) = issuer();
    let (jwt, credential) = issue(&facts(), seed, 1_796_000_100);
    let payload = verify(&jwt, &public).expect("verifies");
    assert_eq!(payload["issuer"], ed25519_did_key(&public));
    assert_eq!(
        payload["credentialSubject"],
        credential["credentialSubject"]
    );
    let s = &payload["credentialSubject"];
    assert_eq!(s["nodeId"], json!(B256::repeat_byte(0x42)));
    assert_eq!(s["registration"]["apps"][0]["pricePerUnit"], "5");
    assert_eq!(s["faults"][0]["slashed"], "1000000000000000000");
    assert_eq!(s["settlements"]["receipts"], 3);
    assert_eq!(payload["validFrom"], "2026-11-30T00:53:20Z");
    assert_eq!(payload["exp"], 1_796_000_000 + VALID_FOR_SECS);
    assert!(ed25519_did_key(&public).starts_with("did:key:z6Mk"));
}

#[test]
fn any_one_byte_changed_anywhere_fails_and_so_does_another_issuer() {
    let (seed, public) = issuer();
    let (jwt, _) = issue(&facts(), seed, 1);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in 0..jwt.len() {
        let mut bytes = jwt.clone().into_bytes();
        bytes[i] = *alphabet
            .iter()
            .find(|&&c| c != bytes[i])
            .expect("another letter");
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert!(
            verify(&tampered, &public).is_err(),
            "byte {i} changed and it still verified"
        );
    }
    let other = ed25519_consensus::SigningKey::from([8u8; 32])
        .verification_key()
        .to_bytes();
    let err = verify(&jwt, &other).expect_err("not that issuer's");
    assert_eq!(err.code(), "invalidCredential");
}

#[test]
fn two_validators_state_the_same_subject_for_the_same_block() {
    let (a, _) = issue(&facts(), [1; 32], 10);
    let (b, _) = issue(&facts(), [2; 32], 99);
    let subject = |jwt: &str| {
        let p = jwt.split('.').nth(1).expect("payload");
        let v: Value = serde_json::from_slice(&B64.decode(p).expect("b64")).expect("json");
        v["credentialSubject"].clone()
    };
    assert_eq!(subject(&a), subject(&b));
}
