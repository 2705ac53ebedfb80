//! The one transaction builder: every transaction EMC's own code signs (the CLI's,
//! a node's registration, a router's settlement, a validator's attestation) is built
//! here, so the fee rule is written once.

use crate::ClientError;
use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_network::TxSignerSync;
use alloy_primitives::{Address, Bytes, TxKind, U256};

/// The fee market as a sender sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fees {
    /// The next block's base fee, wei per gas.
    pub base_fee: u128,
    /// A tip that gets a transaction in, wei per gas.
    pub tip: u128,
}

impl Fees {
    /// The fee cap: room for the base fee to double before inclusion, plus the tip.
    pub fn max_fee(&self) -> u128 {
        self.base_fee.saturating_mul(2).saturating_add(self.tip)
    }
}

/// An EIP-1559 call, ready to sign.
#[derive(Clone, Debug)]
pub struct Builder {
    pub chain_id: u64,
    pub nonce: u64,
    pub fees: Fees,
    pub gas: u64,
    pub to: Address,
    pub value: U256,
    pub data: Bytes,
}

impl Builder {
    pub fn transaction(&self) -> TxEip1559 {
        TxEip1559 {
            chain_id: self.chain_id,
            nonce: self.nonce,
            gas_limit: self.gas,
            max_fee_per_gas: self.fees.max_fee(),
            max_priority_fee_per_gas: self.fees.tip,
            to: TxKind::Call(self.to),
            value: self.value,
            input: self.data.clone(),
            ..Default::default()
        }
    }

    /// Signs with `signer`: the raw EIP-2718 bytes to submit.
    pub fn sign(
        &self,
        signer: &alloy_signer_local::PrivateKeySigner,
    ) -> Result<Bytes, ClientError> {
        let mut tx = self.transaction();
        let sig = signer
            .sign_transaction_sync(&mut tx)
            .map_err(|e| ClientError::Signing(e.to_string()))?;
        Ok(TxEnvelope::from(tx.into_signed(sig)).encoded_2718().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::transaction::SignerRecoverable;
    use alloy_eips::eip2718::Decodable2718;

    #[test]
    fn a_built_transaction_recovers_its_sender_and_leaves_room_for_the_base_fee() {
        let signer =
            alloy_signer_local::PrivateKeySigner::from_bytes(&[7u8; 32].into()).expect("a key");
        let b = Builder {
            chain_id: 7,
            nonce: 3,
            fees: Fees {
                base_fee: 10,
                tip: 2,
            },
            gas: 21_000,
            to: Address::repeat_byte(1),
            value: U256::from(5),
            data: Bytes::new(),
        };
        let raw = b.sign(&signer).expect("signs");
        let tx = TxEnvelope::decode_2718(&mut raw.as_ref()).expect("decodes");
        assert_eq!(tx.recover_signer().expect("recovers"), signer.address());
        let t = tx.as_eip1559().expect("1559").tx();
        assert_eq!(
            (t.nonce, t.max_fee_per_gas, t.max_priority_fee_per_gas),
            (3, 22, 2)
        );
    }
}
