//! The block's pending state: what earlier transactions of the block changed, over a
//! snapshot of the parent state. revm reads through it and commits into it.

use crate::ExecError;
use alloy_primitives::{map::HashMap, Address, Bytes, B256, U256};
use emc_storage::{AccountState, StateChanges, StateSnapshot};
use revm::{
    bytecode::Bytecode,
    database_interface::{DBErrorMarker, Database, DatabaseCommit},
    primitives::{AddressMap, StorageKey, StorageValue},
    state::{Account, AccountInfo},
};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DbError(pub String);
impl DBErrorMarker for DbError {}

impl From<emc_storage::StorageError> for DbError {
    fn from(e: emc_storage::StorageError) -> Self {
        DbError(e.to_string())
    }
}

pub struct Overlay<'s> {
    base: &'s StateSnapshot,
    accounts: HashMap<Address, Option<AccountState>>,
    storage: HashMap<(Address, U256), U256>,
    code: HashMap<B256, Bytes>,
    block_hashes: &'s BTreeMap<u64, B256>,
}

impl<'s> Overlay<'s> {
    pub fn new(base: &'s StateSnapshot, block_hashes: &'s BTreeMap<u64, B256>) -> Self {
        Self {
            base,
            accounts: HashMap::default(),
            storage: HashMap::default(),
            code: HashMap::default(),
            block_hashes,
        }
    }

    pub fn account(&self, address: Address) -> Result<Option<AccountState>, ExecError> {
        match self.accounts.get(&address) {
            Some(a) => Ok(a.clone()),
            None => Ok(self.base.account(address)?),
        }
    }

    pub fn into_changes(self) -> StateChanges {
        StateChanges {
            accounts: self.accounts.into_iter().collect(),
            storage: self.storage.into_iter().collect(),
            code: self.code.into_iter().collect(),
        }
    }
}

impl Database for Overlay<'_> {
    type Error = DbError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, DbError> {
        let acc = match self.accounts.get(&address) {
            Some(a) => a.clone(),
            None => self.base.account(address)?,
        };
        Ok(acc.map(|a| AccountInfo {
            balance: a.balance,
            nonce: a.nonce,
            code_hash: a.code_hash,
            account_id: None,
            code: None,
        }))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, DbError> {
        if let Some(c) = self.code.get(&code_hash) {
            return Ok(Bytecode::new_raw(c.clone()));
        }
        match self.base.code(code_hash)? {
            Some(c) => Ok(Bytecode::new_raw(c)),
            None => Err(DbError(format!("code {code_hash} missing"))),
        }
    }

    fn storage(&mut self, address: Address, index: StorageKey) -> Result<StorageValue, DbError> {
        if let Some(v) = self.storage.get(&(address, index)) {
            return Ok(*v);
        }
        Ok(self.base.storage(address, index)?)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, DbError> {
        Ok(self.block_hashes.get(&number).copied().unwrap_or_default())
    }
}

impl DatabaseCommit for Overlay<'_> {
    fn commit(&mut self, changes: AddressMap<Account>) {
        for (address, account) in changes {
            if !account.is_touched() {
                continue;
            }
            if account.is_selfdestructed() {
                // Cancun: only an account created in the same transaction can be
                // destroyed, so its storage was never committed; drop what the block wrote.
                self.storage.retain(|(a, _), _| *a != address);
                self.accounts.insert(address, None);
                continue;
            }
            if account.is_empty() {
                // EIP-161: a touched empty account is removed.
                self.accounts.insert(address, None);
                continue;
            }
            if let Some(code) = &account.info.code {
                if !code.is_empty() {
                    self.code
                        .entry(account.info.code_hash)
                        .or_insert_with(|| code.original_bytes());
                }
            }
            for (slot, value) in account.changed_storage_slots() {
                self.storage.insert((address, *slot), value.present_value);
            }
            self.accounts.insert(
                address,
                Some(AccountState {
                    nonce: account.info.nonce,
                    balance: account.info.balance,
                    code_hash: account.info.code_hash,
                }),
            );
        }
    }
}
