//! `emc db verify`: proves a store is consistent after a crash.
//!
//! It walks every stored block (parent links, hash index, receipts root, transaction
//! index) and recomputes the state root of the head from the raw leaf values alone, in
//! a fresh in-memory tree, then compares it with the root in the head's header and with
//! the root the stored tree reports. A torn write anywhere shows up as a mismatch.

use crate::{corrupt, state::decode_value, Result, Store, JMT_VALUES};
use alloy_primitives::B256;
use emc_types::{block::receipts_root, Height};
use jmt::{mock::MockTreeStore, JellyfishMerkleTree, KeyHash};
use redb::{ReadableDatabase, ReadableTable};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub head: Height,
    pub blocks: u64,
    pub transactions: u64,
    pub header_state_root: B256,
    pub recomputed_state_root: B256,
    pub tree_state_root: B256,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.header_state_root == self.recomputed_state_root
            && self.header_state_root == self.tree_state_root
    }
}

impl Store {
    pub fn verify(&self) -> Result<VerifyReport> {
        let head = self
            .head()?
            .ok_or_else(|| corrupt("empty store: no genesis"))?;
        let mut parent = B256::ZERO;
        let mut transactions = 0u64;
        for h in 0..=head.0 {
            let (block, senders) = self
                .block(Height(h))?
                .ok_or_else(|| corrupt(format!("block {h} missing")))?;
            let hash = block.hash();
            if h > 0 && block.header.parent_hash != parent {
                return Err(corrupt(format!("block {h} does not link to its parent")));
            }
            if self.height_of(hash)? != Some(Height(h)) {
                return Err(corrupt(format!("hash index of block {h} is wrong")));
            }
            let receipts = self
                .receipts(Height(h))?
                .ok_or_else(|| corrupt(format!("receipts of {h} missing")))?;
            if receipts.len() != block.transactions.len() || senders.len() != receipts.len() {
                return Err(corrupt(format!(
                    "block {h}: {} txs, {} receipts",
                    block.transactions.len(),
                    receipts.len()
                )));
            }
            if receipts_root(&receipts) != block.header.receipts_root {
                return Err(corrupt(format!(
                    "receipts root of block {h} does not match"
                )));
            }
            for (i, rc) in receipts.iter().enumerate() {
                if self.tx_location(rc.tx_hash)? != Some((Height(h), i as u32)) {
                    return Err(corrupt(format!("tx index of {} is wrong", rc.tx_hash)));
                }
            }
            transactions += receipts.len() as u64;
            parent = hash;
        }
        let header = self
            .header(head)?
            .ok_or_else(|| corrupt("head header missing"))?;
        let recomputed = self.recompute_root(head)?;
        let tree_root = self.state_at(head)?.root()?;
        Ok(VerifyReport {
            head,
            blocks: head.0 + 1,
            transactions,
            header_state_root: header.state_root,
            recomputed_state_root: recomputed,
            tree_state_root: tree_root,
        })
    }

    /// The state root at `height` rebuilt from leaf values only.
    fn recompute_root(&self, height: Height) -> Result<B256> {
        let r = self.db().begin_read()?;
        let values = r.open_table(JMT_VALUES)?;
        let mut latest: Vec<(KeyHash, Option<Vec<u8>>)> = Vec::new();
        let mut current: Option<(KeyHash, Option<Vec<u8>>)> = None;
        for entry in values.iter()? {
            let (k, v) = entry?;
            let k = k.value();
            let key = KeyHash(k[..32].try_into().map_err(|_| corrupt("short value key"))?);
            let version = u64::from_be_bytes(
                k[32..40]
                    .try_into()
                    .map_err(|_| corrupt("short value key"))?,
            );
            if version > height.0 {
                continue;
            }
            let val = decode_value(v.value())?;
            match &mut current {
                Some((ck, cv)) if *ck == key => *cv = val,
                _ => {
                    if let Some(done) = current.take() {
                        latest.push(done);
                    }
                    current = Some((key, val));
                }
            }
        }
        latest.extend(current);
        let live: Vec<_> = latest.into_iter().filter(|(_, v)| v.is_some()).collect();
        let mem = MockTreeStore::default();
        let tree = JellyfishMerkleTree::<_, Sha256>::new(&mem);
        let (root, _) = tree
            .put_value_set(live, 0)
            .map_err(|e| crate::StorageError::Tree(e.to_string()))?;
        Ok(B256::from(root.0))
    }
}
