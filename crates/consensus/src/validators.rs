//! The validator set of one height: ordered keys with voting power.
//!
//! Quorum is **more than two thirds of the total power** (`floor(2T/3) + 1`), never
//! "2F+1 nodes": with unequal stake, or n != 3F+1, counting nodes is unsafe. Any two
//! quorums then overlap in more than a third of the power, so in at least one honest
//! validator when the faulty hold less than a third.

use crate::ValidatorKey;
use borsh::{BorshDeserialize, BorshSerialize};

/// Position of a validator in the ordered set.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub struct ValidatorIndex(pub u32);

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Validator {
    pub key: ValidatorKey,
    pub power: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("a validator set needs at least one validator")]
    Empty,
    #[error("validator {0} has zero power")]
    ZeroPower(usize),
    #[error("validator key appears twice")]
    Duplicate,
    #[error("total power overflows")]
    Overflow,
    #[error("more than {0} validators")]
    TooMany(usize),
}

/// Bounds every loop and allocation over a set.
pub const MAX_VALIDATORS: usize = 1_000;

impl ValidatorSet {
    pub fn new(validators: Vec<Validator>) -> Result<Self, SetError> {
        if validators.is_empty() {
            return Err(SetError::Empty);
        }
        if validators.len() > MAX_VALIDATORS {
            return Err(SetError::TooMany(MAX_VALIDATORS));
        }
        let mut total = 0u64;
        for (i, v) in validators.iter().enumerate() {
            if v.power == 0 {
                return Err(SetError::ZeroPower(i));
            }
            total = total.checked_add(v.power).ok_or(SetError::Overflow)?;
            // Keep 3 * total representable for the quorum arithmetic.
            total.checked_mul(3).ok_or(SetError::Overflow)?;
        }
        let mut keys: Vec<_> = validators.iter().map(|v| v.key).collect();
        keys.sort();
        keys.dedup();
        if keys.len() != validators.len() {
            return Err(SetError::Duplicate);
        }
        Ok(Self { validators, total })
    }

    /// Equal power for every key.
    pub fn equal(keys: impl IntoIterator<Item = ValidatorKey>) -> Result<Self, SetError> {
        Self::new(
            keys.into_iter()
                .map(|key| Validator { key, power: 1 })
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn total_power(&self) -> u64 {
        self.total
    }

    /// Power needed for a quorum: more than 2/3 of the total.
    pub fn quorum(&self) -> u64 {
        2 * self.total / 3 + 1
    }

    /// Power that surely includes an honest validator: more than 1/3 of the total.
    pub fn weak_quorum(&self) -> u64 {
        self.total / 3 + 1
    }

    pub fn get(&self, i: ValidatorIndex) -> Option<&Validator> {
        self.validators.get(i.0 as usize)
    }

    pub fn power(&self, i: ValidatorIndex) -> u64 {
        self.get(i).map_or(0, |v| v.power)
    }

    pub fn index_of(&self, key: &ValidatorKey) -> Option<ValidatorIndex> {
        self.validators
            .iter()
            .position(|v| v.key == *key)
            .map(|i| ValidatorIndex(i as u32))
    }

    pub fn iter(&self) -> impl Iterator<Item = (ValidatorIndex, &Validator)> {
        self.validators
            .iter()
            .enumerate()
            .map(|(i, v)| (ValidatorIndex(i as u32), v))
    }

    /// Sum of the power of distinct members among `signers`.
    pub fn weight<'a>(&self, signers: impl IntoIterator<Item = &'a ValidatorIndex>) -> u64 {
        let mut seen = std::collections::BTreeSet::new();
        signers
            .into_iter()
            .filter(|s| seen.insert(**s))
            .map(|s| self.power(*s))
            .sum()
    }

    /// The proposer of `round`: `(index(previous proposer) + 1 + round) mod n`; with no
    /// previous proposer (the first height), `round mod n`.
    pub fn proposer(&self, prev: Option<ValidatorIndex>, round: crate::Round) -> ValidatorIndex {
        let n = self.validators.len() as u64;
        let start = prev.map_or(0, |p| p.0 as u64 + 1);
        ValidatorIndex(((start + round.0 as u64) % n) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> ValidatorKey {
        ValidatorKey([i; 32])
    }

    #[test]
    fn quorum_is_more_than_two_thirds_of_power_not_2f_plus_1() {
        // n = 4, equal: 3 of 4.
        let s = ValidatorSet::equal((0..4).map(key)).unwrap();
        assert_eq!(s.quorum(), 3);
        // n = 6, equal: "2F+1" with F = 1 would be 3, which is unsafe; we need 5.
        let s = ValidatorSet::equal((0..6).map(key)).unwrap();
        assert_eq!(s.quorum(), 5);
        assert_eq!(s.weak_quorum(), 3);
        // One validator holds 40%: it alone is more than a third but never a quorum.
        let s = ValidatorSet::new(vec![
            Validator {
                key: key(0),
                power: 40,
            },
            Validator {
                key: key(1),
                power: 20,
            },
            Validator {
                key: key(2),
                power: 20,
            },
            Validator {
                key: key(3),
                power: 20,
            },
        ])
        .unwrap();
        assert_eq!(s.quorum(), 67);
        assert!(s.power(ValidatorIndex(0)) >= s.weak_quorum());
        assert!(s.weight(&[ValidatorIndex(0), ValidatorIndex(1)]) < s.quorum());
        assert!(s.weight(&[ValidatorIndex(0), ValidatorIndex(1), ValidatorIndex(2)]) >= s.quorum());
        // Duplicates never count twice.
        assert_eq!(s.weight(&[ValidatorIndex(0), ValidatorIndex(0)]), 40);
    }

    #[test]
    fn proposer_rotates_from_the_previous_one() {
        let s = ValidatorSet::equal((0..4).map(key)).unwrap();
        assert_eq!(s.proposer(None, crate::Round(0)), ValidatorIndex(0));
        assert_eq!(
            s.proposer(Some(ValidatorIndex(1)), crate::Round(0)),
            ValidatorIndex(2)
        );
        assert_eq!(
            s.proposer(Some(ValidatorIndex(1)), crate::Round(3)),
            ValidatorIndex(1)
        );
        assert_eq!(
            s.proposer(Some(ValidatorIndex(3)), crate::Round(0)),
            ValidatorIndex(0)
        );
    }

    #[test]
    fn bad_sets_are_refused() {
        assert_eq!(ValidatorSet::new(vec![]), Err(SetError::Empty));
        assert_eq!(
            ValidatorSet::equal([key(1), key(1)]),
            Err(SetError::Duplicate)
        );
        assert!(matches!(
            ValidatorSet::new(vec![Validator {
                key: key(1),
                power: 0
            }]),
            Err(SetError::ZeroPower(0))
        ));
        assert_eq!(
            ValidatorSet::new(vec![Validator {
                key: key(1),
                power: u64::MAX
            }]),
            Err(SetError::Overflow)
        );
    }
}
