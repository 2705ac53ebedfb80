//! A bare revm with EMC's precompiles over a table of system modules, for the
//! execution tests: each module's genesis code installed, accounts funded and
//! contracts deployed by hand, transactions committed one by one.

#![allow(dead_code)] // each test file uses part of it

use alloy_primitives::{Address, Bytes, U256};
use emc_execution::precompiles::{EmcPrecompiles, Table};
use revm::{
    bytecode::Bytecode,
    context::{CfgEnv, Context, TxEnv},
    context_interface::result::{ExecutionResult, Output},
    database::{CacheDB, EmptyDB},
    handler::{ExecuteCommitEvm, MainBuilder, MainContext},
    primitives::{hardfork::SpecId, TxKind},
    state::AccountInfo,
};

pub struct Evm {
    pub db: CacheDB<EmptyDB>,
    table: Table,
    chain_id: u64,
}

impl Evm {
    /// A chain with `table`'s modules at their addresses, each with the code genesis
    /// gives it.
    pub fn new(table: Table, chain_id: u64) -> Self {
        let mut db = CacheDB::new(EmptyDB::default());
        for m in table {
            let code = Bytecode::new_raw(emc_modules::kit::code_of(*m));
            db.insert_account_info(m.address(), AccountInfo::default().with_code(code));
        }
        Evm {
            db,
            table,
            chain_id,
        }
    }

    pub fn fund(&mut self, a: Address, wei: U256) {
        let info = AccountInfo {
            balance: wei,
            ..Default::default()
        };
        self.db.insert_account_info(a, info);
    }

    pub fn deploy(&mut self, at: Address, code: Bytes) {
        let info = AccountInfo::default().with_code(Bytecode::new_raw(code));
        self.db.insert_account_info(at, info);
    }

    /// A transaction from `from` (nonces unchecked, gas free), committed.
    pub fn send(
        &mut self,
        from: Address,
        to: Address,
        value: u64,
        data: Vec<u8>,
    ) -> ExecutionResult {
        let mut cfg = CfgEnv::new_with_spec(SpecId::PRAGUE);
        cfg.disable_nonce_check = true;
        cfg.chain_id = self.chain_id;
        let mut evm = Context::mainnet()
            .with_db(&mut self.db)
            .with_cfg(cfg)
            .build_mainnet()
            .with_precompiles(EmcPrecompiles::new_in(self.table, self.chain_id));
        let tx = TxEnv {
            caller: from,
            kind: TxKind::Call(to),
            data: data.into(),
            value: U256::from(value),
            gas_limit: 3_000_000,
            gas_price: 0,
            chain_id: Some(self.chain_id),
            ..Default::default()
        };
        evm.transact_commit(tx).expect("the transaction runs")
    }

    /// [`Evm::send`] that must succeed; its output.
    pub fn ok(&mut self, from: Address, to: Address, value: u64, data: Vec<u8>) -> Bytes {
        match self.send(from, to, value, data) {
            ExecutionResult::Success {
                output: Output::Call(b),
                ..
            } => b,
            other => panic!("failed: {other:?}"),
        }
    }

    pub fn storage(&self, a: Address, slot: u64) -> U256 {
        let acc = self.db.cache.accounts.get(&a).expect("a deployed contract");
        acc.storage
            .get(&U256::from(slot))
            .copied()
            .unwrap_or_default()
    }

    pub fn balance(&self, a: Address) -> U256 {
        self.db
            .cache
            .accounts
            .get(&a)
            .map(|a| a.info.balance)
            .unwrap_or_default()
    }
}

/// A revert's `Error(string)` reason.
pub fn reason(r: &ExecutionResult) -> String {
    use alloy_sol_types::SolError;
    match r {
        ExecutionResult::Revert { output, .. } => alloy_sol_types::Revert::abi_decode(output)
            .map(|r| r.reason)
            .unwrap_or_else(|_| format!("not an Error(string): {output}")),
        other => panic!("expected a revert, got {other:?}"),
    }
}
