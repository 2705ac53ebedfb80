//! The result cache: replies of deterministic apps (WASM jobs, embeddings), kept by
//! request hash with the original node's signed result, for callers that send
//! `x-emc-cache: allow`. A hit is free: the node already was paid for that work.
//! Bounded: 64 MiB in all, oldest out first; replies over 1 MiB are not kept.

use alloy_primitives::B256;
use bytes::Bytes;
use emc_protocol::SignedResult;
use std::collections::{HashMap, VecDeque};

/// Bytes kept in all, and the largest reply kept.
const CACHE_BYTES: usize = 64 << 20;
const CACHE_ENTRY: usize = 1 << 20;

/// Replies to deterministic calls, by request hash, oldest dropped first.
#[derive(Default)]
pub struct ResultCache {
    map: HashMap<B256, Cached>,
    order: VecDeque<B256>,
    bytes: usize,
}

#[derive(Clone)]
pub struct Cached {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
    pub signed: SignedResult,
}

impl ResultCache {
    /// The reply kept for `k`, if any.
    pub fn get(&self, k: &B256) -> Option<Cached> {
        self.map.get(k).cloned()
    }

    /// Keeps a reply (not one over the entry limit, nor a second copy).
    pub fn put(
        &mut self,
        k: B256,
        status: u16,
        content_type: String,
        body: Bytes,
        signed: SignedResult,
    ) {
        if body.len() > CACHE_ENTRY || self.map.contains_key(&k) {
            return;
        }
        self.bytes += body.len();
        self.map.insert(
            k,
            Cached {
                status,
                content_type,
                body,
                signed,
            },
        );
        self.order.push_back(k);
        while self.bytes > CACHE_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(c) = self.map.remove(&old) {
                self.bytes -= c.body.len();
            }
        }
    }
}
