use super::*;
use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_network::TxSignerSync;
use alloy_primitives::TxKind;
use alloy_signer_local::PrivateKeySigner;

const GWEI: u128 = 1_000_000_000;

fn key(i: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(i + 1)).expect("key")
}

fn tx(k: &PrivateKeySigner, nonce: u64, max_fee: u128, tip: u128) -> SignedTx {
    let mut t = TxEip1559 {
        chain_id: 1,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(Address::repeat_byte(9)),
        value: U256::from(1),
        ..Default::default()
    };
    let sig = k.sign_transaction_sync(&mut t).expect("sign");
    emc_types::decode_raw_tx(&TxEnvelope::from(t.into_signed(sig)).encoded_2718(), 1)
        .expect("valid")
}

fn rich(nonce: u64) -> AccountInfo {
    AccountInfo {
        nonce,
        balance: U256::from(10u128.pow(21)),
    }
}

#[test]
fn gap_is_queued_until_filled() {
    let k = key(0);
    let mut p = Pool::new(PoolConfig::default());
    assert_eq!(
        p.insert(tx(&k, 1, 2 * GWEI, GWEI), rich(0), GWEI as u64),
        Ok(Inserted::Queued)
    );
    assert!(p.best(GWEI as u64, 10).is_empty());
    assert_eq!(
        p.insert(tx(&k, 0, 2 * GWEI, GWEI), rich(0), GWEI as u64),
        Ok(Inserted::Pending)
    );
    let best: Vec<u64> = p.best(GWEI as u64, 10).iter().map(|t| t.nonce()).collect();
    assert_eq!(best, vec![0, 1]);
    assert_eq!(p.counts(), (2, 0));
    p.on_block([(k.address(), 2)]);
    assert!(p.is_empty());
}

#[test]
fn replacement_needs_a_bump() {
    let k = key(0);
    let mut p = Pool::new(PoolConfig::default());
    p.insert(tx(&k, 0, 2 * GWEI, GWEI), rich(0), GWEI as u64)
        .expect("first");
    assert_eq!(
        p.insert(tx(&k, 0, 2 * GWEI + 1, GWEI + 1), rich(0), GWEI as u64),
        Err(PoolError::ReplacementUnderpriced { bump: 10 })
    );
    let better = tx(&k, 0, 3 * GWEI, 2 * GWEI);
    let h = better.hash;
    assert!(matches!(
        p.insert(better, rich(0), GWEI as u64),
        Ok(Inserted::Replaced { pending: true, .. })
    ));
    assert_eq!(p.len(), 1);
    assert!(p.contains(&h));
}

#[test]
fn consecutive_nonces_are_welcome_however_many_and_gaps_are_bounded() {
    let k = key(0);
    let mut p = Pool::new(PoolConfig::default());
    let base = GWEI as u64;
    // 500 in a row from one account, far past the gap limit of 64.
    for n in 0..500 {
        assert_eq!(
            p.insert(tx(&k, n, 2 * GWEI, GWEI), rich(0), base),
            Ok(Inserted::Pending),
            "nonce {n}"
        );
    }
    assert_eq!(p.counts(), (500, 0));
    // A gap of 64 after the run is queued; one more is refused, naming the run's end.
    assert_eq!(
        p.insert(tx(&k, 564, 2 * GWEI, GWEI), rich(0), base),
        Ok(Inserted::Queued)
    );
    let e = p
        .insert(tx(&k, 630, 2 * GWEI, GWEI), rich(0), base)
        .unwrap_err();
    assert!(
        matches!(e, PoolError::NonceTooHigh { next: 500, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("after nonce 500"), "{e}");
    // Filling the gap moves the run's end past 564: 629 now fits.
    for n in 500..564 {
        p.insert(tx(&k, n, 2 * GWEI, GWEI), rich(0), base)
            .expect("fills the gap");
    }
    assert_eq!(
        p.insert(tx(&k, 629, 2 * GWEI, GWEI), rich(0), base),
        Ok(Inserted::Queued)
    );
}

#[test]
fn one_sender_gets_at_most_its_share_of_the_pool() {
    let k = key(0);
    let mut p = Pool::new(PoolConfig {
        max_txs: 40,
        max_per_sender: 10,
        ..Default::default()
    });
    let base = GWEI as u64;
    for n in 0..10 {
        p.insert(tx(&k, n, 2 * GWEI, GWEI), rich(0), base)
            .expect("within its share");
    }
    assert_eq!(
        p.insert(tx(&k, 10, 2 * GWEI, GWEI), rich(0), base),
        Err(PoolError::SenderFull(k.address()))
    );
    p.insert(tx(&key(1), 0, 2 * GWEI, GWEI), rich(0), base)
        .expect("another sender");
}

#[test]
fn every_rejection_has_its_reason() {
    let k = key(0);
    let mut p = Pool::new(PoolConfig {
        max_nonce_gap: 4,
        ..Default::default()
    });
    let base = GWEI as u64;
    assert_eq!(
        p.insert(tx(&k, 0, 2 * GWEI, GWEI), rich(1), base),
        Err(PoolError::NonceTooLow { tx: 0, account: 1 })
    );
    assert!(matches!(
        p.insert(tx(&k, 9, 2 * GWEI, GWEI), rich(0), base),
        Err(PoolError::NonceTooHigh { .. })
    ));
    assert!(matches!(
        p.insert(tx(&k, 0, GWEI / 2, 1), rich(0), base),
        Err(PoolError::FeeTooLow { .. })
    ));
    let poor = AccountInfo {
        nonce: 0,
        balance: U256::from(1000),
    };
    assert!(matches!(
        p.insert(tx(&k, 0, 2 * GWEI, GWEI), poor, base),
        Err(PoolError::InsufficientFunds { .. })
    ));
    let t = tx(&k, 0, 2 * GWEI, GWEI);
    p.insert(t.clone(), rich(0), base).expect("ok");
    assert_eq!(p.insert(t, rich(0), base), Err(PoolError::AlreadyKnown));
}

#[test]
fn full_pool_evicts_the_cheapest_or_refuses() {
    let mut p = Pool::new(PoolConfig {
        max_txs: 2,
        ..Default::default()
    });
    let base = GWEI as u64;
    p.insert(tx(&key(0), 0, 10 * GWEI, GWEI), rich(0), base)
        .expect("a");
    p.insert(tx(&key(1), 0, 10 * GWEI, 3 * GWEI), rich(0), base)
        .expect("b");
    assert_eq!(
        p.insert(tx(&key(2), 0, 10 * GWEI, GWEI / 2), rich(0), base),
        Err(PoolError::PoolFull)
    );
    p.insert(tx(&key(2), 0, 10 * GWEI, 5 * GWEI), rich(0), base)
        .expect("evicts the 1 gwei tip");
    assert_eq!(p.len(), 2);
    let tips: Vec<u128> = p
        .best(base, 10)
        .iter()
        .map(|t| t.max_priority_fee_per_gas())
        .collect();
    assert_eq!(tips, vec![5 * GWEI, 3 * GWEI]);
}

proptest::proptest! {
    /// Whatever order transactions arrive in, a block takes each sender's nonces in
    /// order and without gaps, starting at the account nonce.
    #[test]
    fn best_respects_nonce_order(order in proptest::collection::vec((0u8..3, 0u64..6, 1u128..5), 1..30)) {
        let mut p = Pool::new(PoolConfig::default());
        for (s, n, tip) in order {
            let _ = p.insert(tx(&key(s), n, 10 * GWEI, tip * GWEI), rich(0), GWEI as u64);
        }
        let mut next: HashMap<Address, u64> = HashMap::new();
        for t in p.best(GWEI as u64, 1000) {
            let want = next.entry(t.sender).or_insert(0);
            proptest::prop_assert_eq!(t.nonce(), *want);
            *want += 1;
        }
    }
}

#[test]
fn a_stale_account_read_never_moves_the_nonce_back() {
    let k = key(0);
    let mut p = Pool::new(PoolConfig::default());
    let base = GWEI as u64;
    p.insert(tx(&k, 0, 2 * GWEI, GWEI), rich(0), base)
        .expect("0");
    p.insert(tx(&k, 1, 2 * GWEI, GWEI), rich(0), base)
        .expect("1");
    p.insert(tx(&k, 2, 2 * GWEI, GWEI), rich(0), base)
        .expect("2");
    // A block mines nonces 0 and 1 ...
    p.on_block([(k.address(), 2)]);
    // ... while a submission read the account before that block: nonce 0.
    assert_eq!(
        p.insert(tx(&k, 3, 2 * GWEI, GWEI), rich(0), base),
        Ok(Inserted::Pending)
    );
    assert_eq!(
        p.insert(tx(&k, 1, 3 * GWEI, 2 * GWEI), rich(0), base),
        Err(PoolError::NonceTooLow { tx: 1, account: 2 })
    );
    let best: Vec<u64> = p.best(base, 10).iter().map(|t| t.nonce()).collect();
    assert_eq!(best, vec![2, 3]);
}
