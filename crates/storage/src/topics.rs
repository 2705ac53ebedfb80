//! The topic index: every log by its contract and each of its indexed arguments
//! (`topics[1..]`), so "every event of this identity (this token, this account, this
//! computing node) at this contract" is one range read instead of a walk over blocks.
//! EMC's DID resolver reads an identity's ERC-1056 history from it; the credential
//! issuer reads a computing node's settlements, scores and faults, whose node id is
//! the second or third indexed argument; explorers can read any contract's events by
//! any indexed argument the same way. A reader that cares which argument matched
//! checks the log's topics: the index names each log once per distinct value.
//!
//! Invariant: the index is written in the block's own commit ([`Store::commit_block`]),
//! so after any crash it holds exactly the committed blocks' logs. A database made
//! before this index existed (or before it covered every argument) is indexed once,
//! in one transaction, when it is opened ([`Store::open`]); a crash during that
//! leaves it as it was and the next open does it again.

use crate::{corrupt, decode_u64, Result, Store, META, RECEIPTS};
use alloy_primitives::{Address, B256};
use emc_types::{Log, Receipt};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// address ++ topic ++ height(BE) ++ log index in block(BE) -> (), for each distinct
/// topic of `topics[1..]`.
pub(crate) const TOPIC_INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("topic_index");
/// Set in `META` once the topic index covers every stored block and every indexed
/// argument (`"topic_index"` marked the earlier index of `topics[1]` alone).
const INDEXED_KEY: &str = "topic_index_all";

fn key(address: Address, topic: B256, height: u64, seq: u32) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..20].copy_from_slice(address.as_slice());
    k[20..52].copy_from_slice(topic.as_slice());
    k[52..60].copy_from_slice(&height.to_be_bytes());
    k[60..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Adds block `height`'s logs to the index, inside the block's write transaction.
pub(crate) fn index(w: &redb::WriteTransaction, height: u64, receipts: &[Receipt]) -> Result<()> {
    let mut t = w.open_table(TOPIC_INDEX)?;
    let logs = receipts.iter().flat_map(|r| &r.logs);
    for (seq, log) in logs.enumerate() {
        let indexed = log.topics.get(1..).unwrap_or_default();
        for (i, topic) in indexed.iter().enumerate() {
            if !indexed[..i].contains(topic) {
                t.insert(&key(log.address, *topic, height, seq as u32)[..], ())?;
            }
        }
    }
    Ok(())
}

/// A log found by its topic: where it is and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicLog {
    pub height: u64,
    /// Its index among the block's logs.
    pub index: u32,
    pub log: Log,
}

impl Store {
    /// Indexes a database made before the topic index, once.
    pub(crate) fn index_topics_once(&self) -> Result<()> {
        let w = self.db().begin_write()?;
        if w.open_table(META)?.get(INDEXED_KEY)?.is_some() {
            return Ok(());
        }
        // An index of `topics[1]` alone, if any, is rebuilt whole.
        w.delete_table(TOPIC_INDEX)?;
        let stored: Vec<(u64, Vec<Receipt>)> = {
            let receipts = w.open_table(RECEIPTS)?;
            let mut all = Vec::new();
            for entry in receipts.iter()? {
                let (h, v) = entry?;
                let rs =
                    borsh::from_slice(v.value()).map_err(|e| corrupt(format!("receipts: {e}")))?;
                all.push((h.value(), rs));
            }
            all
        };
        for (h, rs) in &stored {
            index(&w, *h, rs)?;
        }
        w.open_table(META)?.insert(INDEXED_KEY, &[1u8][..])?;
        w.commit()?;
        if !stored.is_empty() {
            tracing::info!(
                blocks = stored.len(),
                "indexed the logs of blocks stored before the topic index"
            );
        }
        Ok(())
    }

    /// The logs of contract `address` with `topic` among their indexed arguments,
    /// oldest first; `None` when there are more than `limit`.
    pub fn logs_by_topic(
        &self,
        address: Address,
        topic: B256,
        limit: usize,
    ) -> Result<Option<Vec<TopicLog>>> {
        let r = self.db().begin_read()?;
        let at = positions(&r, address, topic, limit.saturating_add(1))?;
        if at.len() > limit {
            return Ok(None);
        }
        read_logs(&r, at).map(Some)
    }

    /// The newest `limit` logs of contract `address` with `topic` among their indexed
    /// arguments at or below block `to`, newest first, cut at a block boundary so a
    /// block's logs are all in or all out (a block with more than `limit` such logs
    /// alone is given whole). The flag says whether these are all there are.
    pub fn latest_logs_by_topic(
        &self,
        address: Address,
        topic: B256,
        to: u64,
        limit: usize,
    ) -> Result<(Vec<TopicLog>, bool)> {
        let r = self.db().begin_read()?;
        let idx = r.open_table(TOPIC_INDEX)?;
        let (lo, hi) = (key(address, topic, 0, 0), key(address, topic, to, u32::MAX));
        let mut at: Vec<(u64, u32)> = Vec::new();
        let mut complete = true;
        for entry in idx.range(&lo[..]..=&hi[..])?.rev() {
            let (height, seq) = position(entry?.0.value())?;
            if at.len() >= limit && at.last().is_some_and(|(h, _)| *h != height) {
                complete = false;
                break;
            }
            at.push((height, seq));
        }
        let mut logs = read_logs(&r, at)?;
        logs.sort_by_key(|l| std::cmp::Reverse((l.height, l.index)));
        Ok((logs, complete))
    }
}

/// A key's block height and log index.
fn position(k: &[u8]) -> Result<(u64, u32)> {
    let (h, s) = (k.get(52..60), k.get(60..64));
    let (Some(h), Some(s)) = (h, s) else {
        return Err(corrupt("a topic index key too short"));
    };
    Ok((
        decode_u64(h)?,
        u32::from_be_bytes(s.try_into().map_err(corrupt)?),
    ))
}

/// Where the first `limit` logs of `address` naming `topic` are, oldest first.
fn positions(
    r: &redb::ReadTransaction,
    address: Address,
    topic: B256,
    limit: usize,
) -> Result<Vec<(u64, u32)>> {
    let idx = r.open_table(TOPIC_INDEX)?;
    let (lo, hi) = (
        key(address, topic, 0, 0),
        key(address, topic, u64::MAX, u32::MAX),
    );
    let mut at = Vec::new();
    for entry in idx.range(&lo[..]..=&hi[..])?.take(limit) {
        at.push(position(entry?.0.value())?);
    }
    Ok(at)
}

/// The logs at `at` (positions grouped by block), in that order.
fn read_logs(r: &redb::ReadTransaction, at: Vec<(u64, u32)>) -> Result<Vec<TopicLog>> {
    let receipts = r.open_table(RECEIPTS)?;
    let mut out = Vec::with_capacity(at.len());
    let mut block: Option<(u64, Vec<Log>)> = None;
    for (height, seq) in at {
        if block.as_ref().is_none_or(|(h, _)| *h != height) {
            let v = receipts
                .get(height)?
                .ok_or_else(|| corrupt(format!("no receipts at {height}")))?;
            let rs: Vec<Receipt> =
                borsh::from_slice(v.value()).map_err(|e| corrupt(format!("receipts: {e}")))?;
            block = Some((height, rs.into_iter().flat_map(|r| r.logs).collect()));
        }
        let logs = block
            .as_ref()
            .map(|(_, l)| l)
            .ok_or_else(|| corrupt("no block"))?;
        let log = logs.get(seq as usize).cloned().ok_or_else(|| {
            corrupt(format!(
                "the topic index names log {seq} of block {height}, which has fewer"
            ))
        })?;
        out.push(TopicLog {
            height,
            index: seq,
            log,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StateChanges;
    use alloy_primitives::Bytes;

    fn log(address: Address, topic: Option<B256>, data: u8) -> Log {
        let mut topics = vec![B256::repeat_byte(0xee)];
        topics.extend(topic);
        Log {
            address,
            topics,
            data: Bytes::from(vec![data]),
        }
    }

    fn receipt(logs: Vec<Log>) -> Receipt {
        Receipt {
            tx_hash: B256::ZERO,
            tx_index: 0,
            tx_type: 2,
            from: Address::ZERO,
            to: None,
            contract_address: None,
            success: true,
            gas_used: 0,
            cumulative_gas_used: 0,
            effective_gas_price: 0,
            logs,
        }
    }

    fn commit(store: &Store, height: u64, receipts: &[Receipt]) {
        let prepared = store
            .state_at(emc_types::Height(height.saturating_sub(1)))
            .expect("snap")
            .prepare(&StateChanges::default(), height)
            .expect("prepare");
        let mut header = emc_types::Header {
            parent_hash: Default::default(),
            height: emc_types::Height(height),
            timestamp: height,
            proposer: Address::ZERO,
            state_root: prepared.root,
            transactions_root: Default::default(),
            receipts_root: Default::default(),
            logs_bloom: Default::default(),
            validator_set_hash: Default::default(),
            gas_used: 0,
            gas_limit: 1,
            base_fee: 0,
            extra_data: Default::default(),
            parent_signers: Default::default(),
        };
        if height > 0 {
            header.parent_hash = store
                .header(emc_types::Height(height - 1))
                .expect("read")
                .expect("parent")
                .hash();
        }
        let block = emc_types::Block {
            header,
            transactions: vec![],
            parent_certificate: Default::default(),
        };
        store
            .commit_block(&block, &[], receipts, &prepared, None, None)
            .expect("commit");
    }

    #[test]
    fn an_identitys_logs_come_back_in_order_and_a_database_made_before_is_indexed_on_open() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("chain.redb");
        let (registry, other) = (Address::repeat_byte(0x10), Address::repeat_byte(0x11));
        let (alice, bob) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let want = {
            let store = Store::open(&path).expect("open");
            commit(&store, 0, &[]);
            commit(
                &store,
                1,
                &[
                    receipt(vec![
                        log(registry, Some(alice), 1),
                        log(registry, Some(bob), 2),
                    ]),
                    receipt(vec![
                        log(other, Some(alice), 3),
                        log(registry, None, 4),
                        log(registry, Some(alice), 5),
                    ]),
                ],
            );
            commit(&store, 2, &[receipt(vec![log(registry, Some(alice), 6)])]);
            let got = store
                .logs_by_topic(registry, alice, 10)
                .expect("read")
                .expect("within the limit");
            let seen: Vec<_> = got
                .iter()
                .map(|l| (l.height, l.index, l.log.data[0]))
                .collect();
            assert_eq!(seen, vec![(1, 0, 1), (1, 4, 5), (2, 0, 6)]);
            assert_eq!(
                store.logs_by_topic(registry, alice, 2).expect("read"),
                None,
                "over the limit"
            );
            assert_eq!(
                store
                    .logs_by_topic(registry, B256::repeat_byte(3), 10)
                    .expect("read"),
                Some(vec![])
            );
            // As a database from before the index: no index, no mark.
            let w = store.db().begin_write().expect("write");
            w.delete_table(TOPIC_INDEX).expect("drop");
            w.open_table(META)
                .expect("meta")
                .remove(INDEXED_KEY)
                .expect("unmark");
            w.commit().expect("commit");
            got
        };
        let store = Store::open(&path).expect("reopen");
        assert_eq!(
            store.logs_by_topic(registry, alice, 10).expect("read"),
            Some(want)
        );
        let bobs = store
            .logs_by_topic(registry, bob, 10)
            .expect("read")
            .expect("some");
        assert_eq!(bobs.len(), 1);
    }

    #[test]
    fn every_indexed_argument_finds_its_logs_once_and_the_latest_come_back_by_whole_blocks() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("chain.redb")).expect("open");
        let tasks = Address::repeat_byte(0x10);
        let (node, other) = (B256::repeat_byte(7), B256::repeat_byte(8));
        let settled = |n: u8, node: B256| Log {
            address: tasks,
            topics: vec![B256::repeat_byte(0xee), B256::repeat_byte(n), node, node],
            data: Bytes::from(vec![n]),
        };
        commit(&store, 0, &[]);
        commit(
            &store,
            1,
            &[receipt(vec![settled(1, node), settled(2, other)])],
        );
        commit(
            &store,
            2,
            &[receipt(vec![settled(3, node), settled(4, node)])],
        );
        commit(&store, 3, &[receipt(vec![settled(5, node)])]);
        let all = store
            .logs_by_topic(tasks, node, 10)
            .expect("read")
            .expect("within");
        let seen: Vec<u8> = all.iter().map(|l| l.log.data[0]).collect();
        assert_eq!(seen, vec![1, 3, 4, 5], "once each, though named twice");
        let by_first = store
            .logs_by_topic(tasks, B256::repeat_byte(2), 10)
            .expect("read")
            .expect("within");
        assert_eq!(by_first.len(), 1, "the first argument still finds its log");
        let newest = |to, limit| {
            let (logs, complete) = store
                .latest_logs_by_topic(tasks, node, to, limit)
                .expect("read");
            (
                logs.iter().map(|l| l.log.data[0]).collect::<Vec<_>>(),
                complete,
            )
        };
        assert_eq!(newest(3, 10), (vec![5, 4, 3, 1], true));
        assert_eq!(newest(3, 2), (vec![5, 4, 3], false), "block 2 whole");
        assert_eq!(
            newest(2, 1),
            (vec![4, 3], false),
            "a block over the limit, whole"
        );
        assert_eq!(newest(1, 5), (vec![1], true));
    }
}
