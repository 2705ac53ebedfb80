//! Executes the transactions of one block in order and produces its receipts and
//! state changes.

use crate::{overlay::Overlay, precompiles::EmcPrecompiles, ExecError, SPEC};
use alloy_primitives::{Address, Bytes, B256, U256};
use emc_storage::{StateChanges, StateSnapshot};
use emc_types::{Height, Log, Receipt, SignedTx};
use revm::{
    context::{BlockEnv, CfgEnv, Context, TxEnv},
    context_interface::result::{EVMError, ExecutionResult, Output},
    handler::{ExecuteCommitEvm, MainBuilder, MainContext},
    primitives::TxKind,
};
use std::collections::BTreeMap;

/// Everything about the block being built that execution needs.
#[derive(Clone, Debug)]
pub struct BlockContext {
    pub height: Height,
    pub timestamp: u64,
    pub proposer: Address,
    pub base_fee: u64,
    pub gas_limit: u64,
    pub chain_id: u64,
    /// Feeds PREVRANDAO; the parent hash (there is no beacon randomness).
    pub prevrandao: B256,
    /// Which members of the parent's sealing set signed its commit certificate (a
    /// bitmap by set index), for the staking module's liveness count.
    pub parent_signers: Bytes,
    /// Blocks per epoch (the genesis's), for the modules' end-of-epoch hooks.
    pub epoch_blocks: u64,
}

impl BlockContext {
    pub(crate) fn block_env(&self) -> BlockEnv {
        BlockEnv {
            number: U256::from(self.height.0),
            beneficiary: self.proposer,
            timestamp: U256::from(self.timestamp),
            gas_limit: self.gas_limit,
            basefee: self.base_fee,
            difficulty: U256::ZERO,
            prevrandao: Some(self.prevrandao),
            ..Default::default()
        }
    }

    pub(crate) fn cfg_env(&self) -> CfgEnv {
        let mut cfg = CfgEnv::new_with_spec(SPEC);
        cfg.chain_id = self.chain_id;
        cfg
    }
}

/// Why a transaction was left out of a block.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TxRejected(pub String);

pub struct ExecutedBlock {
    pub transactions: Vec<Bytes>,
    pub tx_hashes: Vec<B256>,
    pub senders: Vec<Address>,
    pub receipts: Vec<Receipt>,
    pub gas_used: u64,
    pub changes: StateChanges,
}

/// revm over the block's overlay, with the block's environment and EMC's precompiles.
macro_rules! evm {
    ($exec:expr) => {
        Context::mainnet()
            .with_db(&mut $exec.overlay)
            .with_block($exec.block_env.clone())
            .with_cfg($exec.cfg.clone())
            .build_mainnet()
            .with_precompiles(EmcPrecompiles::new($exec.ctx.chain_id))
    };
}

pub struct Executor<'s> {
    overlay: Overlay<'s>,
    ctx: BlockContext,
    block_env: BlockEnv,
    cfg: CfgEnv,
    out: ExecutedBlock,
}

pub(crate) fn tx_env(tx: &SignedTx) -> TxEnv {
    let mut env = TxEnv {
        tx_type: tx.tx_type(),
        caller: tx.sender,
        gas_limit: tx.gas_limit(),
        gas_price: tx.max_fee_per_gas(),
        kind: tx.kind(),
        value: tx.value(),
        data: tx.input().clone(),
        nonce: tx.nonce(),
        chain_id: tx.chain_id(),
        gas_priority_fee: None,
        ..Default::default()
    };
    if tx.tx_type() == 2 {
        env.gas_priority_fee = Some(tx.max_priority_fee_per_gas());
    }
    if let Some(list) = alloy_consensus::Transaction::access_list(&tx.envelope) {
        env.access_list = list.clone();
    }
    env
}

fn log_of(l: &alloy_primitives::Log) -> Log {
    Log {
        address: l.address,
        topics: l.topics().to_vec(),
        data: l.data.data.clone(),
    }
}

impl<'s> Executor<'s> {
    pub fn new(
        parent: &'s StateSnapshot,
        ctx: BlockContext,
        block_hashes: &'s BTreeMap<u64, B256>,
    ) -> Self {
        Self {
            overlay: Overlay::new(parent, block_hashes),
            block_env: ctx.block_env(),
            cfg: ctx.cfg_env(),
            ctx,
            out: ExecutedBlock {
                transactions: Vec::new(),
                tx_hashes: Vec::new(),
                senders: Vec::new(),
                receipts: Vec::new(),
                gas_used: 0,
                changes: StateChanges::default(),
            },
        }
    }

    pub fn gas_used(&self) -> u64 {
        self.out.gas_used
    }

    pub fn tx_count(&self) -> usize {
        self.out.transactions.len()
    }

    /// Current nonce of `address` including this block's earlier transactions.
    pub fn nonce(&self, address: Address) -> Result<u64, ExecError> {
        Ok(self.overlay.account(address)?.map_or(0, |a| a.nonce))
    }

    /// Runs `tx` on top of the block so far. A transaction that cannot be included
    /// (bad nonce, unaffordable, over the block's remaining gas) changes nothing and is
    /// returned as rejected; a reverted one is included with a failed receipt.
    pub fn apply(&mut self, tx: &SignedTx) -> Result<Result<&Receipt, TxRejected>, ExecError> {
        let remaining = self.ctx.gas_limit - self.out.gas_used;
        if tx.gas_limit() > remaining {
            return Ok(Err(TxRejected(format!(
                "gas limit {} exceeds the block's remaining gas {remaining}",
                tx.gas_limit()
            ))));
        }
        let Some(tip) = tx.effective_tip(self.ctx.base_fee) else {
            return Ok(Err(TxRejected(format!(
                "max fee per gas {} is below the base fee {}",
                tx.max_fee_per_gas(),
                self.ctx.base_fee
            ))));
        };
        let mut evm = evm!(self);
        let result = match evm.transact_commit(tx_env(tx)) {
            Ok(r) => r,
            Err(EVMError::Transaction(e)) => return Ok(Err(TxRejected(crate::invalid_tx(&e)))),
            Err(EVMError::Header(e)) => return Ok(Err(TxRejected(e.to_string()))),
            Err(e) => return Err(ExecError::Evm(e.to_string())),
        };
        drop(evm);
        let gas_used = result.tx_gas_used();
        self.out.gas_used += gas_used;
        let contract_address = match &result {
            ExecutionResult::Success {
                output: Output::Create(_, addr),
                ..
            } => *addr,
            _ => None,
        };
        let receipt = Receipt {
            tx_hash: tx.hash,
            tx_index: self.out.receipts.len() as u32,
            tx_type: tx.tx_type(),
            from: tx.sender,
            to: match tx.kind() {
                TxKind::Call(a) => Some(a),
                TxKind::Create => None,
            },
            contract_address,
            success: result.is_success(),
            gas_used,
            cumulative_gas_used: self.out.gas_used,
            effective_gas_price: self.ctx.base_fee as u128 + tip,
            logs: result.logs().iter().map(log_of).collect(),
        };
        self.out.transactions.push(tx.raw.clone());
        self.out.tx_hashes.push(tx.hash);
        self.out.senders.push(tx.sender);
        self.out.receipts.push(receipt);
        Ok(Ok(self.out.receipts.last().expect("just pushed")))
    }

    /// Ends the block: the system calls of the modules' end-of-block hooks, then at an
    /// epoch's last block their end-of-epoch hooks, in table order
    /// (`emc_modules::kit::end_of_block_calls`; today the staking module's `onBlock`:
    /// rewards, liveness, and at an epoch's end the election), then the block's state
    /// changes.
    pub fn finish(mut self) -> Result<ExecutedBlock, ExecError> {
        use revm::handler::SystemCallCommitEvm;
        let end = emc_modules::kit::BlockEnd {
            height: self.ctx.height.0,
            epoch_blocks: self.ctx.epoch_blocks,
            proposer: self.ctx.proposer,
            signers: self.ctx.parent_signers.clone(),
        };
        let mut logs: Vec<Log> = Vec::new();
        let mut to = None;
        let calls = emc_modules::kit::end_of_block_calls(emc_modules::MODULES, &end);
        for (address, name, input) in calls {
            let mut evm = evm!(self);
            let result = evm
                .system_call_with_caller_commit(emc_modules::SYSTEM_CALLER, address, input)
                .map_err(|e| ExecError::Evm(format!("{name}'s end-of-block call: {e}")))?;
            if !result.is_success() {
                return Err(ExecError::Evm(format!(
                    "{name}'s end-of-block call failed: {result:?}"
                )));
            }
            drop(evm);
            if !result.logs().is_empty() {
                to.get_or_insert(address);
            }
            logs.extend(result.logs().iter().map(log_of));
        }
        if !logs.is_empty() {
            // The system receipt: see `emc_types::receipt`.
            self.out.receipts.push(Receipt {
                tx_hash: emc_types::system_tx_hash(self.ctx.chain_id, self.ctx.height.0),
                tx_index: self.out.receipts.len() as u32,
                tx_type: 0,
                from: emc_modules::SYSTEM_CALLER,
                to,
                contract_address: None,
                success: true,
                gas_used: 0,
                cumulative_gas_used: self.out.gas_used,
                effective_gas_price: 0,
                logs,
            });
        }
        let mut out = self.out;
        out.changes = self.overlay.into_changes();
        Ok(out)
    }
}
