//! Sealed calls on the node (`emc_protocol::sealed`): the node opens a request sealed
//! to the X25519 key its DID publishes, runs it as any call, and seals the reply back
//! in records. What it hashes and signs is what travelled: the envelope and the sealed
//! records, so its receipt settles without the plaintext.
//!
//! A request that does not open (changed in transit, sealed to another node, or for
//! another chain, call, app or path) is refused with 400 before it runs: no result is
//! signed, so nothing can be charged for it.

use crate::runtime::Call;
use emc_identity::node::{binding_message, NodeIdentity};
use emc_protocol::sealed::{self, Binding, ReplySealer, SealingKey};
use emc_protocol::CallError;

/// Plaintext per sealed record (a record is this, its tag and its length).
pub const RECORD_PLAIN: usize = emc_protocol::wire::DATA_CHUNK - 64;

/// The node's key for sealed calls on one chain.
pub struct Sealing {
    chain_id: u64,
    secret: [u8; 32],
    key: SealingKey,
}

impl Sealing {
    /// The sealing key node key `signer` determines on chain `chain_id`, bound to the
    /// node by its signature (the binding its DID's service publishes).
    pub fn derive(signer: &ed25519_consensus::SigningKey, chain_id: u64) -> Self {
        let seed = signer.to_bytes();
        let me = NodeIdentity::derive(&seed);
        let node = alloy_primitives::B256::from(signer.verification_key().to_bytes());
        let binding = signer
            .sign(&binding_message(
                chain_id,
                me.address,
                node,
                &me.x25519_public,
            ))
            .to_bytes();
        Self {
            chain_id,
            secret: me.x25519_secret,
            key: SealingKey {
                did: me.address.0 .0,
                x25519: me.x25519_public,
                binding,
            },
        }
    }

    pub fn key(&self) -> &SealingKey {
        &self.key
    }

    /// The call inside a sealed one, and what seals its reply.
    pub fn open(&self, call: Call) -> Result<(Call, ReplySealer), CallError> {
        let at = Binding {
            chain_id: self.chain_id,
            call: call.id,
            app: &call.app,
            path: &call.path,
        };
        let opened = sealed::open_request(&self.secret, at, &call.body)?;
        let content_type = Some(opened.content_type).filter(|c| !c.is_empty());
        Ok((
            Call {
                content_type,
                body: opened.body.into(),
                ..call
            },
            opened.reply,
        ))
    }
}
