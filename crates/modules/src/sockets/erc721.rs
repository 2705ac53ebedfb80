//! ERC-721 ownership, approvals, transfers and enumeration, in OpenZeppelin's
//! storage layout, with OpenZeppelin's rules (and its revert reasons, in this
//! module's words).
//!
//! Invariants: an owner's balance is the length of its list of tokens
//! (`tokenOfOwnerByIndex`), each token sits at `OWNED_INDEX` in its owner's list, and
//! ids run from 1 to `totalSupply` (sockets are never burnt, so `tokenByIndex(i)` is
//! `i + 1`).

use super::storage::{APPROVALS, BALANCES, MINTED, OPERATORS, OWNED, OWNED_INDEX, OWNERS};
use super::{revert, ISockets};
use crate::kit::abi::emit;
use crate::{Metered, ModuleError};
use alloy_primitives::{Address, U256};

/// The owner of socket `id`; a revert if there is none.
pub fn owner_of(m: &mut Metered<'_>, id: U256) -> Result<Address, ModuleError> {
    let o = OWNERS.get(m, &id)?;
    if o.is_zero() {
        return Err(revert(format!("socket {id} does not exist")));
    }
    Ok(o)
}

/// Whether `spender` may move or manage `owner`'s socket `id`: the owner, the token's
/// approved address, or one of the owner's operators.
pub fn authorized(
    m: &mut Metered<'_>,
    owner: Address,
    spender: Address,
    id: U256,
) -> Result<bool, ModuleError> {
    Ok(spender == owner
        || APPROVALS.get(m, &id)? == spender
        || OPERATORS.get(m, &owner, &spender)?)
}

/// Mints socket `id` (the next one) to `to`.
pub fn mint(m: &mut Metered<'_>, to: Address) -> Result<U256, ModuleError> {
    if to.is_zero() {
        return Err(revert("cannot mint to the zero address"));
    }
    let n = MINTED.get(m)? + 1;
    MINTED.set(m, &n)?;
    let id = U256::from(n);
    append(m, to, id)?;
    OWNERS.set(m, &id, &to)?;
    emit(
        m,
        ISockets::Transfer {
            from: Address::ZERO,
            to,
            tokenId: id,
        },
    );
    Ok(id)
}

/// Moves socket `id` from `from` to `to` for `caller`, after `before` (the rental's
/// hand-over) has run with the old owner still recorded.
pub fn transfer(
    m: &mut Metered<'_>,
    caller: Address,
    from: Address,
    to: Address,
    id: U256,
    before: impl FnOnce(&mut Metered<'_>) -> Result<(), ModuleError>,
) -> Result<(), ModuleError> {
    let owner = owner_of(m, id)?;
    if owner != from {
        return Err(revert(format!("{from} does not own socket {id}")));
    }
    if to.is_zero() {
        return Err(revert("cannot transfer to the zero address"));
    }
    if !authorized(m, owner, caller, id)? {
        return Err(revert(format!(
            "the caller is neither the owner of socket {id}, nor approved, nor an operator"
        )));
    }
    before(m)?;
    if !APPROVALS.get(m, &id)?.is_zero() {
        APPROVALS.set(m, &id, &Address::ZERO)?;
    }
    if from != to {
        remove(m, from, id)?;
        append(m, to, id)?;
        OWNERS.set(m, &id, &to)?;
    }
    emit(
        m,
        ISockets::Transfer {
            from,
            to,
            tokenId: id,
        },
    );
    Ok(())
}

fn append(m: &mut Metered<'_>, owner: Address, id: U256) -> Result<(), ModuleError> {
    let n = BALANCES.get(m, &owner)?;
    OWNED.set(m, &owner, &n, &id)?;
    OWNED_INDEX.set(m, &id, &n)?;
    BALANCES.set(m, &owner, &(n + 1))
}

/// Takes `id` out of `owner`'s list, moving the last token into its place.
fn remove(m: &mut Metered<'_>, owner: Address, id: U256) -> Result<(), ModuleError> {
    let last = BALANCES.get(m, &owner)?.saturating_sub(1);
    let i = OWNED_INDEX.get(m, &id)?;
    if i != last {
        let moved = OWNED.get(m, &owner, &last)?;
        OWNED.set(m, &owner, &i, &moved)?;
        OWNED_INDEX.set(m, &moved, &i)?;
    }
    OWNED.set(m, &owner, &last, &U256::ZERO)?;
    BALANCES.set(m, &owner, &last)
}

pub fn approve(
    m: &mut Metered<'_>,
    caller: Address,
    to: Address,
    id: U256,
) -> Result<(), ModuleError> {
    let owner = owner_of(m, id)?;
    if to == owner {
        return Err(revert("approval to the current owner"));
    }
    if caller != owner && !OPERATORS.get(m, &owner, &caller)? {
        return Err(revert(format!(
            "the caller is neither the owner of socket {id} nor an operator"
        )));
    }
    APPROVALS.set(m, &id, &to)?;
    emit(
        m,
        ISockets::Approval {
            owner,
            approved: to,
            tokenId: id,
        },
    );
    Ok(())
}

pub fn set_operator(
    m: &mut Metered<'_>,
    owner: Address,
    operator: Address,
    approved: bool,
) -> Result<(), ModuleError> {
    if operator == owner || operator.is_zero() {
        return Err(revert("an operator is another, non-zero address"));
    }
    OPERATORS.set(m, &owner, &operator, &approved)?;
    emit(
        m,
        ISockets::ApprovalForAll {
            owner,
            operator,
            approved,
        },
    );
    Ok(())
}

pub fn balance_of(m: &mut Metered<'_>, owner: Address) -> Result<U256, ModuleError> {
    if owner.is_zero() {
        return Err(revert("the zero address is not a valid owner"));
    }
    Ok(U256::from(BALANCES.get(m, &owner)?))
}

pub fn total_supply(m: &mut Metered<'_>) -> Result<U256, ModuleError> {
    Ok(U256::from(MINTED.get(m)?))
}

pub fn token_by_index(m: &mut Metered<'_>, index: U256) -> Result<U256, ModuleError> {
    if index >= total_supply(m)? {
        return Err(revert(format!("index {index} is past the last socket")));
    }
    Ok(index + U256::from(1))
}

pub fn token_of_owner_by_index(
    m: &mut Metered<'_>,
    owner: Address,
    index: U256,
) -> Result<U256, ModuleError> {
    let n = balance_of(m, owner)?;
    if index >= n {
        return Err(revert(format!(
            "{owner} owns {n} sockets, no index {index}"
        )));
    }
    OWNED.get(m, &owner, &index.saturating_to())
}

/// Every socket `owner` holds, in its list's order (at most `max`).
pub fn owned(m: &mut Metered<'_>, owner: Address, max: u64) -> Result<Vec<U256>, ModuleError> {
    let n = BALANCES.get(m, &owner)?.min(max);
    (0..n).map(|i| OWNED.get(m, &owner, &i)).collect()
}
