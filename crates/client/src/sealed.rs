//! The client's side of a sealed call (`emc_protocol::sealed`): read the router's
//! offer, check each candidate's key against its node id (the binding the node key
//! signed, the same its DID publishes), seal the body to each, and open the chosen
//! node's reply.
//!
//! The router never holds a key that opens the body or the reply; what the client
//! trusts is the node id, which the node's signed result names and settlement checks.

use crate::ClientError;
use alloy_primitives::{Address, B256};
use base64::Engine;
use emc_protocol::sealed::{self, Binding, ReplyOpener};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One node the router offers to seal to.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub node: B256,
    pub did: String,
    pub identity: Address,
    pub x25519: [u8; 32],
    pub binding: [u8; 64],
}

/// A router's offer: the call id it will use, and its candidates in its order.
#[derive(Clone, Debug)]
pub struct Offer {
    pub call: B256,
    pub chain_id: u64,
    pub app: String,
    pub candidates: Vec<Candidate>,
}

fn bad(why: impl std::fmt::Display) -> ClientError {
    ClientError::Decode(format!("sealed-call offer: {why}"))
}

fn bytes<const N: usize>(v: &Value, what: &str) -> Result<[u8; N], ClientError> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("{what} is not a string")))?;
    let b = alloy_primitives::hex::decode(s).map_err(|_| bad(format!("{what} is not hex")))?;
    b.try_into()
        .map_err(|_| bad(format!("{what} is not {N} bytes")))
}

impl Offer {
    /// The offer `POST /v1/sealed/offer` answered.
    pub fn from_json(v: &Value) -> Result<Self, ClientError> {
        let call = v["call"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no call id"))?;
        let chain_id = v["chainId"].as_u64().ok_or_else(|| bad("no chain id"))?;
        let app = v["app"].as_str().ok_or_else(|| bad("no app"))?.to_string();
        let list = v["candidates"]
            .as_array()
            .ok_or_else(|| bad("no candidates"))?;
        let mut candidates = Vec::with_capacity(list.len());
        for c in list {
            let did = c["did"]
                .as_str()
                .ok_or_else(|| bad("a candidate has no DID"))?;
            let identity = did
                .rsplit(':')
                .next()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| bad(format!("{did} is not a did:ethr of an address")))?;
            candidates.push(Candidate {
                node: B256::from(bytes::<32>(&c["node"], "node")?),
                did: did.to_string(),
                identity,
                x25519: bytes(&c["x25519"], "x25519")?,
                binding: bytes(&c["binding"], "binding")?,
            });
        }
        Ok(Offer {
            call,
            chain_id,
            app,
            candidates,
        })
    }

    /// The candidates whose key the node key bound to them (any other is dropped: a
    /// router cannot slip in a key of its own).
    pub fn checked(&self) -> Vec<&Candidate> {
        self.candidates
            .iter()
            .filter(|c| {
                emc_identity::node::binding_holds(
                    self.chain_id,
                    c.identity,
                    c.node,
                    &c.x25519,
                    &c.binding,
                )
            })
            .collect()
    }
}

/// A sealed request ready to send, and what opens each node's reply.
pub struct SealedRequest {
    /// The body to post, with header `x-emc-sealed: <call>`.
    pub body: Value,
    pub call: B256,
    pub openers: BTreeMap<B256, ReplyOpener>,
}

/// Seals `body` (of `content_type`) for `path` to every checked candidate of `offer`.
pub fn seal(
    offer: &Offer,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<SealedRequest, ClientError> {
    let to = Binding {
        chain_id: offer.chain_id,
        call: offer.call,
        app: &offer.app,
        path,
    };
    let checked = offer.checked();
    if checked.is_empty() {
        return Err(bad("no candidate's key is bound to its node"));
    }
    let mut envelopes = Vec::new();
    let mut openers = BTreeMap::new();
    for c in checked {
        let (envelope, opener) = sealed::seal_request(&c.x25519, to, content_type, body)
            .map_err(|e| ClientError::Signing(e.to_string()))?;
        envelopes.push(json!({
            "node": c.node.to_string(),
            "envelope": base64::engine::general_purpose::STANDARD.encode(envelope),
        }));
        openers.insert(c.node, opener);
    }
    Ok(SealedRequest {
        body: json!({ "sealed": envelopes }),
        call: offer.call,
        openers,
    })
}
