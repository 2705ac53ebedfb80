//! The router's word on leases that fail: when a call paid from a market lease's
//! socket finds its node unreachable or out of time, the router signs a failure report
//! (the Market's `FailureReport`: the lease's bid, the node, when, refused or timed
//! out, the request's hash), with its account's key, by EIP-191 over the Market's
//! `failureMessage`. The gateway serves them at `GET /v1/market/failures/{bid}`; a
//! buyer takes two routers' reports to `IMarket.reportFailure` and the provider's bond
//! is its (the module checks both signers are staked routers).
//!
//! A router reports only a node it has served the lease through before: a node it
//! never reached may be beyond this router's own network, which is no evidence
//! against the provider.
//!
//! Bounded: the newest [`BIDS`] leases, [`PER_BID`] reports each.

use alloy_primitives::{Bytes, B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use emc_modules::market::{orders::failure_message, IMarket};
use emc_protocol::{CallError, NodeId};
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};

/// Leases with reports kept, and reports kept per lease.
pub const BIDS: usize = 1_024;
pub const PER_BID: usize = 16;

/// Report kinds, as the Market numbers them.
pub const REFUSED: u8 = 1;
pub const TIMED_OUT: u8 = 2;

/// The kind of failure `e` is, if it is the node's: unreachable or out of time. An
/// app's own error comes with the node's signed result and is no failure to serve.
pub fn kind_of(e: &CallError) -> Option<u8> {
    match e {
        CallError::Timeout(_) => Some(TIMED_OUT),
        CallError::Unavailable(_) => Some(REFUSED),
        _ => None,
    }
}

pub struct FailureBook {
    account: PrivateKeySigner,
    chain_id: u64,
    kept: Mutex<BTreeMap<U256, VecDeque<IMarket::FailureReport>>>,
    /// The leases this router has served a call of, and through which node.
    served: Mutex<BTreeMap<U256, NodeId>>,
}

impl FailureBook {
    pub fn new(account: PrivateKeySigner, chain_id: u64) -> Self {
        FailureBook {
            account,
            chain_id,
            kept: Mutex::default(),
            served: Mutex::default(),
        }
    }

    /// Records that lease `bid`'s call was served through `node`.
    pub fn served(&self, bid: U256, node: NodeId) {
        let mut s = self.served.lock();
        if !s.contains_key(&bid) && s.len() >= BIDS {
            s.pop_first();
        }
        s.insert(bid, node);
    }

    /// Signs and keeps a report that `node` failed lease `bid`'s call `request` at
    /// `at` (Unix seconds).
    /// Ignored unless this router served the lease through `node` before.
    pub fn note(&self, bid: U256, node: NodeId, kind: u8, request: B256, at: u64) {
        if self.served.lock().get(&bid) != Some(&node) {
            return;
        }
        let mut r = IMarket::FailureReport {
            bidId: bid,
            node: node.0,
            at,
            kind,
            requestHash: request,
            signature: Bytes::new(),
        };
        let digest = failure_message(self.chain_id, &r);
        let Ok(sig) = self.account.sign_message_sync(digest.as_slice()) else {
            return;
        };
        r.signature = sig.as_bytes().to_vec().into();
        let mut kept = self.kept.lock();
        if !kept.contains_key(&bid) && kept.len() >= BIDS {
            // The oldest lease (lowest bid id) makes room.
            kept.pop_first();
        }
        let list = kept.entry(bid).or_default();
        if list.len() >= PER_BID {
            list.pop_front();
        }
        list.push_back(r);
    }

    /// The reports kept for lease `bid`, oldest first.
    pub fn reports(&self, bid: U256) -> Vec<IMarket::FailureReport> {
        self.kept
            .lock()
            .get(&bid)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn router(&self) -> alloy_primitives::Address {
        self.account.address()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_signed_by_the_router_over_the_markets_message_and_bounded() {
        let key = PrivateKeySigner::from_bytes(&B256::repeat_byte(3)).unwrap();
        let book = FailureBook::new(key.clone(), 7);
        let node = NodeId(B256::repeat_byte(9));
        book.note(U256::from(5), node, TIMED_OUT, B256::repeat_byte(1), 99);
        assert!(
            book.reports(U256::from(5)).is_empty(),
            "not served through it yet"
        );
        book.served(U256::from(5), node);
        for i in 0..(PER_BID + 3) as u64 {
            book.note(
                U256::from(5),
                node,
                TIMED_OUT,
                B256::repeat_byte(1),
                100 + i,
            );
        }
        let r = book.reports(U256::from(5));
        assert_eq!(r.len(), PER_BID, "the oldest are dropped");
        assert_eq!(r[0].at, 103);
        let sig = alloy_primitives::Signature::try_from(r[0].signature.as_ref()).unwrap();
        let digest = failure_message(7, &r[0]);
        assert_eq!(
            sig.recover_address_from_msg(digest.as_slice()).unwrap(),
            key.address()
        );
        assert!(book.reports(U256::from(6)).is_empty());
        assert_eq!(kind_of(&CallError::Timeout("x".into())), Some(TIMED_OUT));
        assert_eq!(kind_of(&CallError::BadRequest("x".into())), None);
    }
}
