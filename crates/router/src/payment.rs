//! What pays for a call. A [`Payment`] reserves a call's budget before it is
//! forwarded; the reservation becomes the charge once the node's result checks, and
//! is released when no route served (see [`crate::attempt`]). [`Escrow`] is the first
//! implementation: the client's deposit in the Tasks module, drawn on through its
//! signed grant and settled by receipts. Computing sockets (a quota per token) are the
//! next, behind the same trait.

use crate::ledger::{Ledger, Reservation};
use alloy_primitives::{Address, B256, U256};
use emc_client::keys::ApiKey;
use emc_client::{ChainClient, ChainClientExt, ClientError};
use emc_modules::tasks::ITasks;
use emc_modules::TASKS_ADDRESS;
use emc_protocol::CallError;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Views kept per block (one per client and grant).
const VIEW_CACHE: usize = 10_000;

#[async_trait::async_trait]
pub trait Payment: Send + Sync {
    /// Reserves the call's budget: `cap`, or less if what pays allows less, as long
    /// as it pays `at_least`; refused with 402 (409 for a replayed one-request key).
    async fn reserve(
        &self,
        key: &ApiKey,
        cap: U256,
        at_least: U256,
    ) -> Result<Reservation, CallError>;
}

/// Payment from the client's escrow in the Tasks module.
pub struct Escrow {
    chain: Arc<dyn ChainClient>,
    ledger: Arc<Ledger>,
    /// Escrow balances and grant spending as of a height: read once per block, not
    /// once per call.
    views: Mutex<ViewCache>,
}

#[derive(Default)]
struct ViewCache {
    height: u64,
    escrow: HashMap<Address, U256>,
    spent: HashMap<B256, U256>,
}

impl Escrow {
    pub fn new(chain: Arc<dyn ChainClient>, ledger: Arc<Ledger>) -> Self {
        Self {
            chain,
            ledger,
            views: Mutex::default(),
        }
    }

    /// The client's escrow balance and the grant's spending at the head, read from the
    /// Tasks module once per block.
    async fn escrow_and_spent(&self, key: &ApiKey) -> Result<(U256, U256), CallError> {
        let unavailable = |e: ClientError| CallError::Unavailable(e.to_string());
        let height = self.chain.height().await.map_err(unavailable)?;
        {
            let mut v = self.views.lock();
            if v.height != height {
                *v = ViewCache {
                    height,
                    ..Default::default()
                };
            }
            if let (Some(e), Some(s)) = (v.escrow.get(&key.account), v.spent.get(&key.id)) {
                return Ok((*e, *s));
            }
        }
        let account = key.account;
        let escrow = self
            .chain
            .view(TASKS_ADDRESS, ITasks::escrowOfCall { account })
            .await
            .map_err(unavailable)?
            .balance;
        let spent = self
            .chain
            .view(TASKS_ADDRESS, ITasks::spentCall { grantId: key.id })
            .await
            .map_err(unavailable)?;
        let mut v = self.views.lock();
        if v.height == height && v.escrow.len() < VIEW_CACHE {
            v.escrow.insert(key.account, escrow);
            v.spent.insert(key.id, spent);
        }
        Ok((escrow, spent))
    }
}

#[async_trait::async_trait]
impl Payment for Escrow {
    async fn reserve(
        &self,
        key: &ApiKey,
        cap: U256,
        at_least: U256,
    ) -> Result<Reservation, CallError> {
        let chain_view = self.escrow_and_spent(key).await?;
        self.ledger
            .reserve(key, cap, at_least, chain_view, emc_client::keys::now())
    }
}
