//! EMC storage: one redb file per node holding blocks, receipts, indexes and state.
//!
//! Invariant: a block, its receipts, its indexes, its state-tree nodes and the new head
//! pointer are written in **one** redb write transaction ([`Store::commit_block`]). redb
//! commits are atomic and durable (copy-on-write pages, a checksummed commit slot), so
//! a node killed with SIGKILL at any instant reopens at the last committed head with
//! everything that head implies, and nothing of a later block.
//!
//! State is a Jellyfish Merkle tree (jmt, sha256) whose version is the block height.
//! jmt keeps every value by `(key hash, version)`, so reading state as of any stored
//! height is one range lookup (`eth_getBalance` at block N needs no replay). Nothing is
//! pruned yet: all history is kept.
//!
//! Data flow: execution hands a [`StateChanges`] to [`Store::prepare_state`], which
//! computes the new root without writing; the chain seals the header with that root and
//! then calls [`Store::commit_block`].

mod blocks;
pub mod proof;
mod state;
mod topics;
mod verify;

pub use blocks::{LogFilter, StoredTx};
pub use state::{
    verify_state_proof, AccountState, PreparedState, StateChanges, StateKey, StateSnapshot,
    EMPTY_CODE_HASH,
};
pub use topics::TopicLog;
pub use verify::VerifyReport;

use emc_types::Height;
use redb::{Database, TableDefinition};
use std::path::Path;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const HEADERS: TableDefinition<u64, &[u8]> = TableDefinition::new("headers");
pub(crate) const BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("bodies");
pub(crate) const SENDERS: TableDefinition<u64, &[u8]> = TableDefinition::new("senders");
pub(crate) const RECEIPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("receipts");
pub(crate) const HASH_TO_HEIGHT: TableDefinition<&[u8; 32], u64> =
    TableDefinition::new("hash_to_height");
/// tx hash -> (height, index in block)
pub(crate) const TX_INDEX: TableDefinition<&[u8; 32], (u64, u32)> =
    TableDefinition::new("tx_index");
/// address ++ height(BE) ++ log index in block(BE) -> ()
pub(crate) const LOG_INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("log_index");
pub(crate) const JMT_NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("jmt_nodes");
/// key hash ++ version(BE) -> 0x00 (deleted) | 0x01 ++ value
pub(crate) const JMT_VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("jmt_values");
pub(crate) const CODE: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("code");
/// The consensus write-ahead state of the height in progress (opaque bytes: the
/// consensus crate's borsh `WalState`).
/// height -> the block's commit certificate (opaque: consensus' borsh encoding).
pub(crate) const CERTIFICATES: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
pub(crate) const CONSENSUS_WAL: TableDefinition<&str, &[u8]> =
    TableDefinition::new("consensus_wal");

const HEAD_KEY: &str = "head";
const GENESIS_KEY: &str = "genesis";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("corrupt store: {0}")]
    Corrupt(String),
    #[error("state tree: {0}")]
    Tree(String),
    #[error("block {0} is not stored")]
    MissingBlock(u64),
    #[error("cannot commit block {got}: the head is {head}, the next block must be {}", head + 1)]
    OutOfOrder { head: u64, got: u64 },
    #[error(
        "the database was created for another genesis ({stored}); this node was given {given}"
    )]
    GenesisMismatch { stored: String, given: String },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(what.to_string())
}

/// The node's database.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| corrupt(format!("{}: {e}", dir.display())))?;
        }
        let db = Database::builder().set_cache_size(256 << 20).create(path)?;
        let store = Self { db };
        store.create_tables()?;
        store.index_topics_once()?;
        Ok(store)
    }

    fn create_tables(&self) -> Result<()> {
        let w = self.db.begin_write()?;
        w.open_table(META)?;
        w.open_table(HEADERS)?;
        w.open_table(BODIES)?;
        w.open_table(SENDERS)?;
        w.open_table(RECEIPTS)?;
        w.open_table(HASH_TO_HEIGHT)?;
        w.open_table(TX_INDEX)?;
        w.open_table(LOG_INDEX)?;
        w.open_table(JMT_NODES)?;
        w.open_table(JMT_VALUES)?;
        w.open_table(CODE)?;
        w.open_table(CONSENSUS_WAL)?;
        w.open_table(CERTIFICATES)?;
        w.open_table(topics::TOPIC_INDEX)?;
        w.commit()?;
        Ok(())
    }

    /// The last committed height, or `None` on a fresh database.
    pub fn head(&self) -> Result<Option<Height>> {
        use redb::ReadableDatabase;
        let r = self.db.begin_read()?;
        let meta = r.open_table(META)?;
        match meta.get(HEAD_KEY)? {
            None => Ok(None),
            Some(v) => Ok(Some(Height(decode_u64(v.value())?))),
        }
    }

    /// The genesis this database was created with, as the JSON it was given.
    pub fn genesis_json(&self) -> Result<Option<String>> {
        use redb::ReadableDatabase;
        let r = self.db.begin_read()?;
        let meta = r.open_table(META)?;
        Ok(meta
            .get(GENESIS_KEY)?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    /// Durably records the consensus state before the node sends anything it signed
    /// ("persist before you send"); returns once the commit is on disk.
    pub fn put_consensus_wal(&self, state: &[u8]) -> Result<()> {
        let w = self.db.begin_write()?;
        w.open_table(CONSENSUS_WAL)?.insert("state", state)?;
        w.commit()?;
        Ok(())
    }

    /// The last recorded consensus state, if any.
    pub fn consensus_wal(&self) -> Result<Option<Vec<u8>>> {
        use redb::ReadableDatabase;
        let r = self.db.begin_read()?;
        let t = r.open_table(CONSENSUS_WAL)?;
        Ok(t.get("state")?.map(|v| v.value().to_vec()))
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }
}

pub(crate) fn decode_u64(b: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = b
        .try_into()
        .map_err(|_| corrupt("u64 field is not 8 bytes"))?;
    Ok(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consensus_wal_survives_reopening() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("chain.redb");
        {
            let s = Store::open(&path).expect("open");
            assert_eq!(s.consensus_wal().expect("read"), None);
            s.put_consensus_wal(b"first").expect("write");
            s.put_consensus_wal(b"second").expect("write");
        }
        let s = Store::open(&path).expect("reopen");
        assert_eq!(
            s.consensus_wal().expect("read").as_deref(),
            Some(&b"second"[..])
        );
    }
}

#[cfg(test)]
mod proof_tests {
    use super::*;
    use alloy_primitives::{Address, U256};

    #[test]
    fn state_proofs_verify_against_the_root_and_catch_lies() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("chain.redb")).expect("open");
        let mut changes = StateChanges::default();
        let acct = AccountState {
            nonce: 3,
            balance: U256::from(99),
            code_hash: EMPTY_CODE_HASH,
        };
        changes
            .accounts
            .insert(Address::repeat_byte(1), Some(acct.clone()));
        changes
            .accounts
            .insert(Address::repeat_byte(2), Some(AccountState::default()));
        let prepared = store
            .state_at(emc_types::Height(0))
            .expect("snap")
            .prepare(&changes, 0)
            .expect("prepare");
        let root = prepared.root;
        let block = emc_types::Block {
            header: emc_types::Header {
                parent_hash: Default::default(),
                height: emc_types::Height(0),
                timestamp: 0,
                proposer: Address::ZERO,
                state_root: root,
                transactions_root: Default::default(),
                receipts_root: Default::default(),
                logs_bloom: Default::default(),
                validator_set_hash: Default::default(),
                gas_used: 0,
                gas_limit: 1,
                base_fee: 0,
                extra_data: Default::default(),
                parent_signers: Default::default(),
            },
            transactions: vec![],
            parent_certificate: Default::default(),
        };
        store
            .commit_block(&block, &[], &[], &prepared, None, None)
            .expect("commit");
        let snap = store.state_at(emc_types::Height(0)).expect("snap");
        let key = StateKey::Account(Address::repeat_byte(1));
        let (value, proof) = snap.prove(&key).expect("prove");
        assert_eq!(
            value.as_deref(),
            Some(&borsh::to_vec(&acct).expect("enc")[..])
        );
        assert!(verify_state_proof(root, &key, value.as_deref(), &proof));
        // A lie about the value, the key or the root fails.
        let fake = borsh::to_vec(&AccountState {
            balance: U256::from(1_000_000),
            ..acct
        })
        .expect("enc");
        assert!(!verify_state_proof(root, &key, Some(&fake), &proof));
        assert!(!verify_state_proof(
            root,
            &StateKey::Account(Address::repeat_byte(2)),
            value.as_deref(),
            &proof
        ));
        assert!(!verify_state_proof(
            alloy_primitives::B256::repeat_byte(9),
            &key,
            value.as_deref(),
            &proof
        ));
        // Absence is provable too.
        let missing = StateKey::Account(Address::repeat_byte(7));
        let (none, proof) = snap.prove(&missing).expect("prove");
        assert!(none.is_none());
        assert!(verify_state_proof(root, &missing, None, &proof));
        assert!(!verify_state_proof(root, &missing, Some(b"x"), &proof));
        assert!(!verify_state_proof(root, &key, None, b"garbage"));
    }
}
