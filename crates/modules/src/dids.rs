//! The DID registry: ERC-1056 (`EthereumDIDRegistry`) as a system module, the
//! registry `did:ethr` identities on EMC live in.
//!
//! * Every account is an identity and owns itself until it names another owner
//!   (`changeOwner`); only the current owner changes an identity. Owner zero
//!   deactivates it for resolvers.
//! * The owner adds delegates by type (`veriKey`, `sigAuth`) valid for a number of
//!   seconds (`addDelegate`) and revokes them (`revokeDelegate`, which sets their
//!   validity to now); it publishes attributes (`setAttribute`: keys as
//!   `did/pub/<algorithm>/<purpose>/<encoding>`, services as `did/svc/<type>`), which
//!   live only in events, and revokes them (`revokeAttribute`, an event with validity
//!   zero). Computing nodes publish their endpoints and encryption keys this way.
//! * Each change emits its event with the block of the identity's previous change
//!   and then records this block in `changed`, so the events of one identity form a
//!   chain backwards from `changed(identity)`: `ethr-did-resolver` walks it with
//!   `eth_getLogs`; EMC's own resolver reads the node's topic index instead.
//! * The `…Signed` variants let anyone relay a change the owner signed: the owner
//!   signs `keccak256(0x19 0x00 registry nonce[owner] identity <name> <arguments>)`
//!   (Solidity's `abi.encodePacked`, [`signed_hash`]), and each use raises the
//!   signer's nonce, so a signature is good once.
//!
//! Storage, events, hashes and reverts' words (`bad_actor`, `bad_signature`) are the
//! Solidity registry's, so a tool written for ERC-1056 on Ethereum works here
//! unchanged. One difference: a signature that recovers to no address is refused
//! (Solidity's `ecrecover` returns zero, which would let anyone act for the identity
//! at address zero).

mod abi;
mod storage;
#[cfg(test)]
mod tests;

pub use abi::IEthereumDIDRegistry;
pub use storage::delegate_slot;

use crate::kit::abi::emit;
use crate::{Metered, ModuleCall, ModuleError, DIDS_ADDRESS};
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolInterface, SolValue};
use storage::{CHANGED, NONCE, OWNERS};
use IEthereumDIDRegistry as I;

/// A revert in this module's name.
fn revert(why: impl std::fmt::Display) -> ModuleError {
    crate::kit::abi::revert("DIDRegistry", why)
}

/// The identity's owner: the one named, else the identity itself.
pub fn identity_owner(m: &mut Metered<'_>, identity: Address) -> Result<Address, ModuleError> {
    let owner = OWNERS.get(m, &identity)?;
    Ok(if owner.is_zero() { identity } else { owner })
}

/// The hash the owner signs for a `…Signed` call: `keccak256(0x19 0x00 registry
/// nonce identity tail)`, `tail` being the function's name and its arguments packed
/// (`"changeOwner" newOwner`, `"addDelegate" delegateType delegate validity`, …).
pub fn signed_hash(nonce: U256, identity: Address, tail: &[u8]) -> B256 {
    let mut b = Vec::with_capacity(2 + 20 + 32 + 20 + tail.len());
    b.extend_from_slice(&[0x19, 0x00]);
    b.extend_from_slice(DIDS_ADDRESS.as_slice());
    b.extend_from_slice(&nonce.to_be_bytes::<32>());
    b.extend_from_slice(identity.as_slice());
    b.extend_from_slice(tail);
    keccak256(b)
}

/// `abi.encodePacked` of a function name and its fixed-size or bytes arguments.
pub fn packed(name: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    for p in parts {
        b.extend_from_slice(p);
    }
    b
}

/// Checks a `…Signed` call's signature over `tail` against the identity's owner and
/// uses up the owner's nonce: the signer.
fn signer(
    m: &mut Metered<'_>,
    identity: Address,
    (v, r, s): (u8, B256, B256),
    tail: &[u8],
) -> Result<Address, ModuleError> {
    let owner = identity_owner(m, identity)?;
    let nonce = NONCE.get(m, &owner)?;
    m.charge_signature()?;
    if v != 27 && v != 28 {
        return Err(revert(format!("bad_signature (v is {v}, not 27 or 28)")));
    }
    let sig = alloy_primitives::Signature::new(r.into(), s.into(), v == 28);
    let signer = sig
        .recover_address_from_prehash(&signed_hash(nonce, identity, tail))
        .map_err(|e| revert(format!("bad_signature ({e})")))?;
    if signer != owner {
        return Err(revert(format!(
            "bad_signature (signed by {signer}, not the owner {owner})"
        )));
    }
    NONCE.set(m, &signer, &(nonce + U256::from(1)))?;
    Ok(signer)
}

fn only_owner(m: &mut Metered<'_>, identity: Address, actor: Address) -> Result<(), ModuleError> {
    let owner = identity_owner(m, identity)?;
    if actor != owner {
        return Err(revert(format!(
            "bad_actor ({actor} is not the owner {owner} of {identity})"
        )));
    }
    Ok(())
}

/// The identity's previous change, then this block recorded as its last.
fn touch(m: &mut Metered<'_>, identity: Address) -> Result<U256, ModuleError> {
    let previous = CHANGED.get(m, &identity)?;
    let height = U256::from(m.host().height());
    CHANGED.set(m, &identity, &height)?;
    Ok(previous)
}

/// Now plus `validity` seconds (Solidity's checked addition).
fn valid_to(m: &Metered<'_>, validity: U256) -> Result<U256, ModuleError> {
    U256::from(m.host().timestamp())
        .checked_add(validity)
        .ok_or_else(|| revert("validity overflows"))
}

fn type_hash(delegate_type: B256) -> B256 {
    keccak256(delegate_type.abi_encode())
}

fn change_owner(
    m: &mut Metered<'_>,
    identity: Address,
    actor: Address,
    owner: Address,
) -> Result<(), ModuleError> {
    only_owner(m, identity, actor)?;
    OWNERS.set(m, &identity, &owner)?;
    let previous = touch(m, identity)?;
    emit(
        m,
        I::DIDOwnerChanged {
            identity,
            owner,
            previousChange: previous,
        },
    );
    Ok(())
}

/// Sets a delegate's validity (`Some(validity)`: now plus it; `None`: now, revoked).
fn set_delegate(
    m: &mut Metered<'_>,
    identity: Address,
    actor: Address,
    (delegate_type, delegate): (B256, Address),
    validity: Option<U256>,
) -> Result<(), ModuleError> {
    only_owner(m, identity, actor)?;
    let until = match validity {
        Some(v) => valid_to(m, v)?,
        None => U256::from(m.host().timestamp()),
    };
    let slot = delegate_slot(identity, type_hash(delegate_type), delegate);
    m.sstore(slot, until)?;
    let previous = touch(m, identity)?;
    emit(
        m,
        I::DIDDelegateChanged {
            identity,
            delegateType: delegate_type,
            delegate,
            validTo: until,
            previousChange: previous,
        },
    );
    Ok(())
}

/// Publishes an attribute (`Some(validity)`) or revokes it (`None`: validity zero).
fn attribute(
    m: &mut Metered<'_>,
    identity: Address,
    actor: Address,
    (name, value): (B256, Bytes),
    validity: Option<U256>,
) -> Result<(), ModuleError> {
    only_owner(m, identity, actor)?;
    let until = match validity {
        Some(v) => valid_to(m, v)?,
        None => U256::ZERO,
    };
    let previous = touch(m, identity)?;
    emit(
        m,
        I::DIDAttributeChanged {
            identity,
            name,
            value,
            validTo: until,
            previousChange: previous,
        },
    );
    Ok(())
}

pub struct DidsModule;

impl crate::kit::SystemModule for DidsModule {
    fn address(&self) -> Address {
        DIDS_ADDRESS
    }

    fn name(&self) -> &'static str {
        "DIDRegistry"
    }

    fn call(&self, m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        use I::IEthereumDIDRegistryCalls as C;
        let c =
            C::abi_decode(call.input).map_err(|_| revert("unknown function or bad arguments"))?;
        if !call.value.is_zero() {
            return Err(revert("this module takes no value"));
        }
        let views = matches!(
            c,
            C::owners(_)
                | C::delegates(_)
                | C::changed(_)
                | C::nonce(_)
                | C::identityOwner(_)
                | C::validDelegate(_)
        );
        if call.is_static && !views {
            return Err(revert("state change in a static call"));
        }
        if views {
            return view(m, c);
        }
        change(m, call.caller, c)?;
        Ok(Bytes::new())
    }
}

fn view(m: &mut Metered<'_>, c: I::IEthereumDIDRegistryCalls) -> Result<Bytes, ModuleError> {
    use I::IEthereumDIDRegistryCalls as C;
    Ok(match c {
        C::owners(c) => I::ownersCall::abi_encode_returns(&OWNERS.get(m, &c.identity)?),
        C::delegates(c) => {
            let slot = delegate_slot(c.identity, c.delegateTypeHash, c.delegate);
            I::delegatesCall::abi_encode_returns(&m.sload(slot)?)
        }
        C::changed(c) => I::changedCall::abi_encode_returns(&CHANGED.get(m, &c.identity)?),
        C::nonce(c) => I::nonceCall::abi_encode_returns(&NONCE.get(m, &c.signer)?),
        C::identityOwner(c) => {
            I::identityOwnerCall::abi_encode_returns(&identity_owner(m, c.identity)?)
        }
        C::validDelegate(c) => {
            let slot = delegate_slot(c.identity, type_hash(c.delegateType), c.delegate);
            let until = m.sload(slot)?;
            I::validDelegateCall::abi_encode_returns(&(until > U256::from(m.host().timestamp())))
        }
        _ => return Err(revert("not a view")),
    }
    .into())
}

fn change(
    m: &mut Metered<'_>,
    who: Address,
    c: I::IEthereumDIDRegistryCalls,
) -> Result<(), ModuleError> {
    use I::IEthereumDIDRegistryCalls as C;
    let u = |x: &U256| x.to_be_bytes::<32>();
    match c {
        C::changeOwner(c) => change_owner(m, c.identity, who, c.newOwner),
        C::changeOwnerSigned(c) => {
            let tail = packed("changeOwner", &[c.newOwner.as_slice()]);
            let actor = signer(m, c.identity, (c.sigV, c.sigR, c.sigS), &tail)?;
            change_owner(m, c.identity, actor, c.newOwner)
        }
        C::addDelegate(c) => {
            let d = (c.delegateType, c.delegate);
            set_delegate(m, c.identity, who, d, Some(c.validity))
        }
        C::addDelegateSigned(c) => {
            let parts = [&c.delegateType[..], c.delegate.as_slice(), &u(&c.validity)];
            let tail = packed("addDelegate", &parts);
            let actor = signer(m, c.identity, (c.sigV, c.sigR, c.sigS), &tail)?;
            let d = (c.delegateType, c.delegate);
            set_delegate(m, c.identity, actor, d, Some(c.validity))
        }
        C::revokeDelegate(c) => {
            set_delegate(m, c.identity, who, (c.delegateType, c.delegate), None)
        }
        C::revokeDelegateSigned(c) => {
            let parts = [&c.delegateType[..], c.delegate.as_slice()];
            let tail = packed("revokeDelegate", &parts);
            let actor = signer(m, c.identity, (c.sigV, c.sigR, c.sigS), &tail)?;
            set_delegate(m, c.identity, actor, (c.delegateType, c.delegate), None)
        }
        C::setAttribute(c) => attribute(m, c.identity, who, (c.name, c.value), Some(c.validity)),
        C::setAttributeSigned(c) => {
            let tail = packed("setAttribute", &[&c.name[..], &c.value, &u(&c.validity)]);
            let actor = signer(m, c.identity, (c.sigV, c.sigR, c.sigS), &tail)?;
            attribute(m, c.identity, actor, (c.name, c.value), Some(c.validity))
        }
        C::revokeAttribute(c) => attribute(m, c.identity, who, (c.name, c.value), None),
        C::revokeAttributeSigned(c) => {
            let tail = packed("revokeAttribute", &[&c.name[..], &c.value]);
            let actor = signer(m, c.identity, (c.sigV, c.sigR, c.sigS), &tail)?;
            attribute(m, c.identity, actor, (c.name, c.value), None)
        }
        _ => Err(revert("not a change")),
    }
}
