//! ERC-4907 users, and protected paid rentals.
//!
//! A user set with `setUser` is ERC-4907's: the owner (or an approved address or
//! operator) may change or clear it at any time, and a transfer clears it, as the
//! reference implementation does. A rental paid through `rent` is protected: the
//! owner lists a price per second and a longest period (`listRental`), a renter pays
//! `price × duration` and becomes the user until `now + duration`; while that runs,
//! `setUser` refuses to change it, `cancelSubscription` refuses to end it, and a sale
//! keeps it. The payment is held by the module and released to the owner as the
//! period runs (`releaseRent`, and at every transfer, so each owner receives what
//! accrued while they held the socket). A rental never outlasts the socket.

use super::erc721::{authorized, holding, owner_of, set_holding};
use super::storage::{socket as f, Holding, SOCKETS};
use super::{revert, ISockets};
use crate::kit::abi::emit;
use crate::{Metered, ModuleError};
use alloy_primitives::{Address, U256};

/// The user of socket `id` at `now`, zero when none or expired.
pub fn user_of(m: &mut Metered<'_>, id: U256, now: u64) -> Result<Address, ModuleError> {
    let expires: u64 = SOCKETS.get(m, &id, f::USER_EXPIRES)?;
    if expires <= now {
        return Ok(Address::ZERO);
    }
    SOCKETS.get(m, &id, f::USER)
}

/// When the paid rental of socket `id` that runs at `now` ends, if one runs.
pub fn paid_rental_until(
    m: &mut Metered<'_>,
    id: U256,
    now: u64,
) -> Result<Option<u64>, ModuleError> {
    let paid: U256 = SOCKETS.get(m, &id, f::RENT_PAID)?;
    if paid.is_zero() {
        return Ok(None);
    }
    let until: u64 = SOCKETS.get(m, &id, f::USER_EXPIRES)?;
    Ok((until > now).then_some(until))
}

pub fn set_user(
    m: &mut Metered<'_>,
    caller: Address,
    id: U256,
    user: Address,
    expires: u64,
    now: u64,
) -> Result<(), ModuleError> {
    let owner = owner_of(m, id)?;
    if !authorized(m, owner, caller, id)? {
        return Err(revert(format!(
            "the caller is neither the owner of socket {id}, nor approved, nor an operator"
        )));
    }
    if let Some(until) = paid_rental_until(m, id, now)? {
        return Err(revert(format!(
            "a paid rental of socket {id} runs until {until}; its user cannot be changed"
        )));
    }
    finish_rental(m, id, now)?;
    SOCKETS.set(m, &id, f::USER, &user)?;
    SOCKETS.set(m, &id, f::USER_EXPIRES, &expires)?;
    flag(m, id, |h| h.user = !user.is_zero())?;
    emit(
        m,
        ISockets::UpdateUser {
            tokenId: id,
            user,
            expires,
        },
    );
    Ok(())
}

pub fn list(
    m: &mut Metered<'_>,
    caller: Address,
    id: U256,
    price: U256,
    max_seconds: u64,
) -> Result<(), ModuleError> {
    let owner = owner_of(m, id)?;
    if !authorized(m, owner, caller, id)? {
        return Err(revert(format!(
            "the caller is neither the owner of socket {id}, nor approved, nor an operator"
        )));
    }
    SOCKETS.set(m, &id, f::RENT_PRICE, &price)?;
    SOCKETS.set(m, &id, f::RENT_MAX, &max_seconds)?;
    flag(m, id, |h| h.listed = !price.is_zero())?;
    emit(
        m,
        ISockets::RentalListed {
            tokenId: id,
            pricePerSecond: price,
            maxSeconds: max_seconds,
        },
    );
    Ok(())
}

pub fn rent(
    m: &mut Metered<'_>,
    renter: Address,
    id: U256,
    duration: u64,
    value: U256,
    now: u64,
) -> Result<(), ModuleError> {
    let owner = owner_of(m, id)?;
    let price: U256 = SOCKETS.get(m, &id, f::RENT_PRICE)?;
    let max: u64 = SOCKETS.get(m, &id, f::RENT_MAX)?;
    if price.is_zero() {
        return Err(revert(format!("socket {id} is not listed for rent")));
    }
    if duration == 0 || duration > max {
        return Err(revert(format!(
            "rent for 1 to {max} seconds, not {duration}"
        )));
    }
    if renter == owner {
        return Err(revert("the owner does not rent its own socket"));
    }
    let current: u64 = SOCKETS.get(m, &id, f::USER_EXPIRES)?;
    if current > now && !SOCKETS.get::<Address>(m, &id, f::USER)?.is_zero() {
        return Err(revert(format!("socket {id} has a user until {current}")));
    }
    let until = now.saturating_add(duration);
    let socket_expires: u64 = SOCKETS.get(m, &id, f::EXPIRES)?;
    if until > socket_expires {
        return Err(revert(format!(
            "the rental would end at {until}, after the socket expires at {socket_expires}"
        )));
    }
    let cost = price
        .checked_mul(U256::from(duration))
        .ok_or_else(|| revert("the rent overflows"))?;
    if value != cost {
        return Err(revert(format!(
            "send exactly {cost} wei ({duration} s at {price} wei per second), not {value}"
        )));
    }
    finish_rental(m, id, now)?;
    SOCKETS.set(m, &id, f::USER, &renter)?;
    SOCKETS.set(m, &id, f::USER_EXPIRES, &until)?;
    SOCKETS.set(m, &id, f::RENT_PAID, &cost)?;
    SOCKETS.set(m, &id, f::RENT_START, &now)?;
    flag(m, id, |h| h.user = true)?;
    emit(
        m,
        ISockets::UpdateUser {
            tokenId: id,
            user: renter,
            expires: until,
        },
    );
    emit(
        m,
        ISockets::Rented {
            tokenId: id,
            user: renter,
            expires: until,
            paid: cost,
        },
    );
    Ok(())
}

/// What of `paid`, for a rental from `start` to `end`, has accrued at `now`.
pub fn accrued(paid: U256, start: u64, end: u64, now: u64) -> U256 {
    if end <= start || now >= end {
        return paid;
    }
    let ran = now.saturating_sub(start);
    paid * U256::from(ran) / U256::from(end - start)
}

/// Releases to the current owner what of the paid rental has accrued and was not yet
/// released; returns it.
pub fn release(m: &mut Metered<'_>, id: U256, now: u64) -> Result<U256, ModuleError> {
    let paid: U256 = SOCKETS.get(m, &id, f::RENT_PAID)?;
    if paid.is_zero() {
        return Ok(U256::ZERO);
    }
    let start: u64 = SOCKETS.get(m, &id, f::RENT_START)?;
    let end: u64 = SOCKETS.get(m, &id, f::USER_EXPIRES)?;
    let released: U256 = SOCKETS.get(m, &id, f::RENT_RELEASED)?;
    let due = accrued(paid, start, end, now).saturating_sub(released);
    if due.is_zero() {
        return Ok(due);
    }
    SOCKETS.set(m, &id, f::RENT_RELEASED, &(released + due))?;
    let to = owner_of(m, id)?;
    m.pay(to, due)?;
    emit(
        m,
        ISockets::RentReleased {
            tokenId: id,
            to,
            amount: due,
        },
    );
    Ok(due)
}

/// Ends a paid rental that has run out: the rest of its payment to the owner, and its
/// record cleared.
fn finish_rental(m: &mut Metered<'_>, id: U256, now: u64) -> Result<(), ModuleError> {
    let paid: U256 = SOCKETS.get(m, &id, f::RENT_PAID)?;
    if paid.is_zero() {
        return Ok(());
    }
    release(m, id, now)?;
    SOCKETS.set(m, &id, f::RENT_PAID, &U256::ZERO)?;
    SOCKETS.set(m, &id, f::RENT_START, &0u64)?;
    SOCKETS.set(m, &id, f::RENT_RELEASED, &U256::ZERO)
}

/// Sets a flag of socket `id`'s holding (written only if it changes).
fn flag(m: &mut Metered<'_>, id: U256, f: impl FnOnce(&mut Holding)) -> Result<(), ModuleError> {
    let mut h = holding(m, id)?;
    let before = h;
    f(&mut h);
    if h != before {
        set_holding(m, id, &h)?;
    }
    Ok(())
}

/// What a transfer does to the rental, before the owner changes (on the holding `h` it
/// will write): the old owner is paid what accrued; a paid rental that runs is kept,
/// an ERC-4907 user set for free is cleared (as the reference does), and the old
/// owner's rental listing is withdrawn. Nothing is read unless the holding's flags say
/// there is a user or a listing.
pub fn before_transfer(
    m: &mut Metered<'_>,
    id: U256,
    h: &mut Holding,
    now: u64,
) -> Result<(), ModuleError> {
    if h.user {
        if paid_rental_until(m, id, now)?.is_some() {
            release(m, id, now)?;
        } else {
            finish_rental(m, id, now)?;
            SOCKETS.set(m, &id, f::USER, &Address::ZERO)?;
            SOCKETS.set(m, &id, f::USER_EXPIRES, &0u64)?;
            h.user = false;
            emit(
                m,
                ISockets::UpdateUser {
                    tokenId: id,
                    user: Address::ZERO,
                    expires: 0,
                },
            );
        }
    }
    if h.listed {
        SOCKETS.set(m, &id, f::RENT_PRICE, &U256::ZERO)?;
        SOCKETS.set(m, &id, f::RENT_MAX, &0u64)?;
        h.listed = false;
    }
    Ok(())
}
