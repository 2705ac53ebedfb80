//! Calls paid from a computing socket (`emc_modules::sockets`): what makes a socket key
//! good for a call, from the socket as the chain shows it at the head. Pure.
//!
//! A socket key pays only while it is signed by the socket's holder (its ERC-4907
//! user while one is set, and then not its owner; otherwise its owner), only for the
//! socket's app, only before the socket expires and only while it has credits. The
//! gateway then routes the call to the socket's node alone and prices it at the
//! socket's price per unit of the socket's unit ([`crate::receipts::Tariff::Socket`]).
//! A socket sold mid-use works for its new owner, and stops for the old one, at the
//! next call: the check reads the head.

use alloy_primitives::{Address, B256, U256};
use emc_client::keys::ApiKey;
use emc_modules::sockets::{ISockets, Unit};
use emc_protocol::{CallError, NodeId};

/// What a socket key may use.
#[derive(Clone, Debug)]
pub struct SocketTerms {
    pub id: U256,
    pub node: NodeId,
    pub unit: Unit,
    pub price: U256,
    /// Wei of credits left on chain (`credits × price`).
    pub left: U256,
    /// The market lease the socket is, as its winning bid (zero: not a lease); filled
    /// by the payment, which reads the Market.
    pub lease: U256,
}

/// Admits a call of `app` under socket key `key` for socket `id`, shown as `s` at the
/// head, at `now` (Unix seconds); the refusal says why, with its status.
pub fn admit(
    key: &ApiKey,
    id: U256,
    s: &ISockets::Socket,
    app: &str,
    now: u64,
) -> Result<SocketTerms, CallError> {
    let signer = key.account;
    if s.owner == Address::ZERO {
        return Err(CallError::Unauthorized(format!("there is no socket {id}")));
    }
    if s.user != Address::ZERO && signer != s.user {
        return Err(CallError::Unauthorized(if signer == s.owner {
            format!(
                "socket {id} is lent to {} until {}: its owner's key does not pay while that runs",
                s.user, s.userExpires
            )
        } else {
            format!(
                "the key's signer {signer} does not hold socket {id} (its user {} does)",
                s.user
            )
        }));
    }
    if s.user == Address::ZERO && signer != s.owner {
        return Err(CallError::Unauthorized(format!(
            "the key's signer {signer} does not hold socket {id} ({} owns it)",
            s.owner
        )));
    }
    if s.app != app {
        return Err(CallError::Forbidden(format!(
            "socket {id} is for the app {:?}, not {app:?}",
            s.app
        )));
    }
    if s.expires <= now {
        return Err(CallError::Payment(format!(
            "socket {id} expired at {} (renew it with `emc socket renew`)",
            s.expires
        )));
    }
    if s.credits == 0 {
        return Err(CallError::Payment(format!(
            "socket {id} has no credits left (add some with `emc socket fund`)"
        )));
    }
    let unit = Unit::from_u8(s.unit).map_err(|e| CallError::Runtime(e.to_string()))?;
    Ok(SocketTerms {
        id,
        node: NodeId(B256::from(s.node)),
        unit,
        price: s.pricePerUnit,
        left: s.escrow,
        lease: U256::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use emc_client::keys;

    fn key(seed: u8, id: u64) -> ApiKey {
        let s = alloy_signer_local::PrivateKeySigner::from_bytes(&B256::repeat_byte(seed)).unwrap();
        let g = keys::grant(1, Address::ZERO, 0, 60, U256::MAX);
        keys::parse(&keys::make_socket(&s, g, U256::from(id)).unwrap()).unwrap()
    }

    fn socket(owner: Address) -> ISockets::Socket {
        ISockets::Socket {
            owner,
            node: B256::repeat_byte(9),
            app: "echo".into(),
            unit: 0,
            credits: 3,
            pricePerUnit: U256::from(10),
            escrow: U256::from(30),
            expires: 1_000,
            ..Default::default()
        }
    }

    /// One row per rule: who signs, what the socket shows, what the caller hears.
    #[test]
    fn each_rule_refuses_with_its_status_and_reason() {
        let owner = key(1, 7);
        let renter = key(2, 7);
        let id = U256::from(7);
        let mine = socket(owner.account);
        let ok = admit(&owner, id, &mine, "echo", 10).expect("the owner's key pays");
        assert_eq!(
            (ok.node, ok.price, ok.left),
            (NodeId(B256::repeat_byte(9)), U256::from(10), U256::from(30))
        );
        let rented = ISockets::Socket {
            user: renter.account,
            userExpires: 500,
            ..mine.clone()
        };
        let rows: Vec<(&ApiKey, ISockets::Socket, &str, u64, u16, &str)> = vec![
            (
                &renter,
                mine.clone(),
                "echo",
                10,
                401,
                "does not hold socket 7",
            ),
            (
                &owner,
                rented.clone(),
                "echo",
                10,
                401,
                "its owner's key does not pay",
            ),
            (
                &owner,
                mine.clone(),
                "chat",
                10,
                403,
                "is for the app \"echo\"",
            ),
            (&owner, mine.clone(), "echo", 1_000, 402, "expired at 1000"),
            (
                &owner,
                ISockets::Socket {
                    credits: 0,
                    ..mine.clone()
                },
                "echo",
                10,
                402,
                "no credits left",
            ),
            (
                &owner,
                ISockets::Socket {
                    owner: Address::ZERO,
                    ..mine.clone()
                },
                "echo",
                10,
                401,
                "there is no socket",
            ),
        ];
        for (k, s, app, now, status, why) in rows {
            let e = admit(k, id, &s, app, now).expect_err(why);
            assert_eq!(e.status(), status, "{e}");
            assert!(e.to_string().contains(why), "{e}");
        }
        admit(&renter, id, &rented, "echo", 10).expect("the renter's key pays");
    }
}
