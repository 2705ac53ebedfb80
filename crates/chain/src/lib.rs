//! The chain service: the one place that turns transactions into committed blocks.
//!
//! ```text
//!  rpc ──submit──▶ Pool ──best()──▶ Executor (revm + modules) ──▶ Store::prepare_state
//!                                                                      │ state root
//!                         events ◀── Store::commit_block ◀── Header ◀──┘
//! ```
//!
//! * [`Chain::open`] writes genesis on an empty store, or checks that the stored
//!   genesis is the one given (a node never silently runs another chain's data).
//! * [`Chain::build_block`] executes the pool's best transactions on the head state and
//!   returns a sealed-but-uncommitted block; [`Chain::commit`] writes it atomically.
//!   The dev sealer calls both every block time; IBFT will call `build_block` on the
//!   proposer, `import` on the others, and `commit` once the block is final.
//! * Every committed block is published on a broadcast channel ([`ChainEvent`]) for
//!   WebSocket subscriptions; new pool transactions too.

mod genesis;

use alloy_eips::eip1559::BaseFeeParams;
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use emc_execution::{BlockContext, CallOutcome, CallRequest, ExecError, Executor};
use emc_mempool::{AccountInfo, Pool, PoolConfig, PoolError};
use emc_modules::CHAIN_ADDRESS;
use emc_storage::{PreparedState, StateSnapshot, StorageError, Store};
use emc_types::{
    block::{logs_bloom, receipts_root, transactions_root},
    decode_raw_tx, Block, Genesis, GenesisValidator, Header, Height, Receipt, SignedTx, TxError,
};
use parking_lot::{Mutex, RwLock};
use std::{collections::BTreeMap, path::Path, sync::Arc};
use tokio::sync::broadcast;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Genesis(#[from] emc_types::GenesisError),
    #[error("block {0} is not stored")]
    UnknownBlock(u64),
    #[error("commit certificate or validator set: {0}")]
    BadCertificate(String),
    #[error("view call failed: {0}")]
    View(String),
}

/// Why a proposed block was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("invalid block: {0}")]
    Invalid(String),
    #[error(transparent)]
    Chain(#[from] ChainError),
}

/// Why a submitted transaction was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Decode(#[from] TxError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Chain(#[from] ChainError),
}

#[derive(Clone, Debug)]
pub enum ChainEvent {
    NewBlock {
        header: Arc<Header>,
        receipts: Arc<Vec<Receipt>>,
    },
    PendingTx(B256),
}

/// A block built on the head, with the state it produces, not yet committed.
pub struct BuiltBlock {
    pub block: Block,
    pub senders: Vec<Address>,
    pub receipts: Vec<Receipt>,
    state: PreparedState,
    nonces: Vec<(Address, u64)>,
    rejected: Vec<(B256, String)>,
    pub timings: BuildTimings,
}

/// Where the time of building a block went (for `emc bench` and metrics).
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildTimings {
    pub execute: std::time::Duration,
    pub state_root: std::time::Duration,
}

impl BuiltBlock {
    /// Transactions the builder left out, with the reason.
    pub fn rejected(&self) -> &[(B256, String)] {
        &self.rejected
    }
}

pub struct Chain {
    store: Store,
    genesis: Genesis,
    pool: Mutex<Pool>,
    head: RwLock<Header>,
    /// Hashes of the last 256 blocks, for BLOCKHASH.
    recent: RwLock<BTreeMap<u64, B256>>,
    events: broadcast::Sender<ChainEvent>,
    /// Serialises build+commit so two blocks are never built on one head.
    sealing: Mutex<()>,
}

const RECENT: u64 = 256;

impl Chain {
    /// Opens the store under `datadir`, writing genesis if it is empty.
    pub fn open(datadir: &Path, genesis: Genesis) -> Result<Arc<Self>, ChainError> {
        genesis.validate()?;
        let store = Store::open(&datadir.join("chain.redb"))?;
        match store.genesis_json()? {
            None => genesis::write(&store, &genesis)?,
            Some(stored) => {
                let stored_g = Genesis::from_json(&stored)?;
                if stored_g != genesis {
                    return Err(StorageError::GenesisMismatch {
                        stored: format!(
                            "chain id {}, {} accounts",
                            stored_g.chain_id,
                            stored_g.alloc.len()
                        ),
                        given: format!(
                            "chain id {}, {} accounts",
                            genesis.chain_id,
                            genesis.alloc.len()
                        ),
                    }
                    .into());
                }
            }
        }
        let head_h = store.head()?.ok_or(ChainError::UnknownBlock(0))?;
        let head = store
            .header(head_h)?
            .ok_or(ChainError::UnknownBlock(head_h.0))?;
        let mut recent = BTreeMap::new();
        for h in head_h.0.saturating_sub(RECENT - 1)..=head_h.0 {
            if let Some(hd) = store.header(Height(h))? {
                recent.insert(h, hd.hash());
            }
        }
        let (events, _) = broadcast::channel(1024);
        let pool = Pool::new(PoolConfig {
            block_gas_limit: genesis.gas_limit,
            ..Default::default()
        });
        Ok(Arc::new(Self {
            store,
            genesis,
            pool: Mutex::new(pool),
            head: RwLock::new(head),
            recent: RwLock::new(recent),
            events,
            sealing: Mutex::new(()),
        }))
    }

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }
    pub fn chain_id(&self) -> u64 {
        self.genesis.chain_id
    }
    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn head(&self) -> Header {
        self.head.read().clone()
    }
    pub fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }

    /// The base fee the next block will charge.
    pub fn next_base_fee(&self) -> u64 {
        next_base_fee(&self.head.read(), &self.genesis)
    }

    pub fn state_at(&self, height: Height) -> Result<StateSnapshot, ChainError> {
        if height > self.head.read().height {
            return Err(ChainError::UnknownBlock(height.0));
        }
        Ok(self.store.state_at(height)?)
    }

    /// Decodes, checks and pools a raw transaction; returns its hash.
    pub fn submit(&self, raw: &[u8]) -> Result<B256, SubmitError> {
        let tx = decode_raw_tx(raw, self.chain_id())?;
        self.submit_tx(tx)
    }

    pub fn submit_tx(&self, tx: SignedTx) -> Result<B256, SubmitError> {
        let hash = tx.hash;
        // The sender's account is read under the pool's lock. A block that commits
        // meanwhile moves the head first and then tells the pool (`on_block`) under the
        // same lock, so either this read sees that block or its `on_block` comes after
        // this insert: the pool never takes a nonce older than one a committed block
        // moved past. (Read outside the lock, a sender whose pooled transactions a block
        // had just emptied could be re-entered at its old nonce, and `best` would never
        // offer its later ones again: 300 transactions sent at once could strand.)
        let mut pool = self.pool.lock();
        let base_fee = self.next_base_fee();
        let head = self.head.read().height;
        let acct = self
            .store
            .state_at(head)
            .and_then(|s| s.account(tx.sender))
            .map_err(ChainError::from)?;
        let info = acct.map_or(AccountInfo::default(), |a| AccountInfo {
            nonce: a.nonce,
            balance: a.balance,
        });
        pool.insert(tx, info, base_fee)?;
        drop(pool);
        let _ = self.events.send(ChainEvent::PendingTx(hash));
        Ok(hash)
    }

    pub fn pool_tx(&self, hash: &B256) -> Option<SignedTx> {
        self.pool.lock().get(hash).cloned()
    }
    /// The nonce for `sender`'s next transaction, counting its pooled ones.
    pub fn pending_nonce(&self, sender: Address, account_nonce: u64) -> u64 {
        self.pool.lock().next_nonce(sender, account_nonce)
    }
    /// (pending, queued)
    pub fn pool_counts(&self) -> (usize, usize) {
        self.pool.lock().counts()
    }

    /// The block context a call at `height` runs in: that block's own values.
    pub fn call_context(&self, header: &Header) -> BlockContext {
        BlockContext {
            height: header.height,
            timestamp: header.timestamp,
            proposer: header.proposer,
            base_fee: header.base_fee,
            gas_limit: header.gas_limit,
            chain_id: self.chain_id(),
            prevrandao: header.parent_hash,
            parent_signers: header.parent_signers.clone(),
            epoch_blocks: self.genesis.staking.epoch_blocks,
        }
    }

    pub fn call(&self, height: Height, req: &CallRequest) -> Result<CallOutcome, ChainError> {
        self.with_call_env(height, |state, ctx, recent| {
            emc_execution::call(state, ctx, recent, req)
        })
    }

    /// EIP-2930's access list for `req` at `height`, with the gas the call uses with it.
    #[allow(clippy::type_complexity)]
    pub fn create_access_list(
        &self,
        height: Height,
        req: &CallRequest,
    ) -> Result<Result<(alloy_eips::eip2930::AccessList, u64), CallOutcome>, ChainError> {
        self.with_call_env(height, |state, ctx, recent| {
            emc_execution::create_access_list(state, ctx, recent, req)
        })
    }

    /// A read-only call at `height` (a system module's view), decoded by its ABI.
    pub fn view<C: alloy_sol_types::SolCall>(
        &self,
        height: Height,
        to: Address,
        call: C,
    ) -> Result<C::Return, ChainError> {
        let req = CallRequest {
            from: None,
            to: Some(to),
            gas: Some(50_000_000),
            gas_price: None,
            value: None,
            data: Some(call.abi_encode().into()),
        };
        match self.call(height, &req)? {
            CallOutcome::Success { output, .. } => {
                C::abi_decode_returns(&output).map_err(|e| ChainError::View(e.to_string()))
            }
            other => Err(ChainError::View(format!("{other:?}"))),
        }
    }

    /// The gas `req` needs. At the head it runs as the next block would: at the next
    /// height and no earlier than now, as geth estimates against its pending block, so
    /// gas that grows with time (a socket's rent released at a transfer) is not
    /// estimated from a moment already past.
    pub fn estimate_gas(
        &self,
        height: Height,
        req: &CallRequest,
    ) -> Result<Result<u64, CallOutcome>, ChainError> {
        let head = self.head();
        self.with_call_env(height, |state, ctx, recent| {
            let mut ctx = ctx.clone();
            if height == head.height {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                ctx.height = Height(head.height.0 + 1);
                ctx.timestamp = now.max(head.timestamp + 1);
                ctx.base_fee = next_base_fee(&head, &self.genesis);
            }
            emc_execution::estimate_gas(state, &ctx, recent, req)
        })
    }

    /// Runs `f` on the state, block context and recent hashes of block `height`.
    fn with_call_env<T>(
        &self,
        height: Height,
        f: impl FnOnce(&StateSnapshot, &BlockContext, &BTreeMap<u64, B256>) -> Result<T, ExecError>,
    ) -> Result<T, ChainError> {
        let header = self
            .store
            .header(height)?
            .ok_or(ChainError::UnknownBlock(height.0))?;
        let state = self.state_at(height)?;
        let recent = self.recent.read().clone();
        Ok(f(&state, &self.call_context(&header), &recent)?)
    }

    /// Builds the next block from the pool's best transactions, carrying the head's
    /// commit certificate as this node holds it.
    pub fn build_block(&self, proposer: Address, timestamp: u64) -> Result<BuiltBlock, ChainError> {
        let parent = self.head();
        let base_fee = next_base_fee(&parent, &self.genesis);
        let candidates = self.pool.lock().best(base_fee, 20_000);
        let parent_certificate = self
            .store
            .certificate(parent.height)?
            .unwrap_or_default()
            .into();
        self.build_on(
            &parent,
            proposer,
            timestamp.max(parent.timestamp),
            base_fee,
            candidates,
            parent_certificate,
        )
    }

    /// The validator set that seals the block after `height`: the `Chain` module's set
    /// in the state of `height` (the staking module rewrites it at each epoch's end).
    pub fn validator_set_at(&self, height: Height) -> Result<Vec<GenesisValidator>, ChainError> {
        validator_set_in(&self.store.state_at(height)?)
    }

    /// Executes `txs` on `parent`, skipping those that cannot be included, then the
    /// end-of-block system call (fed the signers of `parent_certificate`).
    pub fn build_on(
        &self,
        parent: &Header,
        proposer: Address,
        timestamp: u64,
        base_fee: u64,
        txs: Vec<SignedTx>,
        parent_certificate: Bytes,
    ) -> Result<BuiltBlock, ChainError> {
        let state = self.store.state_at(parent.height)?;
        let recent = self.recent.read().clone();
        let parent_signers = signers_bitmap(&parent_certificate)
            .map_err(|e| ChainError::BadCertificate(e.to_string()))?;
        let ctx = BlockContext {
            height: parent.height.next(),
            timestamp,
            proposer,
            base_fee,
            gas_limit: self.genesis.gas_limit,
            chain_id: self.chain_id(),
            prevrandao: parent.hash(),
            parent_signers: parent_signers.clone(),
            epoch_blocks: self.genesis.staking.epoch_blocks,
        };
        let started = std::time::Instant::now();
        let mut exec = Executor::new(&state, ctx, &recent);
        let mut rejected = Vec::new();
        for tx in &txs {
            if self.genesis.gas_limit - exec.gas_used() < 21_000 {
                break;
            }
            if let Err(why) = exec.apply(tx)? {
                rejected.push((tx.hash, why.0));
            }
        }
        let out = exec.finish()?;
        let executed = std::time::Instant::now();
        let prepared = state.prepare(&out.changes, parent.height.0 + 1)?;
        // The set that seals the next block: this block's state.
        let next_set = read_set(
            |slot| match out.changes.storage.get(&(CHAIN_ADDRESS, slot)) {
                Some(v) => Ok(*v),
                None => state.storage(CHAIN_ADDRESS, slot),
            },
        )?;
        let timings = BuildTimings {
            execute: executed - started,
            state_root: executed.elapsed(),
        };
        let header = Header {
            parent_hash: parent.hash(),
            height: parent.height.next(),
            timestamp,
            proposer,
            state_root: prepared.root,
            transactions_root: transactions_root(&out.tx_hashes),
            receipts_root: receipts_root(&out.receipts),
            logs_bloom: logs_bloom(&out.receipts),
            validator_set_hash: validator_set_hash(&next_set),
            gas_used: out.gas_used,
            gas_limit: self.genesis.gas_limit,
            base_fee,
            extra_data: Default::default(),
            parent_signers,
        };
        let nonces = out
            .changes
            .accounts
            .iter()
            .map(|(a, acc)| (*a, acc.as_ref().map_or(0, |x| x.nonce)))
            .collect();
        Ok(BuiltBlock {
            block: Block {
                header,
                transactions: out.transactions,
                parent_certificate,
            },
            senders: out.senders,
            receipts: out.receipts,
            state: prepared,
            nonces,
            rejected,
            timings,
        })
    }

    /// Writes a built block atomically (with its commit certificate, when consensus
    /// sealed it), advances the head, prunes the pool and publishes the block.
    pub fn commit(
        &self,
        built: BuiltBlock,
        certificate: Option<&[u8]>,
    ) -> Result<Header, ChainError> {
        let _guard = self.sealing.lock();
        let b = &built.block;
        self.store.commit_block(
            b,
            &built.senders,
            &built.receipts,
            &built.state,
            None,
            certificate,
        )?;
        let header = b.header.clone();
        {
            let mut recent = self.recent.write();
            recent.insert(header.height.0, header.hash());
            while recent.len() as u64 > RECENT {
                recent.pop_first();
            }
        }
        *self.head.write() = header.clone();
        {
            let mut pool = self.pool.lock();
            pool.on_block(built.nonces.iter().copied());
            for (hash, why) in &built.rejected {
                // A transaction that could not pay the fee may simply wait for the base
                // fee to fall; anything else will never be includable.
                if !why.contains("base fee") {
                    tracing::debug!(%hash, %why, "dropping transaction the block refused");
                    pool.remove(hash);
                }
            }
        }
        let _ = self.events.send(ChainEvent::NewBlock {
            header: Arc::new(header.clone()),
            receipts: Arc::new(built.receipts),
        });
        Ok(header)
    }

    /// Checks that `cert` finalizes `parent` under the set that sealed it.
    fn check_parent_certificate(&self, parent: &Header, cert: &[u8]) -> Result<(), String> {
        use borsh::BorshDeserialize;
        let cert =
            emc_consensus::CommitCertificate::try_from_slice(cert).map_err(|e| e.to_string())?;
        let sealers = self
            .validator_set_at(Height(parent.height.0 - 1))
            .map_err(|e| e.to_string())?;
        let set = consensus_set(&sealers).map_err(|e| e.to_string())?;
        emc_consensus::verify_certificate(
            &emc_consensus::Ed25519Crypto::verify_only(),
            self.chain_id(),
            &set,
            parent.height,
            parent.hash(),
            &cert,
        )
        .map_err(|e| e.to_string())
    }

    /// Checks a block proposed on the head by re-executing it: every header field must
    /// come out exactly as proposed (state, transactions and receipts roots, bloom, gas,
    /// base fee, validator set), every transaction must be valid and included. Returns
    /// the block ready to commit once consensus finalizes it.
    pub fn import(&self, encoded: &[u8]) -> Result<BuiltBlock, ImportError> {
        use borsh::BorshDeserialize;
        let invalid = |m: String| ImportError::Invalid(m);
        let block =
            Block::try_from_slice(encoded).map_err(|e| invalid(format!("does not decode: {e}")))?;
        let parent = self.head();
        let h = &block.header;
        if h.height != parent.height.next() || h.parent_hash != parent.hash() {
            return Err(invalid(format!(
                "block {} does not extend the head {}",
                h.height, parent.height
            )));
        }
        if h.timestamp < parent.timestamp {
            return Err(invalid("timestamp before the parent's".into()));
        }
        let sealers = self.validator_set_at(parent.height)?;
        if !sealers.iter().any(|v| v.address == h.proposer) {
            return Err(invalid(format!(
                "proposer {} is not a validator",
                h.proposer
            )));
        }
        if parent.height.0 > 0 && !block.parent_certificate.is_empty() {
            self.check_parent_certificate(&parent, &block.parent_certificate)
                .map_err(|e| invalid(format!("parent certificate: {e}")))?;
        }
        let base_fee = next_base_fee(&parent, &self.genesis);
        let mut txs = Vec::with_capacity(block.transactions.len().min(100_000));
        for raw in &block.transactions {
            txs.push(
                decode_raw_tx(raw, self.chain_id())
                    .map_err(|e| invalid(format!("transaction: {e}")))?,
            );
        }
        let built = self.build_on(
            &parent,
            h.proposer,
            h.timestamp,
            base_fee,
            txs,
            block.parent_certificate.clone(),
        )?;
        if let Some((hash, why)) = built.rejected.first() {
            return Err(invalid(format!(
                "transaction {hash} cannot be included: {why}"
            )));
        }
        if built.block.header != block.header {
            let b = &built.block.header;
            let field = [
                ("stateRoot", b.state_root != h.state_root),
                (
                    "transactionsRoot",
                    b.transactions_root != h.transactions_root,
                ),
                ("receiptsRoot", b.receipts_root != h.receipts_root),
                ("logsBloom", b.logs_bloom != h.logs_bloom),
                ("gasUsed", b.gas_used != h.gas_used),
                ("gasLimit", b.gas_limit != h.gas_limit),
                ("baseFee", b.base_fee != h.base_fee),
                (
                    "validatorSetHash",
                    b.validator_set_hash != h.validator_set_hash,
                ),
                ("parentSigners", b.parent_signers != h.parent_signers),
            ]
            .into_iter()
            .find(|(_, differs)| *differs)
            .map_or("extraData", |(f, _)| f);
            return Err(invalid(format!("{field} does not match re-execution")));
        }
        Ok(built)
    }

    /// Builds and commits one block: the single-validator dev sealer's step.
    pub fn seal(&self, proposer: Address, timestamp: u64) -> Result<Header, ChainError> {
        let built = self.build_block(proposer, timestamp)?;
        self.commit(built, None)
    }
}

/// The validator set a state names: the one that seals the block after it.
pub fn validator_set_in(state: &StateSnapshot) -> Result<Vec<GenesisValidator>, ChainError> {
    read_set(|slot| state.storage(CHAIN_ADDRESS, slot))
}

/// Reads the `Chain` module's validator set through a storage reader.
fn read_set(
    mut read: impl FnMut(U256) -> Result<U256, StorageError>,
) -> Result<Vec<GenesisValidator>, ChainError> {
    let mut failed = None;
    let set = emc_modules::chain::ChainModule::set_from(|slot| {
        read(slot).map_err(|e| {
            let msg = e.to_string();
            failed = Some(e);
            emc_modules::ModuleError::Host(msg)
        })
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(set
        .map_err(|e| ChainError::BadCertificate(e.to_string()))?
        .into_iter()
        .map(|(address, consensus_key, power)| GenesisValidator {
            address,
            consensus_key,
            power,
        })
        .collect())
}

/// The bitmap of set indices that sealed a certificate (empty without one).
fn signers_bitmap(cert: &[u8]) -> Result<Bytes, std::io::Error> {
    use borsh::BorshDeserialize;
    if cert.is_empty() {
        return Ok(Bytes::new());
    }
    let cert = emc_consensus::CommitCertificate::try_from_slice(cert)?;
    let top = cert
        .seals
        .iter()
        .map(|(i, _)| i.0 as usize)
        .max()
        .unwrap_or(0);
    if top >= emc_consensus::validators::MAX_VALIDATORS {
        return Err(std::io::Error::other("seal index beyond any set"));
    }
    let mut bits = vec![0u8; top / 8 + 1];
    for (i, _) in &cert.seals {
        bits[i.0 as usize / 8] |= 1 << (i.0 % 8);
    }
    Ok(bits.into())
}

/// A set as consensus uses it.
pub fn consensus_set(
    set: &[GenesisValidator],
) -> Result<emc_consensus::ValidatorSet, emc_consensus::validators::SetError> {
    emc_consensus::ValidatorSet::new(
        set.iter()
            .map(|v| emc_consensus::Validator {
                key: emc_consensus::ValidatorKey(v.consensus_key.0),
                power: v.power,
            })
            .collect(),
    )
}

/// Commits to the whole set: each validator's account, consensus key and power.
pub fn validator_set_hash(validators: &[emc_types::GenesisValidator]) -> B256 {
    let mut buf = Vec::with_capacity(validators.len() * 60);
    for v in validators {
        buf.extend_from_slice(v.address.as_slice());
        buf.extend_from_slice(v.consensus_key.as_slice());
        buf.extend_from_slice(&v.power.to_be_bytes());
    }
    keccak256(buf)
}

/// EIP-1559 base fee of the block after `parent`; block 1 charges genesis' base fee.
pub fn next_base_fee(parent: &Header, genesis: &Genesis) -> u64 {
    if parent.height == Height::GENESIS {
        return genesis.base_fee;
    }
    BaseFeeParams::ethereum().next_block_base_fee(
        parent.gas_used,
        parent.gas_limit,
        parent.base_fee,
    )
}

#[cfg(test)]
mod tests;
