//! What every gateway handler shares: the chain, the table, the ledger, parsed API
//! keys, escrow views per block, the result cache and pub/sub.

use crate::auth;
use crate::cache::ResultCache;
use crate::ledger::Reservation;
use crate::payment::Payment;
use crate::pubsub::PubSub;
use crate::settings::RouterSettings;
use crate::table::RouterTable;
use alloy_primitives::{Address, U256};
use axum::http::HeaderMap;
use emc_client::keys::ApiKey;
use emc_p2p::Control;
use emc_protocol::CallError;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Parsed API keys kept (parsing recovers a signature).
const KEY_CACHE: usize = 10_000;

#[derive(Clone)]
pub struct Gateway {
    chain_id: u64,
    pub(crate) table: Arc<RouterTable>,
    pub(crate) control: Control,
    payment: Arc<dyn Payment>,
    account: Address,
    pub(crate) reserve: U256,
    pub(crate) cache: Arc<Mutex<ResultCache>>,
    keys: Arc<Mutex<HashMap<String, ApiKey>>>,
    pub(crate) pubsub: Arc<PubSub>,
    pub(crate) failures: Arc<crate::failures::FailureBook>,
    pub(crate) jobs: Arc<crate::jobs::run::Jobs>,
    pub(crate) signin: Arc<crate::signin::SignIns>,
    /// Call ids offered for sealed calls.
    pub(crate) offers: Arc<crate::sealed::Offers>,
}

impl Gateway {
    /// The gateway of a router on the chain `signin` signs in to.
    pub fn new(
        payment: Arc<dyn Payment>,
        table: Arc<RouterTable>,
        control: Control,
        pubsub: Arc<PubSub>,
        jobs: Arc<crate::jobs::run::Jobs>,
        signin: Arc<crate::signin::SignIns>,
        s: &RouterSettings,
    ) -> Self {
        let chain_id = signin.chain_id();
        Gateway {
            payment,
            chain_id,
            table,
            control,
            account: s.account.address(),
            reserve: s.reserve,
            cache: Arc::default(),
            keys: Arc::default(),
            pubsub,
            jobs,
            signin,
            offers: Arc::default(),
            failures: Arc::new(crate::failures::FailureBook::new(
                s.account.clone(),
                chain_id,
            )),
        }
    }
}

impl Gateway {
    pub(crate) fn chain_id(&self) -> u64 {
        self.chain_id
    }

    pub(crate) fn key(&self, headers: &HeaderMap) -> Result<ApiKey, CallError> {
        self.key_or(headers, None)
    }

    /// The request's API key: from its headers, or `query_key` (WebSocket clients in
    /// browsers cannot set headers).
    pub(crate) fn key_or(
        &self,
        headers: &HeaderMap,
        query_key: Option<&str>,
    ) -> Result<ApiKey, CallError> {
        let raw = auth::raw_key(headers)
            .or(query_key)
            .ok_or_else(auth::missing)?;
        let cached = self.keys.lock().get(raw).cloned();
        let key = match cached {
            Some(k) => k,
            None => {
                let k = auth::parse(raw)?;
                let mut keys = self.keys.lock();
                if keys.len() >= KEY_CACHE {
                    keys.clear();
                }
                keys.insert(raw.to_string(), k.clone());
                k
            }
        };
        auth::check(&key, self.chain_id, self.account, auth::now())?;
        Ok(key)
    }

    /// The terms a socket key may use for a call of `app`.
    pub(crate) async fn socket(
        &self,
        key: &ApiKey,
        app: &str,
    ) -> Result<crate::sockets::SocketTerms, CallError> {
        self.payment.socket(key, app).await
    }

    /// Reserves the call's budget through the router's payment.
    pub(crate) async fn reserve(
        &self,
        key: &ApiKey,
        cap: U256,
        at_least: U256,
    ) -> Result<Reservation, CallError> {
        self.payment.reserve(key, cap, at_least).await
    }
}
