//! A node's signed result, checked and turned into the receipt the chain settles.
//!
//! A result is charged only if it is signed by the node the call was routed to, over
//! the request asked, the call id given and the bytes relayed, within the budget the
//! call carried; the receipt pairs the client's grant with that signed claim, plus
//! the router's reservation as the most the call may cost (the Tasks module refuses
//! a receipt past either bound).

use crate::ledger::Reservation;
use alloy_primitives::{B256, U256};
use emc_client::keys::ApiKey;
use emc_modules::sockets::{settle::units_used, Unit};
use emc_modules::tasks::{self, ITasks};
use emc_protocol::{ResultClaim, SignedResult};

/// How a call is priced.
#[derive(Clone, Copy, Debug)]
pub enum Tariff {
    /// From the client's escrow: the node's registered price per unit, plus the
    /// router's fee on top.
    Escrow { price: U256 },
    /// From a socket's credits: the socket's price per unit of its own unit, the
    /// router's fee inside it.
    Socket { unit: Unit, price: U256 },
}

impl Tariff {
    /// What one unit costs.
    pub fn unit_cost(&self) -> U256 {
        match *self {
            Tariff::Escrow { price } => tasks::total(1, price),
            Tariff::Socket { price, .. } => price,
        }
    }

    /// The node's budget in its units for a call that may cost `budget` wei; `None`
    /// when the budget pays for no unit. A socket counting calls or seconds does not
    /// bound the node's own units.
    pub fn max_units(&self, budget: U256) -> Option<u64> {
        let units = match *self {
            Tariff::Escrow { price } => tasks::units_within(budget, price),
            Tariff::Socket { price, .. } if price.is_zero() => u64::MAX,
            Tariff::Socket { unit, price } => {
                let n: u64 = (budget / price).saturating_to();
                match unit {
                    Unit::Call | Unit::Seconds if n > 0 => u64::MAX,
                    _ => n,
                }
            }
        };
        (units > 0).then_some(units)
    }

    /// What a call with this claim costs, `None` if it cannot be charged (a socket
    /// counting a unit the node did not meter).
    pub fn cost(&self, claim: &ResultClaim, budget: U256) -> Option<U256> {
        let m = claim.metering;
        match *self {
            Tariff::Escrow { price } => Some(tasks::total(m.units, price)),
            Tariff::Socket { unit, price } => {
                let most: u64 = if price.is_zero() {
                    0
                } else {
                    (budget / price).saturating_to()
                };
                let used = units_used(unit, m.unit as u8, m.units, m.wall_us, most).ok()?;
                Some(U256::from(used).saturating_mul(price))
            }
        }
    }
}

/// Turns a node's signed result into a receipt, once it checks out.
pub struct Receipting {
    pub node: emc_protocol::NodeId,
    pub node_key: Option<ed25519_consensus::VerificationKey>,
    pub key: ApiKey,
    pub app: String,
    pub tariff: Tariff,
    pub request_hash: B256,
    pub call_id: B256,
    /// The budget the call was sent with, in units and in wei.
    pub max_units: u64,
    pub max_cost: U256,
}

impl Receipting {
    /// Whether the node's result is signed by the node chosen, over what was asked and
    /// what was relayed, within the budget it was sent.
    pub fn checks(&self, s: &SignedResult, relayed: B256) -> bool {
        // The node's id is the key it signs with; the route was chosen by that id.
        s.claim.node == self.node
            && self.node_key.is_some_and(|k| s.verify_with(&k).is_ok())
            && s.claim.result_hash == relayed
            && s.claim.request_hash == self.request_hash
            && s.claim.call == self.call_id
            && s.claim.max_units == self.max_units
            && s.claim.metering.units <= self.max_units
            && self
                .tariff
                .cost(&s.claim, self.max_cost)
                .is_some_and(|c| c <= self.max_cost)
    }

    /// Charges a checked call and queues its receipt; returns the total charged.
    pub fn charge(self, res: Reservation, s: &SignedResult) -> U256 {
        let total = self
            .tariff
            .cost(&s.claim, self.max_cost)
            .unwrap_or_default();
        res.charge(receipt_of(&self.key, self.app, s, self.max_cost), total);
        total
    }
}

/// The receipt of a call: the client's grant, the node's signed result, and what the
/// router reserved for it (the most it may cost).
pub fn receipt_of(key: &ApiKey, app: String, s: &SignedResult, max_cost: U256) -> ITasks::Receipt {
    let m = s.claim.metering;
    ITasks::Receipt {
        grant: key.grant.clone(),
        grantSignature: key.signature.clone(),
        app,
        requestHash: s.claim.request_hash,
        callId: s.claim.call,
        resultHash: s.claim.result_hash,
        nodeId: s.claim.node.0,
        unit: m.unit as u8,
        units: m.units,
        bytesOut: m.bytes,
        wallUs: m.wall_us,
        maxUnits: s.claim.max_units,
        nodeSignature: s.signature.to_vec().into(),
        maxCost: max_cost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Address;
    use emc_client::keys as auth;
    use emc_protocol::{Metering, NodeId, ResultClaim, Unit};

    /// The receipt carries the node's claim whole: the module rebuilds the very claim
    /// the node signed, so its signature verifies on chain.
    #[test]
    fn a_receipt_carries_the_claim_the_node_signed() {
        let node = ed25519_consensus::SigningKey::from([3u8; 32]);
        let id = NodeId(B256::from(node.verification_key().to_bytes()));
        for (unit, units) in [
            (Unit::Call, 1),
            (Unit::Fuel, 123_456_789),
            (Unit::Tokens, 7),
        ] {
            let claim = ResultClaim {
                request_hash: B256::repeat_byte(1),
                call: B256::repeat_byte(2),
                result_hash: B256::repeat_byte(3),
                node: id,
                metering: Metering {
                    unit,
                    units,
                    bytes: 999,
                    wall_us: 1_234,
                },
                max_units: units + 5,
                extensions: vec![],
            };
            let signed = SignedResult::sign(&node, claim.clone());
            let s =
                alloy_signer_local::PrivateKeySigner::from_bytes(&B256::repeat_byte(5)).unwrap();
            let key = auth::parse(
                &auth::make(&s, auth::grant(1, Address::ZERO, 0, 60, U256::from(1))).unwrap(),
            )
            .unwrap();
            let r = receipt_of(&key, "a".into(), &signed, U256::from(1));
            assert_eq!(tasks::claim_of(&r).expect("a known unit"), claim);
        }
    }
}
