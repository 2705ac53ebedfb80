//! Sign-In with Ethereum (EIP-4361) for session keys, scoped by ReCap (EIP-5573).
//!
//! A wallet signs one standard SIWE message; from then on a **session key** (a
//! throw-away secp256k1 key the client made) signs its calls. The message says:
//!
//! * `address`: the account that pays (an EOA, or a contract wallet that signs
//!   through EIP-1271 over the message's EIP-191 hash);
//! * `URI`: the session key, as `did:pkh:eip155:<chainId>:<address>` (EIP-5573: the
//!   URI is the delegee);
//! * `Chain ID`, `Nonce` (issued by the gateway, used once), `Issued At`, an
//!   `Expiration Time` (required: a session always ends) and optionally `Not Before`;
//! * its last resource, a ReCap whose statement the message carries, granting exactly
//!   one EMC capability:
//!   - `urn:emc:escrow` / `emc/spend`, caveat `{"limit": "<wei>", "apps": [...]}`:
//!     calls paid from the account's escrow in the Tasks module, all of the session's
//!     calls together at most `limit` wei;
//!   - `urn:emc:socket:<tokenId>` / `emc/use`, caveat `{"apps": [...]}` (optional):
//!     calls paid from a computing socket the account holds.
//!
//!   `apps` lists the apps (models) the session may call, at most [`MAX_APPS`] names;
//!   absent, any app.
//!
//! [`parse`] reads a message with the `siwe` crate (EIP-4361's grammar) and this
//! module's rules; it checks no signature and no time: the Sessions module checks
//! the signature against the chain (EOA or EIP-1271) and the time against the block,
//! the gateway against its clock ([`SignIn::refusal_at`]). Signatures are always over
//! the exact text the wallet signed, never a re-rendering of it.

use crate::recap::{self, Capabilities};
use crate::IdentityError;
use alloy_primitives::{keccak256, Address, B256, U256};

/// The longest SIWE message accepted, bytes.
pub const MAX_MESSAGE_BYTES: usize = 8_192;
/// The most apps a session may name.
pub const MAX_APPS: usize = 16;
/// The longest app name.
pub const MAX_APP_BYTES: usize = 64;
/// The ReCap resource of escrow spending, and its ability.
pub const ESCROW_RESOURCE: &str = "urn:emc:escrow";
pub const SPEND: &str = "emc/spend";
/// The ReCap resource prefix of a socket (`urn:emc:socket:<tokenId>`), and its ability.
pub const SOCKET_RESOURCE: &str = "urn:emc:socket:";
pub const USE: &str = "emc/use";

/// What a session may pay from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The account's escrow, up to `limit` wei over all the session's calls.
    Escrow { limit: U256 },
    /// Computing socket `id`, which the account must hold when a call is settled.
    Socket { id: U256 },
}

/// A parsed sign-in: who delegates what to which session key, until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignIn {
    pub domain: String,
    pub account: Address,
    pub session_key: Address,
    pub chain_id: u64,
    pub nonce: String,
    pub issued_at: u64,
    pub not_before: Option<u64>,
    pub expires: u64,
    pub target: Target,
    /// Empty: any app.
    pub apps: Vec<String>,
}

fn bad(why: impl Into<String>) -> IdentityError {
    IdentityError::SignIn(why.into())
}

/// The EIP-191 hash a wallet signs for `message` (what EIP-1271 wallets are asked).
pub fn signing_hash(message: &str) -> B256 {
    alloy_primitives::eip191_hash_message(message.as_bytes())
}

/// The hash that names a nonce of an account (nonces are strings).
pub fn nonce_hash(nonce: &str) -> B256 {
    keccak256(nonce.as_bytes())
}

/// Reads a SIWE message by EIP-4361 and the rules above.
pub fn parse(message: &str) -> Result<SignIn, IdentityError> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(bad(format!(
            "the message is {} bytes, over {MAX_MESSAGE_BYTES}",
            message.len()
        )));
    }
    let m: siwe::Message = message
        .parse()
        .map_err(|e| bad(format!("not a Sign-In with Ethereum message: {e}")))?;
    let unix = |t: &siwe::TimeStamp| t.as_ref().unix_timestamp().max(0) as u64;
    let expires = m
        .expiration_time
        .as_ref()
        .map(unix)
        .ok_or_else(|| bad("the message has no Expiration Time: a session must end"))?;
    let session_key = session_key(m.uri.as_str(), m.chain_id)?;
    let last = m
        .resources
        .last()
        .map(|r| r.as_str())
        .filter(|r| r.starts_with(recap::PREFIX))
        .ok_or_else(|| bad("the message's last resource is not a ReCap (urn:recap:...)"))?;
    let caps = Capabilities::decode(last)?;
    let expected = caps.statement();
    if !m.statement.as_deref().unwrap_or("").ends_with(&expected) {
        return Err(bad(format!(
            "the statement does not end with what the ReCap grants: {expected:?}"
        )));
    }
    let (target, apps) = scope(&caps)?;
    Ok(SignIn {
        domain: m.domain.to_string(),
        account: Address::from(m.address),
        session_key,
        chain_id: m.chain_id,
        nonce: m.nonce.clone(),
        issued_at: unix(&m.issued_at),
        not_before: m.not_before.as_ref().map(unix),
        expires,
        target,
        apps,
    })
}

/// The session key a `did:pkh` URI names, on `chain_id`.
fn session_key(uri: &str, chain_id: u64) -> Result<Address, IdentityError> {
    let want = format!("did:pkh:eip155:{chain_id}:");
    let addr = uri.strip_prefix(&want).ok_or_else(|| {
        bad(format!(
            "the URI {uri:?} is not the session key as {want}<address>"
        ))
    })?;
    addr.parse::<Address>()
        .map_err(|_| bad(format!("the URI's session key {addr:?} is not an address")))
}

/// The one EMC capability of a ReCap: its target and apps.
fn scope(caps: &Capabilities) -> Result<(Target, Vec<String>), IdentityError> {
    let mut found = None;
    for (uri, abilities) in &caps.att {
        let target = if uri == ESCROW_RESOURCE {
            let caveat = only(abilities, SPEND, uri)?;
            let limit = caveat
                .and_then(|c| c.get("limit"))
                .and_then(|l| l.as_str())
                .and_then(|l| l.parse::<U256>().ok())
                .ok_or_else(|| {
                    bad(format!(
                        "{uri} needs a caveat limit, a decimal string of wei"
                    ))
                })?;
            (Target::Escrow { limit }, caveat)
        } else if let Some(id) = uri.strip_prefix(SOCKET_RESOURCE) {
            let id = id
                .parse::<U256>()
                .map_err(|_| bad(format!("{uri}: the socket id is not a number")))?;
            (Target::Socket { id }, only(abilities, USE, uri)?)
        } else {
            continue;
        };
        if found.is_some() {
            return Err(bad("the ReCap grants more than one EMC capability: a session pays from one escrow budget or one socket"));
        }
        found = Some((target.0, apps(target.1)?));
    }
    found.ok_or_else(|| {
        bad(format!(
            "the ReCap grants no EMC capability ({ESCROW_RESOURCE} {SPEND}, or {SOCKET_RESOURCE}<id> {USE})"
        ))
    })
}

/// The one ability `want` of a resource, and its first caveat if any.
fn only<'c>(
    abilities: &'c std::collections::BTreeMap<String, Vec<serde_json::Value>>,
    want: &str,
    uri: &str,
) -> Result<Option<&'c serde_json::Value>, IdentityError> {
    if abilities.len() != 1 || !abilities.contains_key(want) {
        return Err(bad(format!("{uri} grants exactly the ability {want}")));
    }
    Ok(abilities[want].first())
}

fn apps(caveat: Option<&serde_json::Value>) -> Result<Vec<String>, IdentityError> {
    let Some(list) = caveat.and_then(|c| c.get("apps")) else {
        return Ok(vec![]);
    };
    let list = list
        .as_array()
        .ok_or_else(|| bad("the caveat apps is not a list of names"))?;
    if list.is_empty() || list.len() > MAX_APPS {
        return Err(bad(format!(
            "the caveat apps lists 1 to {MAX_APPS} apps, not {}",
            list.len()
        )));
    }
    list.iter()
        .map(|a| match a.as_str() {
            Some(s) if !s.is_empty() && s.len() <= MAX_APP_BYTES => Ok(s.to_string()),
            _ => Err(bad(format!(
                "an app in the caveat is a name of 1 to {MAX_APP_BYTES} bytes, not {a}"
            ))),
        })
        .collect()
}

impl SignIn {
    /// Why the sign-in cannot be used at `now` (Unix seconds) on `chain_id`: another
    /// chain, not yet valid, expired.
    pub fn refusal_at(&self, chain_id: u64, now: u64) -> Option<String> {
        if self.chain_id != chain_id {
            return Some(format!(
                "the message is for chain {}, this is {chain_id}",
                self.chain_id
            ));
        }
        if self.not_before.is_some_and(|t| now < t) || now + 60 < self.issued_at {
            return Some("the message is not valid yet".into());
        }
        if now >= self.expires {
            return Some("the message expired".into());
        }
        None
    }

    /// Whether the session may call `app`.
    pub fn allows(&self, app: &str) -> bool {
        self.apps.is_empty() || self.apps.iter().any(|a| a == app)
    }
}

/// Builds a message for `account` delegating `target` and `apps` to `session_key`
/// (what a client library does; the tests and the CLI use it).
#[allow(clippy::too_many_arguments)]
pub fn message(
    domain: &str,
    account: Address,
    session_key: Address,
    chain_id: u64,
    nonce: &str,
    issued_at: u64,
    expires: u64,
    target: &Target,
    apps: &[String],
) -> String {
    let mut caveat = serde_json::Map::new();
    if !apps.is_empty() {
        caveat.insert("apps".into(), serde_json::json!(apps));
    }
    let (uri, ability) = match target {
        Target::Escrow { limit } => {
            caveat.insert("limit".into(), serde_json::json!(limit.to_string()));
            (ESCROW_RESOURCE.to_string(), SPEND)
        }
        Target::Socket { id } => (format!("{SOCKET_RESOURCE}{id}"), USE),
    };
    let mut caps = Capabilities::default();
    caps.att.insert(
        uri,
        [(ability.to_string(), vec![serde_json::Value::Object(caveat)])].into(),
    );
    format!(
        "{domain} wants you to sign in with your Ethereum account:\n{}\n\n{}\n\nURI: did:pkh:eip155:{chain_id}:{}\nVersion: 1\nChain ID: {chain_id}\nNonce: {nonce}\nIssued At: {issued_at}\nExpiration Time: {expires}\nResources:\n- {}",
        account.to_checksum(None),
        caps.statement(),
        session_key.to_checksum(None),
        caps.encode(),
        issued_at = crate::iso_date(issued_at),
        expires = crate::iso_date(expires),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;

    const ACCOUNT: Address = address!("0x8ba1f109551bD432803012645Ac136ddd64DBA72");
    const SESSION: Address = address!("0x00000000000000000000000000000000000000aa");

    fn escrow(apps: &[&str]) -> String {
        message(
            "gateway.example:8080",
            ACCOUNT,
            SESSION,
            7,
            "abcdefgh12345678",
            1_800_000_000,
            1_800_003_600,
            &Target::Escrow {
                limit: U256::from(5_000),
            },
            &apps.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_session_message_names_its_account_key_budget_apps_and_end() {
        let s = parse(&escrow(&["echo", "embed"])).unwrap();
        assert_eq!(s.account, ACCOUNT);
        assert_eq!(s.session_key, SESSION);
        assert_eq!(s.chain_id, 7);
        assert_eq!(
            s.target,
            Target::Escrow {
                limit: U256::from(5_000)
            }
        );
        assert_eq!(s.apps, ["echo", "embed"]);
        assert_eq!(s.expires - s.issued_at, 3_600);
        assert!(s.allows("echo") && !s.allows("chat"));
        assert_eq!(s.refusal_at(7, s.issued_at + 10), None);
        assert!(s.refusal_at(7, s.expires).unwrap().contains("expired"));
        assert!(s
            .refusal_at(8, s.issued_at)
            .unwrap()
            .contains("for chain 7, this is 8"));
        let any = parse(&escrow(&[])).unwrap();
        assert!(any.allows("chat"));
    }

    #[test]
    fn messages_that_grant_other_than_they_say_are_refused() {
        let m = escrow(&["echo"]);
        // The statement shown to the user no longer matches the ReCap.
        let lied = m.replace("'spend'", "'read'");
        assert!(parse(&lied).unwrap_err().to_string().contains("statement"));
        let no_end = m
            .lines()
            .filter(|l| !l.starts_with("Expiration Time"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(parse(&no_end)
            .unwrap_err()
            .to_string()
            .contains("Expiration"));
        let not_a_key = m.replace("URI: did:pkh:eip155:7:", "URI: https://gateway.example/");
        assert!(parse(&not_a_key)
            .unwrap_err()
            .to_string()
            .contains("session key"));
        assert!(parse("hello").unwrap_err().to_string().contains("Sign-In"));
        let huge = format!("{m}{}", " ".repeat(MAX_MESSAGE_BYTES));
        assert!(parse(&huge).unwrap_err().to_string().contains("over"));
    }

    #[test]
    fn a_socket_session_names_its_socket() {
        let m = message(
            "g.example",
            ACCOUNT,
            SESSION,
            7,
            "abcdefgh12345678",
            1_800_000_000,
            1_800_003_600,
            &Target::Socket { id: U256::from(3) },
            &[],
        );
        let s = parse(&m).unwrap();
        assert_eq!(s.target, Target::Socket { id: U256::from(3) });
        assert!(s.apps.is_empty());
    }
}
