//! What pays for a call. A [`Payment`] reserves a call's budget before it is
//! forwarded; the reservation becomes the charge once the node's result checks, and
//! is released when no route served (see [`crate::attempt`]). [`OnChain`] is the
//! implementation: an escrow key draws on the client's deposit in the Tasks module
//! through its signed grant; a socket key on a computing socket's credits in the
//! Sockets module ([`crate::sockets`]); the one ledger holds both, per payer, and
//! receipts settle them.

use crate::ledger::{Ledger, Reservation};
use crate::sockets::{admit, SocketTerms};
use alloy_primitives::{Address, B256, U256};
use emc_client::keys::ApiKey;
use emc_client::{ChainClient, ChainClientExt, ClientError};
use emc_modules::market::IMarket;
use emc_modules::sockets::ISockets;
use emc_modules::tasks::ITasks;
use emc_modules::{MARKET_ADDRESS, SOCKETS_ADDRESS, TASKS_ADDRESS};
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

    /// The terms a socket key may use for a call of `app`, from the socket at the
    /// head; refused with the status that says why ([`crate::sockets::admit`]).
    async fn socket(&self, key: &ApiKey, app: &str) -> Result<SocketTerms, CallError>;
}

/// Payment from what the chain holds for the key: the client's escrow, or a socket's
/// credits.
pub struct OnChain {
    chain: Arc<dyn ChainClient>,
    ledger: Arc<Ledger>,
    /// Escrow balances and grant spending as of a height: read once per block, not
    /// once per call.
    views: Mutex<ViewCache>,
    /// Each socket's market lease (its winning bid, zero for none): set once, at the
    /// award, so kept for good (bounded).
    leases: Mutex<HashMap<U256, U256>>,
}

#[derive(Default)]
struct ViewCache {
    height: u64,
    escrow: HashMap<Address, U256>,
    spent: HashMap<B256, U256>,
    sockets: HashMap<U256, ISockets::Socket>,
}

impl OnChain {
    pub fn new(chain: Arc<dyn ChainClient>, ledger: Arc<Ledger>) -> Self {
        Self {
            chain,
            ledger,
            views: Mutex::default(),
            leases: Mutex::default(),
        }
    }

    /// The view cache, emptied when the head moves.
    async fn views_at_head(&self) -> Result<u64, CallError> {
        let height = self
            .chain
            .height()
            .await
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        let mut v = self.views.lock();
        if v.height != height {
            *v = ViewCache {
                height,
                ..Default::default()
            };
        }
        Ok(height)
    }

    /// Socket `id` and the key's spending at the head, from the Sockets module once per
    /// block.
    async fn socket_and_spent(
        &self,
        key: &ApiKey,
        id: U256,
    ) -> Result<(ISockets::Socket, U256), CallError> {
        let unavailable = |e: ClientError| CallError::Unavailable(e.to_string());
        let height = self.views_at_head().await?;
        {
            let v = self.views.lock();
            if let (Some(s), Some(sp)) = (v.sockets.get(&id), v.spent.get(&key.spend)) {
                return Ok((s.clone(), *sp));
            }
        }
        let socket = match self
            .chain
            .view(SOCKETS_ADDRESS, ISockets::socketCall { tokenId: id })
            .await
        {
            Ok(s) => s,
            // A socket that does not exist reverts its view: an empty owner says so.
            Err(ClientError::Reverted(_)) => ISockets::Socket::default(),
            Err(e) => return Err(unavailable(e)),
        };
        let spent = self
            .chain
            .view(SOCKETS_ADDRESS, ISockets::spentCall { keyId: key.spend })
            .await
            .map_err(unavailable)?;
        let mut v = self.views.lock();
        if v.height == height && v.sockets.len() < VIEW_CACHE {
            v.sockets.insert(id, socket.clone());
            v.spent.insert(key.spend, spent);
        }
        Ok((socket, spent))
    }

    /// The market lease socket `id` is (zero: none), read once.
    async fn lease_of(&self, id: U256) -> Result<U256, CallError> {
        if let Some(b) = self.leases.lock().get(&id) {
            return Ok(*b);
        }
        let bid = self
            .chain
            .view(MARKET_ADDRESS, IMarket::leaseOfCall { tokenId: id })
            .await
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        let mut l = self.leases.lock();
        if l.len() < VIEW_CACHE {
            l.insert(id, bid);
        }
        Ok(bid)
    }

    /// The client's escrow balance and the grant's spending at the head, read from the
    /// Tasks module once per block.
    async fn escrow_and_spent(&self, key: &ApiKey) -> Result<(U256, U256), CallError> {
        let unavailable = |e: ClientError| CallError::Unavailable(e.to_string());
        let height = self.views_at_head().await?;
        {
            let v = self.views.lock();
            if let (Some(e), Some(s)) = (v.escrow.get(&key.account), v.spent.get(&key.spend)) {
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
            .view(TASKS_ADDRESS, ITasks::spentCall { grantId: key.spend })
            .await
            .map_err(unavailable)?;
        let mut v = self.views.lock();
        if v.height == height && v.escrow.len() < VIEW_CACHE {
            v.escrow.insert(key.account, escrow);
            v.spent.insert(key.spend, spent);
        }
        Ok((escrow, spent))
    }
}

#[async_trait::async_trait]
impl Payment for OnChain {
    async fn reserve(
        &self,
        key: &ApiKey,
        cap: U256,
        at_least: U256,
    ) -> Result<Reservation, CallError> {
        let chain_view = match key.socket {
            Some(id) => {
                let (s, spent) = self.socket_and_spent(key, id).await?;
                (s.escrow, spent)
            }
            None => self.escrow_and_spent(key).await?,
        };
        self.ledger
            .reserve(key, cap, at_least, chain_view, emc_client::keys::now())
    }

    async fn socket(&self, key: &ApiKey, app: &str) -> Result<SocketTerms, CallError> {
        let Some(id) = key.socket else {
            return Err(CallError::Unauthorized("not a socket key".into()));
        };
        let (s, _) = self.socket_and_spent(key, id).await?;
        let mut terms = admit(key, id, &s, app, emc_client::keys::now())?;
        terms.lease = self.lease_of(id).await?;
        Ok(terms)
    }
}
