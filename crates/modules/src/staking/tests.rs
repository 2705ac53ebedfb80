//! The staking module over an in-memory host: lifecycle, election, rewards, slashing,
//! and properties over random operation sequences (replayable: proptest prints the
//! failing case and keeps it in `proptest-regressions/`).

use super::*;
use crate::testing::val;
use crate::{chain::ChainModule, testing::MemHost, CHAIN_ADDRESS, STAKING_ADDRESS};
use emc_consensus::{crypto::Crypto, messages::Kind, Ed25519Crypto};
use proptest::prelude::*;

fn emc(n: u64) -> U256 {
    EMC * U256::from(n)
}

fn user(i: u8) -> Address {
    Address::repeat_byte(0x10 + i)
}

struct World {
    host: MemHost,
    genesis: Genesis,
}

impl World {
    /// Two genesis validators; users 0..4 hold 100,000 EMC each; epochs of 10 blocks.
    fn new() -> World {
        let mut g = Genesis::dev(val(0), &[], U256::ZERO);
        g.validators.push(val(1));
        g.staking.epoch_blocks = 10;
        g.staking.unbonding_blocks = 20;
        g.staking.max_validators = 3;
        g.staking.lock_tiers = vec![emc_types::LockTier {
            blocks: 50,
            multiplier_bps: 27_000,
        }];
        let mut host = MemHost::new(STAKING_ADDRESS);
        for (k, v) in ChainModule::genesis_storage(&g.validators) {
            host.storage.insert((CHAIN_ADDRESS, k), v);
        }
        for (k, v) in StakingModule::genesis_storage(&g) {
            host.storage.insert((STAKING_ADDRESS, k), v);
        }
        host.balances
            .insert(STAKING_ADDRESS, StakingModule::genesis_balance(&g));
        for i in 0..5 {
            host.balances.insert(user(i), emc(100_000));
        }
        host.height = 1;
        World { host, genesis: g }
    }

    fn call(&mut self, caller: Address, value: U256, input: Vec<u8>) -> Result<Bytes, String> {
        self.host
            .call(STAKING_ADDRESS, caller, value, &input, 10_000_000)
    }

    fn stake(&mut self, who: Address, role: u8, amount: U256) -> Result<(), String> {
        self.call(who, amount, IStaking::stakeCall { role }.abi_encode())
            .map(|_| ())
    }

    fn unstake(&mut self, who: Address, role: u8, amount: U256) -> Result<(), String> {
        self.call(
            who,
            U256::ZERO,
            IStaking::unstakeCall { role, amount }.abi_encode(),
        )
        .map(|_| ())
    }

    fn withdraw(&mut self, who: Address) -> Result<U256, String> {
        let out = self.call(who, U256::ZERO, IStaking::withdrawCall {}.abi_encode())?;
        Ok(IStaking::withdrawCall::abi_decode_returns(&out).expect("decode"))
    }

    fn claim(&mut self, who: Address) -> Result<U256, String> {
        let out = self.call(who, U256::ZERO, IStaking::claimRewardsCall {}.abi_encode())?;
        Ok(IStaking::claimRewardsCall::abi_decode_returns(&out).expect("decode"))
    }

    fn view<C: SolCall>(&mut self, c: C) -> C::Return {
        let out = self
            .call(Address::ZERO, U256::ZERO, c.abi_encode())
            .expect("view");
        C::abi_decode_returns(&out).expect("decode")
    }

    /// Ends the current block (the chain's system call) and moves to the next. Every
    /// member of the set signed the parent unless named in `missing`.
    fn block_with(&mut self, missing: &[Address]) {
        let set = self.set();
        let mut bitmap = vec![0u8; set.len().div_ceil(8)];
        for (i, (a, _, _)) in set.iter().enumerate() {
            if !missing.contains(a) {
                bitmap[i / 8] |= 1 << (i % 8);
            }
        }
        let input = IStaking::onBlockCall {
            proposer: set[0].0,
            signers: bitmap.into(),
        }
        .abi_encode();
        self.call(SYSTEM_CALLER, U256::ZERO, input)
            .expect("onBlock");
        self.host.height += 1;
    }

    fn blocks(&mut self, n: u64) {
        for _ in 0..n {
            self.block_with(&[]);
        }
    }

    /// Runs blocks until the current epoch has ended.
    fn finish_epoch(&mut self) {
        let e = self.genesis.staking.epoch_blocks;
        loop {
            let last = self.host.height.is_multiple_of(e);
            self.block_with(&[]);
            if last {
                return;
            }
        }
    }

    fn set(&mut self) -> Vec<(Address, B256, u64)> {
        ChainModule::set_from(|s| {
            Ok(self
                .host
                .storage
                .get(&(CHAIN_ADDRESS, s))
                .copied()
                .unwrap_or_default())
        })
        .expect("set")
    }

    fn set_addresses(&mut self) -> Vec<Address> {
        self.set().into_iter().map(|v| v.0).collect()
    }

    fn minted(&mut self) -> U256 {
        self.view(IStaking::totalMintedCall {})
    }

    fn slashed(&mut self) -> U256 {
        self.view(IStaking::totalSlashedCall {})
    }

    /// Two PREPAREs by dev validator `i` for different digests at (height, round).
    fn equivocation(&self, i: u32, who: Address, height: u64) -> IStaking::submitEvidenceCall {
        let key = Ed25519Crypto::from_seed(emc_crypto::ConsensusKey::dev(i).seed());
        let sign = |d: B256| {
            let vote = emc_consensus::Vote {
                height: emc_types::Height(height),
                round: emc_types::Round(0),
                digest: d,
            };
            Bytes::from(
                key.sign(&payload(self.host.chain_id, Kind::Prepare, &vote))
                    .0
                    .to_vec(),
            )
        };
        IStaking::submitEvidenceCall {
            validator: who,
            kind: 1,
            height,
            round: 0,
            digestA: B256::repeat_byte(1),
            sigA: sign(B256::repeat_byte(1)),
            digestB: B256::repeat_byte(2),
            sigB: sign(B256::repeat_byte(2)),
        }
    }
}

use emc_consensus::messages::payload;

#[test]
fn stake_unbonds_and_is_withdrawn_only_after_the_unbonding_period() {
    let mut w = World::new();
    let u = user(0);
    assert!(w
        .stake(u, 1, emc(5))
        .unwrap_err()
        .contains("below the minimum"));
    w.stake(u, 1, emc(50)).expect("stake as router");
    assert_eq!(w.host.balance(u), emc(100_000 - 50));
    assert!(w
        .unstake(u, 1, emc(45))
        .unwrap_err()
        .contains("below the minimum"));
    w.unstake(u, 1, emc(50)).expect("unstake all");
    let release = w.host.height + 20;
    assert!(w.withdraw(u).unwrap_err().contains("nothing to withdraw"));
    w.blocks(19);
    assert!(
        w.withdraw(u).is_err(),
        "withdrawn at {} before {release}",
        w.host.height
    );
    w.blocks(1);
    assert_eq!(w.withdraw(u).expect("withdraw"), emc(50));
    assert_eq!(w.host.balance(u), emc(100_000));
    assert!(w.withdraw(u).is_err(), "paid twice");
}

#[test]
fn computing_nodes_may_run_without_stake_but_locked_stake_stays() {
    let mut w = World::new();
    let u = user(1);
    // A zero-value stake is refused; the minimum for computing nodes is zero.
    assert!(w.stake(u, 2, U256::ZERO).is_err());
    w.stake(u, 2, emc(1)).expect("any stake is enough");
    w.call(u, U256::ZERO, IStaking::lockCall { tier: 0 }.abi_encode())
        .expect("lock");
    let lock = w.view(IStaking::lockOfCall { account: u });
    assert_eq!(lock.multiplierBps, 27_000);
    assert!(w
        .unstake(u, 2, emc(1))
        .unwrap_err()
        .contains("locked until"));
    w.blocks(50);
    w.unstake(u, 2, emc(1)).expect("lock over");
    assert!(w
        .call(u, U256::ZERO, IStaking::lockCall { tier: 5 }.abi_encode())
        .is_err());
}

#[test]
fn a_staked_candidate_is_elected_at_the_epoch_end_and_leaves_when_it_unstakes() {
    let mut w = World::new();
    let (a, b) = (val(0).address, val(1).address);
    let newbie = user(2);
    w.stake(newbie, 0, emc(2_000)).expect("stake");
    let key = emc_crypto::ConsensusKey::dev(2).public();
    // The key of another validator is refused; its own is taken.
    let taken = val(0).consensus_key;
    assert!(w
        .call(
            newbie,
            U256::ZERO,
            IStaking::registerValidatorCall {
                consensusKey: taken
            }
            .abi_encode()
        )
        .unwrap_err()
        .contains("another validator"));
    w.call(
        newbie,
        U256::ZERO,
        IStaking::registerValidatorCall { consensusKey: key }.abi_encode(),
    )
    .expect("register");
    assert_eq!(
        w.set_addresses(),
        vec![a, b],
        "the set changes only at an epoch's end"
    );
    w.finish_epoch();
    let set = w.set();
    assert_eq!(
        set[0],
        (newbie, key, 2_000),
        "ranked by stake, power in whole EMC"
    );
    assert_eq!(set.len(), 3);
    w.unstake(newbie, 0, emc(2_000)).expect("unstake");
    w.finish_epoch();
    assert_eq!(w.set_addresses(), vec![a, b]);
}

#[test]
fn the_set_is_capped_and_never_emptied() {
    let mut w = World::new();
    for i in 0..3 {
        let u = user(i);
        w.stake(u, 0, emc(500 + i as u64)).expect("stake");
        let key = emc_crypto::ConsensusKey::dev(10 + i as u32).public();
        w.call(
            u,
            U256::ZERO,
            IStaking::registerValidatorCall { consensusKey: key }.abi_encode(),
        )
        .expect("register");
    }
    w.finish_epoch();
    let set = w.set_addresses();
    assert_eq!(set.len(), 3, "maxValidators");
    assert_eq!(set[..2], [val(0).address, val(1).address]);
    assert_eq!(set[2], user(2), "the largest newcomer");
    // Everyone leaves: the set stays as it was rather than become empty.
    for v in [val(0).address, val(1).address] {
        w.unstake(v, 0, emc(1_000)).expect("unstake");
    }
    for i in 0..3 {
        w.unstake(user(i), 0, emc(500 + i as u64)).expect("unstake");
    }
    w.finish_epoch();
    assert_eq!(w.set_addresses().len(), 3);
}

#[test]
fn block_rewards_follow_power_and_are_minted_on_claim() {
    let mut w = World::new();
    let supply = w.host.supply();
    w.blocks(5);
    let a = val(0).address;
    assert_eq!(
        w.view(IStaking::pendingRewardsCall { account: a }),
        U256::ZERO
    );
    w.finish_epoch();
    let pending = w.view(IStaking::pendingRewardsCall { account: a });
    assert_eq!(pending, emc(10), "2 EMC for each of 10 blocks, half each");
    assert_eq!(w.host.supply(), supply, "credited, not yet minted");
    assert_eq!(w.claim(a).expect("claim"), emc(10));
    assert_eq!(w.host.supply(), supply + emc(10));
    assert_eq!(w.minted(), emc(10));
    assert!(w.claim(a).is_err());
}

#[test]
fn epoch_pools_split_by_stake_and_by_score_times_multiplier() {
    let mut w = World::new();
    w.stake(user(0), 1, emc(30)).expect("router");
    w.stake(user(1), 1, emc(10)).expect("router");
    w.stake(user(2), 2, emc(1)).expect("compute");
    w.stake(user(3), 2, emc(1)).expect("compute");
    w.call(
        user(3),
        U256::ZERO,
        IStaking::lockCall { tier: 0 }.abi_encode(),
    )
    .expect("lock");
    // Only the PoC module may set scores.
    let scores = IStaking::setComputeScoresCall {
        nodes: vec![user(2), user(3)],
        scores: vec![U256::from(100), U256::from(100)],
    };
    assert!(w.call(user(0), U256::ZERO, scores.abi_encode()).is_err());
    w.call(POC_ADDRESS, U256::ZERO, scores.abi_encode())
        .expect("scores");
    w.finish_epoch();
    let r = |w: &mut World, u| w.view(IStaking::pendingRewardsCall { account: u });
    assert_eq!(r(&mut w, user(0)), emc(50) * U256::from(3) / U256::from(4));
    assert_eq!(r(&mut w, user(1)), emc(50) / U256::from(4));
    // 100 x 1.0 against 100 x 2.7 of the 100 EMC pool.
    assert_eq!(
        r(&mut w, user(2)),
        emc(100) * U256::from(10_000) / U256::from(37_000)
    );
    assert_eq!(
        r(&mut w, user(3)),
        emc(100) * U256::from(27_000) / U256::from(37_000)
    );
}

#[test]
fn equivocation_evidence_slashes_jails_counts_once_and_is_verified() {
    let mut w = World::new();
    w.blocks(3);
    let b = val(1).address;
    let ev = w.equivocation(1, b, 2);
    // Signed by another key: refused.
    let forged = w.equivocation(0, b, 2);
    assert!(w
        .call(user(0), U256::ZERO, forged.abi_encode())
        .unwrap_err()
        .contains("does not verify"));
    // Not a validator then.
    let stranger = w.equivocation(1, user(0), 2);
    assert!(w
        .call(user(0), U256::ZERO, stranger.abi_encode())
        .unwrap_err()
        .contains("not a validator"));
    let supply = w.host.supply();
    w.call(user(0), U256::ZERO, ev.abi_encode())
        .expect("evidence");
    let st = w.view(IStaking::stakeOfCall {
        account: b,
        role: 0,
    });
    assert_eq!(st.staked, emc(900), "10% burnt");
    assert_eq!(w.slashed(), emc(100));
    assert_eq!(w.host.supply(), supply - emc(100));
    assert!(w
        .call(user(1), U256::ZERO, ev.abi_encode())
        .unwrap_err()
        .contains("already used"));
    w.finish_epoch();
    assert_eq!(
        w.set_addresses(),
        vec![val(0).address],
        "jailed: out of the next set"
    );
    w.finish_epoch();
    assert_eq!(
        w.set_addresses(),
        vec![val(0).address, b],
        "back after one epoch's jail"
    );
}

#[test]
fn a_validator_cannot_escape_slashing_by_unstaking_first() {
    let mut w = World::new();
    w.blocks(3);
    let b = val(1).address;
    w.unstake(b, 0, emc(1_000)).expect("unstake everything");
    let ev = w.equivocation(1, b, 2);
    w.call(user(0), U256::ZERO, ev.abi_encode())
        .expect("evidence");
    let st = w.view(IStaking::stakeOfCall {
        account: b,
        role: 0,
    });
    assert_eq!((st.staked, st.unbonding), (U256::ZERO, emc(900)));
    w.blocks(25);
    assert_eq!(w.withdraw(b).expect("withdraw"), emc(900));
}

#[test]
fn a_validator_missing_most_commits_is_jailed() {
    let mut w = World::new();
    let b = val(1).address;
    // Blocks 1..=10 are epoch 0; b signs none of them.
    while w.host.height <= 10 {
        w.block_with(&[b]);
    }
    let info = w.view(IStaking::validatorInfoCall { validator: b });
    assert_eq!(info.jailedUntilEpoch, 2);
    assert_eq!(w.set_addresses(), vec![val(0).address]);
    // Missing a few is fine.
    let mut w = World::new();
    for h in 1..=10 {
        let missing: &[Address] = if h % 3 == 0 { &[b] } else { &[] };
        w.block_with(missing);
    }
    assert_eq!(w.set_addresses().len(), 2);
}

#[test]
fn only_the_chain_calls_on_block_and_views_refuse_value() {
    let mut w = World::new();
    let input = IStaking::onBlockCall {
        proposer: Address::ZERO,
        signers: Bytes::new(),
    };
    assert!(w
        .call(user(0), U256::ZERO, input.abi_encode())
        .unwrap_err()
        .contains("chain only"));
    assert!(w
        .call(user(0), emc(1), IStaking::totalStakedCall {}.abi_encode())
        .is_err());
    assert!(w.call(user(0), U256::ZERO, vec![1, 2, 3]).is_err());
}

#[derive(Clone, Debug)]
enum Op {
    Stake(u8, u8, u64),
    Unstake(u8, u8, u64),
    Withdraw(u8),
    Claim(u8),
    Blocks(u8),
    Evidence(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, 0u8..3, 1u64..3_000).prop_map(|(u, r, a)| Op::Stake(u, r, a)),
        (0u8..6, 0u8..3, 1u64..3_000).prop_map(|(u, r, a)| Op::Unstake(u, r, a)),
        (0u8..6).prop_map(Op::Withdraw),
        (0u8..6).prop_map(Op::Claim),
        (1u8..15).prop_map(Op::Blocks),
        (0u8..2).prop_map(Op::Evidence),
    ]
}

/// Account `i`: users 0..4, then the two genesis validators.
fn who(i: u8) -> Address {
    if i < 4 {
        user(i)
    } else {
        val(i as u32 - 4).address
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever happens, the supply changes only by emission and slashing, the module
    /// always holds every stake it owes, and nothing is paid out before its release.
    #[test]
    fn supply_changes_only_by_emission_and_slashing(ops in proptest::collection::vec(op(), 1..40)) {
        let mut w = World::new();
        let start = w.host.supply();
        for o in ops {
            match o {
                Op::Stake(u, r, a) => { let _ = w.stake(who(u), r, emc(a)); }
                Op::Unstake(u, r, a) => { let _ = w.unstake(who(u), r, emc(a)); }
                Op::Withdraw(u) => {
                    let a = who(u);
                    let due: Vec<u64> = (0..3u8).map(|r| w.view(IStaking::stakeOfCall { account: a, role: r }))
                        .filter(|s| !s.unbonding.is_zero()).map(|s| s.releaseHeight).collect();
                    if w.withdraw(a).is_ok() {
                        prop_assert!(due.iter().any(|r| *r <= w.host.height), "paid before release");
                    }
                }
                Op::Claim(u) => { let _ = w.claim(who(u)); }
                Op::Blocks(n) => w.blocks(n as u64),
                Op::Evidence(i) => {
                    let h = w.host.height - 1;
                    if h > 0 {
                        let ev = w.equivocation(i as u32, val(i as u32).address, h);
                        let _ = w.call(user(0), U256::ZERO, ev.abi_encode());
                    }
                }
            }
            let (minted, slashed) = (w.minted(), w.slashed());
            prop_assert_eq!(w.host.supply() + slashed, start + minted);
            // Solvency: the module's balance covers every bonded and unbonding stake.
            let mut owed = U256::ZERO;
            for i in 0..6 {
                for r in 0..3u8 {
                    let s = w.view(IStaking::stakeOfCall { account: who(i), role: r });
                    owed += s.staked + s.unbonding;
                }
            }
            prop_assert_eq!(w.host.balance(STAKING_ADDRESS), owed);
        }
    }
}
