use super::*;
use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_network::TxSignerSync;
use alloy_primitives::{TxKind, U256};
use alloy_signer_local::PrivateKeySigner;

const ETH: u128 = 1_000_000_000_000_000_000;

fn setup(dir: &Path) -> (Arc<Chain>, Vec<PrivateKeySigner>) {
    let keys = emc_crypto::dev_accounts(3).expect("keys");
    let addrs: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    let v = emc_types::GenesisValidator {
        address: Address::repeat_byte(0xcc),
        consensus_key: emc_crypto::ConsensusKey::dev(0).public(),
        power: 1_000,
    };
    let g = Genesis::dev(v, &addrs, U256::from(100 * ETH));
    (Chain::open(dir, g).expect("open"), keys)
}

fn transfer(k: &PrivateKeySigner, nonce: u64, to: Address, value: u128) -> Vec<u8> {
    signed_tx(k, nonce, to, U256::from(value), Vec::new(), 21_000)
}

fn call_tx(k: &PrivateKeySigner, nonce: u64, to: Address, value: U256, data: Vec<u8>) -> Vec<u8> {
    signed_tx(k, nonce, to, value, data, 300_000)
}

fn signed_tx(
    k: &PrivateKeySigner,
    nonce: u64,
    to: Address,
    value: U256,
    data: Vec<u8>,
    gas_limit: u64,
) -> Vec<u8> {
    let mut t = TxEip1559 {
        chain_id: emc_types::genesis::DEV_CHAIN_ID,
        nonce,
        gas_limit,
        max_fee_per_gas: 3_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value,
        input: data.into(),
        ..Default::default()
    };
    let sig = k.sign_transaction_sync(&mut t).expect("sign");
    TxEnvelope::from(t.into_signed(sig)).encoded_2718()
}

#[test]
fn transfers_pay_value_tip_and_burn_base_fee() {
    let dir = tempfile::tempdir().expect("tmp");
    let (chain, keys) = setup(dir.path());
    let to = Address::repeat_byte(0x42);
    for n in 0..3 {
        chain
            .submit(&transfer(&keys[0], n, to, ETH))
            .expect("pooled");
    }
    let h = chain.seal(Address::repeat_byte(0xcc), 10).expect("seal");
    assert_eq!(h.height, Height(1));
    assert_eq!(h.gas_used, 63_000);
    let s = chain.state_at(h.height).expect("state");
    assert_eq!(
        s.account(to).expect("read").expect("exists").balance,
        U256::from(3 * ETH)
    );
    let tip = s
        .account(Address::repeat_byte(0xcc))
        .expect("read")
        .expect("proposer")
        .balance;
    assert_eq!(tip, U256::from(63_000u128 * 1_000_000_000));
    let sender = s.account(keys[0].address()).expect("read").expect("sender");
    assert_eq!(sender.nonce, 3);
    // value + (base 1 gwei + tip 1 gwei) * gas; the base fee is burnt.
    assert_eq!(
        sender.balance,
        U256::from(100 * ETH - 3 * ETH - 63_000u128 * 2_000_000_000)
    );
    // Historical read: at genesis the recipient had nothing.
    assert!(chain
        .state_at(Height(0))
        .expect("s0")
        .account(to)
        .expect("read")
        .is_none());
    assert_eq!(chain.pool_counts(), (0, 0));
}

#[test]
fn reopening_keeps_head_and_refuses_other_genesis() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = {
        let (chain, keys) = setup(dir.path());
        chain
            .submit(&transfer(&keys[1], 0, Address::repeat_byte(1), 5))
            .expect("pooled");
        chain.seal(Address::repeat_byte(0xcc), 1).expect("seal");
        chain.seal(Address::repeat_byte(0xcc), 2).expect("seal");
        chain.head().state_root
    };
    let (chain, _) = setup(dir.path());
    assert_eq!(chain.head().height, Height(2));
    assert_eq!(chain.head().state_root, root);
    let report = chain.store().verify().expect("verify");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.transactions, 1);
    let mut other = chain.genesis().clone();
    other.chain_id = 5;
    drop(chain);
    assert!(matches!(
        Chain::open(dir.path(), other),
        Err(ChainError::Storage(StorageError::GenesisMismatch { .. }))
    ));
}

#[test]
fn refused_transactions_say_why() {
    let dir = tempfile::tempdir().expect("tmp");
    let (chain, keys) = setup(dir.path());
    chain
        .submit(&transfer(&keys[0], 0, Address::ZERO, 1))
        .expect("ok");
    chain.seal(Address::ZERO, 1).expect("seal");
    let err = chain
        .submit(&transfer(&keys[0], 0, Address::ZERO, 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nonce too low"), "{err}");
    let err = chain
        .submit(&transfer(&keys[2], 0, Address::ZERO, 1000 * ETH))
        .unwrap_err()
        .to_string();
    assert!(err.contains("insufficient funds"), "{err}");
    let err = chain.submit(b"\x02\xc0").unwrap_err().to_string();
    assert!(err.contains("malformed"), "{err}");
}

#[test]
fn chain_module_answers_through_the_evm() {
    use alloy_sol_types::SolCall;
    let dir = tempfile::tempdir().expect("tmp");
    let (chain, _) = setup(dir.path());
    let req = CallRequest {
        to: Some(emc_modules::CHAIN_ADDRESS),
        data: Some(
            emc_modules::chain::IChain::validatorsCall {}
                .abi_encode()
                .into(),
        ),
        ..Default::default()
    };
    match chain.call(Height(0), &req).expect("call") {
        CallOutcome::Success { output, .. } => {
            let v = emc_modules::chain::IChain::validatorsCall::abi_decode_returns(&output)
                .expect("abi");
            assert_eq!(v, vec![Address::repeat_byte(0xcc)]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_block_built_on_one_node_imports_on_another_and_tampering_is_caught() {
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (a, keys) = setup(a_dir.path());
    let (b, _) = setup(b_dir.path());
    for n in 0..3 {
        a.submit(&transfer(&keys[0], n, Address::repeat_byte(0x42), ETH))
            .expect("pooled");
    }
    let built = a.build_block(Address::repeat_byte(0xcc), 7).expect("build");
    let encoded = borsh::to_vec(&built.block).expect("encode");
    let imported = b.import(&encoded).expect("valid on another node");
    let cert = b"certificate bytes".to_vec();
    let hb = b.commit(imported, Some(&cert)).expect("commit");
    let ha = a.commit(built, None).expect("commit");
    assert_eq!(ha.hash(), hb.hash());
    assert_eq!(b.store().certificate(Height(1)).expect("read"), Some(cert));

    // Built on a's new head; b is there too. Tamper with each thing a proposer could lie about.
    a.submit(&transfer(&keys[1], 0, Address::repeat_byte(0x43), ETH))
        .expect("pooled");
    let good = a
        .build_block(Address::repeat_byte(0xcc), 8)
        .expect("build")
        .block;
    let check = |blk: &Block, want: &str| {
        let err = b
            .import(&borsh::to_vec(blk).expect("encode"))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(want), "{err} should mention {want}");
    };
    let mut bad = good.clone();
    bad.header.state_root = B256::repeat_byte(1);
    check(&bad, "stateRoot");
    let mut bad = good.clone();
    bad.header.proposer = Address::repeat_byte(0x99);
    check(&bad, "not a validator");
    let mut bad = good.clone();
    bad.header.base_fee += 1;
    check(&bad, "baseFee");
    let mut bad = good.clone();
    bad.transactions.push(bad.transactions[0].clone());
    check(&bad, "cannot be included");
    let mut bad = good.clone();
    bad.header.parent_hash = B256::ZERO;
    check(&bad, "does not extend");
    assert!(matches!(b.import(&[1, 2, 3]), Err(ImportError::Invalid(_))));
    b.import(&borsh::to_vec(&good).expect("encode"))
        .expect("the untampered block still imports");
}

/// The staking module through real transactions and revm: value staked into the
/// module, a candidate elected into the set the chain reads, rewards minted on claim,
/// stake paid back only after unbonding.
#[test]
fn staking_by_transaction_elects_rewards_and_unbonds() {
    use alloy_sol_types::SolCall;
    use emc_modules::{staking::IStaking, STAKING_ADDRESS};
    let dir = tempfile::tempdir().expect("tmp");
    let keys = emc_crypto::dev_accounts(1).expect("keys");
    let me = keys[0].address();
    let genesis_validator = emc_types::GenesisValidator {
        address: Address::repeat_byte(0xcc),
        consensus_key: emc_crypto::ConsensusKey::dev(0).public(),
        power: 1_000,
    };
    let mut g = Genesis::dev(
        genesis_validator,
        &[me],
        emc_types::EMC * U256::from(10_000),
    );
    g.staking.epoch_blocks = 4;
    g.staking.unbonding_blocks = 3;
    let chain = Chain::open(dir.path(), g).expect("open");
    let emc = |n: u64| emc_types::EMC * U256::from(n);
    let seal = |chain: &Chain| chain.seal(Address::repeat_byte(0xcc), 10).expect("seal");
    let receipt_ok = |chain: &Chain, h: &Header| {
        chain
            .store()
            .receipts(h.height)
            .expect("read")
            .expect("receipts")[0]
            .success
    };
    let balance = |chain: &Chain| {
        let s = chain.state_at(chain.head().height).expect("state");
        s.account(me).expect("read").expect("account").balance
    };

    let stake = IStaking::stakeCall { role: 0 }.abi_encode();
    chain
        .submit(&call_tx(&keys[0], 0, STAKING_ADDRESS, emc(500), stake))
        .expect("pool");
    let key = emc_crypto::ConsensusKey::dev(5).public();
    let register = IStaking::registerValidatorCall { consensusKey: key }.abi_encode();
    chain
        .submit(&call_tx(&keys[0], 1, STAKING_ADDRESS, U256::ZERO, register))
        .expect("pool");
    let h1 = seal(&chain);
    assert!(receipt_ok(&chain, &h1));
    let staked = chain.state_at(h1.height).expect("state");
    assert_eq!(
        staked
            .account(STAKING_ADDRESS)
            .expect("read")
            .expect("module")
            .balance,
        emc(1_500),
        "the genesis stake plus the value sent"
    );
    assert_eq!(chain.validator_set_at(h1.height).expect("set").len(), 1);
    while chain.head().height.0 < 4 {
        seal(&chain);
    }
    let set = chain.validator_set_at(Height(4)).expect("set");
    assert_eq!(
        set.iter().map(|v| (v.address, v.power)).collect::<Vec<_>>(),
        vec![(Address::repeat_byte(0xcc), 1_000), (me, 500)],
        "elected at the epoch's last block, by stake"
    );
    assert_eq!(set[1].consensus_key, key);
    // Blocks 5-8 are sealed by the new set: a third of their rewards is ours, credited
    // at the epoch's end.
    while chain.head().height.0 < 8 {
        seal(&chain);
    }
    let before = balance(&chain);
    let claim = IStaking::claimRewardsCall {}.abi_encode();
    chain
        .submit(&call_tx(&keys[0], 2, STAKING_ADDRESS, U256::ZERO, claim))
        .expect("pool");
    let h = seal(&chain);
    assert!(receipt_ok(&chain, &h));
    let r = &chain
        .store()
        .receipts(h.height)
        .expect("read")
        .expect("receipts")[0];
    let fee = U256::from(r.gas_used as u128 * r.effective_gas_price);
    let minted = emc(8) * U256::from(500) / U256::from(1_500);
    assert_eq!(balance(&chain) + fee, before + minted);
    // Unstake, then a withdrawal before the release fails and one after pays.
    let unstake = IStaking::unstakeCall {
        role: 0,
        amount: emc(500),
    }
    .abi_encode();
    chain
        .submit(&call_tx(&keys[0], 3, STAKING_ADDRESS, U256::ZERO, unstake))
        .expect("pool");
    let h = seal(&chain);
    assert!(receipt_ok(&chain, &h));
    let withdraw = IStaking::withdrawCall {}.abi_encode();
    chain
        .submit(&call_tx(
            &keys[0],
            4,
            STAKING_ADDRESS,
            U256::ZERO,
            withdraw.clone(),
        ))
        .expect("pool");
    let h = seal(&chain);
    assert!(
        !receipt_ok(&chain, &h),
        "withdrawn before the unbonding ended"
    );
    seal(&chain);
    seal(&chain);
    let before = balance(&chain);
    chain
        .submit(&call_tx(&keys[0], 5, STAKING_ADDRESS, U256::ZERO, withdraw))
        .expect("pool");
    let h = seal(&chain);
    assert!(receipt_ok(&chain, &h));
    let r = &chain
        .store()
        .receipts(h.height)
        .expect("read")
        .expect("receipts")[0];
    let fee = U256::from(r.gas_used as u128 * r.effective_gas_price);
    assert_eq!(balance(&chain) + fee, before + emc(500));
    // It left the set at the end of the epoch it unstaked in.
    while chain.head().height.0 < 16 {
        seal(&chain);
    }
    assert_eq!(chain.validator_set_at(Height(16)).expect("set").len(), 1);
}
