//! Ethereum transactions as EMC accepts them, decoded and checked once at the edge.
//!
//! Accepted: legacy transactions with EIP-155 replay protection, EIP-2930 and EIP-1559
//! transactions for this chain's id. Refused, each with its own error: oversized
//! input, malformed RLP, other types (blobs, EIP-7702), a missing or wrong chain id,
//! and a signature that does not recover or has a high `s` (EIP-2).

use alloy_consensus::{transaction::SignerRecoverable, Transaction as _, TxEnvelope, TxType};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};

/// The largest encoded transaction a node takes: 128 KiB, as geth's pool.
pub const MAX_TX_SIZE: usize = 128 * 1024;

/// secp256k1n / 2: signatures with a larger `s` are malleable and refused (EIP-2).
const SECP256K1N_HALF: U256 = U256::from_be_slice(&[
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("oversized transaction: {size} bytes, the limit is {max}")]
    Oversized { size: usize, max: usize },
    #[error("malformed transaction: {0}")]
    Malformed(String),
    #[error(
        "unsupported transaction type {0}: EMC accepts legacy (EIP-155), EIP-2930 and EIP-1559"
    )]
    UnsupportedType(u8),
    #[error(
        "transaction has no chain id: sign with EIP-155 replay protection for chain {expected}"
    )]
    MissingChainId { expected: u64 },
    #[error("wrong chain id: transaction is for chain {got}, this is chain {expected}")]
    WrongChainId { expected: u64, got: u64 },
    #[error("bad signature: {0}")]
    BadSignature(String),
}

/// A decoded transaction whose sender has been recovered from its signature.
#[derive(Clone, Debug)]
pub struct SignedTx {
    pub envelope: TxEnvelope,
    pub sender: Address,
    pub hash: B256,
    /// The EIP-2718 bytes, exactly as signed and as stored in a block.
    pub raw: Bytes,
}

/// Decodes and checks a raw transaction for `chain_id`; see the module header.
pub fn decode_raw_tx(raw: &[u8], chain_id: u64) -> Result<SignedTx, TxError> {
    if raw.len() > MAX_TX_SIZE {
        return Err(TxError::Oversized {
            size: raw.len(),
            max: MAX_TX_SIZE,
        });
    }
    if raw.is_empty() {
        return Err(TxError::Malformed("empty input".into()));
    }
    let mut buf = raw;
    let envelope =
        TxEnvelope::decode_2718(&mut buf).map_err(|e| TxError::Malformed(e.to_string()))?;
    if !buf.is_empty() {
        return Err(TxError::Malformed(format!("{} trailing bytes", buf.len())));
    }
    match envelope.tx_type() {
        TxType::Legacy | TxType::Eip2930 | TxType::Eip1559 => {}
        other => return Err(TxError::UnsupportedType(other as u8)),
    }
    match envelope.chain_id() {
        None => return Err(TxError::MissingChainId { expected: chain_id }),
        Some(got) if got != chain_id => {
            return Err(TxError::WrongChainId {
                expected: chain_id,
                got,
            })
        }
        Some(_) => {}
    }
    if envelope.signature().s() > SECP256K1N_HALF {
        return Err(TxError::BadSignature("high s value (EIP-2)".into()));
    }
    let sender = envelope
        .recover_signer()
        .map_err(|e| TxError::BadSignature(e.to_string()))?;
    let hash = *envelope.tx_hash();
    Ok(SignedTx {
        envelope,
        sender,
        hash,
        raw: Bytes::copy_from_slice(raw),
    })
}

impl SignedTx {
    /// Wraps an envelope already checked elsewhere (for example one read back from a
    /// stored block, which was checked before it was sealed).
    pub fn from_trusted(envelope: TxEnvelope, sender: Address) -> Self {
        let raw = Bytes::from(envelope.encoded_2718());
        let hash = *envelope.tx_hash();
        Self {
            envelope,
            sender,
            hash,
            raw,
        }
    }

    pub fn nonce(&self) -> u64 {
        self.envelope.nonce()
    }
    pub fn gas_limit(&self) -> u64 {
        self.envelope.gas_limit()
    }
    pub fn value(&self) -> U256 {
        self.envelope.value()
    }
    pub fn input(&self) -> &Bytes {
        self.envelope.input()
    }
    pub fn kind(&self) -> TxKind {
        self.envelope.kind()
    }
    pub fn to(&self) -> Option<Address> {
        self.envelope.to()
    }
    pub fn chain_id(&self) -> Option<u64> {
        self.envelope.chain_id()
    }
    pub fn tx_type(&self) -> u8 {
        self.envelope.tx_type() as u8
    }
    /// Most the sender pays per gas (legacy: its gas price).
    pub fn max_fee_per_gas(&self) -> u128 {
        self.envelope.max_fee_per_gas()
    }
    /// Most the sender grants the proposer per gas above the base fee.
    pub fn max_priority_fee_per_gas(&self) -> u128 {
        self.envelope
            .max_priority_fee_per_gas()
            .unwrap_or_else(|| self.envelope.max_fee_per_gas())
    }
    /// The tip per gas the proposer earns at `base_fee`; `None` when the transaction
    /// cannot pay the base fee at all.
    pub fn effective_tip(&self, base_fee: u64) -> Option<u128> {
        let base = base_fee as u128;
        let max_fee = self.max_fee_per_gas();
        (max_fee >= base).then(|| (max_fee - base).min(self.max_priority_fee_per_gas()))
    }
    /// The most this transaction can cost its sender: gas limit times max fee, plus value.
    pub fn max_cost(&self) -> U256 {
        U256::from(self.gas_limit()) * U256::from(self.max_fee_per_gas()) + self.value()
    }
    /// EIP-2028 intrinsic gas: 21,000 (53,000 for a creation) plus calldata and
    /// access-list costs. A transaction whose gas limit is below it can never run.
    pub fn intrinsic_gas(&self) -> u64 {
        let data = self.input();
        let zeros = data.iter().filter(|b| **b == 0).count() as u64;
        let nonzeros = data.len() as u64 - zeros;
        let mut gas = if self.to().is_none() { 53_000 } else { 21_000 };
        gas += zeros * 4 + nonzeros * 16;
        if self.to().is_none() {
            // EIP-3860: 2 gas per 32-byte word of initcode.
            gas += (data.len() as u64).div_ceil(32) * 2;
        }
        if let Some(list) = self.envelope.access_list() {
            for item in list.iter() {
                gas += 2_400 + 1_900 * item.storage_keys.len() as u64;
            }
        }
        gas
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{SignableTransaction, TxEip1559, TxLegacy};
    use alloy_network::TxSignerSync;
    use alloy_signer_local::PrivateKeySigner;

    fn signer() -> PrivateKeySigner {
        PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).expect("valid key")
    }

    fn eip1559(chain_id: u64) -> Vec<u8> {
        let mut tx = TxEip1559 {
            chain_id,
            nonce: 3,
            gas_limit: 21_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(Address::repeat_byte(2)),
            value: U256::from(5),
            ..Default::default()
        };
        let sig = signer().sign_transaction_sync(&mut tx).expect("sign");
        TxEnvelope::from(tx.into_signed(sig)).encoded_2718()
    }

    #[test]
    fn decodes_and_recovers_eip1559() {
        let tx = decode_raw_tx(&eip1559(7), 7).expect("valid");
        assert_eq!(tx.sender, signer().address());
        assert_eq!(tx.nonce(), 3);
        assert_eq!(tx.effective_tip(1_500_000_000), Some(500_000_000));
        assert_eq!(tx.effective_tip(3_000_000_000), None);
    }

    #[test]
    fn refuses_wrong_chain_id() {
        assert_eq!(
            decode_raw_tx(&eip1559(8), 7).unwrap_err(),
            TxError::WrongChainId {
                expected: 7,
                got: 8
            }
        );
    }

    #[test]
    fn refuses_legacy_without_chain_id() {
        let mut tx = TxLegacy {
            chain_id: None,
            gas_limit: 21_000,
            gas_price: 1,
            to: TxKind::Call(Address::ZERO),
            ..Default::default()
        };
        let sig = signer().sign_transaction_sync(&mut tx).expect("sign");
        let raw = TxEnvelope::from(tx.into_signed(sig)).encoded_2718();
        assert_eq!(
            decode_raw_tx(&raw, 7).unwrap_err(),
            TxError::MissingChainId { expected: 7 }
        );
    }

    #[test]
    fn refuses_garbage_truncation_and_oversize() {
        let raw = eip1559(7);
        assert!(matches!(
            decode_raw_tx(&raw[..raw.len() - 3], 7),
            Err(TxError::Malformed(_))
        ));
        assert!(matches!(
            decode_raw_tx(&[0xde, 0xad], 7),
            Err(TxError::Malformed(_))
        ));
        let big = vec![0u8; MAX_TX_SIZE + 1];
        assert!(matches!(
            decode_raw_tx(&big, 7),
            Err(TxError::Oversized { .. })
        ));
    }

    #[test]
    fn tampered_signature_changes_or_fails_recovery() {
        let mut raw = eip1559(7);
        let n = raw.len();
        raw[n - 5] ^= 0x01; // inside s
        match decode_raw_tx(&raw, 7) {
            Ok(tx) => assert_ne!(tx.sender, signer().address()),
            Err(TxError::BadSignature(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode_raw_tx(&bytes, 7);
        }
    }
}
