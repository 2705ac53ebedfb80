//! Sealed calls at the router (`emc_protocol::sealed`): the router chooses the node
//! and may retry elsewhere, but must not read the request, so it first offers the
//! client its ranked candidates and their keys, under a call id it will use for that
//! call alone; the client seals the body to each candidate it accepts; the router
//! tries them in the order it offered, forwarding each its own ciphertext.
//!
//! Invariants:
//! * A key is offered only when the node key's signature binds it to the node
//!   ([`bound`]: the binding its DID's `EMCNode` service publishes), so a router or a
//!   mesh peer cannot slip in a key of its own; the client checks the same binding.
//! * An offer's call id is used once, for the app it was offered for, within
//!   [`OFFER_TTL`]; the HPKE context binds it, so a sealed body cannot be replayed
//!   under another call.
//! * The router sees the app, the path, sizes and timing: metadata it routes and
//!   meters by. It never holds a key that opens a body or a reply.

use alloy_primitives::{Address, B256};
use emc_protocol::node::SealingKey;
use emc_protocol::{CallError, NodeId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an offered call id may be used.
pub const OFFER_TTL: Duration = Duration::from_secs(120);
/// Most offers outstanding at once.
pub const MAX_OFFERS: usize = 100_000;

/// Whether `key` is bound to `node` on chain `chain_id` by the node key's signature.
pub fn bound(chain_id: u64, node: NodeId, key: &SealingKey) -> bool {
    emc_identity::node::binding_holds(
        chain_id,
        Address::from(key.did),
        node.0,
        &key.x25519,
        &key.binding,
    )
}

struct Offer {
    app: String,
    nodes: Vec<NodeId>,
    until: Instant,
}

/// Call ids offered for sealed calls and not yet used.
#[derive(Default)]
pub struct Offers {
    open: parking_lot::Mutex<HashMap<B256, Offer>>,
}

impl Offers {
    /// A fresh call id for a sealed call of `app` to one of `nodes`.
    pub fn offer(&self, app: &str, nodes: Vec<NodeId>, now: Instant) -> Result<B256, CallError> {
        let mut open = self.open.lock();
        if open.len() >= MAX_OFFERS {
            open.retain(|_, o| o.until > now);
        }
        if open.len() >= MAX_OFFERS {
            return Err(CallError::Saturated(format!(
                "{MAX_OFFERS} sealed-call offers are outstanding; retry shortly"
            )));
        }
        let id = B256::from(rand::random::<[u8; 32]>());
        open.insert(
            id,
            Offer {
                app: app.to_string(),
                nodes,
                until: now + OFFER_TTL,
            },
        );
        Ok(id)
    }

    /// The nodes call `id` was offered with, once: the call id is spent.
    pub fn take(&self, id: B256, app: &str, now: Instant) -> Result<Vec<NodeId>, CallError> {
        let offer = self.open.lock().remove(&id).ok_or_else(|| {
            CallError::BadRequest(format!(
                "sealed call {id} was not offered here, or was used already"
            ))
        })?;
        if offer.until <= now {
            return Err(CallError::BadRequest(format!(
                "the offer of sealed call {id} expired; ask for another"
            )));
        }
        if offer.app != app {
            return Err(CallError::BadRequest(format!(
                "sealed call {id} was offered for another app"
            )));
        }
        Ok(offer.nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_is_used_once_for_its_app_before_it_expires() {
        let offers = Offers::default();
        let t = Instant::now();
        let n = vec![NodeId(B256::repeat_byte(1))];
        let id = offers.offer("chat", n.clone(), t).expect("offer");
        assert!(offers.take(id, "embed", t).is_err(), "another app");
        let id = offers.offer("chat", n.clone(), t).expect("offer");
        assert_eq!(offers.take(id, "chat", t).expect("taken"), n);
        assert!(offers.take(id, "chat", t).is_err(), "used already");
        let id = offers.offer("chat", n, t).expect("offer");
        assert!(offers.take(id, "chat", t + OFFER_TTL).is_err(), "expired");
    }

    #[test]
    fn only_a_key_the_node_key_signed_is_bound() {
        let signer = ed25519_consensus::SigningKey::from([3u8; 32]);
        let node = NodeId(B256::from(signer.verification_key().to_bytes()));
        let (did, x25519) = ([7u8; 20], [9u8; 32]);
        let msg = emc_identity::node::binding_message(5, Address::from(did), node.0, &x25519);
        let key = SealingKey {
            did,
            x25519,
            binding: signer.sign(&msg).to_bytes(),
        };
        assert!(bound(5, node, &key));
        assert!(!bound(6, node, &key), "another chain");
        let swapped = SealingKey {
            x25519: [8u8; 32],
            ..key.clone()
        };
        assert!(!bound(5, node, &swapped), "another key");
        assert!(
            !bound(5, NodeId(B256::repeat_byte(2)), &key),
            "another node"
        );
    }
}
