//! The IBFT shell: drives the pure [`emc_consensus::Core`] with real time, the chain and
//! the network.
//!
//! ```text
//!  gossip ──Message──▶ ┌──────┐ ──Broadcast──▶ gossip
//!  timers ──Timeout──▶ │ Core │ ──Persist────▶ redb WAL (fsync, before anything is sent)
//!  chain ──Built/Valid▶│      │ ──RequestBlock / ValidateBlock──▶ chain (blocking pool)
//!                      └──────┘ ──Commit(certificate)──▶ chain.commit ──▶ Start(h+1)
//! ```
//!
//! Outputs are performed in order; `Persist` is written durably before the following
//! `Broadcast` leaves, so a crash never lets the node sign two different things at one
//! (height, round). The proposer of round 0 builds its block one block time after the
//! previous commit.

use alloy_primitives::{Address, B256};
use borsh::BorshDeserialize;
use emc_chain::{BuiltBlock, Chain};
use emc_consensus::{
    Config, Core, Ed25519Crypto, Height, Input, Message, Output, ValidatorIndex, WalState,
};
use parking_lot::Mutex;
use std::{collections::HashMap, sync::Arc, time::Duration};
use tokio::sync::{mpsc, watch};

/// Where consensus messages go. The p2p layer implements it; a lone validator needs none.
pub trait Gossip: Send + Sync + 'static {
    fn broadcast(&self, msg: &Message);
}

/// A validator with no peers.
pub struct NoPeers;
impl Gossip for NoPeers {
    fn broadcast(&self, _: &Message) {}
}

struct Shell {
    chain: Arc<Chain>,
    core: Core,
    /// This node's consensus key, to find its account in each height's set.
    key: alloy_primitives::B256,
    account: Address,
    block_time: Duration,
    gossip: Arc<dyn Gossip>,
    internal: mpsc::UnboundedSender<Input>,
    /// Blocks built or imported at the current height, by digest, ready to commit.
    ready: Arc<Mutex<HashMap<B256, BuiltBlock>>>,
    last_commit: tokio::time::Instant,
    metrics: Arc<crate::metrics::Metrics>,
    /// The highest round seen at this height, to count round changes.
    round_seen: u32,
}

/// Runs consensus until `stop` turns true. `account` is the validator's fee account.
pub async fn run(
    chain: Arc<Chain>,
    key: emc_crypto::ConsensusKey,
    account: Address,
    gossip: Arc<dyn Gossip>,
    mut inbound: mpsc::Receiver<Message>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<(), crate::NodeError> {
    let block_time = Duration::from_millis(chain.genesis().block_time_ms);
    let cfg = Config {
        chain_id: chain.chain_id(),
        timeout_base_ms: 2 * chain.genesis().block_time_ms + 1_000,
        ..Config::default()
    };
    let core = Core::new(cfg, Box::new(Ed25519Crypto::from_seed(key.seed())));
    let (internal, mut internal_rx) = mpsc::unbounded_channel();
    let mut shell = Shell {
        chain: chain.clone(),
        core,
        key: key.public(),
        account,
        block_time,
        gossip,
        internal,
        ready: Arc::default(),
        last_commit: tokio::time::Instant::now(),
        metrics,
        round_seen: 0,
    };
    let restore = chain
        .store()
        .consensus_wal()?
        .and_then(|bytes| WalState::try_from_slice(&bytes).ok());
    shell.start_height(restore);
    let mut chain_events = chain.subscribe();
    loop {
        let input = tokio::select! {
            _ = stop.changed() => return Ok(()),
            Some(m) = inbound.recv() => Input::Message(m),
            Some(i) = internal_rx.recv() => i,
            ev = chain_events.recv() => {
                // Block sync committed past the height consensus is on: follow it.
                if chain.head().height >= shell.core.height() {
                    shell.start_height(None);
                }
                if matches!(ev, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return Ok(());
                }
                continue;
            }
        };
        shell.handle(input).await?;
    }
}

impl Shell {
    fn start_height(&mut self, restore: Option<WalState>) {
        let head = self.chain.head();
        // The set the head's state names seals the next height (it changes at epoch
        // boundaries, when the staking module elects the next one).
        let members = match self.chain.validator_set_at(head.height) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "no validator set at the head");
                return;
            }
        };
        let set = match emc_chain::consensus_set(&members) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "the head's validator set is unusable");
                return;
            }
        };
        if let Some(me) = members.iter().find(|v| v.consensus_key == self.key) {
            self.account = me.address;
        }
        let prev = if head.height == Height::GENESIS {
            None
        } else {
            members
                .iter()
                .position(|v| v.address == head.proposer)
                .map(|i| ValidatorIndex(i as u32))
        };
        let input = Input::Start {
            height: head.height.next(),
            set,
            prev_proposer: prev,
            restore,
        };
        let outputs = self.core.handle(input);
        self.round_seen = self.core.round().0;
        self.metrics.round.set(self.round_seen as i64);
        self.ready.lock().clear();
        // Start never commits, so performing its outputs cannot recurse.
        for o in outputs {
            if let Err(e) = self.perform_now(o) {
                tracing::error!(error = %e, "consensus output failed");
            }
        }
    }

    async fn handle(&mut self, input: Input) -> Result<(), crate::NodeError> {
        let outputs = self.core.handle(input);
        let round = self.core.round().0;
        if round > self.round_seen {
            self.metrics
                .round_changes
                .inc_by((round - self.round_seen) as u64);
            self.round_seen = round;
        }
        self.metrics.round.set(round as i64);
        for o in outputs {
            if let Output::Commit(fin) = o {
                self.commit(fin).await?;
            } else {
                self.perform_now(o)?;
            }
        }
        Ok(())
    }

    fn perform_now(&mut self, o: Output) -> Result<(), crate::NodeError> {
        match o {
            Output::Broadcast(m) => self.gossip.broadcast(&m),
            Output::Persist(w) => {
                let bytes = borsh::to_vec(&w).expect("borsh into a Vec never fails");
                tokio::task::block_in_place(|| self.chain.store().put_consensus_wal(&bytes))?;
            }
            Output::ScheduleTimeout {
                height,
                round,
                after_ms,
            } => {
                let tx = self.internal.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(after_ms)).await;
                    let _ = tx.send(Input::Timeout { height, round });
                });
            }
            Output::RequestBlock { height, round } => self.build(height, round),
            Output::ValidateBlock {
                height,
                round,
                digest,
                block,
            } => self.validate(height, round, digest, block),
            Output::Equivocation(e) => match self.evidence_calldata(&e) {
                Some((validator, data)) => tracing::warn!(
                    %validator,
                    height = %e.first.body.height,
                    round = %e.first.body.round,
                    "validator equivocated; anyone may submit the evidence: emc tx send --to {} --data {}",
                    emc_modules::STAKING_ADDRESS,
                    data
                ),
                None => tracing::warn!(signer = e.first.signer.0, "validator equivocated"),
            },
            Output::Commit(_) => unreachable!("commits are handled by the caller"),
        }
        Ok(())
    }

    /// The staking module's `submitEvidence` call for an equivocation this node saw
    /// (hex), with the validator's account; `None` if the signer is not in the set.
    fn evidence_calldata(&self, e: &emc_consensus::Evidence) -> Option<(Address, String)> {
        use alloy_sol_types::SolCall;
        let members = self
            .chain
            .validator_set_at(Height(e.first.body.height.0.saturating_sub(1)))
            .ok()?;
        let validator = members.get(e.first.signer.0 as usize)?.address;
        let call = emc_modules::staking::IStaking::submitEvidenceCall {
            validator,
            kind: e.kind as u8,
            height: e.first.body.height.0,
            round: e.first.body.round.0,
            digestA: e.first.body.digest,
            sigA: e.first.sig.0.to_vec().into(),
            digestB: e.second.body.digest,
            sigB: e.second.sig.0.to_vec().into(),
        };
        Some((
            validator,
            format!("0x{}", alloy_primitives::hex::encode(call.abi_encode())),
        ))
    }

    fn build(&self, height: Height, round: emc_consensus::Round) {
        let (chain, tx, ready, account) = (
            self.chain.clone(),
            self.internal.clone(),
            self.ready.clone(),
            self.account,
        );
        let at = self.last_commit + self.block_time;
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let built = tokio::task::spawn_blocking(move || chain.build_block(account, now)).await;
            match built {
                Ok(Ok(b)) if b.block.header.height == height => {
                    let digest = b.block.hash();
                    let block = borsh::to_vec(&b.block)
                        .expect("borsh into a Vec never fails")
                        .into();
                    ready.lock().insert(digest, b);
                    let _ = tx.send(Input::BlockBuilt {
                        height,
                        round,
                        digest,
                        block,
                    });
                }
                Ok(Ok(_)) => tracing::debug!(%height, "head moved while building"),
                Ok(Err(e)) => tracing::error!(error = %e, "building a block failed"),
                Err(e) => tracing::error!(error = %e, "block builder task failed"),
            }
        });
    }

    fn validate(
        &self,
        height: Height,
        round: emc_consensus::Round,
        digest: B256,
        block: alloy_primitives::Bytes,
    ) {
        let (chain, tx, ready) = (
            self.chain.clone(),
            self.internal.clone(),
            self.ready.clone(),
        );
        tokio::spawn(async move {
            let result = tokio::task::spawn_blocking(move || chain.import(&block)).await;
            let valid = match result {
                Ok(Ok(b)) if b.block.hash() == digest => {
                    ready.lock().insert(digest, b);
                    true
                }
                Ok(Ok(_)) => false,
                Ok(Err(e)) => {
                    tracing::info!(%height, round = %round, error = %e, "refusing a proposed block");
                    false
                }
                Err(_) => false,
            };
            let _ = tx.send(Input::BlockValidated {
                height,
                round,
                digest,
                valid,
            });
        });
    }

    async fn commit(&mut self, fin: emc_consensus::Finalized) -> Result<(), crate::NodeError> {
        let cached = self.ready.lock().remove(&fin.digest);
        let built = match cached {
            Some(b) => b,
            None => {
                let chain = self.chain.clone();
                let block = fin.block.clone();
                let imported = tokio::task::spawn_blocking(move || chain.import(&block))
                    .await
                    .map_err(|e| crate::NodeError::Config(e.to_string()))?;
                match imported {
                    Ok(b) => b,
                    Err(_) if self.chain.head().height >= fin.height => {
                        self.start_height(None);
                        return Ok(());
                    }
                    Err(e) => {
                        return Err(crate::NodeError::Config(format!(
                            "a final block does not import: {e}"
                        )))
                    }
                }
            }
        };
        let cert = borsh::to_vec(&fin.certificate).expect("borsh into a Vec never fails");
        let chain = self.chain.clone();
        let committed = tokio::task::spawn_blocking(move || chain.commit(built, Some(&cert)))
            .await
            .map_err(|e| crate::NodeError::Config(e.to_string()))?;
        match committed {
            Ok(header) => {
                tracing::debug!(height = %header.height, hash = %header.hash(), "committed")
            }
            // Block sync committed this height first; consensus follows the head.
            Err(e) if self.chain.head().height >= fin.height => {
                tracing::debug!(error = %e, "height already committed by sync")
            }
            Err(e) => return Err(e.into()),
        }
        self.last_commit = tokio::time::Instant::now();
        self.start_height(None);
        Ok(())
    }
}
