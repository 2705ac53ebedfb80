//! Newtypes for the numbers that mean different things: a block height is never a
//! round, and an epoch is never a height.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_newtype {
    ($(#[$m:meta])* $name:ident, $inner:ty) => {
        $(#[$m])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash,
            BorshSerialize, BorshDeserialize, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$inner> for $name {
            fn from(v: $inner) -> Self {
                Self(v)
            }
        }
    };
}

id_newtype!(
    /// A block's height (Ethereum's block number). Genesis is height 0.
    Height, u64
);
id_newtype!(
    /// A consensus round within one height.
    Round, u32
);
id_newtype!(
    /// A staking epoch: a run of heights with one validator set.
    Epoch, u64
);

impl Epoch {
    /// The epoch a height is in: heights `1..=n` are epoch 0, `n+1..=2n` epoch 1, and so
    /// on for `n` blocks per epoch (genesis counts as epoch 0).
    pub fn of(height: u64, epoch_blocks: u64) -> Epoch {
        Epoch(height.saturating_sub(1) / epoch_blocks.max(1))
    }

    /// Whether `height` is the first block of its epoch (validators challenge then).
    pub fn starts_at(height: u64, epoch_blocks: u64) -> bool {
        height % epoch_blocks.max(1) == 1 % epoch_blocks.max(1)
    }
}

impl Height {
    pub const GENESIS: Height = Height(0);

    pub fn next(self) -> Height {
        Height(self.0 + 1)
    }

    /// The parent's height, or `None` for genesis.
    pub fn prev(self) -> Option<Height> {
        self.0.checked_sub(1).map(Height)
    }
}
