//! The authenticated state: accounts, contract storage and code.
//!
//! Leaves of the Jellyfish Merkle tree are keyed by `sha256(raw key)` where the raw key
//! is `0x01 ++ address` for an account (value: borsh [`AccountState`]) or
//! `0x02 ++ address ++ slot` for a storage slot (value: the 32-byte word; a zero word
//! deletes the leaf). Code lives outside the tree, addressed by its keccak hash, which
//! the account leaf commits to.

use crate::{corrupt, Result, StorageError, Store, CODE, JMT_NODES, JMT_VALUES};
use alloy_primitives::{Address, Bytes, B256, U256};
use borsh::{BorshDeserialize, BorshSerialize};
use jmt::{
    storage::{LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch},
    JellyfishMerkleTree, KeyHash, OwnedValue, Version,
};
use redb::{ReadOnlyTable, ReadableDatabase};
use sha2::Sha256;
use std::collections::BTreeMap;

/// keccak256 of the empty string: the code hash of an account without code.
pub const EMPTY_CODE_HASH: B256 = alloy_primitives::KECCAK256_EMPTY;

#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AccountState {
    pub nonce: u64,
    pub balance: U256,
    pub code_hash: B256,
}

impl AccountState {
    pub fn is_empty(&self) -> bool {
        self.nonce == 0 && self.balance.is_zero() && self.code_hash == EMPTY_CODE_HASH
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub enum StateKey {
    Account(Address),
    Storage(Address, U256),
}

impl StateKey {
    pub fn raw(&self) -> Vec<u8> {
        match self {
            StateKey::Account(a) => [&[1u8][..], a.as_slice()].concat(),
            StateKey::Storage(a, slot) => {
                [&[2u8][..], a.as_slice(), &slot.to_be_bytes::<32>()[..]].concat()
            }
        }
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash::with::<Sha256>(self.raw())
    }
}

/// What one block changed: the new value of every account and slot it touched
/// (`None` / zero deletes), and the code it deployed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateChanges {
    pub accounts: BTreeMap<Address, Option<AccountState>>,
    pub storage: BTreeMap<(Address, U256), U256>,
    pub code: BTreeMap<B256, Bytes>,
}

impl StateChanges {
    fn value_set(&self) -> Vec<(KeyHash, Option<OwnedValue>)> {
        let accounts = self.accounts.iter().map(|(a, acc)| {
            let v = acc
                .as_ref()
                .map(|acc| borsh::to_vec(acc).expect("borsh into a Vec never fails"));
            (StateKey::Account(*a).hash(), v)
        });
        let slots = self.storage.iter().map(|((a, slot), val)| {
            let v = (!val.is_zero()).then(|| val.to_be_bytes::<32>().to_vec());
            (StateKey::Storage(*a, *slot).hash(), v)
        });
        accounts.chain(slots).collect()
    }
}

/// A new state root and the tree nodes that produce it, computed but not yet written.
pub struct PreparedState {
    pub version: Version,
    pub root: B256,
    pub(crate) batch: TreeUpdateBatch,
    pub(crate) code: BTreeMap<B256, Bytes>,
}

/// Reads state as of one height, from a consistent snapshot of the database.
pub struct StateSnapshot {
    version: Version,
    nodes: ReadOnlyTable<&'static [u8], &'static [u8]>,
    values: ReadOnlyTable<&'static [u8], &'static [u8]>,
    code: ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
}

impl StateSnapshot {
    pub fn version(&self) -> Version {
        self.version
    }

    pub fn account(&self, address: Address) -> Result<Option<AccountState>> {
        match self.value(StateKey::Account(address).hash(), self.version)? {
            None => Ok(None),
            Some(bytes) => AccountState::try_from_slice(&bytes)
                .map(Some)
                .map_err(|e| corrupt(format!("account {address}: {e}"))),
        }
    }

    pub fn storage(&self, address: Address, slot: U256) -> Result<U256> {
        match self.value(StateKey::Storage(address, slot).hash(), self.version)? {
            None => Ok(U256::ZERO),
            Some(bytes) if bytes.len() == 32 => Ok(U256::from_be_slice(&bytes)),
            Some(_) => Err(corrupt(format!("slot {slot} of {address} is not 32 bytes"))),
        }
    }

    pub fn code(&self, code_hash: B256) -> Result<Option<Bytes>> {
        if code_hash == EMPTY_CODE_HASH {
            return Ok(Some(Bytes::new()));
        }
        Ok(self
            .code
            .get(&code_hash.0)?
            .map(|v| Bytes::copy_from_slice(v.value())))
    }

    /// The newest value of `key` at or below `max_version`.
    fn value(&self, key: KeyHash, max_version: Version) -> Result<Option<OwnedValue>> {
        let lo = value_key(key, 0);
        let hi = value_key(key, max_version);
        let mut range = self.values.range(&lo[..]..=&hi[..])?;
        match range.next_back() {
            None => Ok(None),
            Some(entry) => {
                let (_, v) = entry?;
                decode_value(v.value())
            }
        }
    }

    /// The value under `key` at this snapshot's height (borsh [`AccountState`] for an
    /// account, a 32-byte word for a slot) with a borsh-encoded sparse Merkle proof
    /// against the state root of that height: what a light client needs.
    pub fn prove(&self, key: &StateKey) -> Result<(Option<Vec<u8>>, Vec<u8>)> {
        let tree = JellyfishMerkleTree::<_, Sha256>::new(self);
        let (value, proof) = tree
            .get_with_proof(key.hash(), self.version)
            .map_err(|e| StorageError::Tree(e.to_string()))?;
        Ok((value, borsh::to_vec(&proof).map_err(corrupt)?))
    }

    /// The root of the tree at this snapshot's version.
    pub fn root(&self) -> Result<B256> {
        let tree = JellyfishMerkleTree::<_, Sha256>::new(self);
        let root = tree
            .get_root_hash(self.version)
            .map_err(|e| StorageError::Tree(e.to_string()))?;
        Ok(B256::from(root.0))
    }

    /// Computes the tree for `changes` on top of this snapshot, as version `version`.
    pub fn prepare(&self, changes: &StateChanges, version: Version) -> Result<PreparedState> {
        let tree = JellyfishMerkleTree::<_, Sha256>::new(self);
        let (root, batch) = tree
            .put_value_set(changes.value_set(), version)
            .map_err(|e| StorageError::Tree(e.to_string()))?;
        Ok(PreparedState {
            version,
            root: B256::from(root.0),
            batch,
            code: changes.code.clone(),
        })
    }
}

impl TreeReader for StateSnapshot {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow_result::Result<Option<Node>> {
        let k = borsh::to_vec(node_key)?;
        match self.nodes.get(&k[..])? {
            None => Ok(None),
            Some(v) => Ok(Some(Node::try_from_slice(v.value())?)),
        }
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow_result::Result<Option<OwnedValue>> {
        Ok(self.value(key_hash, max_version)?)
    }

    fn get_rightmost_leaf(&self) -> anyhow_result::Result<Option<(NodeKey, LeafNode)>> {
        // Only tree restoration (state sync from a snapshot) needs this; EMC syncs by
        // replaying blocks, so it is never called.
        Err(anyhow_result::Error::msg(
            "get_rightmost_leaf is not supported",
        ))
    }
}

/// jmt's reader trait returns `anyhow::Result`; anyhow appears only in this impl.
use anyhow as anyhow_result;

pub(crate) fn value_key(key: KeyHash, version: Version) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&key.0);
    k[32..].copy_from_slice(&version.to_be_bytes());
    k
}

pub(crate) fn encode_value(v: &Option<OwnedValue>) -> Vec<u8> {
    match v {
        None => vec![0],
        Some(bytes) => [&[1u8][..], bytes].concat(),
    }
}

pub(crate) fn decode_value(b: &[u8]) -> Result<Option<OwnedValue>> {
    match b.split_first() {
        Some((0, [])) => Ok(None),
        Some((1, rest)) => Ok(Some(rest.to_vec())),
        _ => Err(corrupt("state value has a bad tag")),
    }
}

impl Store {
    /// State as of `height` (which must be stored).
    pub fn state_at(&self, height: emc_types::Height) -> Result<StateSnapshot> {
        let r = self.db().begin_read()?;
        Ok(StateSnapshot {
            version: height.0,
            nodes: r.open_table(JMT_NODES)?,
            values: r.open_table(JMT_VALUES)?,
            code: r.open_table(CODE)?,
        })
    }

    /// Writes a prepared state into an open write transaction.
    pub(crate) fn write_state(w: &redb::WriteTransaction, prepared: &PreparedState) -> Result<()> {
        let mut nodes = w.open_table(JMT_NODES)?;
        for (key, node) in prepared.batch.node_batch.nodes() {
            let k = borsh::to_vec(key).map_err(corrupt)?;
            let v = borsh::to_vec(node).map_err(corrupt)?;
            nodes.insert(&k[..], &v[..])?;
        }
        let mut values = w.open_table(JMT_VALUES)?;
        for ((version, key), value) in prepared.batch.node_batch.values() {
            values.insert(&value_key(*key, *version)[..], &encode_value(value)[..])?;
        }
        let mut code = w.open_table(CODE)?;
        for (hash, bytes) in &prepared.code {
            code.insert(&hash.0, &bytes[..])?;
        }
        Ok(())
    }
}

/// Checks a state proof from an untrusted peer against a trusted state root (one from a
/// certified header): `value` must be what the tree holds under `key`, or `None` and
/// the proof one of absence.
pub fn verify_state_proof(root: B256, key: &StateKey, value: Option<&[u8]>, proof: &[u8]) -> bool {
    let Ok(p) = jmt::proof::SparseMerkleProof::<Sha256>::try_from_slice(proof) else {
        return false;
    };
    p.verify(jmt::RootHash(root.0), key.hash(), value).is_ok()
}
