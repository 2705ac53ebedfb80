//! Consensus signatures.
//!
//! Validators sign consensus messages with an ed25519 key, separate from their
//! account key. Every signed payload starts with a domain tag and the chain id, so a
//! signature is never valid for another message kind or another chain.
//!
//! The core is written against [`Crypto`] so the simulator can run thousands of seeds
//! with [`insecure::MacCrypto`], a keyed hash that only the key's owner can produce but
//! that needs a shared registry to check: **never** for a real network. The benchmark
//! and the node use [`Ed25519Crypto`].

use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;

/// An ed25519 verification key (or the simulator's stand-in), 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct ValidatorKey(pub [u8; 32]);

impl fmt::Debug for ValidatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key:")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Sig(pub [u8; 64]);

impl fmt::Debug for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sig:{:02x}{:02x}..", self.0[0], self.0[1])
    }
}

/// Signs with this node's key and checks others' signatures.
pub trait Crypto: Send {
    fn public_key(&self) -> ValidatorKey;
    fn sign(&self, payload: &[u8]) -> Sig;
    fn verify(&self, key: &ValidatorKey, payload: &[u8], sig: &Sig) -> bool;
    /// Checks many at once; true only if all are valid.
    fn verify_batch(&self, items: &[(ValidatorKey, Vec<u8>, Sig)]) -> bool {
        items.iter().all(|(k, p, s)| self.verify(k, p, s))
    }
}

/// Real ed25519 (ZIP-215 rules, as `ed25519-consensus` implements them), with batch
/// verification for justifications.
pub struct Ed25519Crypto {
    key: ed25519_consensus::SigningKey,
}

impl Ed25519Crypto {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            key: ed25519_consensus::SigningKey::from(seed),
        }
    }

    /// For checking others' signatures only (a node importing a block verifies its
    /// parent's certificate): the key is a fixed public one and must never sign.
    pub fn verify_only() -> Self {
        Self::from_seed([0u8; 32])
    }
}

/// Checks one ed25519 signature (no private key needed: the staking module checks
/// equivocation evidence with it).
pub fn verify_ed25519(key: &ValidatorKey, payload: &[u8], sig: &Sig) -> bool {
    match ed25519_consensus::VerificationKey::try_from(key.0) {
        Ok(vk) => vk
            .verify(&ed25519_consensus::Signature::from(sig.0), payload)
            .is_ok(),
        Err(_) => false,
    }
}

impl Crypto for Ed25519Crypto {
    fn public_key(&self) -> ValidatorKey {
        ValidatorKey(self.key.verification_key().to_bytes())
    }

    fn sign(&self, payload: &[u8]) -> Sig {
        Sig(self.key.sign(payload).to_bytes())
    }

    fn verify(&self, key: &ValidatorKey, payload: &[u8], sig: &Sig) -> bool {
        verify_ed25519(key, payload, sig)
    }

    fn verify_batch(&self, items: &[(ValidatorKey, Vec<u8>, Sig)]) -> bool {
        if items.len() < 4 {
            return items.iter().all(|(k, p, s)| self.verify(k, p, s));
        }
        let mut batch = ed25519_consensus::batch::Verifier::new();
        for (k, p, s) in items {
            let vkb = ed25519_consensus::VerificationKeyBytes::from(k.0);
            batch.queue((vkb, ed25519_consensus::Signature::from(s.0), p));
        }
        batch.verify(rand::thread_rng()).is_ok()
    }
}

pub mod insecure {
    //! The simulator's signature stand-in. A "signature" is
    //! `sha256(secret ‖ payload)`, doubled to 64 bytes; checking it needs the signer's
    //! secret from a registry shared by every simulated node. A node holds only its own
    //! secret, so a byzantine node still cannot sign as another.

    use super::*;
    use sha2::{Digest, Sha256};
    use std::{collections::HashMap, sync::Arc};

    #[derive(Clone, Default)]
    pub struct Registry(Arc<HashMap<ValidatorKey, [u8; 32]>>);

    impl Registry {
        /// Keys and secrets for `n` validators derived from `seed`.
        pub fn new(seed: u64, n: usize) -> (Self, Vec<MacCrypto>) {
            let secrets: Vec<[u8; 32]> = (0..n)
                .map(|i| Sha256::digest(format!("emc-sim-secret-{seed}-{i}")).into())
                .collect();
            let map: HashMap<_, _> = secrets.iter().map(|s| (key_of(s), *s)).collect();
            let reg = Registry(Arc::new(map));
            let cryptos = secrets
                .into_iter()
                .map(|s| MacCrypto {
                    secret: s,
                    registry: reg.clone(),
                })
                .collect();
            (reg, cryptos)
        }
    }

    fn key_of(secret: &[u8; 32]) -> ValidatorKey {
        ValidatorKey(Sha256::digest([b"pk".as_slice(), secret].concat()).into())
    }

    fn mac(secret: &[u8; 32], payload: &[u8]) -> Sig {
        let h: [u8; 32] = Sha256::digest([secret.as_slice(), payload].concat()).into();
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&h);
        s[32..].copy_from_slice(&h);
        Sig(s)
    }

    #[derive(Clone)]
    pub struct MacCrypto {
        secret: [u8; 32],
        registry: Registry,
    }

    impl Crypto for MacCrypto {
        fn public_key(&self) -> ValidatorKey {
            key_of(&self.secret)
        }
        fn sign(&self, payload: &[u8]) -> Sig {
            mac(&self.secret, payload)
        }
        fn verify(&self, key: &ValidatorKey, payload: &[u8], sig: &Sig) -> bool {
            self.registry
                .0
                .get(key)
                .is_some_and(|s| mac(s, payload) == *sig)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_signs_verifies_and_batches() {
        let a = Ed25519Crypto::from_seed([1; 32]);
        let b = Ed25519Crypto::from_seed([2; 32]);
        let sig = a.sign(b"hello");
        assert!(b.verify(&a.public_key(), b"hello", &sig));
        assert!(!b.verify(&a.public_key(), b"hellO", &sig));
        assert!(!b.verify(&b.public_key(), b"hello", &sig));
        let mut items: Vec<_> = (0..6u8)
            .map(|i| (a.public_key(), vec![i], a.sign(&[i])))
            .collect();
        assert!(b.verify_batch(&items));
        items[3].1 = vec![99];
        assert!(!b.verify_batch(&items));
    }

    #[test]
    fn mac_stand_in_cannot_be_forged_by_another_node() {
        let (_, nodes) = insecure::Registry::new(7, 3);
        let sig = nodes[0].sign(b"m");
        assert!(nodes[1].verify(&nodes[0].public_key(), b"m", &sig));
        // Node 2 signing "as" node 0 produces its own MAC, which does not check.
        assert!(!nodes[1].verify(&nodes[0].public_key(), b"m", &nodes[2].sign(b"m")));
    }
}
