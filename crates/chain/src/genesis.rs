//! Writes block 0: the premined accounts, the system modules' code marker and storage,
//! and the genesis header, in one transaction.

use crate::{validator_set_hash, ChainError};
use alloy_primitives::{keccak256, U256};
use emc_modules::MODULES;
use emc_storage::{AccountState, StateChanges, Store};
use emc_types::{
    block::{receipts_root, transactions_root},
    Block, Bloom, Genesis, Header, Height, B256,
};

pub(crate) fn write(store: &Store, genesis: &Genesis) -> Result<(), ChainError> {
    let mut changes = StateChanges::default();
    for (addr, acc) in &genesis.alloc {
        let code_hash = match &acc.code {
            Some(code) if !code.is_empty() => {
                let h = keccak256(code);
                changes.code.insert(h, code.clone());
                h
            }
            _ => emc_storage::EMPTY_CODE_HASH,
        };
        changes.accounts.insert(
            *addr,
            Some(AccountState {
                nonce: acc.nonce,
                balance: acc.balance,
                code_hash,
            }),
        );
        for (k, v) in &acc.storage {
            changes
                .storage
                .insert((*addr, U256::from_be_bytes(k.0)), U256::from_be_bytes(v.0));
        }
    }
    // Each module of the table: its storage and balance from the kit (the staking
    // module holds the genesis validators' stakes); a module may also hold value and
    // storage from the alloc (the Tasks module, escrow allocated in genesis).
    // Its code is the kit's: one INVALID byte that marks it as a contract for tools,
    // or, for a module that calls contracts, the trampoline.
    for module in MODULES {
        let addr = module.address();
        let code = emc_modules::kit::code_of(*module);
        let code_hash = keccak256(&code);
        changes.code.insert(code_hash, code);
        let init = module.genesis(genesis);
        let balance = init.balance.unwrap_or_else(|| {
            genesis
                .alloc
                .get(&addr)
                .map(|a| a.balance)
                .unwrap_or_default()
        });
        changes.accounts.insert(
            addr,
            Some(AccountState {
                nonce: 1,
                balance,
                code_hash,
            }),
        );
        for (slot, value) in init.storage {
            changes.storage.insert((addr, slot), value);
        }
    }
    // Version 0 is built on an empty tree: a snapshot of the empty store reads nothing.
    let empty = store.state_at(Height::GENESIS)?;
    let prepared = empty.prepare(&changes, 0)?;
    let header = Header {
        parent_hash: B256::ZERO,
        height: Height::GENESIS,
        timestamp: genesis.timestamp,
        proposer: Default::default(),
        state_root: prepared.root,
        transactions_root: transactions_root(&[]),
        receipts_root: receipts_root(&[]),
        logs_bloom: Bloom::default(),
        validator_set_hash: validator_set_hash(&genesis.validators),
        gas_used: 0,
        gas_limit: genesis.gas_limit,
        base_fee: genesis.base_fee,
        extra_data: Default::default(),
        parent_signers: Default::default(),
    };
    let block = Block {
        header,
        transactions: vec![],
        parent_certificate: Default::default(),
    };
    store.commit_block(&block, &[], &[], &prepared, Some(&genesis.to_json()), None)?;
    Ok(())
}
