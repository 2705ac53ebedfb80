//! Sealed calls: a request body only the chosen computing node can read, and a reply
//! only the client can read, through routers that see neither.
//!
//! **Keys.** A computing node's encryption key is the X25519 key in its DID document
//! (`emc_identity::node`), announced to its routers with the binding its node key
//! signed ([`SealingKey`]), so anyone who knows the node id checks that the key is that
//! node's without trusting the router that offers it.
//!
//! **Request.** The client seals to one node with HPKE (RFC 9180, base mode,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305): `info` binds the
//! chain id, the call id the router offered and the app ([`info`]); the AAD is the
//! app's path, so a router cannot replay a sealed body on another chain, call, app or
//! path. The plaintext is the inner content type (a 2-byte length, then the text) and
//! the body. The envelope, sent as the call's body with content type
//! [`CONTENT_TYPE`], is the 32-byte encapsulated key and the ciphertext.
//!
//! **Reply.** Both ends export a 32-byte key from the same HPKE context
//! (`"emc sealed reply v1"`); the node seals its reply as records, each a 4-byte
//! big-endian length and a ChaCha20-Poly1305 ciphertext under nonce = the record's
//! number (big-endian in the last 8 of 12 bytes) and AAD = one byte, 1 on the last
//! record and 0 before it. A reply that breaks off before its last record, or whose
//! records were cut, reordered or changed, does not open.
//!
//! **Settlement.** The node hashes and signs what it sent and was sent: the request
//! hash is over the envelope, the result hash over the sealed records. Receipts and
//! disputes therefore never need the plaintext.

pub use crate::node::SealingKey;
use crate::CallError;
use alloy_primitives::B256;
use chacha20poly1305::aead::{Aead as _, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use hpke::{aead::ChaCha20Poly1305 as HpkeChaCha, kdf::HkdfSha256, kem::X25519HkdfSha256};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};

/// The content type of a sealed request body, and of a sealed reply.
pub const CONTENT_TYPE: &str = "application/emc-sealed";
/// The largest record a sealed reply carries (a data chunk and its tag).
pub const MAX_RECORD: usize = crate::wire::DATA_CHUNK + 16;
/// The length of the encapsulated key that opens an envelope.
pub const ENC_LEN: usize = 32;

type Kem = X25519HkdfSha256;

/// What HPKE's `info` binds: `"emc sealed call v1" . chainId(8, BE) . callId . app`.
pub fn info(chain_id: u64, call: B256, app: &str) -> Vec<u8> {
    let mut m = b"emc sealed call v1".to_vec();
    m.extend_from_slice(&chain_id.to_be_bytes());
    m.extend_from_slice(call.as_slice());
    m.extend_from_slice(app.as_bytes());
    m
}

/// What one call is bound to.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    pub chain_id: u64,
    pub call: B256,
    pub app: &'a str,
    pub path: &'a str,
}

fn bad(why: impl std::fmt::Display) -> CallError {
    CallError::BadRequest(format!("sealed call: {why}"))
}

/// The reply key both ends export from the request's HPKE context.
fn reply_key(export: impl FnOnce(&mut [u8; 32]) -> Result<(), hpke::HpkeError>) -> [u8; 32] {
    let mut k = [0u8; 32];
    // Exporting 32 bytes from HKDF-SHA256 cannot fail (the limit is 255 * 32).
    let _ = export(&mut k);
    k
}

const REPLY_CONTEXT: &[u8] = b"emc sealed reply v1";

/// The client's side: seals `body` (of `content_type`) to the node whose X25519 key is
/// `node_key`. Returns the envelope to send and what opens the reply.
pub fn seal_request(
    node_key: &[u8; 32],
    to: Binding<'_>,
    content_type: &str,
    body: &[u8],
) -> Result<(Vec<u8>, ReplyOpener), CallError> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(node_key)
        .map_err(|e| bad(format!("the node's key is not an X25519 key: {e}")))?;
    let ct_len = u16::try_from(content_type.len()).map_err(|_| bad("content type too long"))?;
    let mut rng = rand_core::UnwrapErr(rand_core::OsRng);
    let (enc, mut ctx) = hpke::setup_sender::<HpkeChaCha, HkdfSha256, Kem, _>(
        &OpModeS::Base,
        &pk,
        &info(to.chain_id, to.call, to.app),
        &mut rng,
    )
    .map_err(bad)?;
    let mut plain = Vec::with_capacity(2 + content_type.len() + body.len());
    plain.extend_from_slice(&ct_len.to_be_bytes());
    plain.extend_from_slice(content_type.as_bytes());
    plain.extend_from_slice(body);
    let sealed = ctx.seal(&plain, to.path.as_bytes()).map_err(bad)?;
    let mut envelope = enc.to_bytes().to_vec();
    envelope.extend_from_slice(&sealed);
    let key = reply_key(|k| ctx.export(REPLY_CONTEXT, k));
    Ok((envelope, ReplyOpener::new(key)))
}

/// A request the node opened: its content type and body, and what seals the reply.
pub struct Opened {
    pub content_type: String,
    pub body: Vec<u8>,
    pub reply: ReplySealer,
}

/// The node's side: opens an envelope with its X25519 secret.
pub fn open_request(
    secret: &[u8; 32],
    at: Binding<'_>,
    envelope: &[u8],
) -> Result<Opened, CallError> {
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(secret)
        .map_err(|e| CallError::Config(format!("the node's X25519 secret: {e}")))?;
    if envelope.len() < ENC_LEN + 16 {
        return Err(bad("the envelope is shorter than a key and a tag"));
    }
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&envelope[..ENC_LEN])
        .map_err(|_| bad("the envelope does not begin with an X25519 key"))?;
    let mut ctx = hpke::setup_receiver::<HpkeChaCha, HkdfSha256, Kem>(
        &OpModeR::Base,
        &sk,
        &enc,
        &info(at.chain_id, at.call, at.app),
    )
    .map_err(|_| bad("the envelope's key does not agree with this node's"))?;
    let plain = ctx.open(&envelope[ENC_LEN..], at.path.as_bytes()).map_err(|_| {
        bad("the request does not open with this node's key for this chain, call, app and path (changed, or sealed to another)")
    })?;
    let n = plain
        .get(..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        .ok_or_else(|| bad("no content type"))?;
    let content_type = plain
        .get(2..2 + n)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(|| bad("the content type is not text"))?
        .to_string();
    let body = plain[2 + n..].to_vec();
    let key = reply_key(|k| ctx.export(REPLY_CONTEXT, k));
    Ok(Opened {
        content_type,
        body,
        reply: ReplySealer { key, n: 0 },
    })
}

fn nonce(n: u64) -> chacha20poly1305::Nonce {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_be_bytes());
    b.into()
}

/// Seals a reply's records, in order.
pub struct ReplySealer {
    key: [u8; 32],
    n: u64,
}

impl ReplySealer {
    /// The next record: `plain` sealed, `last` saying whether it ends the reply.
    pub fn record(&mut self, plain: &[u8], last: bool) -> Vec<u8> {
        let aead = ChaCha20Poly1305::new(&self.key.into());
        let aad = [last as u8];
        // Sealing a chunk no longer than a data frame cannot fail.
        let sealed = aead
            .encrypt(
                &nonce(self.n),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        self.n += 1;
        let mut out = Vec::with_capacity(4 + sealed.len());
        out.extend_from_slice(&(sealed.len() as u32).to_be_bytes());
        out.extend_from_slice(&sealed);
        out
    }
}

/// Opens a sealed reply as its bytes arrive, in any pieces.
pub struct ReplyOpener {
    key: [u8; 32],
    n: u64,
    buf: Vec<u8>,
    done: bool,
}

impl ReplyOpener {
    fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            n: 0,
            buf: Vec::new(),
            done: false,
        }
    }

    /// The plaintext of every record `bytes` completes.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, CallError> {
        let refused = |why: &str| CallError::BadSignature(format!("sealed reply: {why}"));
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 4 {
                return Ok(out);
            }
            let len =
                u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            if !(16..=MAX_RECORD).contains(&len) {
                return Err(refused("a record of impossible length"));
            }
            if self.buf.len() < 4 + len {
                return Ok(out);
            }
            if self.done {
                return Err(refused("records after the last one"));
            }
            let aead = ChaCha20Poly1305::new(&self.key.into());
            let sealed = &self.buf[4..4 + len];
            let (plain, last) = [(false, 0u8), (true, 1u8)]
                .iter()
                .find_map(|(last, aad)| {
                    aead.decrypt(
                        &nonce(self.n),
                        Payload {
                            msg: sealed,
                            aad: &[*aad],
                        },
                    )
                    .ok()
                    .map(|p| (p, *last))
                })
                .ok_or_else(|| refused("a record does not open (changed, cut or reordered)"))?;
            out.extend_from_slice(&plain);
            self.n += 1;
            self.done = last;
            self.buf.drain(..4 + len);
        }
    }

    /// Checks the reply ended with its last record and nothing after.
    pub fn finish(&self) -> Result<(), CallError> {
        if !self.done || !self.buf.is_empty() {
            return Err(CallError::BadSignature(
                "sealed reply: it broke off before its last record".into(),
            ));
        }
        Ok(())
    }
}

/// The X25519 public key of `secret`, as HPKE computes it.
pub fn public_key(secret: &[u8; 32]) -> Result<[u8; 32], CallError> {
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(secret)
        .map_err(|e| CallError::Config(format!("an X25519 secret: {e}")))?;
    let pk = Kem::sk_to_pk(&sk).to_bytes();
    let mut out = [0u8; 32];
    out.copy_from_slice(&pk);
    Ok(out)
}

#[cfg(test)]
mod tests;
