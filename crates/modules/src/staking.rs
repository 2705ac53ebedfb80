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
use crate::kit::slots::Value;
use crate::{chain::ChainModule, Metered, ModuleCall, ModuleError, POC_ADDRESS, SYSTEM_CALLER};
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
pub(crate) mod storage;
use storage::*;

/// A revert in this module's name (the kit's `"<Module>: <why>"`).
fn revert(why: impl std::fmt::Display) -> ModuleError {
    crate::kit::abi::revert("Staking", why)
}

fn u64_of(v: U256) -> u64 {
    v.try_into().unwrap_or(u64::MAX)
}

/// The epoch a height belongs to: blocks 1..=E are epoch 0, and so on. Genesis (0)
/// counts as epoch 0.
/// The genesis epoch length, read by another module.
pub fn epoch_blocks(m: &mut Metered<'_>) -> Result<u64, ModuleError> {
    Ok(EPOCH_BLOCKS.get_in(m, crate::STAKING_ADDRESS)?.max(1))
}

/// The epoch number of a height ([`emc_types::Epoch::of`]).
pub fn epoch_of(height: u64, epoch_blocks: u64) -> u64 {
    Epoch::of(height, epoch_blocks).0
}

pub use emc_types::Epoch;

/// Whether `a` holds at least its role's minimum stake in `role` (for other modules).
pub fn staked_as(m: &mut Metered<'_>, a: Address, role: Role) -> Result<bool, ModuleError> {
    let min = storage::MIN_STAKE[role as usize].get_in(m, crate::STAKING_ADDRESS)?;
    let stake = m.sload_at(crate::STAKING_ADDRESS, storage::STAKE.slot(&a, &role))?;
    Ok(!stake.is_zero() && stake >= min)
}

/// A computing node owner's proof-of-computing score, its E (for other modules).
pub fn score_of(m: &mut Metered<'_>, a: Address) -> Result<U256, ModuleError> {
    storage::SCORE.get_in(m, crate::STAKING_ADDRESS, &a)
}

pub struct StakingModule;

/// Typed access to the module's storage through the metered host.
struct St<'a, 'h> {
    m: &'a mut Metered<'h>,
}

impl St<'_, '_> {
    fn stake(&mut self, a: Address, r: Role) -> Result<U256, ModuleError> {
        STAKE.get(self.m, &a, &r)
    }
    fn list(&mut self, r: Role) -> Result<Vec<Address>, ModuleError> {
        LISTS[r as usize].all(self.m, MAX_COMPUTE)
    }
    fn enlist(&mut self, a: Address, r: Role) -> Result<(), ModuleError> {
        if LISTED.get(self.m, &a, &r)? {
            return Ok(());
        }
        let cap = match r {
            Role::Validator => MAX_CANDIDATES,
            Role::Router => MAX_ROUTERS,
            Role::Compute => MAX_COMPUTE,
        };
        match LISTS[r as usize].push(self.m, &a, cap) {
            Err(ModuleError::Revert(_)) => Err(revert(format!(
                "the list for role {} is full ({cap})",
                r as u8
            ))),
            other => other.map(drop),
        }?;
        LISTED.set(self.m, &a, &r, &true)
    }
    fn min_stake(&mut self, r: Role) -> Result<U256, ModuleError> {
        MIN_STAKE[r as usize].get(self.m)
    }
    fn multiplier_bps(&mut self, a: Address, height: u64) -> Result<U256, ModuleError> {
        if LOCK_UNTIL.get(self.m, &a)? > height {
            LOCK_BPS.get(self.m, &a)
        } else {
            Ok(U256::from(10_000))
        }
    }
}

/// `value += by`, saturating.
fn add_to(m: &mut Metered<'_>, value: &Value<U256>, by: U256) -> Result<(), ModuleError> {
    let cur = value.get(m)?;
    value.set(m, &cur.saturating_add(by))
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
                let amount = REWARDS.get(st.m, &caller)?;
                if amount.is_zero() {
                    return Err(revert("no rewards to claim"));
                }
                REWARDS.set(st.m, &caller, &U256::ZERO)?;
                add_to(st.m, &MINTED, amount)?;
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
                    SCORE.set(st.m, n, s)?;
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
                let a = c.account;
                IStaking::stakeOfCall::abi_encode_returns(&IStaking::stakeOfReturn {
                    staked: STAKE.get(st.m, &a, &r)?,
                    unbonding: UNBONDING.get(st.m, &a, &r)?,
                    releaseHeight: RELEASE.get(st.m, &a, &r)?,
                })
                .into()
            }
            C::lockOf(c) => IStaking::lockOfCall::abi_encode_returns(&IStaking::lockOfReturn {
                untilHeight: LOCK_UNTIL.get(st.m, &c.account)?,
                multiplierBps: u64_of(st.multiplier_bps(c.account, height)?) as u32,
            })
            .into(),
            C::validatorInfo(c) => {
                let a = c.validator;
                IStaking::validatorInfoCall::abi_encode_returns(&IStaking::validatorInfoReturn {
                    consensusKey: KEY.get(st.m, &a)?,
                    candidate: LISTED.get(st.m, &a, &Role::Validator)?,
                    jailedUntilEpoch: JAILED_UNTIL.get(st.m, &a)?,
                    missedThisEpoch: MISSED.get(st.m, &a)?,
                })
                .into()
            }
            C::candidates(_) => {
                IStaking::candidatesCall::abi_encode_returns(&st.list(Role::Validator)?).into()
            }
            C::pendingRewards(c) => {
                IStaking::pendingRewardsCall::abi_encode_returns(&REWARDS.get(st.m, &c.account)?)
                    .into()
            }
            C::currentEpoch(_) => {
                let e = EPOCH_BLOCKS.get(st.m)?;
                IStaking::currentEpochCall::abi_encode_returns(&epoch_of(height, e)).into()
            }
            C::totalStaked(_) => {
                IStaking::totalStakedCall::abi_encode_returns(&TOTAL_STAKED.get(st.m)?).into()
            }
            C::totalMinted(_) => {
                IStaking::totalMintedCall::abi_encode_returns(&MINTED.get(st.m)?).into()
            }
            C::totalSlashed(_) => {
                IStaking::totalSlashedCall::abi_encode_returns(&SLASHED.get(st.m)?).into()
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
        put(EPOCH_BLOCKS.slot(), U256::from(p.epoch_blocks));
        put(MAX_VALIDATORS.slot(), U256::from(p.max_validators));
        put(MIN_STAKE[0].slot(), p.min_validator_stake);
        put(MIN_STAKE[1].slot(), p.min_router_stake);
        put(MIN_STAKE[2].slot(), p.min_compute_stake);
        put(UNBONDING_BLOCKS.slot(), U256::from(p.unbonding_blocks));
        put(BLOCK_REWARD.slot(), p.block_reward);
        put(ROUTER_POOL.slot(), p.router_pool);
        put(COMPUTE_POOL.slot(), p.compute_pool);
        put(SLASH_BPS.slot(), U256::from(p.slash_bps));
        put(JAIL_MISSED_BPS.slot(), U256::from(p.jail_missed_bps));
        put(JAIL_EPOCHS.slot(), U256::from(p.jail_epochs));
        put(TIER_COUNT.slot(), U256::from(p.lock_tiers.len()));
        for (i, t) in p.lock_tiers.iter().enumerate() {
            let (blocks, bps) = storage::tier(i as u8);
            put(blocks.slot(), U256::from(t.blocks));
            put(bps.slot(), U256::from(t.multiplier_bps));
        }
        let (v, list) = (Role::Validator, &LISTS[Role::Validator as usize]);
        put(list.len_slot(), U256::from(g.validators.len()));
        for (i, gv) in g.validators.iter().enumerate() {
            let a = gv.address;
            let word = U256::from_be_bytes(a.into_word().0);
            put(STAKE.slot(&a, &v), EMC * U256::from(gv.power));
            put(KEY.slot(&a), gv.consensus_key.into());
            put(KEY_OWNER.slot(&gv.consensus_key), word);
            put(LISTED.slot(&a, &v), U256::from(1));
            put(list.element_slot(i as u64), word);
            put(MEMBER.slot(&0, &a), U256::from(i + 1));
        }
        put(TOTAL_STAKED.slot(), Self::genesis_balance(g));
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
    let total = STAKE.get(st.m, &a, &r)?.saturating_add(value);
    let min = st.min_stake(r)?;
    if total < min {
        return Err(revert(format!(
            "stake {total} is below the minimum {min} for role {}",
            r as u8
        )));
    }
    STAKE.set(st.m, &a, &r, &total)?;
    add_to(st.m, &TOTAL_STAKED, value)?;
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
    let staked = STAKE.get(st.m, &a, &r)?;
    if amount.is_zero() || amount > staked {
        return Err(revert(format!("cannot unstake {amount}: {staked} staked")));
    }
    if r == Role::Compute {
        let until = LOCK_UNTIL.get(st.m, &a)?;
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
    let release = height + UNBONDING_BLOCKS.get(st.m)?;
    STAKE.set(st.m, &a, &r, &left)?;
    let unbonding = UNBONDING.get(st.m, &a, &r)?.saturating_add(amount);
    UNBONDING.set(st.m, &a, &r, &unbonding)?;
    RELEASE.set(st.m, &a, &r, &release)?;
    let total = TOTAL_STAKED.get(st.m)?;
    TOTAL_STAKED.set(st.m, &total.saturating_sub(amount))?;
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
        let amount = UNBONDING.get(st.m, &a, &r)?;
        if amount.is_zero() {
            continue;
        }
        if RELEASE.get(st.m, &a, &r)? <= height {
            UNBONDING.set(st.m, &a, &r, &U256::ZERO)?;
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
    let n = TIER_COUNT.get(st.m)?;
    if tier as u64 >= n {
        return Err(revert(format!("no lock tier {tier} (there are {n})")));
    }
    if st.stake(a, Role::Compute)?.is_zero() {
        return Err(revert("stake as a computing node before locking"));
    }
    let (blocks, bps) = storage::tier(tier);
    let (blocks, bps) = (blocks.get(st.m)?, bps.get(st.m)?);
    let until = height.saturating_add(blocks);
    let current = LOCK_UNTIL.get(st.m, &a)?;
    if current > until {
        return Err(revert(format!(
            "already locked until block {current}, later than {until}"
        )));
    }
    LOCK_UNTIL.set(st.m, &a, &until)?;
    LOCK_BPS.set(st.m, &a, &bps)?;
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
    let current = KEY.get(st.m, &a)?;
    if !current.is_zero() && current != key {
        return Err(revert(
            "this validator already registered another consensus key",
        ));
    }
    let owner = KEY_OWNER.get(st.m, &key)?;
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
    KEY.set(st.m, &a, &key)?;
    KEY_OWNER.set(st.m, &key, &a)?;
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
    let epoch_blocks = EPOCH_BLOCKS.get(st.m)?.max(1);
    let epoch = epoch_of(height, epoch_blocks);
    // Liveness: `signers` is a bitmap over the set that sealed the parent; it is the
    // same set unless the parent closed the previous epoch. Only misses are written,
    // so a block everyone signed changes no state here.
    let parent_same_epoch = height > 1 && epoch_of(height - 1, epoch_blocks) == epoch;
    if parent_same_epoch && !signers.is_empty() {
        for (i, (a, _, _)) in set.iter().enumerate() {
            let signed = signers.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
            if !signed {
                let missed = MISSED.get(st.m, a)?.saturating_add(1);
                MISSED.set(st.m, a, &missed)?;
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
    let epoch_blocks = EPOCH_BLOCKS.get(st.m)?.max(1);
    // The block reward of every block of the epoch, to the set that sealed them (sets
    // change only between epochs), by power: the same sums as crediting each block,
    // written once an epoch instead of on every block.
    let reward = BLOCK_REWARD
        .get(st.m)?
        .saturating_mul(U256::from(epoch_blocks));
    let weights: Vec<(Address, U256)> = set.iter().map(|(a, _, p)| (*a, U256::from(*p))).collect();
    split(st, reward, &weights)?;
    // Jail validators that missed too many of the epoch's commits: every block but the
    // first (whose parent closed the previous epoch) counts.
    let seen = epoch_blocks - 1;
    let limit_bps = JAIL_MISSED_BPS.get(st.m)?;
    let jail_epochs = JAIL_EPOCHS.get(st.m)?;
    for (a, _, _) in set {
        let missed = MISSED.get(st.m, a)?;
        if missed == 0 {
            continue;
        }
        if seen > 0 && missed.saturating_mul(10_000) > limit_bps.saturating_mul(seen) {
            jail(st, *a, next + jail_epochs)?;
        }
        MISSED.set(st.m, a, &0)?;
    }
    // Router pool by stake.
    let pool = ROUTER_POOL.get(st.m)?;
    let routers: Vec<(Address, U256)> = weigh(st, Role::Router, |st, a| st.stake(a, Role::Router))?;
    split(st, pool, &routers)?;
    // Computing-node pool by score times lock multiplier; scores are per epoch.
    let pool = COMPUTE_POOL.get(st.m)?;
    let nodes = weigh(st, Role::Compute, |st, a| {
        let score = SCORE.get(st.m, &a)?;
        if score.is_zero() {
            return Ok(U256::ZERO);
        }
        SCORE.set(st.m, &a, &U256::ZERO)?;
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
        let owed = REWARDS.get(st.m, a)?.saturating_add(share);
        REWARDS.set(st.m, a, &owed)?;
    }
    Ok(())
}

fn jail(st: &mut St<'_, '_>, a: Address, until_epoch: u64) -> Result<(), ModuleError> {
    if JAILED_UNTIL.get(st.m, &a)? < until_epoch {
        JAILED_UNTIL.set(st.m, &a, &until_epoch)?;
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
    let max = MAX_VALIDATORS.get(st.m)? as usize;
    let mut ranked: Vec<(U256, Address, B256)> = Vec::new();
    for a in st.list(Role::Validator)? {
        let staked = st.stake(a, Role::Validator)?;
        let key = KEY.get(st.m, &a)?;
        let jailed_until = JAILED_UNTIL.get(st.m, &a)?;
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
    for (i, (a, _, _)) in set.iter().enumerate() {
        MEMBER.set(st.m, &next, a, &(i as u64 + 1))?;
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
    let unbonding = UNBONDING_BLOCKS.get(st.m)?;
    if height - e.height > unbonding {
        return Err(revert("evidence older than the unbonding period"));
    }
    let epoch_blocks = EPOCH_BLOCKS.get(st.m)?;
    let epoch = epoch_of(e.height, epoch_blocks);
    if MEMBER.get(st.m, &epoch, &e.validator)? == 0 {
        return Err(revert("not a validator at that height"));
    }
    let once = keccak256([e.validator.into_word().as_slice(), &e.height.to_be_bytes()].concat());
    if EVIDENCE.get(st.m, &once)? {
        return Err(revert(
            "evidence for this validator and height was already used",
        ));
    }
    let key = KEY.get(st.m, &e.validator)?;
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
    EVIDENCE.set(st.m, &once, &true)?;
    slash(st, e.validator, Role::Validator, e.height)?;
    let jail_epochs = JAIL_EPOCHS.get(st.m)?;
    jail(
        st,
        e.validator,
        epoch_of(height, epoch_blocks) + 1 + jail_epochs,
    )
}

/// Burns `slashBps` of the account's stake in `role`: bonded first, then unbonding.
fn slash(st: &mut St<'_, '_>, a: Address, role: Role, at: u64) -> Result<(), ModuleError> {
    let bonded = STAKE.get(st.m, &a, &role)?;
    let unbonding = UNBONDING.get(st.m, &a, &role)?;
    let bps = SLASH_BPS.get(st.m)?;
    let amount = (bonded + unbonding) * bps / U256::from(10_000);
    let from_bonded = amount.min(bonded);
    let from_unbonding = amount - from_bonded;
    STAKE.set(st.m, &a, &role, &(bonded - from_bonded))?;
    UNBONDING.set(st.m, &a, &role, &(unbonding - from_unbonding))?;
    let total = TOTAL_STAKED.get(st.m)?;
    TOTAL_STAKED.set(st.m, &total.saturating_sub(from_bonded))?;
    add_to(st.m, &SLASHED, amount)?;
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
