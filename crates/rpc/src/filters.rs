//! Polling filters, as web3.py, ethers and Foundry use them over plain HTTP:
//! `eth_newFilter`, `eth_newBlockFilter`, `eth_newPendingTransactionFilter`,
//! `eth_getFilterChanges`, `eth_getFilterLogs`, `eth_uninstallFilter`.
//!
//! A filter remembers the first block it has not reported yet; each poll answers what
//! came since and moves it on, as geth does (a log filter's `fromBlock` in the past
//! matters only to `eth_getFilterLogs`; its `toBlock` ends what it reports). A pending
//! transaction filter keeps the hashes of transactions pooled since its last poll, at
//! most [`PENDING_KEPT`] (the oldest go first).
//!
//! Bounds: at most `max_filters` at once; a filter not polled for `filter_ttl` is
//! dropped (geth: 5 minutes), so filters a client forgot cost nothing for long. A poll
//! answers at most `max_log_range` blocks (the next poll goes on from there) and
//! `max_logs` logs.

use crate::{eth, invalid_params, json, limit_exceeded, server_error, Ctx, RpcError};
use alloy_primitives::{B256, U128};
use alloy_rpc_types_eth::{Filter, FilterBlockOption};
use emc_chain::{Chain, ChainEvent};
use emc_storage::LogFilter;
use emc_types::Height;
use jsonrpsee::{types::ErrorObjectOwned, types::Params, RpcModule};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pending transaction hashes a filter keeps between polls.
pub const PENDING_KEPT: usize = 4096;

enum Kind {
    Logs {
        filter: Box<Filter>,
        to: Option<u64>,
    },
    Blocks,
    Pending(VecDeque<B256>),
}

struct Entry {
    kind: Kind,
    /// The first block not reported yet.
    next: u64,
    polled: Instant,
}

pub(crate) struct Filters {
    map: Mutex<HashMap<U128, Entry>>,
    max: usize,
    ttl: Duration,
}

fn not_found(id: U128) -> ErrorObjectOwned {
    server_error(format!(
        "filter not found: {id:#x} (filters expire when not polled)"
    ))
}

impl Filters {
    pub fn new(max: usize, ttl: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            max,
            ttl,
        }
    }

    fn install(&self, kind: Kind, next: u64) -> Result<U128, ErrorObjectOwned> {
        let mut m = self.map.lock();
        let ttl = self.ttl;
        m.retain(|_, e| e.polled.elapsed() < ttl);
        if m.len() >= self.max {
            return Err(limit_exceeded(format!(
                "{} filters are installed, the most this node keeps; uninstall some, or let unpolled ones expire ({} s)",
                self.max,
                ttl.as_secs()
            )));
        }
        let id = U128::from(rand::random::<u128>() | 1);
        m.insert(
            id,
            Entry {
                kind,
                next,
                polled: Instant::now(),
            },
        );
        Ok(id)
    }

    /// Runs `f` on a live filter, which counts as polled now; an unknown or expired
    /// id is "filter not found".
    fn poll<T>(
        &self,
        id: U128,
        f: impl FnOnce(&mut Entry) -> Result<T, ErrorObjectOwned>,
    ) -> Result<T, ErrorObjectOwned> {
        let mut map = self.map.lock();
        let e = map
            .get_mut(&id)
            .filter(|e| e.polled.elapsed() < self.ttl)
            .ok_or_else(|| not_found(id))?;
        e.polled = Instant::now();
        f(e)
    }

    fn uninstall(&self, id: U128) -> bool {
        self.map.lock().remove(&id).is_some()
    }

    /// Hands a newly pooled transaction to every pending filter.
    fn pooled(&self, hash: B256) {
        for e in self.map.lock().values_mut() {
            if let Kind::Pending(q) = &mut e.kind {
                if q.len() >= PENDING_KEPT {
                    q.pop_front();
                }
                q.push_back(hash);
            }
        }
    }
}

/// Feeds pending filters from the chain's events, for as long as the chain lives.
pub(crate) fn follow_pending(chain: &Chain, filters: Arc<Filters>) {
    let mut rx = chain.subscribe();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match rx.recv().await {
                Ok(ChainEvent::PendingTx(h)) => filters.pooled(h),
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
}

type R = Result<Value, ErrorObjectOwned>;

pub(crate) fn register(m: &mut RpcModule<Ctx>) -> Result<(), RpcError> {
    method!(m, "eth_newFilter", new_filter);
    method!(m, "eth_newBlockFilter", |c: &Ctx, _| {
        let next = c.chain.head().height.0 + 1;
        Ok(json!(c.filters.install(Kind::Blocks, next)?))
    });
    method!(m, "eth_newPendingTransactionFilter", |c: &Ctx, _| {
        let next = c.chain.head().height.0 + 1;
        Ok(json!(c
            .filters
            .install(Kind::Pending(VecDeque::new()), next)?))
    });
    method!(m, "eth_getFilterChanges", filter_changes);
    method!(m, "eth_getFilterLogs", filter_logs);
    method!(m, "eth_uninstallFilter", |c: &Ctx, p: Params<'_>| {
        let id: U128 = p.one()?;
        Ok(json!(c.filters.uninstall(id)))
    });
    Ok(())
}

fn new_filter(c: &Ctx, p: Params<'_>) -> R {
    let f: Filter = p.one()?;
    let head = c.chain.head().height.0;
    // Checked now, so a filter that could never be queried is refused at once.
    eth::log_filter(c, &f)?;
    let (from, to) = match &f.block_option {
        FilterBlockOption::Range {
            from_block,
            to_block,
        } => (
            from_block.and_then(|b| b.as_number()),
            to_block.and_then(|b| b.as_number()),
        ),
        FilterBlockOption::AtBlockHash(_) => {
            return Err(invalid_params(
                "a polling filter follows new blocks; blockHash is for eth_getLogs",
            ))
        }
    };
    let next = from.map_or(head + 1, |f| f.max(head + 1));
    Ok(json!(c.filters.install(
        Kind::Logs {
            filter: Box::new(f),
            to
        },
        next
    )?))
}

/// What a poll has to read, taken from the filter under the lock and answered
/// without it (reading the store can take a while).
enum Poll {
    Hashes(Vec<B256>),
    Blocks { from: u64, to: u64 },
    Logs(LogFilter),
}

/// What the filter saw since its last poll.
fn filter_changes(c: &Ctx, p: Params<'_>) -> R {
    let id: U128 = p.one()?;
    let head = c.chain.head().height.0;
    let poll = c.filters.poll(id, |e| {
        let from = e.next;
        let last = head.min(from.saturating_add(c.cfg.max_log_range - 1));
        let poll = match &mut e.kind {
            Kind::Pending(q) => Poll::Hashes(q.drain(..).collect()),
            Kind::Blocks => Poll::Blocks { from, to: last },
            Kind::Logs { filter, to } => Poll::Logs(LogFilter {
                from,
                to: to.map_or(last, |t| last.min(t)),
                addresses: filter.address.iter().copied().collect(),
                topics: eth::topics_of(filter),
            }),
        };
        // Each block is reported once, even if this poll's answer is lost.
        e.next = e.next.max(last + 1);
        Ok(poll)
    })?;
    match poll {
        Poll::Hashes(h) => Ok(json!(h)),
        Poll::Blocks { from, to } => {
            let mut hashes = Vec::new();
            for h in from..=to {
                if let Some(hd) = c.chain.store().header(Height(h)).map_err(crate::internal)? {
                    hashes.push(hd.hash());
                }
            }
            Ok(json!(hashes))
        }
        Poll::Logs(lf) if lf.from > lf.to => Ok(json!([])),
        Poll::Logs(lf) => logs(c, &lf),
    }
}

/// Every log of a log filter's whole range, as `eth_getLogs` would answer it.
fn filter_logs(c: &Ctx, p: Params<'_>) -> R {
    let id: U128 = p.one()?;
    let filter = c.filters.poll(id, |e| match &e.kind {
        Kind::Logs { filter, .. } => Ok((**filter).clone()),
        _ => Err(invalid_params(
            "eth_getFilterLogs is for log filters; poll this one with eth_getFilterChanges",
        )),
    })?;
    let lf = eth::log_filter(c, &filter)?;
    if lf.from > lf.to {
        return Ok(json!([]));
    }
    logs(c, &lf)
}

fn logs(c: &Ctx, lf: &LogFilter) -> R {
    let found = c
        .chain
        .store()
        .logs(lf, c.cfg.max_logs)
        .map_err(crate::internal)?
        .ok_or_else(|| {
            limit_exceeded(format!(
                "the filter matches more than {} logs; narrow it",
                c.cfg.max_logs
            ))
        })?;
    Ok(Value::Array(
        found
            .iter()
            .map(|(log, h, bh, ti, th, li)| json::log_json(log, *h, *bh, *ti, *th, *li))
            .collect(),
    ))
}
