//! The `Staking` system contract: stake for the three roles, validator election,
//! emission, and slashing.
//!
//! * **Roles**: validator (0), router (1), computing node (2), each with a minimum
//!   stake from genesis (the computing-node minimum may be zero: such nodes take only
//!   non-continuous work). `stake(role)` adds the call's value; `unstake(role, amount)`
//!   moves stake into an unbonding bucket that `withdraw()` pays out once
//!   `unbondingBlocks` have passed since the *last* unstake (one bucket per role, so a
//!   later unstake only ever delays the release). Unbonding stake can still be
//!   slashed: a validator cannot escape by unstaking first.
//! * **Locks**: a computing node may lock its stake for a genesis tier (blocks and
//!   multiplier); locked stake cannot be unstaked; its proof-of-computing rewards are
//!   multiplied while the lock lasts.
//! * **Election**: a validator registers its ed25519 consensus key once. At the last
//!   block of each epoch the module ranks candidates that are not jailed and hold at
//!   least the minimum by stake (ties by address), takes up to `maxValidators`, and
//!   writes them, with voting power = stake in whole EMC, into the `Chain` module: the
//!   set that seals the next epoch. With no eligible candidate the set stays as it is,
//!   so the chain never loses its validators.
//! * **Rewards** (credited, then minted by `claimRewards()`): `blockReward` for every
//!   block, split among the set that sealed it by power (credited at the epoch's end,
//!   since the set is fixed within an epoch); every epoch `routerPool`
//!   split among routers by stake and `computePool` among computing nodes by
//!   proof-of-computing score times lock multiplier (the scores come from the PoC
//!   module through `setComputeScores`). Priority fees already go to the proposer.
//! * **Slashing**: anyone may submit evidence that a validator signed two different
//!   digests of one kind at one height and round. The module checks both ed25519
//!   signatures against the validator's registered key and that it was in the set at
//!   that height, burns `slashBps` of its stake (bonded first, then unbonding) and
//!   jails it for `jailEpochs`; evidence counts once per validator and height, and only
//!   within the unbonding period. A validator that misses more than `jailMissedBps` of
//!   an epoch's commits (from the commit signers each block records for its parent) is
//!   jailed too.
//!
//! The total supply changes only by emission (`totalMinted`) and slashing
//! (`totalSlashed`): stake moves between accounts and this module's balance, never
//! created or destroyed otherwise.

use crate::kit::abi::emit;
use crate::{
    addr_key, array_slot, chain::ChainModule, map_slot, Metered, ModuleCall, ModuleError,
    POC_ADDRESS, SYSTEM_CALLER,
};
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::{sol, SolCall, SolInterface};
use emc_types::{Genesis, StakingParams, EMC};
use std::collections::BTreeMap;

sol! {
    /// The ABI at `STAKING_ADDRESS`.
    interface IStaking {
        event Staked(address indexed account, uint8 indexed role, uint256 amount);
        event Unstaked(address indexed account, uint8 indexed role, uint256 amount, uint64 releaseHeight);
        event Withdrawn(address indexed account, uint256 amount);
        event Locked(address indexed account, uint8 tier, uint64 untilHeight);
        event CandidateRegistered(address indexed validator, bytes32 consensusKey);
        event ValidatorSetElected(uint64 indexed epoch, address[] validators, uint256[] powers);
        event Slashed(address indexed validator, uint64 height, uint256 amount);
        event Jailed(address indexed validator, uint64 untilEpoch);
        event RewardsClaimed(address indexed account, uint256 amount);

        function stake(uint8 role) external payable;
        function unstake(uint8 role, uint256 amount) external;
        function withdraw() external returns (uint256);
        function lock(uint8 tier) external;
        function registerValidator(bytes32 consensusKey) external;
        function claimRewards() external returns (uint256);
        function submitEvidence(address validator, uint8 kind, uint64 height, uint32 round, bytes32 digestA, bytes sigA, bytes32 digestB, bytes sigB) external;
        function setComputeScores(address[] nodes, uint256[] scores) external;
        function slashCompute(address owner) external;
        function onBlock(address proposer, bytes signers) external;

        function stakeOf(address account, uint8 role) external view returns (uint256 staked, uint256 unbonding, uint64 releaseHeight);
        function lockOf(address account) external view returns (uint64 untilHeight, uint32 multiplierBps);
        function validatorInfo(address validator) external view returns (bytes32 consensusKey, bool candidate, uint64 jailedUntilEpoch, uint64 missedThisEpoch);
        function candidates() external view returns (address[] memory);
        function pendingRewards(address account) external view returns (uint256);
        function currentEpoch() external view returns (uint64);
        function totalStaked() external view returns (uint256);
        function totalMinted() external view returns (uint256);
        function totalSlashed() external view returns (uint256);
    }
}

/// The three staking roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Validator = 0,
    Router = 1,
    Compute = 2,
}

impl Role {
    fn from_u8(r: u8) -> Result<Role, ModuleError> {
        match r {
            0 => Ok(Role::Validator),
            1 => Ok(Role::Router),
            2 => Ok(Role::Compute),
            _ => Err(revert(format!(
                "unknown role {r} (0 validator, 1 router, 2 compute)"
            ))),
        }
    }
    const ALL: [Role; 3] = [Role::Validator, Role::Router, Role::Compute];
}

/// Most accounts a role's list holds; every loop over a list is bounded by it.
pub const MAX_CANDIDATES: u64 = 256;
pub const MAX_ROUTERS: u64 = 1_024;
pub const MAX_COMPUTE: u64 = 4_096;

// Parameter slots, written at genesis.
const P_EPOCH_BLOCKS: u64 = 0;
const P_MAX_VALIDATORS: u64 = 1;
const P_MIN_STAKE: u64 = 2; // 2, 3, 4 by role
const P_UNBONDING: u64 = 5;
const P_BLOCK_REWARD: u64 = 6;
const P_ROUTER_POOL: u64 = 7;
const P_COMPUTE_POOL: u64 = 8;
const P_SLASH_BPS: u64 = 9;
const P_JAIL_MISSED_BPS: u64 = 10;
const P_JAIL_EPOCHS: u64 = 11;
const P_TIER_COUNT: u64 = 12;
const P_TIERS: u64 = 13; // (blocks, bps) pairs

// State slots.
const S_MINTED: u64 = 100;
const S_SLASHED: u64 = 101;
const S_LISTS: u64 = 102; // 102, 103, 104: account lists by role
const S_TOTAL_STAKED: u64 = 105;
const M_STAKE: u64 = 110; // [account][role]
const M_UNBONDING: u64 = 111; // [account][role]
const M_RELEASE: u64 = 112; // [account][role]
const M_LOCK_UNTIL: u64 = 113;
const M_LOCK_BPS: u64 = 114;
const M_KEY: u64 = 115;
const M_KEY_OWNER: u64 = 116; // [key]
const M_JAILED_UNTIL: u64 = 117;
const M_REWARDS: u64 = 118;
const M_MISSED: u64 = 119;
const M_SCORE: u64 = 120;
const M_EVIDENCE: u64 = 121; // [keccak(validator, height)]
const M_MEMBER: u64 = 122; // [epoch][account] = index + 1
const M_LISTED: u64 = 123; // [account][role]

fn revert(msg: impl Into<String>) -> ModuleError {
    ModuleError::Revert(format!("Staking: {}", msg.into()))
}

fn slot(n: u64) -> U256 {
    U256::from(n)
}

fn map(base: u64, key: B256) -> U256 {
    map_slot(slot(base), key)
}

fn map2(base: u64, a: B256, b: B256) -> U256 {
    map_slot(map(base, a), b)
}

fn role_key(r: Role) -> B256 {
    B256::from(U256::from(r as u8))
}

fn u64_of(v: U256) -> u64 {
    v.try_into().unwrap_or(u64::MAX)
}

/// The epoch a height belongs to: blocks 1..=E are epoch 0, and so on. Genesis (0)
/// counts as epoch 0.
/// The genesis epoch length, read by another module.
pub fn epoch_blocks(m: &mut Metered<'_>) -> Result<u64, ModuleError> {
    Ok(u64_of(m.sload_at(crate::STAKING_ADDRESS, slot(P_EPOCH_BLOCKS))?).max(1))
}

/// The epoch number of a height ([`emc_types::Epoch::of`]).
pub fn epoch_of(height: u64, epoch_blocks: u64) -> u64 {
    Epoch::of(height, epoch_blocks).0
}

pub use emc_types::Epoch;

pub struct StakingModule;

/// Typed access to the module's storage through the metered host.
struct St<'a, 'h> {
    m: &'a mut Metered<'h>,
}

impl St<'_, '_> {
    fn get(&mut self, s: U256) -> Result<U256, ModuleError> {
        self.m.sload(s)
    }
    fn set(&mut self, s: U256, v: U256) -> Result<(), ModuleError> {
        self.m.sstore(s, v)
    }
    fn param(&mut self, n: u64) -> Result<U256, ModuleError> {
        self.get(slot(n))
    }
    fn add(&mut self, s: U256, v: U256) -> Result<(), ModuleError> {
        let cur = self.get(s)?;
        self.set(s, cur.saturating_add(v))
    }
    fn stake(&mut self, a: Address, r: Role) -> Result<U256, ModuleError> {
        self.get(map2(M_STAKE, addr_key(a), role_key(r)))
    }
    fn list(&mut self, r: Role) -> Result<Vec<Address>, ModuleError> {
        let base = slot(S_LISTS + r as u64);
        let n = u64_of(self.get(base)?).min(MAX_COMPUTE);
        (0..n)
            .map(|i| Ok(Address::from_word(self.get(array_slot(base, i))?.into())))
            .collect()
    }
    fn enlist(&mut self, a: Address, r: Role) -> Result<(), ModuleError> {
        let flag = map2(M_LISTED, addr_key(a), role_key(r));
        if !self.get(flag)?.is_zero() {
            return Ok(());
        }
        let cap = match r {
            Role::Validator => MAX_CANDIDATES,
            Role::Router => MAX_ROUTERS,
            Role::Compute => MAX_COMPUTE,
        };
        let base = slot(S_LISTS + r as u64);
        let n = u64_of(self.get(base)?);
        if n >= cap {
            return Err(revert(format!(
                "the list for role {} is full ({cap})",
                r as u8
            )));
        }
        self.set(array_slot(base, n), U256::from_be_bytes(addr_key(a).0))?;
        self.set(base, U256::from(n + 1))?;
        self.set(flag, U256::from(1))
    }
    fn min_stake(&mut self, r: Role) -> Result<U256, ModuleError> {
        self.param(P_MIN_STAKE + r as u64)
    }
    fn multiplier_bps(&mut self, a: Address, height: u64) -> Result<U256, ModuleError> {
        let until = u64_of(self.get(map(M_LOCK_UNTIL, addr_key(a)))?);
        if until > height {
            self.get(map(M_LOCK_BPS, addr_key(a)))
        } else {
            Ok(U256::from(10_000))
        }
    }
}

impl StakingModule {
    pub fn call(m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        use IStaking::IStakingCalls as C;
        let decoded =
            C::abi_decode(call.input).map_err(|_| revert("unknown function or bad arguments"))?;
        if !call.value.is_zero() && !matches!(decoded, C::stake(_)) {
            return Err(revert("only stake() takes value"));
        }
        let mutating = !matches!(
            decoded,
            C::stakeOf(_)
                | C::lockOf(_)
                | C::validatorInfo(_)
                | C::candidates(_)
                | C::pendingRewards(_)
                | C::currentEpoch(_)
                | C::totalStaked(_)
                | C::totalMinted(_)
                | C::totalSlashed(_)
        );
        if mutating && call.is_static {
            return Err(revert("state change in a static call"));
        }
        let height = m.host().height();
        let caller = call.caller;
        let mut st = St { m };
        Ok(match decoded {
            C::stake(c) => {
                stake(&mut st, caller, Role::from_u8(c.role)?, call.value)?;
                Bytes::new()
            }
            C::unstake(c) => {
                unstake(&mut st, caller, Role::from_u8(c.role)?, c.amount, height)?;
                Bytes::new()
            }
            C::withdraw(_) => {
                let paid = withdraw(&mut st, caller, height)?;
                IStaking::withdrawCall::abi_encode_returns(&paid).into()
            }
            C::lock(c) => {
                lock(&mut st, caller, c.tier, height)?;
                Bytes::new()
            }
            C::registerValidator(c) => {
                register(&mut st, caller, c.consensusKey)?;
                Bytes::new()
            }
            C::claimRewards(_) => {
                let key = map(M_REWARDS, addr_key(caller));
                let amount = st.get(key)?;
                if amount.is_zero() {
                    return Err(revert("no rewards to claim"));
                }
                st.set(key, U256::ZERO)?;
                st.add(slot(S_MINTED), amount)?;
                st.m.mint(caller, amount)?;
                emit(
                    st.m,
                    IStaking::RewardsClaimed {
                        account: caller,
                        amount,
                    },
                );
                IStaking::claimRewardsCall::abi_encode_returns(&amount).into()
            }
            C::submitEvidence(e) => {
                evidence(&mut st, &e, height)?;
                Bytes::new()
            }
            C::setComputeScores(c) => {
                if caller != POC_ADDRESS {
                    return Err(revert("only the proof-of-computing module sets scores"));
                }
                if c.nodes.len() != c.scores.len() || c.nodes.len() as u64 > MAX_COMPUTE {
                    return Err(revert("nodes and scores must match, at most 4096"));
                }
                for (n, s) in c.nodes.iter().zip(c.scores.iter()) {
                    st.set(map(M_SCORE, addr_key(*n)), *s)?;
                }
                Bytes::new()
            }
            C::slashCompute(c) => {
                if caller != POC_ADDRESS {
                    return Err(revert(
                        "only the proof-of-computing module slashes computing nodes",
                    ));
                }
                slash(&mut st, c.owner, Role::Compute, height)?;
                Bytes::new()
            }
            C::onBlock(c) => {
                if caller != SYSTEM_CALLER {
                    return Err(revert("onBlock is called by the chain only"));
                }
                on_block(&mut st, height, &c.signers)?;
                Bytes::new()
            }
            C::stakeOf(c) => {
                let r = Role::from_u8(c.role)?;
                let (a, k) = (addr_key(c.account), role_key(r));
                IStaking::stakeOfCall::abi_encode_returns(&IStaking::stakeOfReturn {
                    staked: st.get(map2(M_STAKE, a, k))?,
                    unbonding: st.get(map2(M_UNBONDING, a, k))?,
                    releaseHeight: u64_of(st.get(map2(M_RELEASE, a, k))?),
                })
                .into()
            }
            C::lockOf(c) => {
                let a = addr_key(c.account);
                IStaking::lockOfCall::abi_encode_returns(&IStaking::lockOfReturn {
                    untilHeight: u64_of(st.get(map(M_LOCK_UNTIL, a))?),
                    multiplierBps: u64_of(st.multiplier_bps(c.account, height)?) as u32,
                })
                .into()
            }
            C::validatorInfo(c) => {
                let a = addr_key(c.validator);
                IStaking::validatorInfoCall::abi_encode_returns(&IStaking::validatorInfoReturn {
                    consensusKey: st.get(map(M_KEY, a))?.into(),
                    candidate: !st
                        .get(map2(M_LISTED, a, role_key(Role::Validator)))?
                        .is_zero(),
                    jailedUntilEpoch: u64_of(st.get(map(M_JAILED_UNTIL, a))?),
                    missedThisEpoch: u64_of(st.get(map(M_MISSED, a))?),
                })
                .into()
            }
            C::candidates(_) => {
                IStaking::candidatesCall::abi_encode_returns(&st.list(Role::Validator)?).into()
            }
            C::pendingRewards(c) => IStaking::pendingRewardsCall::abi_encode_returns(
                &st.get(map(M_REWARDS, addr_key(c.account)))?,
            )
            .into(),
            C::currentEpoch(_) => {
                let e = u64_of(st.param(P_EPOCH_BLOCKS)?);
                IStaking::currentEpochCall::abi_encode_returns(&epoch_of(height, e)).into()
            }
            C::totalStaked(_) => {
                IStaking::totalStakedCall::abi_encode_returns(&st.get(slot(S_TOTAL_STAKED))?).into()
            }
            C::totalMinted(_) => {
                IStaking::totalMintedCall::abi_encode_returns(&st.get(slot(S_MINTED))?).into()
            }
            C::totalSlashed(_) => {
                IStaking::totalSlashedCall::abi_encode_returns(&st.get(slot(S_SLASHED))?).into()
            }
        })
    }

    /// The storage genesis writes: parameters, the genesis validators' stakes, keys and
    /// candidacy, and their membership in epoch 0. The module's balance must equal the
    /// sum of the stakes ([`Self::genesis_balance`]).
    pub fn genesis_storage(g: &Genesis) -> BTreeMap<U256, U256> {
        let p = &g.staking;
        let mut s = BTreeMap::new();
        let mut put = |k: U256, v: U256| {
            s.insert(k, v);
        };
        put(slot(P_EPOCH_BLOCKS), U256::from(p.epoch_blocks));
        put(slot(P_MAX_VALIDATORS), U256::from(p.max_validators));
        put(slot(P_MIN_STAKE), p.min_validator_stake);
        put(slot(P_MIN_STAKE + 1), p.min_router_stake);
        put(slot(P_MIN_STAKE + 2), p.min_compute_stake);
        put(slot(P_UNBONDING), U256::from(p.unbonding_blocks));
        put(slot(P_BLOCK_REWARD), p.block_reward);
        put(slot(P_ROUTER_POOL), p.router_pool);
        put(slot(P_COMPUTE_POOL), p.compute_pool);
        put(slot(P_SLASH_BPS), U256::from(p.slash_bps));
        put(slot(P_JAIL_MISSED_BPS), U256::from(p.jail_missed_bps));
        put(slot(P_JAIL_EPOCHS), U256::from(p.jail_epochs));
        put(slot(P_TIER_COUNT), U256::from(p.lock_tiers.len()));
        for (i, t) in p.lock_tiers.iter().enumerate() {
            put(slot(P_TIERS + 2 * i as u64), U256::from(t.blocks));
            put(
                slot(P_TIERS + 2 * i as u64 + 1),
                U256::from(t.multiplier_bps),
            );
        }
        let vkey = role_key(Role::Validator);
        let list = slot(S_LISTS);
        put(list, U256::from(g.validators.len()));
        for (i, v) in g.validators.iter().enumerate() {
            let a = addr_key(v.address);
            put(map2(M_STAKE, a, vkey), EMC * U256::from(v.power));
            put(map(M_KEY, a), v.consensus_key.into());
            put(map(M_KEY_OWNER, v.consensus_key), U256::from_be_bytes(a.0));
            put(map2(M_LISTED, a, vkey), U256::from(1));
            put(array_slot(list, i as u64), U256::from_be_bytes(a.0));
            put(map2(M_MEMBER, B256::ZERO, a), U256::from(i + 1));
        }
        put(slot(S_TOTAL_STAKED), Self::genesis_balance(g));
        s
    }

    /// What the module holds at genesis: the genesis validators' stakes.
    pub fn genesis_balance(g: &Genesis) -> U256 {
        g.validators
            .iter()
            .map(|v| EMC * U256::from(v.power))
            .fold(U256::ZERO, |a, b| a + b)
    }

    /// The staking rules as genesis wrote them (for tools; the module reads storage).
    pub fn params(g: &Genesis) -> &StakingParams {
        &g.staking
    }
}

fn stake(st: &mut St<'_, '_>, a: Address, r: Role, value: U256) -> Result<(), ModuleError> {
    if value.is_zero() {
        return Err(revert("send the amount to stake as the call's value"));
    }
    let key = map2(M_STAKE, addr_key(a), role_key(r));
    let total = st.get(key)?.saturating_add(value);
    let min = st.min_stake(r)?;
    if total < min {
        return Err(revert(format!(
            "stake {total} is below the minimum {min} for role {}",
            r as u8
        )));
    }
    st.set(key, total)?;
    st.add(slot(S_TOTAL_STAKED), value)?;
    if r != Role::Validator {
        // Validators enter the candidate list by registering their consensus key.
        st.enlist(a, r)?;
    }
    emit(
        st.m,
        IStaking::Staked {
            account: a,
            role: r as u8,
            amount: value,
        },
    );
    Ok(())
}

fn unstake(
    st: &mut St<'_, '_>,
    a: Address,
    r: Role,
    amount: U256,
    height: u64,
) -> Result<(), ModuleError> {
    let (ak, rk) = (addr_key(a), role_key(r));
    let staked = st.get(map2(M_STAKE, ak, rk))?;
    if amount.is_zero() || amount > staked {
        return Err(revert(format!("cannot unstake {amount}: {staked} staked")));
    }
    if r == Role::Compute {
        let until = u64_of(st.get(map(M_LOCK_UNTIL, ak))?);
        if until > height {
            return Err(revert(format!("stake is locked until block {until}")));
        }
    }
    let left = staked - amount;
    let min = st.min_stake(r)?;
    if !left.is_zero() && left < min {
        return Err(revert(format!(
            "{left} would be left, below the minimum {min}; unstake all of it or less"
        )));
    }
    let release = height + u64_of(st.param(P_UNBONDING)?);
    st.set(map2(M_STAKE, ak, rk), left)?;
    st.add(map2(M_UNBONDING, ak, rk), amount)?;
    st.set(map2(M_RELEASE, ak, rk), U256::from(release))?;
    let total = st.get(slot(S_TOTAL_STAKED))?;
    st.set(slot(S_TOTAL_STAKED), total.saturating_sub(amount))?;
    emit(
        st.m,
        IStaking::Unstaked {
            account: a,
            role: r as u8,
            amount,
            releaseHeight: release,
        },
    );
    Ok(())
}

fn withdraw(st: &mut St<'_, '_>, a: Address, height: u64) -> Result<U256, ModuleError> {
    let mut paid = U256::ZERO;
    for r in Role::ALL {
        let (ak, rk) = (addr_key(a), role_key(r));
        let amount = st.get(map2(M_UNBONDING, ak, rk))?;
        if amount.is_zero() {
            continue;
        }
        if u64_of(st.get(map2(M_RELEASE, ak, rk))?) <= height {
            st.set(map2(M_UNBONDING, ak, rk), U256::ZERO)?;
            paid += amount;
        }
    }
    if paid.is_zero() {
        return Err(revert("nothing to withdraw yet"));
    }
    st.m.pay(a, paid)?;
    emit(
        st.m,
        IStaking::Withdrawn {
            account: a,
            amount: paid,
        },
    );
    Ok(paid)
}

fn lock(st: &mut St<'_, '_>, a: Address, tier: u8, height: u64) -> Result<(), ModuleError> {
    let n = u64_of(st.param(P_TIER_COUNT)?);
    if tier as u64 >= n {
        return Err(revert(format!("no lock tier {tier} (there are {n})")));
    }
    if st.stake(a, Role::Compute)?.is_zero() {
        return Err(revert("stake as a computing node before locking"));
    }
    let blocks = u64_of(st.param(P_TIERS + 2 * tier as u64)?);
    let bps = st.param(P_TIERS + 2 * tier as u64 + 1)?;
    let until = height.saturating_add(blocks);
    let ak = addr_key(a);
    let current = u64_of(st.get(map(M_LOCK_UNTIL, ak))?);
    if current > until {
        return Err(revert(format!(
            "already locked until block {current}, later than {until}"
        )));
    }
    st.set(map(M_LOCK_UNTIL, ak), U256::from(until))?;
    st.set(map(M_LOCK_BPS, ak), bps)?;
    emit(
        st.m,
        IStaking::Locked {
            account: a,
            tier,
            untilHeight: until,
        },
    );
    Ok(())
}

fn register(st: &mut St<'_, '_>, a: Address, key: B256) -> Result<(), ModuleError> {
    if key.is_zero() {
        return Err(revert("the consensus key must not be zero"));
    }
    let ak = addr_key(a);
    let current: B256 = st.get(map(M_KEY, ak))?.into();
    if !current.is_zero() && current != key {
        return Err(revert(
            "this validator already registered another consensus key",
        ));
    }
    let owner = Address::from_word(st.get(map(M_KEY_OWNER, key))?.into());
    if owner != Address::ZERO && owner != a {
        return Err(revert("that consensus key belongs to another validator"));
    }
    let staked = st.stake(a, Role::Validator)?;
    let min = st.min_stake(Role::Validator)?;
    if staked < min {
        return Err(revert(format!(
            "stake at least {min} as a validator first ({staked} staked)"
        )));
    }
    st.set(map(M_KEY, ak), key.into())?;
    st.set(map(M_KEY_OWNER, key), U256::from_be_bytes(ak.0))?;
    st.enlist(a, Role::Validator)?;
    emit(
        st.m,
        IStaking::CandidateRegistered {
            validator: a,
            consensusKey: key,
        },
    );
    Ok(())
}

/// The end-of-block hook: rewards, liveness, and at an epoch's last block the pools,
/// jailing and the election.
fn on_block(st: &mut St<'_, '_>, height: u64, signers: &[u8]) -> Result<(), ModuleError> {
    let set = ChainModule::read_set(st.m)?;
    let epoch_blocks = u64_of(st.param(P_EPOCH_BLOCKS)?).max(1);
    let epoch = epoch_of(height, epoch_blocks);
    // Liveness: `signers` is a bitmap over the set that sealed the parent; it is the
    // same set unless the parent closed the previous epoch. Only misses are written,
    // so a block everyone signed changes no state here.
    let parent_same_epoch = height > 1 && epoch_of(height - 1, epoch_blocks) == epoch;
    if parent_same_epoch && !signers.is_empty() {
        for (i, (a, _, _)) in set.iter().enumerate() {
            let signed = signers.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
            if !signed {
                st.add(map(M_MISSED, addr_key(*a)), U256::from(1))?;
            }
        }
    }
    if !height.is_multiple_of(epoch_blocks) {
        return Ok(());
    }
    end_epoch(st, height, epoch, &set)
}

fn end_epoch(
    st: &mut St<'_, '_>,
    height: u64,
    epoch: u64,
    set: &[(Address, B256, u64)],
) -> Result<(), ModuleError> {
    let next = epoch + 1;
    let epoch_blocks = u64_of(st.param(P_EPOCH_BLOCKS)?).max(1);
    // The block reward of every block of the epoch, to the set that sealed them (sets
    // change only between epochs), by power: the same sums as crediting each block,
    // written once an epoch instead of on every block.
    let reward = st
        .param(P_BLOCK_REWARD)?
        .saturating_mul(U256::from(epoch_blocks));
    let weights: Vec<(Address, U256)> = set.iter().map(|(a, _, p)| (*a, U256::from(*p))).collect();
    split(st, reward, &weights)?;
    // Jail validators that missed too many of the epoch's commits: every block but the
    // first (whose parent closed the previous epoch) counts.
    let seen = epoch_blocks - 1;
    let limit_bps = u64_of(st.param(P_JAIL_MISSED_BPS)?);
    let jail_epochs = u64_of(st.param(P_JAIL_EPOCHS)?);
    for (a, _, _) in set {
        let key = map(M_MISSED, addr_key(*a));
        let missed = u64_of(st.get(key)?);
        if missed == 0 {
            continue;
        }
        if seen > 0 && missed.saturating_mul(10_000) > limit_bps.saturating_mul(seen) {
            jail(st, *a, next + jail_epochs)?;
        }
        st.set(key, U256::ZERO)?;
    }
    // Router pool by stake.
    let pool = st.param(P_ROUTER_POOL)?;
    let routers: Vec<(Address, U256)> = weigh(st, Role::Router, |st, a| st.stake(a, Role::Router))?;
    split(st, pool, &routers)?;
    // Computing-node pool by score times lock multiplier; scores are per epoch.
    let pool = st.param(P_COMPUTE_POOL)?;
    let nodes = weigh(st, Role::Compute, |st, a| {
        let key = map(M_SCORE, addr_key(a));
        let score = st.get(key)?;
        if score.is_zero() {
            return Ok(U256::ZERO);
        }
        st.set(key, U256::ZERO)?;
        Ok(score * st.multiplier_bps(a, height)?)
    })?;
    split(st, pool, &nodes)?;
    elect(st, next)
}

fn weigh(
    st: &mut St<'_, '_>,
    r: Role,
    mut w: impl FnMut(&mut St<'_, '_>, Address) -> Result<U256, ModuleError>,
) -> Result<Vec<(Address, U256)>, ModuleError> {
    let mut out = Vec::new();
    for a in st.list(r)? {
        let weight = w(st, a)?;
        if !weight.is_zero() {
            out.push((a, weight));
        }
    }
    Ok(out)
}

fn split(st: &mut St<'_, '_>, pool: U256, weights: &[(Address, U256)]) -> Result<(), ModuleError> {
    let total = weights
        .iter()
        .fold(U256::ZERO, |s, (_, w)| s.saturating_add(*w));
    if pool.is_zero() || total.is_zero() {
        return Ok(());
    }
    for (a, w) in weights {
        let share = pool.saturating_mul(*w) / total;
        st.add(map(M_REWARDS, addr_key(*a)), share)?;
    }
    Ok(())
}

fn jail(st: &mut St<'_, '_>, a: Address, until_epoch: u64) -> Result<(), ModuleError> {
    let key = map(M_JAILED_UNTIL, addr_key(a));
    if u64_of(st.get(key)?) < until_epoch {
        st.set(key, U256::from(until_epoch))?;
    }
    emit(
        st.m,
        IStaking::Jailed {
            validator: a,
            untilEpoch: until_epoch,
        },
    );
    Ok(())
}

/// Elects the set for epoch `next` and writes it into the Chain module.
fn elect(st: &mut St<'_, '_>, next: u64) -> Result<(), ModuleError> {
    let min = st.min_stake(Role::Validator)?;
    let max = u64_of(st.param(P_MAX_VALIDATORS)?) as usize;
    let mut ranked: Vec<(U256, Address, B256)> = Vec::new();
    for a in st.list(Role::Validator)? {
        let ak = addr_key(a);
        let staked = st.stake(a, Role::Validator)?;
        let key: B256 = st.get(map(M_KEY, ak))?.into();
        let jailed_until = u64_of(st.get(map(M_JAILED_UNTIL, ak))?);
        if staked >= min && !key.is_zero() && jailed_until <= next {
            ranked.push((staked, a, key));
        }
    }
    if ranked.is_empty() {
        return Ok(());
    }
    ranked.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
    ranked.truncate(max);
    let set: Vec<(Address, B256, u64)> = ranked
        .iter()
        .map(|(s, a, k)| (*a, *k, u64_of(*s / EMC).max(1)))
        .collect();
    let epoch_key = B256::from(U256::from(next));
    for (i, (a, _, _)) in set.iter().enumerate() {
        st.set(map2(M_MEMBER, epoch_key, addr_key(*a)), U256::from(i + 1))?;
    }
    ChainModule::write_set(st.m, &set)?;
    emit(
        st.m,
        IStaking::ValidatorSetElected {
            epoch: next,
            validators: set.iter().map(|v| v.0).collect(),
            powers: set.iter().map(|v| U256::from(v.2)).collect(),
        },
    );
    Ok(())
}

/// Kinds of consensus signature evidence may carry: each signs a `Vote` (height,
/// round, digest), so two with different digests at one height and round are an
/// equivocation.
fn evidence_kind(kind: u8) -> Result<emc_consensus::messages::Kind, ModuleError> {
    use emc_consensus::messages::Kind;
    match kind {
        0 => Ok(Kind::Proposal),
        1 => Ok(Kind::Prepare),
        3 => Ok(Kind::Seal),
        _ => Err(revert(
            "evidence kind must be 0 (proposal), 1 (prepare) or 3 (commit seal)",
        )),
    }
}

fn evidence(
    st: &mut St<'_, '_>,
    e: &IStaking::submitEvidenceCall,
    height: u64,
) -> Result<(), ModuleError> {
    use emc_consensus::{crypto::verify_ed25519, messages::payload, Sig, ValidatorKey, Vote};
    let kind = evidence_kind(e.kind)?;
    if e.digestA == e.digestB {
        return Err(revert("the two digests are equal: no equivocation"));
    }
    if e.height == 0 || e.height > height {
        return Err(revert(format!("height {} is not in the past", e.height)));
    }
    let unbonding = u64_of(st.param(P_UNBONDING)?);
    if height - e.height > unbonding {
        return Err(revert("evidence older than the unbonding period"));
    }
    let epoch_blocks = u64_of(st.param(P_EPOCH_BLOCKS)?);
    let epoch = epoch_of(e.height, epoch_blocks);
    let va = addr_key(e.validator);
    if st
        .get(map2(M_MEMBER, B256::from(U256::from(epoch)), va))?
        .is_zero()
    {
        return Err(revert("not a validator at that height"));
    }
    let once = map(
        M_EVIDENCE,
        keccak256([va.as_slice(), &e.height.to_be_bytes()].concat()),
    );
    if !st.get(once)?.is_zero() {
        return Err(revert(
            "evidence for this validator and height was already used",
        ));
    }
    let key: B256 = st.get(map(M_KEY, va))?.into();
    let sig = |b: &Bytes| -> Result<Sig, ModuleError> {
        let arr: [u8; 64] = b
            .as_ref()
            .try_into()
            .map_err(|_| revert("signatures are 64 bytes"))?;
        Ok(Sig(arr))
    };
    let chain_id = st.m.host().chain_id();
    for (digest, s) in [(e.digestA, &e.sigA), (e.digestB, &e.sigB)] {
        let vote = Vote {
            height: emc_types::Height(e.height),
            round: emc_types::Round(e.round),
            digest,
        };
        st.m.charge_signature()?;
        if !verify_ed25519(
            &ValidatorKey(key.0),
            &payload(chain_id, kind, &vote),
            &sig(s)?,
        ) {
            return Err(revert(
                "a signature does not verify against the validator's key",
            ));
        }
    }
    st.set(once, U256::from(1))?;
    slash(st, e.validator, Role::Validator, e.height)?;
    let jail_epochs = u64_of(st.param(P_JAIL_EPOCHS)?);
    jail(
        st,
        e.validator,
        epoch_of(height, epoch_blocks) + 1 + jail_epochs,
    )
}

/// Burns `slashBps` of the account's stake in `role`: bonded first, then unbonding.
fn slash(st: &mut St<'_, '_>, a: Address, role: Role, at: u64) -> Result<(), ModuleError> {
    let (ak, rk) = (addr_key(a), role_key(role));
    let bonded = st.get(map2(M_STAKE, ak, rk))?;
    let unbonding = st.get(map2(M_UNBONDING, ak, rk))?;
    let bps = st.param(P_SLASH_BPS)?;
    let amount = (bonded + unbonding) * bps / U256::from(10_000);
    let from_bonded = amount.min(bonded);
    let from_unbonding = amount - from_bonded;
    st.set(map2(M_STAKE, ak, rk), bonded - from_bonded)?;
    st.set(map2(M_UNBONDING, ak, rk), unbonding - from_unbonding)?;
    let total = st.get(slot(S_TOTAL_STAKED))?;
    st.set(slot(S_TOTAL_STAKED), total.saturating_sub(from_bonded))?;
    st.add(slot(S_SLASHED), amount)?;
    st.m.burn(amount)?;
    emit(
        st.m,
        IStaking::Slashed {
            validator: a,
            height: at,
            amount,
        },
    );
    Ok(())
}

impl crate::kit::SystemModule for StakingModule {
    fn address(&self) -> Address {
        crate::STAKING_ADDRESS
    }

    fn name(&self) -> &'static str {
        "Staking"
    }

    fn genesis(&self, g: &Genesis) -> crate::kit::ModuleGenesis {
        crate::kit::ModuleGenesis {
            storage: Self::genesis_storage(g),
            balance: Some(Self::genesis_balance(g)),
        }
    }

    /// Block rewards, liveness, and at an epoch's last block the election.
    fn end_block(&self, end: &crate::kit::BlockEnd) -> Option<Bytes> {
        let call = IStaking::onBlockCall {
            proposer: end.proposer,
            signers: end.signers.clone(),
        };
        Some(call.abi_encode().into())
    }
    fn call(&self, m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        StakingModule::call(m, call)
    }
}

#[cfg(test)]
mod tests;
