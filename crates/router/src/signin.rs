//! Sign-In with Ethereum at the gateway: session keys beside API keys.
//!
//! 1. `GET /v1/siwe/nonce` hands out a fresh nonce (kept [`NONCE_TTL`], at most
//!    [`MAX_NONCES`] outstanding).
//! 2. `POST /v1/siwe` with `{"message", "signature"}`: the message must name this
//!    gateway's host as its domain and a nonce this gateway issued and nobody used;
//!    the router then sends `open` to the Sessions module (`emc_modules::sessions`),
//!    which checks the signature (EOA, or EIP-1271 for a contract wallet), the chain,
//!    the time and the account's nonce on chain. An account with nothing to pay from
//!    (no escrow, a socket it does not hold) is refused first (402, 403): opening a
//!    session costs the router gas. The gateway first has the chain
//!    estimate the transaction, so a message the chain would refuse costs the router
//!    no gas and the client hears the chain's reason (401). The answer, once the
//!    transaction is in a block, is the session as the chain holds it.
//! 3. From then on the session key signs ordinary EMC keys (`emc_client::keys`; a
//!    socket key for a socket session): [`SignIns::resolve`] sees that a key's signer
//!    is a session key on chain and makes the key pay as the session's account, with
//!    the session's spending counter, limit and end, and refuses apps outside the
//!    session (403), a revoked or ended session (401).
//!
//! Sessions live on chain, so every router honours every session, and settlement
//! checks the same terms again ([`emc_modules::tasks`]).

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_sol_types::SolCall;
use emc_client::keys::ApiKey;
use emc_client::{ChainClient, ChainClientExt, ClientError};
use emc_identity::siwe;
use emc_modules::sessions::{spend_id, ISessions, ESCROW, SOCKET};
use emc_modules::sockets::ISockets;
use emc_modules::tasks::ITasks;
use emc_modules::{SESSIONS_ADDRESS, SOCKETS_ADDRESS, TASKS_ADDRESS};
use emc_protocol::CallError;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an issued nonce may wait for its sign-in.
pub const NONCE_TTL: Duration = Duration::from_secs(600);
/// Most nonces outstanding at once (a client that asks for more waits them out).
pub const MAX_NONCES: usize = 100_000;
/// Sessions kept per block (one view per session key and block otherwise).
const SESSION_CACHE: usize = 10_000;
/// How long a sign-in waits for its transaction.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct SignIns {
    chain: Arc<dyn ChainClient>,
    account: alloy_signer_local::PrivateKeySigner,
    chain_id: u64,
    nonces: Mutex<HashMap<String, Instant>>,
    /// Sessions as of a height: `(height, key → session)`.
    sessions: Mutex<(u64, HashMap<Address, ISessions::Session>)>,
}

/// A session as the sign-in answers it.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Opened {
    /// EIP-55 checksummed, as the message writes addresses.
    pub session_key: String,
    pub account: String,
    pub expires: u64,
    pub scope: &'static str,
    pub limit: String,
    pub socket: String,
    pub apps: Vec<String>,
    pub tx: B256,
}

impl SignIns {
    pub fn new(
        chain: Arc<dyn ChainClient>,
        account: alloy_signer_local::PrivateKeySigner,
        chain_id: u64,
    ) -> Self {
        Self {
            chain,
            account,
            chain_id,
            nonces: Mutex::default(),
            sessions: Mutex::default(),
        }
    }

    /// The chain its sessions are on.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// A fresh nonce (EIP-4361: at least 8 alphanumerics; these are 16).
    pub fn nonce(&self) -> Result<String, CallError> {
        let mut n = self.nonces.lock();
        n.retain(|_, at| at.elapsed() < NONCE_TTL);
        if n.len() >= MAX_NONCES {
            return Err(CallError::Saturated(
                "too many sign-ins are waiting; ask for a nonce again shortly".into(),
            ));
        }
        let nonce: String = {
            use rand::Rng;
            let mut r = rand::thread_rng();
            (0..16)
                .map(|_| {
                    let c = r.gen_range(0..62u8);
                    (match c {
                        0..=9 => b'0' + c,
                        10..=35 => b'a' + c - 10,
                        _ => b'A' + c - 36,
                    }) as char
                })
                .collect()
        };
        n.insert(nonce.clone(), Instant::now());
        Ok(nonce)
    }

    /// Opens the session `message` delegates, signed by `signature`, for a client that
    /// reached this gateway as `host`.
    pub async fn open(
        &self,
        host: Option<&str>,
        message: &str,
        signature: &[u8],
    ) -> Result<Opened, CallError> {
        let unauthorized = |m: String| CallError::Unauthorized(m);
        let s = siwe::parse(message).map_err(|e| unauthorized(e.to_string()))?;
        if let Some(host) = host {
            if !s.domain.eq_ignore_ascii_case(host) {
                return Err(unauthorized(format!(
                    "the message is for {:?}, this gateway is {host:?}",
                    s.domain
                )));
            }
        }
        if let Some(why) = s.refusal_at(self.chain_id, emc_client::keys::now()) {
            return Err(unauthorized(why));
        }
        // The nonce is spent whether or not the chain then opens the session.
        if self.nonces.lock().remove(&s.nonce).is_none() {
            return Err(CallError::Replayed(format!(
                "nonce {:?} was not issued by this gateway or was already used (GET /v1/siwe/nonce)",
                s.nonce
            )));
        }
        self.can_pay(&s).await?;
        let data = ISessions::openCall {
            message: message.to_string(),
            signature: signature.to_vec().into(),
        }
        .abi_encode();
        let chain_says = |e: ClientError| match e {
            ClientError::Reverted(why) => unauthorized(why),
            other => CallError::Unavailable(other.to_string()),
        };
        let tx = {
            let _one = crate::chain::SENDING.lock().await;
            self.chain
                .send(
                    &self.account,
                    SESSIONS_ADDRESS,
                    U256::ZERO,
                    data.into(),
                    None,
                )
                .await
                .map_err(chain_says)?
        };
        let outcome = self
            .chain
            .wait(tx, OPEN_TIMEOUT)
            .await
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        if !outcome.success {
            return Err(unauthorized(format!(
                "the Sessions module refused the sign-in ({tx})"
            )));
        }
        let (scope, limit, socket) = match s.target {
            siwe::Target::Escrow { limit } => ("escrow", limit, U256::ZERO),
            siwe::Target::Socket { id } => ("socket", U256::ZERO, id),
        };
        Ok(Opened {
            session_key: s.session_key.to_checksum(None),
            account: s.account.to_checksum(None),
            expires: s.expires,
            scope,
            limit: limit.to_string(),
            socket: socket.to_string(),
            apps: s.apps,
            tx,
        })
    }

    /// Refuses a sign-in whose account has nothing to pay from (no escrow; a socket
    /// it does not hold): the router pays for opening a session, so an account that
    /// could never pay for a call must not make it pay (a sign-in costs the signer at
    /// least the deposit it made, as it costs the router the `open`).
    async fn can_pay(&self, s: &siwe::SignIn) -> Result<(), CallError> {
        let unavailable = |e: ClientError| CallError::Unavailable(e.to_string());
        match s.target {
            siwe::Target::Escrow { .. } => {
                let e = self
                    .chain
                    .view(TASKS_ADDRESS, ITasks::escrowOfCall { account: s.account })
                    .await
                    .map_err(unavailable)?;
                if (e.balance + e.pending).is_zero() {
                    return Err(CallError::Payment(format!(
                        "{} has no escrow: deposit first (`emc escrow deposit`), then sign in",
                        s.account
                    )));
                }
            }
            siwe::Target::Socket { id } => {
                let sock = match self
                    .chain
                    .view(SOCKETS_ADDRESS, ISockets::socketCall { tokenId: id })
                    .await
                {
                    Ok(sock) => sock,
                    Err(ClientError::Reverted(_)) => ISockets::Socket::default(),
                    Err(e) => return Err(unavailable(e)),
                };
                // The view's user is zero when none is set or its rental ended.
                let holder = if sock.user.is_zero() {
                    sock.owner
                } else {
                    sock.user
                };
                if holder != s.account || sock.owner.is_zero() {
                    return Err(CallError::Forbidden(format!(
                        "{} does not hold socket {id}",
                        s.account
                    )));
                }
            }
        }
        Ok(())
    }

    /// The session key `k` opened, at the head (cached per block); `None`: not one.
    async fn session(&self, k: Address) -> Result<Option<ISessions::Session>, CallError> {
        let unavailable = |e: ClientError| CallError::Unavailable(e.to_string());
        let height = self.chain.height().await.map_err(unavailable)?;
        {
            let mut c = self.sessions.lock();
            if c.0 != height {
                *c = (height, HashMap::new());
            }
            if let Some(s) = c.1.get(&k) {
                return Ok((!s.account.is_zero()).then(|| s.clone()));
            }
        }
        let s = self
            .chain
            .view(SESSIONS_ADDRESS, ISessions::sessionCall { sessionKey: k })
            .await
            .map_err(unavailable)?;
        let mut c = self.sessions.lock();
        if c.0 == height && c.1.len() < SESSION_CACHE {
            c.1.insert(k, s.clone());
        }
        Ok((!s.account.is_zero()).then_some(s))
    }

    /// `key` as it pays for a call of `app`: unchanged when its signer is no session
    /// key; otherwise paying as the session's account within the session's terms.
    pub async fn resolve(&self, mut key: ApiKey, app: &str) -> Result<ApiKey, CallError> {
        let Some(s) = self.session(key.account).await? else {
            return Ok(key);
        };
        let refusal = terms_refusal(&s, &key, app, emc_client::keys::now());
        if let Some(e) = refusal {
            return Err(e);
        }
        if s.kind == ESCROW {
            key.spend = spend_id(key.account);
            key.limit = key.limit.min(s.limit);
        }
        key.account = s.account;
        Ok(key)
    }
}

/// Why a session `s` does not cover `key` calling `app` at `now`.
fn terms_refusal(s: &ISessions::Session, key: &ApiKey, app: &str, now: u64) -> Option<CallError> {
    if s.revoked {
        return Some(CallError::Unauthorized("the session was revoked".into()));
    }
    if now >= s.expires {
        return Some(CallError::Unauthorized(format!(
            "the session ended at {} (sign in again)",
            emc_identity::iso_date(s.expires)
        )));
    }
    match (s.kind, key.socket) {
        (ESCROW, None) => {}
        (SOCKET, Some(id)) if id == s.socket => {}
        (SOCKET, _) => {
            return Some(CallError::Forbidden(format!(
                "the session pays from socket {}: sign a socket key for it",
                s.socket
            )))
        }
        _ => {
            return Some(CallError::Forbidden(
                "the session pays from escrow: sign an escrow key".into(),
            ))
        }
    }
    if !s.apps.is_empty() && !s.apps.contains(&keccak256(app.as_bytes())) {
        return Some(CallError::Forbidden(format!(
            "the session does not allow the app {app:?}"
        )));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use emc_modules::tasks::ITasks::Grant;

    fn key(socket: Option<U256>) -> ApiKey {
        ApiKey {
            grant: Grant::default(),
            signature: Default::default(),
            account: Address::repeat_byte(1),
            id: B256::ZERO,
            socket,
            limit: U256::MAX,
            spend: B256::ZERO,
        }
    }

    fn session(kind: u8, apps: &[&str]) -> ISessions::Session {
        ISessions::Session {
            account: Address::repeat_byte(2),
            expires: 1_000,
            kind,
            limit: U256::from(10),
            socket: U256::from(7),
            apps: apps.iter().map(|a| keccak256(a.as_bytes())).collect(),
            revoked: false,
        }
    }

    #[test]
    fn a_session_covers_its_apps_its_payer_and_its_time_only() {
        let s = session(ESCROW, &["echo"]);
        assert!(terms_refusal(&s, &key(None), "echo", 999).is_none());
        let status = |e: Option<CallError>| e.map(|e| e.status());
        assert_eq!(
            status(terms_refusal(&s, &key(None), "chat", 999)),
            Some(403)
        );
        assert_eq!(
            status(terms_refusal(&s, &key(None), "echo", 1_000)),
            Some(401)
        );
        assert_eq!(
            status(terms_refusal(&s, &key(Some(U256::from(7))), "echo", 9)),
            Some(403)
        );
        let sock = session(SOCKET, &[]);
        assert!(terms_refusal(&sock, &key(Some(U256::from(7))), "any", 9).is_none());
        assert_eq!(
            status(terms_refusal(&sock, &key(Some(U256::from(8))), "any", 9)),
            Some(403)
        );
        let revoked = ISessions::Session { revoked: true, ..s };
        assert_eq!(
            status(terms_refusal(&revoked, &key(None), "echo", 9)),
            Some(401)
        );
    }
}
