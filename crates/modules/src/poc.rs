//! The `Poc` system contract: validators' proof-of-computing attestations, and each
//! computing node's E per epoch.
//!
//! Each epoch the validators challenge every registered node with the standard task
//! (`emc_protocol::poc`: seeded hash chains, a Merkle commitment, sampled segments
//! checked) and measure E themselves. A validator's verdict is an attestation signed
//! by its ed25519 consensus key over
//! `"emc poc attest v1" . chainId . epoch . nodeId . score . ok` ([`attestation_message`]);
//! anyone may submit it (the validator's node does), the module checks the signature,
//! that the key belongs to the current validator set, that the epoch is the current
//! one, and counts each validator once per node and epoch.
//!
//! * When validators holding more than 2/3 of the voting power have attested the node
//!   correct, its E for the epoch is the median of their scores (so no single
//!   validator sets it) and is credited to the node's owner for the staking module's
//!   computing-node pool (`IStaking.setComputeScores`, summed over an owner's nodes).
//! * When validators holding more than 1/3 of the power have caught it answering
//!   wrongly, the node is marked faulty for the epoch (`faults` counts), and its owner's
//!   computing-node stake, if any, is slashed by the genesis `slashBps`
//!   (`IStaking.slashCompute`), once per node and epoch.

use crate::kit::abi::emit;
use crate::kit::slots::{ArrayMapping, Mapping};
use crate::registry::RegistryModule;
use crate::staking::{self, IStaking};
use crate::{chain::ChainModule, Metered, ModuleCall, ModuleError, STAKING_ADDRESS};
use alloy_primitives::{keccak256, Bytes, B256, U256};
use alloy_sol_types::{sol, SolCall, SolInterface};

sol! {
    /// The ABI at `POC_ADDRESS`.
    interface IPoc {
        event Attested(uint64 indexed epoch, bytes32 indexed nodeId, bytes32 validatorKey, uint64 score, bool ok);
        event ScoreSet(uint64 indexed epoch, bytes32 indexed nodeId, address owner, uint64 score);
        event Faulted(uint64 indexed epoch, bytes32 indexed nodeId, address owner);

        function attest(uint64 epoch, bytes32 nodeId, uint64 score, bool ok, bytes32 validatorKey, bytes signature) external;

        function scoreOf(bytes32 nodeId) external view returns (uint64 epoch, uint64 score);
        function tally(uint64 epoch, bytes32 nodeId) external view returns (uint256 okPower, uint256 failPower, uint256 totalPower, bool scored, bool faulted);
        function faults(bytes32 nodeId) external view returns (uint64);
    }
}

// Storage, as a Solidity contract would declare it. `(epoch, node)` keys are
// `keccak256(epoch . node)` ([`key2`]).
/// Attestations seen, by `keccak256(key2(epoch, node) . validator key)`.
const SEEN: Mapping<B256, bool> = Mapping::at(0);
/// Power that attested the node's result, and power that reported a fault.
const OK_POWER: Mapping<B256, U256> = Mapping::at(1);
const FAIL_POWER: Mapping<B256, U256> = Mapping::at(2);
/// The scores attested for `(epoch, node)`.
const SCORES: ArrayMapping<B256, u64> = ArrayMapping::at(3);
/// Bit 0: scored; bit 1: faulted.
const DONE: Mapping<B256, U256> = Mapping::at(4);
/// A node's last score: `epoch << 64 | score`.
pub(crate) const LAST: Mapping<B256, U256> = Mapping::at(5);
const FAULTS: Mapping<B256, u64> = Mapping::at(6);
/// An owner's summed score in an epoch, by `keccak256(epoch . owner)`.
const OWNER_SUM: Mapping<B256, U256> = Mapping::at(7);

/// A revert in this module's name (the kit's `"<Module>: <why>"`).
fn revert(why: impl std::fmt::Display) -> ModuleError {
    crate::kit::abi::revert("Poc", why)
}

fn key2(epoch: u64, node: B256) -> B256 {
    keccak256([&epoch.to_be_bytes()[..], node.as_slice()].concat())
}

/// What a validator's consensus key signs to attest a node's result.
pub fn attestation_message(chain_id: u64, epoch: u64, node: B256, score: u64, ok: bool) -> Vec<u8> {
    let mut m = b"emc poc attest v1".to_vec();
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(&epoch.to_be_bytes());
    m.extend_from_slice(node.as_slice());
    m.extend_from_slice(&score.to_be_bytes());
    m.push(ok as u8);
    m
}

pub struct PocModule;

impl PocModule {
    /// A node's E, its last score (zero if never scored), for another module.
    pub fn score(m: &mut Metered<'_>, node: B256) -> Result<u64, ModuleError> {
        let v = LAST.get_in(m, crate::POC_ADDRESS, &node)?;
        Ok((v & U256::from(u64::MAX)).saturating_to())
    }

    pub fn call(m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        if !call.value.is_zero() {
            return Err(revert("not payable"));
        }
        let decoded = IPoc::IPocCalls::abi_decode(call.input)
            .map_err(|_| revert("unknown function or bad arguments"))?;
        Ok(match decoded {
            IPoc::IPocCalls::attest(c) => {
                if call.is_static {
                    return Err(revert("state change in a static call"));
                }
                attest(m, &c)?;
                Bytes::new()
            }
            IPoc::IPocCalls::scoreOf(c) => {
                let v = LAST.get(m, &c.nodeId)?;
                let (epoch, score) = (
                    (v >> 64usize).saturating_to::<u64>(),
                    (v & U256::from(u64::MAX)).saturating_to::<u64>(),
                );
                IPoc::scoreOfCall::abi_encode_returns(&IPoc::scoreOfReturn { epoch, score }).into()
            }
            IPoc::IPocCalls::tally(c) => {
                let k = key2(c.epoch, c.nodeId);
                let done = DONE.get(m, &k)?;
                let total = ChainModule::read_set(m)?
                    .iter()
                    .map(|v| U256::from(v.2))
                    .fold(U256::ZERO, |a, b| a + b);
                IPoc::tallyCall::abi_encode_returns(&IPoc::tallyReturn {
                    okPower: OK_POWER.get(m, &k)?,
                    failPower: FAIL_POWER.get(m, &k)?,
                    totalPower: total,
                    scored: done.bit(0),
                    faulted: done.bit(1),
                })
                .into()
            }
            IPoc::IPocCalls::faults(c) => {
                IPoc::faultsCall::abi_encode_returns(&FAULTS.get(m, &c.nodeId)?).into()
            }
        })
    }
}

fn attest(m: &mut Metered<'_>, c: &IPoc::attestCall) -> Result<(), ModuleError> {
    let height = m.host().height();
    let epoch = staking::epoch_of(height, staking::epoch_blocks(m)?);
    if c.epoch != epoch {
        return Err(revert(format!(
            "attestation for epoch {}, the current epoch is {epoch}",
            c.epoch
        )));
    }
    let set = ChainModule::read_set(m)?;
    let power = set
        .iter()
        .find(|v| v.1 == c.validatorKey)
        .map(|v| v.2)
        .ok_or_else(|| revert("the key is not in the current validator set"))?;
    let sig: [u8; 64] = c
        .signature
        .as_ref()
        .try_into()
        .map_err(|_| revert("the signature is 64 bytes"))?;
    m.charge_signature()?;
    let vk = ed25519_consensus::VerificationKey::try_from(c.validatorKey.0)
        .map_err(|_| revert("bad validator key"))?;
    vk.verify(
        &ed25519_consensus::Signature::from(sig),
        &attestation_message(m.host().chain_id(), c.epoch, c.nodeId, c.score, c.ok),
    )
    .map_err(|_| revert("the validator key did not sign this attestation"))?;
    let owner = RegistryModule::owner(m, c.nodeId)?;
    if owner.is_zero() {
        return Err(revert("no such node in the registry"));
    }
    let k = key2(c.epoch, c.nodeId);
    let seen = keccak256([k.as_slice(), c.validatorKey.as_slice()].concat());
    if SEEN.get(m, &seen)? {
        return Err(revert(
            "this validator already attested this node this epoch",
        ));
    }
    SEEN.set(m, &seen, &true)?;
    emit(
        m,
        IPoc::Attested {
            epoch: c.epoch,
            nodeId: c.nodeId,
            validatorKey: c.validatorKey,
            score: c.score,
            ok: c.ok,
        },
    );
    let total: u64 = set.iter().map(|v| v.2).sum();
    let done = DONE.get(m, &k)?;
    if c.ok {
        let ok = OK_POWER.get(m, &k)? + U256::from(power);
        OK_POWER.set(m, &k, &ok)?;
        // One score per validator of the set (at most the set's size).
        let n = SCORES.push(m, &k, &c.score, crate::chain::MAX_VALIDATORS)?;
        if !done.bit(0) && ok * U256::from(3) > U256::from(total) * U256::from(2) {
            let mut scores = (0..=n)
                .map(|i| Ok(m.sload(SCORES.element_slot(&k, i))?.saturating_to::<u64>()))
                .collect::<Result<Vec<u64>, ModuleError>>()?;
            scores.sort_unstable();
            let e = scores[scores.len() / 2];
            DONE.set(m, &k, &(done | U256::from(1)))?;
            LAST.set(m, &c.nodeId, &((U256::from(c.epoch) << 64) | U256::from(e)))?;
            let by_owner = keccak256([&c.epoch.to_be_bytes()[..], owner.as_slice()].concat());
            let sum = OWNER_SUM.get(m, &by_owner)? + U256::from(e);
            OWNER_SUM.set(m, &by_owner, &sum)?;
            m.call_module(
                STAKING_ADDRESS,
                &IStaking::setComputeScoresCall {
                    nodes: vec![owner],
                    scores: vec![sum],
                }
                .abi_encode(),
            )?;
            emit(
                m,
                IPoc::ScoreSet {
                    epoch: c.epoch,
                    nodeId: c.nodeId,
                    owner,
                    score: e,
                },
            );
        }
    } else {
        let fail = FAIL_POWER.get(m, &k)? + U256::from(power);
        FAIL_POWER.set(m, &k, &fail)?;
        if !done.bit(1) && fail * U256::from(3) > U256::from(total) {
            DONE.set(m, &k, &(done | U256::from(2)))?;
            let f = FAULTS.get(m, &c.nodeId)?;
            FAULTS.set(m, &c.nodeId, &(f + 1))?;
            m.call_module(
                STAKING_ADDRESS,
                &IStaking::slashComputeCall { owner }.abi_encode(),
            )?;
            emit(
                m,
                IPoc::Faulted {
                    epoch: c.epoch,
                    nodeId: c.nodeId,
                    owner,
                },
            );
        }
    }
    Ok(())
}

impl crate::kit::SystemModule for PocModule {
    fn address(&self) -> alloy_primitives::Address {
        crate::POC_ADDRESS
    }

    fn name(&self) -> &'static str {
        "Poc"
    }

    fn call(&self, m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        PocModule::call(m, call)
    }
}

#[cfg(test)]
mod tests;
