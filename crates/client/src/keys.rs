//! API keys: a client's grant (see `emc_modules::tasks`) and its account's signature,
//! as one string a client sends as `Authorization: Bearer <key>` (what the `openai`
//! clients send for `api_key`).
//!
//! The key is `emc_` and the hex of the ABI encoding of `(Grant, bytes signature)`.
//! The gateway recovers the account from the signature, so a key made for one account
//! cannot spend another's escrow, and changing any field of the grant changes the
//! account it recovers (which then has no escrow). A key whose grant names one request
//! (`request` not zero) pays for that request once: the gateway refuses it again as a
//! replay, and the chain settles it at most once.
//!
//! A **socket key** (`emc_socket_` and the hex of `(Grant, bytes signature, uint256
//! socket)`) pays from a computing socket's credits instead: its grant is signed over
//! `emc_modules::sockets::settle::socket_grant_message`, which names the socket, by
//! the socket's holder (its owner, or its user while one is set).

use crate::ClientError;
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_signer::SignerSync;
use alloy_sol_types::SolValue;
use emc_modules::sockets::settle::{socket_grant_id, socket_grant_message, socket_grant_signer};
use emc_modules::tasks::{grant_id, grant_message, grant_signer, ITasks::Grant};

pub const KEY_PREFIX: &str = "emc_";
pub const SOCKET_KEY_PREFIX: &str = "emc_socket_";
/// An API key is a few hundred bytes; anything much longer is not one.
const MAX_KEY: usize = 2_048;

/// A parsed, signature-checked API key.
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub grant: Grant,
    pub signature: Bytes,
    pub account: Address,
    pub id: B256,
    /// The socket it pays from, for a socket key.
    pub socket: Option<U256>,
    /// The most its calls may cost together: the grant's limit, or less when a
    /// session it was signed under allows less (the grant itself is what was signed,
    /// and goes to the chain unchanged).
    pub limit: U256,
    /// The spending counter its calls count against: its own id, or for a grant a
    /// session key signed, the session's (`emc_modules::sessions::spend_id`), which
    /// all of that session's grants share. `id` still names the grant (a one-request
    /// grant is used once by its id).
    pub spend: B256,
}

/// Makes an API key: `signer` signs `grant`.
pub fn make(
    signer: &alloy_signer_local::PrivateKeySigner,
    grant: Grant,
) -> Result<String, ClientError> {
    let sig = signer
        .sign_message_sync(grant_message(&grant).as_bytes())
        .map_err(|e| ClientError::Signing(e.to_string()))?;
    let bytes: Bytes = sig.as_bytes().to_vec().into();
    Ok(format!(
        "{KEY_PREFIX}{}",
        alloy_primitives::hex::encode((grant, bytes).abi_encode_params())
    ))
}

/// Makes a socket key: `signer`, the socket's holder, signs `grant` for `socket`.
pub fn make_socket(
    signer: &alloy_signer_local::PrivateKeySigner,
    grant: Grant,
    socket: U256,
) -> Result<String, ClientError> {
    let sig = signer
        .sign_message_sync(socket_grant_message(&grant, socket).as_bytes())
        .map_err(|e| ClientError::Signing(e.to_string()))?;
    let bytes: Bytes = sig.as_bytes().to_vec().into();
    Ok(format!(
        "{SOCKET_KEY_PREFIX}{}",
        alloy_primitives::hex::encode((grant, bytes, socket).abi_encode_params())
    ))
}

/// A grant for any request, from now for `secs` seconds, up to `limit` wei.
pub fn grant(chain_id: u64, router: Address, nonce: u64, secs: u64, limit: U256) -> Grant {
    Grant {
        chainId: chain_id,
        router,
        nonce,
        expires: now() + secs,
        limit,
        request: B256::ZERO,
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unauthorized(m: impl Into<String>) -> ClientError {
    ClientError::Key(m.into())
}

/// Decodes a key and recovers its account.
pub fn parse(key: &str) -> Result<ApiKey, ClientError> {
    if key.len() > MAX_KEY {
        return Err(unauthorized("the API key is too long to be an EMC key"));
    }
    if let Some(hex) = key.strip_prefix(SOCKET_KEY_PREFIX) {
        return parse_socket(hex);
    }
    let hex = key.strip_prefix(KEY_PREFIX).ok_or_else(|| {
        unauthorized(format!(
            "an EMC API key starts with {KEY_PREFIX:?}; make one with `emc gateway key`"
        ))
    })?;
    let raw = alloy_primitives::hex::decode(hex)
        .map_err(|_| unauthorized("the API key is not hex after its prefix"))?;
    let (grant, signature) = <(Grant, Bytes)>::abi_decode_params(&raw)
        .map_err(|_| unauthorized("the API key does not decode as a grant and signature"))?;
    let account = grant_signer(&grant, &signature).map_err(unauthorized)?;
    let id = grant_id(account, &grant);
    Ok(ApiKey {
        id,
        spend: id,
        limit: grant.limit,
        grant,
        signature,
        account,
        socket: None,
    })
}

fn parse_socket(hex: &str) -> Result<ApiKey, ClientError> {
    let raw = alloy_primitives::hex::decode(hex)
        .map_err(|_| unauthorized("the socket key is not hex after its prefix"))?;
    let (grant, signature, socket) =
        <(Grant, Bytes, U256)>::abi_decode_params(&raw).map_err(|_| {
            unauthorized("the socket key does not decode as a grant, signature and socket")
        })?;
    let account = socket_grant_signer(&grant, socket, &signature).map_err(unauthorized)?;
    let id = socket_grant_id(socket, account, &grant);
    Ok(ApiKey {
        id,
        spend: id,
        limit: grant.limit,
        grant,
        signature,
        account,
        socket: Some(socket),
    })
}

/// Checks a key against this chain, this router and the time.
pub fn check(k: &ApiKey, chain_id: u64, router: Address, now: u64) -> Result<(), ClientError> {
    if k.grant.chainId != chain_id {
        return Err(unauthorized(format!(
            "the API key is for chain {}, this network is chain {chain_id}",
            k.grant.chainId
        )));
    }
    if !k.grant.router.is_zero() && k.grant.router != router {
        return Err(unauthorized(format!(
            "the API key is for router {}, this is {router}",
            k.grant.router
        )));
    }
    if now >= k.grant.expires {
        return Err(unauthorized(format!(
            "the API key expired {} s ago",
            now - k.grant.expires
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> alloy_signer_local::PrivateKeySigner {
        alloy_signer_local::PrivateKeySigner::from_bytes(&B256::repeat_byte(5)).unwrap()
    }

    #[test]
    fn a_key_names_its_account_and_any_change_breaks_it() {
        let s = signer();
        let key = make(&s, grant(42, Address::ZERO, 1, 60, U256::from(100))).unwrap();
        let k = parse(&key).unwrap();
        assert_eq!(k.account, s.address());
        check(&k, 42, Address::repeat_byte(1), now()).unwrap();
        // Flip one hex digit inside the grant's limit: another account, or no key.
        let mut bad = key.clone().into_bytes();
        let i = KEY_PREFIX.len() + 64 * 4 + 60;
        bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
        match parse(std::str::from_utf8(&bad).unwrap()) {
            Ok(k2) => assert_ne!(k2.account, s.address()),
            Err(e) => assert!(matches!(e, ClientError::Key(_)), "{e}"),
        }
    }

    #[test]
    fn a_socket_key_names_its_socket_and_signer() {
        let s = signer();
        let g = grant(42, Address::ZERO, 1, 60, U256::MAX);
        let key = make_socket(&s, g.clone(), U256::from(7)).unwrap();
        let k = parse(&key).unwrap();
        assert_eq!((k.account, k.socket), (s.address(), Some(U256::from(7))));
        // The same grant as an escrow key is another key, with another id.
        let escrow = parse(&make(&s, g).unwrap()).unwrap();
        assert_eq!((escrow.account, escrow.socket), (s.address(), None));
        assert_ne!(escrow.id, k.id);
        assert!(parse("emc_socket_00")
            .unwrap_err()
            .to_string()
            .contains("does not decode"));
    }

    #[test]
    fn bad_keys_are_refused_with_reasons() {
        let s = signer();
        let msg = |r: Result<ApiKey, ClientError>| r.unwrap_err().to_string();
        assert!(msg(parse("sk-123")).contains("starts with \"emc_\""));
        assert!(msg(parse("emc_zz")).contains("not hex"));
        assert!(msg(parse("emc_00")).contains("does not decode"));
        assert!(msg(parse(&"x".repeat(5000))).contains("too long"));
        let expired = grant(42, Address::ZERO, 1, 0, U256::from(1));
        let k = parse(&make(&s, expired).unwrap()).unwrap();
        assert!(check(&k, 42, Address::ZERO, now() + 5)
            .unwrap_err()
            .to_string()
            .contains("expired"));
        let k = parse(&make(&s, grant(7, Address::ZERO, 1, 60, U256::from(1))).unwrap()).unwrap();
        assert!(check(&k, 42, Address::ZERO, now())
            .unwrap_err()
            .to_string()
            .contains("chain 7"));
        let k = parse(&make(&s, grant(42, Address::repeat_byte(3), 1, 60, U256::from(1))).unwrap())
            .unwrap();
        assert!(check(&k, 42, Address::repeat_byte(4), now())
            .unwrap_err()
            .to_string()
            .contains("for router"));
    }
}
