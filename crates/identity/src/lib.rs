//! EMC identity: decentralized identifiers for every participant, following W3C DID
//! Core, and their resolution.
//!
//! * `did:pkh:eip155:<chainId>:<address>` names any account without a transaction
//!   ([`pkh`]).
//! * `did:ethr:0x<chainId hex>:<address or compressed public key>` names an identity
//!   in the ERC-1056 registry module (`0x…1008`): its owner, delegates, keys and
//!   service endpoints come from the registry's events ([`ethr`]), which the node
//!   reads from its topic index rather than by walking logs. The document is the one
//!   the published `ethr-did-resolver` builds from the same events, field for field.
//! * `did:key:z…` is a public key alone (Ed25519, X25519, secp256k1) ([`key`]).
//!
//! [`resolve`] answers in the DIF universal resolver's shape (a resolution result:
//! the document, its resolution metadata and its document metadata); every failure
//! is a result with an error code (`invalidDid`, `notFound`, `unknownNetwork`,
//! `methodNotSupported`) and a message, never a panic.
//!
//! Computing nodes: [`node`] derives a node's own did:ethr identity and X25519
//! encryption key from its node key, and what it publishes in the registry.
//!
//! Sessions: [`siwe`] reads a Sign-In with Ethereum message (EIP-4361) whose ReCap
//! ([`recap`], EIP-5573) delegates an escrow budget or a socket, and apps, to a
//! session key until an expiry; the Sessions module and the gateway share it.
//!
//! Credentials: [`credential`] states what the chain says of a computing node at a
//! block as a W3C verifiable credential (VC 2.0 as a JWT), signed by a validator.
//!
//! Pure logic: what the chain holds reaches [`resolve`] through [`Source`].

pub mod credential;
pub mod did;
pub mod ethr;
pub mod key;
pub mod node;
pub mod pkh;
pub mod recap;
mod resolution;
pub mod siwe;

pub use did::{Did, EthrId};
pub use resolution::{iso_date, resolve, Resolution, Source, MAX_DID_BYTES, MAX_EVENTS};

/// Why a DID could not be read or resolved; [`IdentityError::code`] is the DID
/// resolution error code it answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    InvalidDid(String),
    #[error("{0}")]
    MethodNotSupported(String),
    #[error("{0}")]
    UnknownNetwork(String),
    #[error("{0}")]
    NotFound(String),
    /// A Sign-In with Ethereum message or its ReCap that cannot open a session.
    #[error("{0}")]
    SignIn(String),
    /// A credential that does not verify.
    #[error("{0}")]
    InvalidCredential(String),
}

impl IdentityError {
    /// The DID resolution error code (DID Resolution, §"Errors"; ethr-did-resolver's).
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::InvalidDid(_) => "invalidDid",
            IdentityError::MethodNotSupported(_) => "methodNotSupported",
            IdentityError::UnknownNetwork(_) => "unknownNetwork",
            IdentityError::NotFound(_) => "notFound",
            IdentityError::SignIn(_) => "invalidSignIn",
            IdentityError::InvalidCredential(_) => "invalidCredential",
        }
    }
}
