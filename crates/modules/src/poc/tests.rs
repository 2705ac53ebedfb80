//! The PoC module over an in-memory host with the Chain, Staking and Registry modules:
//! a quorum of attestations sets E as the median and feeds the computing-node pool; a
//! blocking minority of fault reports slashes the owner's stake once.

use super::*;
use crate::registry::{registration_message, IRegistry};
use crate::staking::StakingModule;
use crate::testing::val;
use crate::{testing::MemHost, CHAIN_ADDRESS, POC_ADDRESS, REGISTRY_ADDRESS, SYSTEM_CALLER};
use alloy_primitives::Address;
use emc_types::{Genesis, EMC};

struct World {
    host: MemHost,
}

const OWNER: Address = Address::repeat_byte(0x51);
const OWNER2: Address = Address::repeat_byte(0x52);

fn node_key(i: u8) -> ed25519_consensus::SigningKey {
    ed25519_consensus::SigningKey::from([i; 32])
}

fn node(i: u8) -> B256 {
    B256::from(node_key(i).verification_key().to_bytes())
}

impl World {
    /// Three validators of equal power, epochs of 10 blocks, two registered nodes
    /// whose owners each staked 100 EMC as computing nodes.
    fn new() -> World {
        let mut g = Genesis::dev(val(0), &[], U256::ZERO);
        g.validators.push(val(1));
        g.validators.push(val(2));
        g.staking.epoch_blocks = 10;
        g.staking.compute_pool = EMC * U256::from(50);
        g.staking.slash_bps = 1_000;
        let mut host = MemHost::new(POC_ADDRESS);
        for (k, v) in crate::chain::ChainModule::genesis_storage(&g.validators) {
            host.storage.insert((CHAIN_ADDRESS, k), v);
        }
        for (k, v) in StakingModule::genesis_storage(&g) {
            host.storage.insert((STAKING_ADDRESS, k), v);
        }
        host.balances
            .insert(STAKING_ADDRESS, StakingModule::genesis_balance(&g));
        host.balances.insert(OWNER, EMC * U256::from(1_000));
        host.balances.insert(OWNER2, EMC * U256::from(1_000));
        host.height = 3;
        let mut w = World { host };
        for (i, owner) in [(1u8, OWNER), (2u8, OWNER2)] {
            let k = node_key(i);
            let reg = IRegistry::registerCall {
                nodeId: node(i),
                nodeSignature: k
                    .sign(&registration_message(42, owner, node(i)))
                    .to_bytes()
                    .to_vec()
                    .into(),
                apps: vec!["embed".into()],
                prices: vec![U256::from(1)],
                hardware: String::new(),
            };
            w.call_at(REGISTRY_ADDRESS, owner, U256::ZERO, reg.abi_encode())
                .expect("registers");
            w.call_at(
                STAKING_ADDRESS,
                owner,
                EMC * U256::from(100),
                IStaking::stakeCall { role: 2 }.abi_encode(),
            )
            .expect("stakes");
        }
        w
    }

    fn call_at(
        &mut self,
        module: Address,
        caller: Address,
        value: U256,
        input: Vec<u8>,
    ) -> Result<Bytes, String> {
        self.host.call(module, caller, value, &input, 30_000_000)
    }

    fn attest_as(
        &mut self,
        v: u32,
        epoch: u64,
        node: B256,
        score: u64,
        ok: bool,
    ) -> Result<(), String> {
        let key = emc_crypto::ConsensusKey::dev(v);
        let sig = ed25519_consensus::SigningKey::from(key.seed())
            .sign(&attestation_message(42, epoch, node, score, ok));
        let c = IPoc::attestCall {
            epoch,
            nodeId: node,
            score,
            ok,
            validatorKey: key.public(),
            signature: sig.to_bytes().to_vec().into(),
        };
        self.call_at(
            POC_ADDRESS,
            Address::repeat_byte(0x99),
            U256::ZERO,
            c.abi_encode(),
        )
        .map(|_| ())
    }

    fn score(&mut self, node: B256) -> (u64, u64) {
        let out = self
            .call_at(
                POC_ADDRESS,
                OWNER,
                U256::ZERO,
                IPoc::scoreOfCall { nodeId: node }.abi_encode(),
            )
            .expect("view");
        let r = IPoc::scoreOfCall::abi_decode_returns(&out).expect("decodes");
        (r.epoch, r.score)
    }

    fn compute_stake(&mut self, owner: Address) -> U256 {
        let out = self
            .call_at(
                STAKING_ADDRESS,
                owner,
                U256::ZERO,
                IStaking::stakeOfCall {
                    account: owner,
                    role: 2,
                }
                .abi_encode(),
            )
            .expect("view");
        IStaking::stakeOfCall::abi_decode_returns(&out)
            .expect("decodes")
            .staked
    }
}

#[test]
fn a_quorum_of_attestations_sets_e_as_the_median_and_pays_from_the_pool() {
    let mut w = World::new();
    w.attest_as(0, 0, node(1), 100, true).expect("first");
    w.attest_as(1, 0, node(1), 300, true).expect("second");
    assert_eq!(
        w.score(node(1)),
        (0, 0),
        "2/3 of the power is not more than 2/3"
    );
    // The same validator twice counts once.
    let e = w.attest_as(1, 0, node(1), 999, true).expect_err("twice");
    assert!(e.contains("already attested"), "{e}");
    w.attest_as(2, 0, node(1), 200, true).expect("third");
    assert_eq!(w.score(node(1)), (0, 200), "the median of 100, 300 and 200");
    // At the epoch's end the computing-node pool goes to the only scored owner.
    w.host.height = 10;
    w.call_at(
        STAKING_ADDRESS,
        SYSTEM_CALLER,
        U256::ZERO,
        IStaking::onBlockCall {
            proposer: Address::ZERO,
            signers: Bytes::new(),
        }
        .abi_encode(),
    )
    .expect("epoch end");
    let pending = |w: &mut World, a: Address| {
        let out = w
            .call_at(
                STAKING_ADDRESS,
                a,
                U256::ZERO,
                IStaking::pendingRewardsCall { account: a }.abi_encode(),
            )
            .expect("view");
        IStaking::pendingRewardsCall::abi_decode_returns(&out).expect("decodes")
    };
    assert_eq!(pending(&mut w, OWNER), EMC * U256::from(50));
    assert_eq!(pending(&mut w, OWNER2), U256::ZERO);
}

#[test]
fn attestations_are_checked_before_they_count() {
    let mut w = World::new();
    let e = w
        .attest_as(0, 1, node(1), 1, true)
        .expect_err("future epoch");
    assert!(e.contains("current epoch is 0"), "{e}");
    let e = w
        .attest_as(7, 0, node(1), 1, true)
        .expect_err("not a validator");
    assert!(e.contains("not in the current validator set"), "{e}");
    let e = w
        .attest_as(0, 0, node(9), 1, true)
        .expect_err("unregistered");
    assert!(e.contains("no such node"), "{e}");
    // A signature over another score does not verify.
    let key = emc_crypto::ConsensusKey::dev(0);
    let sig = ed25519_consensus::SigningKey::from(key.seed()).sign(&attestation_message(
        42,
        0,
        node(1),
        5,
        true,
    ));
    let forged = IPoc::attestCall {
        epoch: 0,
        nodeId: node(1),
        score: 5_000,
        ok: true,
        validatorKey: key.public(),
        signature: sig.to_bytes().to_vec().into(),
    };
    let e = w
        .call_at(POC_ADDRESS, OWNER, U256::ZERO, forged.abi_encode())
        .expect_err("forged");
    assert!(e.contains("did not sign"), "{e}");
    // Only the PoC module sets scores or slashes.
    let e = w
        .call_at(
            STAKING_ADDRESS,
            OWNER,
            U256::ZERO,
            IStaking::slashComputeCall { owner: OWNER2 }.abi_encode(),
        )
        .expect_err("not poc");
    assert!(e.contains("only the proof-of-computing module"), "{e}");
}

#[test]
fn a_node_caught_by_more_than_a_third_is_slashed_once() {
    let mut w = World::new();
    let supply = w.host.supply();
    let before = w.compute_stake(OWNER2);
    w.attest_as(0, 0, node(2), 0, false)
        .expect("one fault report");
    assert_eq!(w.compute_stake(OWNER2), before, "1/3 is not more than 1/3");
    w.attest_as(1, 0, node(2), 0, false).expect("second");
    let after = w.compute_stake(OWNER2);
    assert_eq!(after, before - before / U256::from(10), "slashBps = 10%");
    assert_eq!(
        w.host.supply(),
        supply - before / U256::from(10),
        "the slashed stake is burnt"
    );
    w.attest_as(2, 0, node(2), 0, false).expect("third");
    assert_eq!(w.compute_stake(OWNER2), after, "once per node and epoch");
    let out = w
        .call_at(
            POC_ADDRESS,
            OWNER,
            U256::ZERO,
            IPoc::faultsCall { nodeId: node(2) }.abi_encode(),
        )
        .expect("view");
    assert_eq!(
        IPoc::faultsCall::abi_decode_returns(&out).expect("decodes"),
        1
    );
    assert_eq!(
        w.compute_stake(OWNER),
        EMC * U256::from(100),
        "the honest node keeps its stake"
    );
}
