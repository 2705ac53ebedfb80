//! The transaction pool: a pure state machine, no I/O and no clock.
//!
//! Per sender, transactions are kept by nonce. Those whose nonce continues the
//! account's nonce without a gap are *pending* (ready for a block); the rest are
//! *queued* until the gap closes. The pool limits *gaps*, not depth: a transaction
//! that continues its sender's run is always welcome (a script that sends a few
//! hundred at once works, as with geth, anvil and Hardhat), while one may start at
//! most [`PoolConfig::max_nonce_gap`] nonces past the end of that run, so nonces far
//! ahead cannot park in the pool. A transaction with the nonce of one already in the
//! pool replaces it only if it raises both the max fee and the tip by at least
//! [`PoolConfig::price_bump_percent`]. The pool is bounded in total, per sender and per
//! transaction size; when full, a new transaction evicts the pool's cheapest *last*
//! transaction of some sender (never one that others depend on) if it pays more, and
//! is refused otherwise. Every refusal is a [`PoolError`] that says why.
//!
//! The caller supplies account state (nonce, balance) and the base fee; after a block
//! it calls [`Pool::on_block`] with the new nonces so mined transactions leave.

use alloy_primitives::{Address, B256, U256};
use emc_types::SignedTx;
use std::collections::{BTreeMap, HashMap};

#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Transactions in the pool: what bounds its memory.
    pub max_txs: usize,
    /// Transactions of one sender: a quarter of the pool, so one sender cannot take
    /// it all.
    pub max_per_sender: usize,
    /// How far past the end of its sender's gap-free run a transaction's nonce may be.
    pub max_nonce_gap: u64,
    pub price_bump_percent: u128,
    pub block_gas_limit: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_txs: 20_000,
            max_per_sender: 5_000,
            max_nonce_gap: 64,
            price_bump_percent: 10,
            block_gas_limit: 30_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("nonce too low: transaction nonce {tx}, account nonce {account}")]
    NonceTooLow { tx: u64, account: u64 },
    #[error("nonce too high: transaction nonce {tx} leaves a gap of more than {max_gap} after nonce {next}, the sender's next (account nonce {account})")]
    NonceTooHigh {
        tx: u64,
        account: u64,
        next: u64,
        max_gap: u64,
    },
    #[error("insufficient funds for gas * price + value: balance {balance}, cost {cost}")]
    InsufficientFunds { balance: U256, cost: U256 },
    #[error("fee too low: max fee per gas {max_fee} is below the base fee {base_fee}")]
    FeeTooLow { max_fee: u128, base_fee: u64 },
    #[error("max priority fee per gas {tip} is higher than max fee per gas {max_fee}")]
    TipAboveMaxFee { tip: u128, max_fee: u128 },
    #[error("intrinsic gas too low: gas limit {limit}, the transaction needs at least {needed}")]
    IntrinsicGas { limit: u64, needed: u64 },
    #[error("gas limit {limit} exceeds the block gas limit {block}")]
    GasLimitTooHigh { limit: u64, block: u64 },
    #[error("replacement transaction underpriced: raise max fee and tip by at least {bump}%")]
    ReplacementUnderpriced { bump: u128 },
    #[error("already known")]
    AlreadyKnown,
    #[error("sender {0} has too many transactions in the pool")]
    SenderFull(Address),
    #[error("transaction pool is full and this transaction pays too little to evict another")]
    PoolFull,
}

/// Account state the pool checks against.
#[derive(Clone, Copy, Debug, Default)]
pub struct AccountInfo {
    pub nonce: u64,
    pub balance: U256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Pending,
    Queued,
    Replaced { old: B256, pending: bool },
}

#[derive(Default)]
struct SenderTxs {
    /// Account nonce as last told by the caller.
    nonce: u64,
    txs: BTreeMap<u64, SignedTx>,
}

impl SenderTxs {
    /// Nonces from `self.nonce` on without a gap.
    fn pending_len(&self) -> usize {
        let mut n = self.nonce;
        while self.txs.contains_key(&n) {
            n += 1;
        }
        (n - self.nonce) as usize
    }
}

pub struct Pool {
    cfg: PoolConfig,
    senders: HashMap<Address, SenderTxs>,
    by_hash: HashMap<B256, (Address, u64)>,
}

impl Pool {
    pub fn new(cfg: PoolConfig) -> Self {
        Self {
            cfg,
            senders: HashMap::new(),
            by_hash: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn contains(&self, hash: &B256) -> bool {
        self.by_hash.contains_key(hash)
    }

    pub fn get(&self, hash: &B256) -> Option<&SignedTx> {
        let (s, n) = self.by_hash.get(hash)?;
        self.senders.get(s)?.txs.get(n)
    }

    /// The nonce the sender's next transaction should carry, counting pending ones.
    pub fn next_nonce(&self, sender: Address, account_nonce: u64) -> u64 {
        match self.senders.get(&sender) {
            None => account_nonce,
            Some(s) => {
                let mut n = account_nonce.max(s.nonce);
                while s.txs.contains_key(&n) {
                    n += 1;
                }
                n
            }
        }
    }

    /// Checks `tx` against `account` and the base fee, and admits it.
    ///
    /// `account` may be read from a state older than the last [`Pool::on_block`] (a
    /// submission racing a commit); the pool then keeps the newer nonce it knows, so a
    /// sender's view never moves backwards.
    pub fn insert(
        &mut self,
        tx: SignedTx,
        mut account: AccountInfo,
        base_fee: u64,
    ) -> Result<Inserted, PoolError> {
        if self.by_hash.contains_key(&tx.hash) {
            return Err(PoolError::AlreadyKnown);
        }
        if let Some(known) = self.senders.get(&tx.sender) {
            account.nonce = account.nonce.max(known.nonce);
        }
        self.check(&tx, account, base_fee)?;
        let sender = tx.sender;
        let nonce = tx.nonce();
        let entry = self.senders.entry(sender).or_default();
        entry.nonce = account.nonce;
        if let Some(old) = entry.txs.get(&nonce) {
            let bump = |old: u128| old + old * self.cfg.price_bump_percent / 100;
            if tx.max_fee_per_gas() < bump(old.max_fee_per_gas())
                || tx.max_priority_fee_per_gas() < bump(old.max_priority_fee_per_gas())
            {
                return Err(PoolError::ReplacementUnderpriced {
                    bump: self.cfg.price_bump_percent,
                });
            }
            let old_hash = old.hash;
            self.by_hash.remove(&old_hash);
            self.by_hash.insert(tx.hash, (sender, nonce));
            entry.txs.insert(nonce, tx);
            let pending = nonce < entry.nonce + entry.pending_len() as u64;
            return Ok(Inserted::Replaced {
                old: old_hash,
                pending,
            });
        }
        if entry.txs.len() >= self.cfg.max_per_sender {
            return Err(PoolError::SenderFull(sender));
        }
        if self.by_hash.len() >= self.cfg.max_txs {
            self.evict_for(&tx, base_fee)?;
        }
        let entry = self.senders.entry(sender).or_default();
        self.by_hash.insert(tx.hash, (sender, nonce));
        entry.txs.insert(nonce, tx);
        let pending = nonce < entry.nonce + entry.pending_len() as u64;
        Ok(if pending {
            Inserted::Pending
        } else {
            Inserted::Queued
        })
    }

    fn check(&self, tx: &SignedTx, account: AccountInfo, base_fee: u64) -> Result<(), PoolError> {
        let nonce = tx.nonce();
        if nonce < account.nonce {
            return Err(PoolError::NonceTooLow {
                tx: nonce,
                account: account.nonce,
            });
        }
        let next = self.next_nonce(tx.sender, account.nonce);
        if nonce > next.saturating_add(self.cfg.max_nonce_gap) {
            return Err(PoolError::NonceTooHigh {
                tx: nonce,
                account: account.nonce,
                next,
                max_gap: self.cfg.max_nonce_gap,
            });
        }
        if tx.max_priority_fee_per_gas() > tx.max_fee_per_gas() {
            return Err(PoolError::TipAboveMaxFee {
                tip: tx.max_priority_fee_per_gas(),
                max_fee: tx.max_fee_per_gas(),
            });
        }
        if tx.max_fee_per_gas() < base_fee as u128 {
            return Err(PoolError::FeeTooLow {
                max_fee: tx.max_fee_per_gas(),
                base_fee,
            });
        }
        if tx.gas_limit() > self.cfg.block_gas_limit {
            return Err(PoolError::GasLimitTooHigh {
                limit: tx.gas_limit(),
                block: self.cfg.block_gas_limit,
            });
        }
        let needed = tx.intrinsic_gas();
        if tx.gas_limit() < needed {
            return Err(PoolError::IntrinsicGas {
                limit: tx.gas_limit(),
                needed,
            });
        }
        // The sender must afford this transaction on top of its pending ones before it.
        let ahead: U256 = self
            .senders
            .get(&tx.sender)
            .map(|s| {
                s.txs
                    .range(account.nonce..nonce)
                    .map(|(_, t)| t.max_cost())
                    .fold(U256::ZERO, |a, b| a + b)
            })
            .unwrap_or_default();
        let cost = tx.max_cost() + ahead;
        if cost > account.balance {
            return Err(PoolError::InsufficientFunds {
                balance: account.balance,
                cost,
            });
        }
        Ok(())
    }

    /// Makes room for `tx` by dropping the lowest-tipping highest-nonce transaction of
    /// another sender, if `tx` tips more.
    fn evict_for(&mut self, tx: &SignedTx, base_fee: u64) -> Result<(), PoolError> {
        let tip = tx.effective_tip(base_fee).unwrap_or(0);
        let victim = self
            .senders
            .iter()
            .filter(|(a, _)| **a != tx.sender)
            .filter_map(|(a, s)| {
                s.txs
                    .iter()
                    .next_back()
                    .map(|(n, t)| (t.effective_tip(base_fee).unwrap_or(0), *a, *n))
            })
            .min();
        match victim {
            Some((vtip, addr, nonce)) if vtip < tip => {
                self.remove_nonce(addr, nonce);
                Ok(())
            }
            _ => Err(PoolError::PoolFull),
        }
    }

    fn remove_nonce(&mut self, sender: Address, nonce: u64) {
        if let Some(s) = self.senders.get_mut(&sender) {
            if let Some(t) = s.txs.remove(&nonce) {
                self.by_hash.remove(&t.hash);
            }
            if s.txs.is_empty() {
                self.senders.remove(&sender);
            }
        }
    }

    /// Pending transactions in the order a block should take them: at each step the
    /// highest tip among every sender's next nonce, so nonces stay in order per sender.
    /// Stops after `max` transactions.
    pub fn best(&self, base_fee: u64, max: usize) -> Vec<SignedTx> {
        use std::collections::BinaryHeap;
        let mut heads = BinaryHeap::new();
        let mut cursors: HashMap<Address, u64> = HashMap::new();
        for (addr, s) in &self.senders {
            if let Some(t) = s.txs.get(&s.nonce) {
                if let Some(tip) = t.effective_tip(base_fee) {
                    heads.push((tip, std::cmp::Reverse(t.hash), *addr));
                    cursors.insert(*addr, s.nonce);
                }
            }
        }
        let mut out = Vec::new();
        while let Some((_, _, addr)) = heads.pop() {
            if out.len() >= max {
                break;
            }
            let s = &self.senders[&addr];
            let n = cursors[&addr];
            out.push(s.txs[&n].clone());
            if let Some(next) = s.txs.get(&(n + 1)) {
                if let Some(tip) = next.effective_tip(base_fee) {
                    heads.push((tip, std::cmp::Reverse(next.hash), addr));
                    cursors.insert(addr, n + 1);
                }
            }
        }
        out
    }

    /// After a block: `nonces` are the new account nonces of every sender the block
    /// touched. Mined and now-stale transactions leave; queued ones may become pending.
    pub fn on_block(&mut self, nonces: impl IntoIterator<Item = (Address, u64)>) {
        for (addr, nonce) in nonces {
            let Some(s) = self.senders.get_mut(&addr) else {
                continue;
            };
            s.nonce = nonce;
            let stale: Vec<u64> = s.txs.range(..nonce).map(|(n, _)| *n).collect();
            for n in stale {
                if let Some(t) = s.txs.remove(&n) {
                    self.by_hash.remove(&t.hash);
                }
            }
            if s.txs.is_empty() {
                self.senders.remove(&addr);
            }
        }
    }

    /// Drops a transaction a block refused (for example it can no longer pay).
    pub fn remove(&mut self, hash: &B256) {
        if let Some((s, n)) = self.by_hash.get(hash).copied() {
            self.remove_nonce(s, n);
        }
    }

    /// (pending, queued) counts.
    pub fn counts(&self) -> (usize, usize) {
        let pending: usize = self.senders.values().map(|s| s.pending_len()).sum();
        (pending, self.len() - pending)
    }
}

#[cfg(test)]
mod tests;
