//! The `Sessions` system contract (`0x…1009`): session keys opened by Sign-In with
//! Ethereum, so a wallet user signs once and a throw-away key signs the calls.
//!
//! `open(message, signature)` takes a standard EIP-4361 message whose ReCap (EIP-5573)
//! delegates an escrow budget or a socket, and apps, to the session key its URI names
//! (the rules are `emc_identity::siwe`'s), and the account's signature over it:
//!
//! * an EOA's 65-byte EIP-191 signature, recovered here; otherwise, when the account
//!   holds code, its EIP-1271 `isValidSignature(eip191Hash(message), signature)` must
//!   answer `0x1626ba7e` (the module asks through its trampoline, [`crate::kit::callout`],
//!   after recording the session, so a refusal undoes it); an account without code
//!   whose signature does not recover is refused;
//! * the message's chain is this chain, it is valid at the block's time (`Not Before`,
//!   `Expiration Time`), and its nonce was never used by the account before (a replayed
//!   message is refused, here and at the gateway);
//! * a session key opens once: it is bound to one account for good (revoked or not).
//!
//! Anyone may send `open` (a gateway does, for its users); what opens is only what the
//! account signed. `revoke(sessionKey)` by the account ends a session at once.
//!
//! The Tasks module settles a call whose grant the session key signed as the
//! account's, while the session lasts (plus the settle window, like any grant), for an
//! app the session allows, from one spending counter for all the session's grants
//! ([`spend_id`]) capped by the session's limit; the Sockets module likewise for a
//! socket session, while the account holds the socket ([`payer`]).
//!
//! Bounds: a message of at most 8 KiB, at most 16 apps (stored as their hashes).

mod abi;
#[cfg(test)]
mod tests;

use crate::kit::abi::emit;
use crate::kit::callout::CallOut;
use crate::kit::slots::{DoubleMapping, Records};
use crate::{Metered, ModuleCall, ModuleError, SESSIONS_ADDRESS};
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolInterface};
use emc_identity::siwe::{self, Target, MAX_APPS};

pub use abi::{ISessions, IERC1271};

/// EIP-1271's answer for a valid signature.
pub const ERC1271_MAGIC: [u8; 4] = [0x16, 0x26, 0xba, 0x7e];
pub const ESCROW: u8 = 1;
pub const SOCKET: u8 = 2;

/// `mapping(address => Session)`, fields below (the apps' hashes from [`f::APPS`]).
const SESSIONS: Records<Address> = Records::at(0);
/// `[account][keccak(nonce)]` = used.
const NONCES: DoubleMapping<Address, B256, bool> = DoubleMapping::at(1);

mod f {
    pub const ACCOUNT: u64 = 0;
    pub const EXPIRES: u64 = 1;
    pub const KIND: u64 = 2;
    pub const LIMIT: u64 = 3;
    pub const SOCKET: u64 = 4;
    pub const REVOKED: u64 = 5;
    pub const APP_COUNT: u64 = 6;
    /// The apps' hashes, one field each.
    pub const APPS: u64 = 7;
}

fn revert(why: impl std::fmt::Display) -> ModuleError {
    crate::kit::abi::revert("Sessions", why)
}

/// The spending counter (a Tasks grant id) all of a session's grants share.
pub fn spend_id(session_key: Address) -> B256 {
    keccak256([b"emc session ".as_slice(), session_key.as_slice()].concat())
}

/// What a session lets a grant signed by its key do: pay as `account`, from escrow
/// up to `limit` or from `socket`, until `expires`, for the apps whose hashes it lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payer {
    pub account: Address,
    pub expires: u64,
    pub kind: u8,
    pub limit: U256,
    pub socket: U256,
    pub apps: Vec<B256>,
}

impl Payer {
    pub fn allows(&self, app: &str) -> bool {
        self.apps.is_empty() || self.apps.contains(&keccak256(app.as_bytes()))
    }

    /// Why a receipt of `app` signed by this session cannot be settled at `now`
    /// (`window`: the settle window after expiry).
    pub fn refusal(&self, app: &str, now: u64, window: u64) -> Option<String> {
        if now > self.expires.saturating_add(window) {
            return Some("the session expired".into());
        }
        if !self.allows(app) {
            return Some(format!("the session does not allow the app {app:?}"));
        }
        None
    }
}

/// The open (unrevoked) session of `key`, read from any module.
pub fn payer(m: &mut Metered<'_>, key: Address) -> Result<Option<Payer>, ModuleError> {
    let account: Address = SESSIONS.get_in(m, SESSIONS_ADDRESS, &key, f::ACCOUNT)?;
    if account.is_zero() || SESSIONS.get_in::<bool>(m, SESSIONS_ADDRESS, &key, f::REVOKED)? {
        return Ok(None);
    }
    let n: u64 = SESSIONS.get_in(m, SESSIONS_ADDRESS, &key, f::APP_COUNT)?;
    let mut apps = Vec::with_capacity(n.min(MAX_APPS as u64) as usize);
    for i in 0..n.min(MAX_APPS as u64) {
        apps.push(SESSIONS.get_in(m, SESSIONS_ADDRESS, &key, f::APPS + i)?);
    }
    Ok(Some(Payer {
        account,
        expires: SESSIONS.get_in(m, SESSIONS_ADDRESS, &key, f::EXPIRES)?,
        kind: SESSIONS.get_in::<u64>(m, SESSIONS_ADDRESS, &key, f::KIND)? as u8,
        limit: SESSIONS.get_in(m, SESSIONS_ADDRESS, &key, f::LIMIT)?,
        socket: SESSIONS.get_in(m, SESSIONS_ADDRESS, &key, f::SOCKET)?,
        apps,
    }))
}

pub struct SessionsModule;

impl crate::kit::SystemModule for SessionsModule {
    fn address(&self) -> Address {
        SESSIONS_ADDRESS
    }

    fn name(&self) -> &'static str {
        "Sessions"
    }

    fn calls_out(&self) -> bool {
        true
    }

    fn call(&self, m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        use ISessions::ISessionsCalls as C;
        let c =
            C::abi_decode(call.input).map_err(|_| revert("unknown function or bad arguments"))?;
        if !call.value.is_zero() {
            return Err(revert("this module takes no value"));
        }
        let view = matches!(c, C::session(_) | C::nonceUsed(_));
        if call.is_static && !view {
            return Err(revert("state change in a static call"));
        }
        Ok(match c {
            C::open(c) => {
                let key = open(m, &c.message, &c.signature)?;
                ISessions::openCall::abi_encode_returns(&key).into()
            }
            C::revoke(c) => {
                revoke(m, call.caller, c.sessionKey)?;
                Bytes::new()
            }
            C::session(c) => {
                ISessions::sessionCall::abi_encode_returns(&session(m, c.sessionKey)?).into()
            }
            C::nonceUsed(c) => {
                let used = NONCES.get(m, &c.account, &siwe::nonce_hash(&c.nonce))?;
                ISessions::nonceUsedCall::abi_encode_returns(&used).into()
            }
        })
    }
}

/// Opens the session a signed message delegates (the rules in the header).
fn open(m: &mut Metered<'_>, message: &str, signature: &[u8]) -> Result<Address, ModuleError> {
    // Parsing is bounded by the message's size: priced per byte like calldata hashing.
    m.charge(200 + 6 * message.len().div_ceil(32) as u64)?;
    let s = siwe::parse(message).map_err(revert)?;
    if let Some(why) = s.refusal_at(m.host().chain_id(), m.host().timestamp()) {
        return Err(revert(why));
    }
    let nonce = siwe::nonce_hash(&s.nonce);
    if NONCES.get(m, &s.account, &nonce)? {
        return Err(revert(format!(
            "nonce {:?} was already used by {}",
            s.nonce, s.account
        )));
    }
    let key = s.session_key;
    if !SESSIONS.get::<Address>(m, &key, f::ACCOUNT)?.is_zero() {
        return Err(revert(format!("session key {key} is already in use")));
    }
    m.charge_signature()?;
    let hash = siwe::signing_hash(message);
    let by_eoa = alloy_primitives::Signature::try_from(signature)
        .ok()
        .and_then(|sig| sig.recover_address_from_prehash(&hash).ok())
        == Some(s.account);
    let contract = !by_eoa;
    if contract && !m.has_code(s.account)? {
        return Err(revert(format!(
            "the signature is not {}'s, and the account has no code to ask (EIP-1271)",
            s.account
        )));
    }
    NONCES.set(m, &s.account, &nonce, &true)?;
    record(m, &s)?;
    let (kind, limit, socket) = terms(&s.target);
    emit(
        m,
        ISessions::SessionOpened {
            sessionKey: key,
            account: s.account,
            nonceHash: nonce,
            expires: s.expires,
            kind,
            limit,
            socket,
            contractWallet: contract,
        },
    );
    if contract {
        m.call_out(CallOut {
            target: s.account,
            data: IERC1271::isValidSignatureCall {
                hash,
                signature: signature.to_vec().into(),
            }
            .abi_encode()
            .into(),
            expected: ERC1271_MAGIC,
            refusal: crate::kit::abi::revert_data(&format!(
                "Sessions: the wallet {} did not accept the signature (EIP-1271)",
                s.account
            )),
        })?;
    }
    Ok(key)
}

/// A target as the session stores it: its kind, escrow limit and socket.
fn terms(t: &Target) -> (u8, U256, U256) {
    match *t {
        Target::Escrow { limit } => (ESCROW, limit, U256::ZERO),
        Target::Socket { id } => (SOCKET, U256::ZERO, id),
    }
}

fn record(m: &mut Metered<'_>, s: &siwe::SignIn) -> Result<(), ModuleError> {
    let key = &s.session_key;
    let (kind, limit, socket) = terms(&s.target);
    SESSIONS.set(m, key, f::ACCOUNT, &s.account)?;
    SESSIONS.set(m, key, f::EXPIRES, &s.expires)?;
    SESSIONS.set(m, key, f::KIND, &U256::from(kind))?;
    SESSIONS.set(m, key, f::LIMIT, &limit)?;
    SESSIONS.set(m, key, f::SOCKET, &socket)?;
    SESSIONS.set(m, key, f::APP_COUNT, &(s.apps.len() as u64))?;
    for (i, app) in s.apps.iter().enumerate() {
        SESSIONS.set(m, key, f::APPS + i as u64, &keccak256(app.as_bytes()))?;
    }
    Ok(())
}

fn revoke(m: &mut Metered<'_>, caller: Address, key: Address) -> Result<(), ModuleError> {
    let account: Address = SESSIONS.get(m, &key, f::ACCOUNT)?;
    if account.is_zero() {
        return Err(revert(format!("no session has key {key}")));
    }
    if account != caller {
        return Err(revert(format!("only {account} revokes session {key}")));
    }
    SESSIONS.set(m, &key, f::REVOKED, &true)?;
    emit(
        m,
        ISessions::SessionRevoked {
            sessionKey: key,
            account,
        },
    );
    Ok(())
}

fn session(m: &mut Metered<'_>, key: Address) -> Result<ISessions::Session, ModuleError> {
    let account: Address = SESSIONS.get(m, &key, f::ACCOUNT)?;
    if account.is_zero() {
        return Ok(ISessions::Session::default());
    }
    let n: u64 = SESSIONS.get(m, &key, f::APP_COUNT)?;
    let mut apps = Vec::new();
    for i in 0..n.min(MAX_APPS as u64) {
        apps.push(SESSIONS.get(m, &key, f::APPS + i)?);
    }
    Ok(ISessions::Session {
        account,
        expires: SESSIONS.get(m, &key, f::EXPIRES)?,
        kind: SESSIONS.get::<u64>(m, &key, f::KIND)? as u8,
        limit: SESSIONS.get(m, &key, f::LIMIT)?,
        socket: SESSIONS.get(m, &key, f::SOCKET)?,
        apps,
        revoked: SESSIONS.get(m, &key, f::REVOKED)?,
    })
}
