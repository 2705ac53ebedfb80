//! Genesis: the chain's id, its first accounts and the limits every block obeys.
//!
//! Written by `emc genesis` as JSON; `emc node --dev` builds one in memory from the
//! development accounts. `validate()` runs before a node opens its database, so a bad
//! file is refused with a message naming the field, never half-applied.

use alloy_primitives::{Address, Bytes, B256, U256};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Chain id of `emc node --dev`: Hardhat's and Anvil's, so tutorial configs work as-is.
pub const DEV_CHAIN_ID: u64 = 31337;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Genesis {
    pub chain_id: u64,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    pub gas_limit: u64,
    /// Base fee per gas of block 1, in wei.
    pub base_fee: u64,
    pub block_time_ms: u64,
    /// The validator set of the first epoch, in proposer order.
    pub validators: Vec<GenesisValidator>,
    pub alloc: BTreeMap<Address, GenesisAccount>,
    /// Staking, election, rewards and slashing rules ([`StakingParams::default`] if
    /// left out).
    #[serde(default)]
    pub staking: StakingParams,
    /// The proof-of-computing task validators challenge computing nodes with
    /// ([`PocTask::default`] if left out).
    #[serde(default)]
    pub poc: PocTask,
    /// The computing sockets' rules ([`SocketParams::default`] if left out).
    #[serde(default)]
    pub sockets: SocketParams,
    /// The market's rules ([`MarketParams::default`] if left out).
    #[serde(default)]
    pub market: MarketParams,
}

/// The computing market's rules, fixed at genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MarketParams {
    /// The most a provider's price may be, as a multiple of its market's last
    /// clearing price.
    pub max_price_multiple: u64,
    /// A provider's bond on a buyer's order, in basis points of the bid's value.
    pub bond_bps: u64,
    /// The fee on resales, in basis points of the price; it is burnt.
    pub fee_bps: u64,
}

impl Default for MarketParams {
    fn default() -> Self {
        MarketParams {
            max_price_multiple: 10,
            bond_bps: 1_000,
            fee_bps: 100,
        }
    }
}

/// The computing sockets' rules, fixed at genesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SocketParams {
    /// Seconds after a socket ends during which receipts for its calls still settle;
    /// its refund opens after them.
    pub settle_window_secs: u64,
}

impl Default for SocketParams {
    fn default() -> Self {
        SocketParams {
            settle_window_secs: 3_600,
        }
    }
}

/// The shape of the standard proof-of-computing task (see `emc_protocol::poc`):
/// `lanes` hash chains of `segments * seg_steps` SHA-256 steps, `samples` segments
/// checked at random besides every lane's last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PocTask {
    pub lanes: u32,
    pub segments: u32,
    pub seg_steps: u32,
    pub samples: u32,
}

impl Default for PocTask {
    fn default() -> Self {
        PocTask {
            lanes: 8,
            segments: 2048,
            seg_steps: 512,
            samples: 32,
        }
    }
}

/// One EMC in wei.
pub const EMC: U256 = U256::from_limbs([1_000_000_000_000_000_000, 0, 0, 0]);

/// A lock a computing node may put on its stake: for `blocks`, its proof-of-computing
/// rewards are multiplied by `multiplier_bps / 10_000`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LockTier {
    pub blocks: u64,
    pub multiplier_bps: u32,
}

/// The staking module's rules, fixed at genesis. Amounts are in wei.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StakingParams {
    /// Blocks per epoch; the set elected at the end of epoch E seals epoch E+1.
    pub epoch_blocks: u64,
    pub max_validators: u32,
    pub min_validator_stake: U256,
    pub min_router_stake: U256,
    /// Zero lets computing nodes run without stake (non-continuous work only).
    pub min_compute_stake: U256,
    /// Blocks between `unstake` and the stake being withdrawable.
    pub unbonding_blocks: u64,
    /// Computing-node lock periods and their reward multipliers.
    pub lock_tiers: Vec<LockTier>,
    /// Emission per block, to the validators by stake.
    pub block_reward: U256,
    /// Emission per epoch, to routers by stake.
    pub router_pool: U256,
    /// Emission per epoch, to computing nodes by proof-of-computing score times lock
    /// multiplier.
    pub compute_pool: U256,
    /// Share of stake (basis points) an equivocating validator loses.
    pub slash_bps: u32,
    /// A validator that misses more than this share (basis points) of an epoch's
    /// commits is jailed.
    pub jail_missed_bps: u32,
    /// Epochs a jailed validator sits out.
    pub jail_epochs: u64,
}

impl Default for StakingParams {
    /// The public network's lock tiers (7, 30, 90, 180 days at 1 s blocks; 1.4x, 2.7x,
    /// 6.2x, 10x); everything else a development network can live with.
    fn default() -> Self {
        const DAY: u64 = 86_400;
        let tier = |days: u64, bps: u32| LockTier {
            blocks: days * DAY,
            multiplier_bps: bps,
        };
        StakingParams {
            epoch_blocks: 100,
            max_validators: 21,
            min_validator_stake: EMC * U256::from(100),
            min_router_stake: EMC * U256::from(10),
            min_compute_stake: U256::ZERO,
            unbonding_blocks: 1_000,
            lock_tiers: vec![
                tier(7, 14_000),
                tier(30, 27_000),
                tier(90, 62_000),
                tier(180, 100_000),
            ],
            block_reward: EMC * U256::from(2),
            router_pool: EMC * U256::from(50),
            compute_pool: EMC * U256::from(100),
            slash_bps: 1_000,
            jail_missed_bps: 5_000,
            jail_epochs: 1,
        }
    }
}

/// Bounds on the staking rules, so every loop the module runs is bounded.
pub const MAX_LOCK_TIERS: usize = 8;
pub const MAX_ELECTED: u32 = 256;

/// A validator: the account that earns its fees, the ed25519 key it signs consensus
/// messages with, and its stake in whole EMC, which is also its voting power (the
/// staking module holds `power` EMC for it from genesis).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenesisValidator {
    pub address: Address,
    pub consensus_key: B256,
    #[serde(default = "default_stake")]
    pub power: u64,
}

fn default_stake() -> u64 {
    1_000
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenesisAccount {
    pub balance: U256,
    #[serde(default)]
    pub nonce: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Bytes>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage: BTreeMap<B256, B256>,
}

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("genesis: {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("genesis: cannot parse: {0}")]
    Parse(#[from] serde_json::Error),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> GenesisError {
    GenesisError::Invalid {
        field,
        reason: reason.into(),
    }
}

impl Genesis {
    /// A single-validator development chain: every account gets `balance`.
    pub fn dev(validator: GenesisValidator, accounts: &[Address], balance: U256) -> Self {
        Self {
            chain_id: DEV_CHAIN_ID,
            timestamp: 0,
            gas_limit: 30_000_000,
            base_fee: 1_000_000_000,
            block_time_ms: 1_000,
            validators: vec![validator],
            staking: StakingParams::default(),
            poc: PocTask::default(),
            sockets: SocketParams::default(),
            market: MarketParams::default(),
            alloc: accounts
                .iter()
                .map(|a| {
                    (
                        *a,
                        GenesisAccount {
                            balance,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        }
    }

    pub fn from_json(s: &str) -> Result<Self, GenesisError> {
        let g: Genesis = serde_json::from_str(s)?;
        g.validate()?;
        Ok(g)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("genesis always serializes")
    }

    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.chain_id == 0 {
            return Err(invalid("chainId", "must not be 0"));
        }
        if self.sockets.settle_window_secs == 0 {
            return Err(invalid(
                "sockets.settleWindowSecs",
                "must be at least 1 second",
            ));
        }
        if self.market.max_price_multiple == 0 {
            return Err(invalid("market.maxPriceMultiple", "must be at least 1"));
        }
        if !(1..=1_000).contains(&self.market.fee_bps) {
            return Err(invalid("market.feeBps", "must be 1 to 1000 (10%)"));
        }
        if !(1..=10_000).contains(&self.market.bond_bps) {
            return Err(invalid("market.bondBps", "must be 1 to 10000"));
        }
        if self.gas_limit < 1_000_000 {
            return Err(invalid(
                "gasLimit",
                format!("{} is below the minimum 1000000", self.gas_limit),
            ));
        }
        if !(50..=600_000).contains(&self.block_time_ms) {
            return Err(invalid(
                "blockTimeMs",
                format!("{} is outside 50..=600000", self.block_time_ms),
            ));
        }
        if self.validators.is_empty() {
            return Err(invalid("validators", "at least one validator is needed"));
        }
        let mut addrs = std::collections::BTreeSet::new();
        let mut keys = std::collections::BTreeSet::new();
        for v in &self.validators {
            if !addrs.insert(v.address) {
                return Err(invalid(
                    "validators",
                    format!("{} is listed twice", v.address),
                ));
            }
            if !keys.insert(v.consensus_key) {
                return Err(invalid(
                    "validators",
                    format!("consensus key {} is listed twice", v.consensus_key),
                ));
            }
            if v.power == 0 {
                return Err(invalid(
                    "validators",
                    format!("{} has zero power", v.address),
                ));
            }
            if EMC * U256::from(v.power) < self.staking.min_validator_stake {
                return Err(invalid(
                    "validators",
                    format!(
                        "{} stakes {} EMC, below staking.minValidatorStake",
                        v.address, v.power
                    ),
                ));
            }
        }
        let st = &self.staking;
        if st.epoch_blocks < 2 {
            return Err(invalid("staking.epochBlocks", "must be at least 2"));
        }
        if st.max_validators == 0 || st.max_validators > MAX_ELECTED {
            return Err(invalid(
                "staking.maxValidators",
                format!("must be in 1..={MAX_ELECTED}"),
            ));
        }
        if st.min_validator_stake < EMC {
            return Err(invalid(
                "staking.minValidatorStake",
                "must be at least 1 EMC (voting power counts whole EMC)",
            ));
        }
        if st.lock_tiers.len() > MAX_LOCK_TIERS {
            return Err(invalid(
                "staking.lockTiers",
                format!("at most {MAX_LOCK_TIERS} tiers"),
            ));
        }
        if st.slash_bps > 10_000 || st.jail_missed_bps > 10_000 {
            return Err(invalid(
                "staking",
                "slashBps and jailMissedBps are basis points (at most 10000)",
            ));
        }
        if self.validators.len() > 1_000 {
            return Err(invalid("validators", "more than 1000 validators"));
        }
        if let Some(code_too_big) = self
            .alloc
            .iter()
            .find(|(_, a)| a.code.as_ref().is_some_and(|c| c.len() > 24_576))
        {
            return Err(invalid(
                "alloc",
                format!("code of {} exceeds 24576 bytes", code_too_big.0),
            ));
        }
        Ok(())
    }

    /// Names of the fields in which `other` differs from `self`.
    pub fn differences(&self, other: &Genesis) -> Vec<&'static str> {
        let mut d = Vec::new();
        let mut check = |name, differs: bool| {
            if differs {
                d.push(name)
            }
        };
        check("chainId", self.chain_id != other.chain_id);
        check("timestamp", self.timestamp != other.timestamp);
        check("gasLimit", self.gas_limit != other.gas_limit);
        check("baseFee", self.base_fee != other.base_fee);
        check("blockTimeMs", self.block_time_ms != other.block_time_ms);
        check("validators", self.validators != other.validators);
        check("alloc", self.alloc != other.alloc);
        check("staking", self.staking != other.staking);
        d
    }

    pub fn validator_addresses(&self) -> Vec<Address> {
        self.validators.iter().map(|v| v.address).collect()
    }

    /// Sum of every premined balance.
    pub fn total_supply(&self) -> U256 {
        self.alloc
            .values()
            .map(|a| a.balance)
            .fold(U256::ZERO, |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(i: u8) -> GenesisValidator {
        GenesisValidator {
            address: Address::repeat_byte(i),
            consensus_key: B256::repeat_byte(i),
            power: 1_000,
        }
    }

    #[test]
    fn round_trips_through_json() {
        let g = Genesis::dev(val(1), &[Address::repeat_byte(2)], U256::from(10));
        let back = Genesis::from_json(&g.to_json()).expect("valid");
        assert_eq!(g, back);
    }

    #[test]
    fn names_the_bad_field() {
        let mut g = Genesis::dev(val(1), &[], U256::ZERO);
        g.block_time_ms = 1;
        let err = g.validate().unwrap_err().to_string();
        assert!(err.contains("blockTimeMs"), "{err}");
        let mut g = Genesis::dev(val(1), &[], U256::ZERO);
        g.validators.push(GenesisValidator {
            address: Address::repeat_byte(2),
            ..val(1)
        });
        let err = g.validate().unwrap_err().to_string();
        assert!(
            err.contains("consensus key") && err.contains("twice"),
            "{err}"
        );
        let err = Genesis::from_json(r#"{"chainId": 1, "bogus": 2}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bogus") || err.contains("unknown field"),
            "{err}"
        );
    }
}
