//! What a socket is worth: minting, credits, offers and purchases, renewal, cancelling
//! and refunds.
//!
//! Every credit is backed: a socket's escrow is `credits × pricePerUnit` wei, held by
//! the module, and only three things move it: a purchase or `fund` adds exactly the
//! price of the units bought, settled use pays the provider for what was used, and a
//! refund pays the rest to the holder of record. A refund is open from
//! [`SETTLE_WINDOW`] seconds after the socket expires (or is cancelled), so receipts
//! for calls served before its end still settle first.

use super::erc721::{self, authorized, owner_of};
use super::storage::{offer as o, socket as f, OFFERS, OFFERS_MADE, SOCKETS};
use super::{rental, revert, ISockets, Unit};
use crate::kit::abi::emit;
use crate::registry::RegistryModule;
use crate::{Metered, ModuleError};
use alloy_primitives::{Address, B256, U256};

/// Seconds after a socket's end during which receipts may still settle against it,
/// unless the genesis says otherwise ([`settle_window`]); its refund opens after them.
pub const SETTLE_WINDOW: u64 = 3_600;

/// The settle window genesis set.
pub fn settle_window(m: &mut Metered<'_>) -> Result<u64, ModuleError> {
    let w = super::storage::SETTLE_WINDOW.get(m)?;
    Ok(if w == 0 { SETTLE_WINDOW } else { w })
}
/// The longest validity a socket or an offer may give: ten years.
pub const MAX_VALID_FOR: u64 = 10 * 365 * 24 * 3_600;
/// The longest app name (the Registry's bound).
pub const MAX_APP: usize = 64;

/// What a socket is for, as minted.
pub struct Terms {
    pub node: B256,
    pub app: String,
    pub app_hash: B256,
    pub unit: Unit,
    pub price: U256,
    pub expires: u64,
    pub renewal: U256,
}

/// Why `caller` may not sell `app` from `node` (it must own the node, which must
/// serve the app), or `None`: each module refuses in its own name.
pub(crate) fn provider_refusal(
    m: &mut Metered<'_>,
    caller: Address,
    node: B256,
    app: &str,
) -> Result<Option<String>, ModuleError> {
    if app.is_empty() || app.len() > MAX_APP {
        return Ok(Some(format!("an app name is 1 to {MAX_APP} bytes")));
    }
    if let Some(pool) = crate::pools::pool_of_provider(node) {
        let operator = crate::pools::provider_owner(m, node)?;
        return Ok(if operator.is_zero() {
            Some(format!("there is no pool {pool}"))
        } else if app != crate::pools::JOBS_APP {
            Some(format!(
                "a socket of pool {pool} is for its {:?}",
                crate::pools::JOBS_APP
            ))
        } else if operator != caller {
            Some(format!(
                "pool {pool} is operated by {operator}, not the caller"
            ))
        } else {
            None
        });
    }
    Ok(match RegistryModule::price(m, node, app)? {
        None => Some(format!(
            "node {node} is not registered or does not serve {app}"
        )),
        Some((owner, _)) if owner != caller => {
            Some(format!("node {node} belongs to {owner}, not the caller"))
        }
        Some(_) => None,
    })
}

/// [`provider_refusal`] as this module's revert.
fn provider_check(
    m: &mut Metered<'_>,
    caller: Address,
    node: B256,
    app: &str,
) -> Result<(), ModuleError> {
    match provider_refusal(m, caller, node, app)? {
        Some(why) => Err(revert(why)),
        None => Ok(()),
    }
}

fn valid_for(seconds: u64) -> Result<u64, ModuleError> {
    if seconds == 0 || seconds > MAX_VALID_FOR {
        return Err(revert(format!("validity is 1 to {MAX_VALID_FOR} seconds")));
    }
    Ok(seconds)
}

fn cost(units: u64, price: U256) -> Result<U256, ModuleError> {
    price
        .checked_mul(U256::from(units))
        .ok_or_else(|| revert("the price overflows"))
}

fn exact(value: U256, want: U256, what: &str) -> Result<(), ModuleError> {
    if value != want {
        return Err(revert(format!(
            "send exactly {want} wei for {what}, not {value}"
        )));
    }
    Ok(())
}

/// Mints a socket with `terms` and `credits` to `to`.
pub fn mint(
    m: &mut Metered<'_>,
    to: Address,
    terms: &Terms,
    credits: u64,
) -> Result<U256, ModuleError> {
    let id = erc721::mint(m, to)?;
    SOCKETS.set(m, &id, f::NODE, &terms.node)?;
    SOCKETS.set_str(m, &id, f::APP, &terms.app)?;
    if !terms.app_hash.is_zero() {
        SOCKETS.set(m, &id, f::APP_HASH, &terms.app_hash)?;
    }
    if terms.unit != Unit::Call {
        SOCKETS.set(m, &id, f::UNIT, &(terms.unit as u64))?;
    }
    if credits > 0 {
        SOCKETS.set(m, &id, f::CREDITS, &credits)?;
    }
    SOCKETS.set(m, &id, f::PRICE, &terms.price)?;
    SOCKETS.set(m, &id, f::EXPIRES, &terms.expires)?;
    if !terms.renewal.is_zero() {
        SOCKETS.set(m, &id, f::RENEWAL, &terms.renewal)?;
    }
    emit(
        m,
        ISockets::SocketMinted {
            tokenId: id,
            node: terms.node,
            app: terms.app.clone(),
            unit: terms.unit as u8,
            pricePerUnit: terms.price,
            expires: terms.expires,
        },
    );
    Ok(id)
}

/// The Market module issues a socket with `units` credits at `pricePerUnit`, having
/// paid this module their escrow first (so every credit stays backed); the node must
/// still be registered for the app.
pub fn issue(
    m: &mut Metered<'_>,
    caller: Address,
    c: &ISockets::issueCall,
    now: u64,
) -> Result<U256, ModuleError> {
    if caller != crate::MARKET_ADDRESS {
        return Err(revert("only the Market module issues sockets"));
    }
    if c.units == 0 || c.pricePerUnit.is_zero() {
        return Err(revert("an issued socket has credits and a price"));
    }
    if RegistryModule::price(m, c.node, &c.app)?.is_none() {
        return Err(revert(format!(
            "node {} is not registered or does not serve {}",
            c.node, c.app
        )));
    }
    let terms = Terms {
        node: c.node,
        app: c.app.clone(),
        app_hash: B256::ZERO,
        unit: Unit::from_u8(c.unit)?,
        price: c.pricePerUnit,
        expires: now.saturating_add(valid_for(c.validFor)?),
        renewal: U256::ZERO,
    };
    let token = mint(m, c.to, &terms, c.units)?;
    emit(
        m,
        ISockets::Funded {
            tokenId: token,
            payer: c.to,
            units: c.units,
            amount: cost(c.units, c.pricePerUnit)?,
        },
    );
    Ok(token)
}

/// A node's owner sets the royalty its sockets' resales owe it.
pub fn set_royalty(
    m: &mut Metered<'_>,
    caller: Address,
    node: B256,
    bps: u16,
) -> Result<(), ModuleError> {
    let owner = crate::pools::provider_owner(m, node)?;
    if owner != caller {
        return Err(revert(format!(
            "node {node} belongs to {owner}, not the caller"
        )));
    }
    if bps > super::MAX_ROYALTY_BPS {
        return Err(revert(format!(
            "a royalty is at most {} basis points",
            super::MAX_ROYALTY_BPS
        )));
    }
    super::storage::ROYALTY.set(m, &node, &(bps as u64))?;
    emit(m, ISockets::RoyaltySet { node, bps });
    Ok(())
}

/// EIP-2981 for socket `id` sold at `price`: its node's owner, and the royalty its
/// owner set (rounded down).
pub fn royalty(m: &mut Metered<'_>, id: U256, price: U256) -> Result<(Address, U256), ModuleError> {
    owner_of(m, id)?;
    let node: B256 = SOCKETS.get(m, &id, f::NODE)?;
    let bps = super::storage::ROYALTY.get(m, &node)?;
    let receiver = crate::pools::provider_owner(m, node)?;
    if receiver.is_zero() {
        return Ok((Address::ZERO, U256::ZERO));
    }
    Ok((
        receiver,
        price.saturating_mul(U256::from(bps)) / U256::from(10_000),
    ))
}

/// A provider mints a socket for its own node: no credits until someone funds them.
pub fn provider_mint(
    m: &mut Metered<'_>,
    caller: Address,
    c: &ISockets::mintCall,
    now: u64,
) -> Result<U256, ModuleError> {
    provider_check(m, caller, c.node, &c.app)?;
    let terms = Terms {
        node: c.node,
        app: c.app.clone(),
        app_hash: c.appHash,
        unit: Unit::from_u8(c.unit)?,
        price: c.pricePerUnit,
        expires: now.saturating_add(valid_for(c.validFor)?),
        renewal: c.renewalPricePerSecond,
    };
    mint(m, c.to, &terms, 0)
}

/// Buys `units` more credits for socket `id` at its price.
pub fn fund(
    m: &mut Metered<'_>,
    payer: Address,
    id: U256,
    units: u64,
    value: U256,
    now: u64,
) -> Result<(), ModuleError> {
    owner_of(m, id)?;
    let expires: u64 = SOCKETS.get(m, &id, f::EXPIRES)?;
    if expires <= now {
        return Err(revert(format!("socket {id} expired at {expires}")));
    }
    let price: U256 = SOCKETS.get(m, &id, f::PRICE)?;
    if price.is_zero() {
        return Err(revert(format!(
            "socket {id} has no price: its credits are not sold"
        )));
    }
    if units == 0 {
        return Err(revert("fund at least one unit"));
    }
    let amount = cost(units, price)?;
    exact(value, amount, &format!("{units} units at {price} wei"))?;
    let credits: u64 = SOCKETS.get(m, &id, f::CREDITS)?;
    let credits = credits
        .checked_add(units)
        .ok_or_else(|| revert("credits overflow"))?;
    SOCKETS.set(m, &id, f::CREDITS, &credits)?;
    emit(
        m,
        ISockets::Funded {
            tokenId: id,
            payer,
            units,
            amount,
        },
    );
    Ok(())
}

pub fn offer(
    m: &mut Metered<'_>,
    caller: Address,
    c: &ISockets::offerCall,
    now: u64,
) -> Result<U256, ModuleError> {
    provider_check(m, caller, c.node, &c.app)?;
    Unit::from_u8(c.unit)?;
    valid_for(c.validFor)?;
    if c.pricePerUnit.is_zero() {
        return Err(revert("an offer has a price per unit"));
    }
    if c.minUnits == 0 || c.minUnits > c.maxUnits || c.minUnits > c.capacity {
        return Err(revert(
            "an offer sells 1 ≤ minUnits ≤ maxUnits, and capacity ≥ minUnits",
        ));
    }
    cost(c.maxUnits, c.pricePerUnit)?;
    if c.expires <= now {
        return Err(revert(format!(
            "the offer's expiry {} is not after now ({now})",
            c.expires
        )));
    }
    let n = OFFERS_MADE.get(m)? + 1;
    OFFERS_MADE.set(m, &n)?;
    let id = U256::from(n);
    OFFERS.set(m, &id, o::PROVIDER, &caller)?;
    OFFERS.set(m, &id, o::NODE, &c.node)?;
    OFFERS.set_str(m, &id, o::APP, &c.app)?;
    OFFERS.set(m, &id, o::APP_HASH, &c.appHash)?;
    OFFERS.set(m, &id, o::UNIT, &(c.unit as u64))?;
    OFFERS.set(m, &id, o::PRICE, &c.pricePerUnit)?;
    OFFERS.set(m, &id, o::MIN, &c.minUnits)?;
    OFFERS.set(m, &id, o::MAX, &c.maxUnits)?;
    OFFERS.set(m, &id, o::VALID_FOR, &c.validFor)?;
    OFFERS.set(m, &id, o::CAPACITY, &c.capacity)?;
    OFFERS.set(m, &id, o::EXPIRES, &c.expires)?;
    OFFERS.set(m, &id, o::RENEWAL, &c.renewalPricePerSecond)?;
    emit(
        m,
        ISockets::Offered {
            offerId: id,
            node: c.node,
            provider: caller,
            app: c.app.clone(),
            unit: c.unit,
            pricePerUnit: c.pricePerUnit,
            capacity: c.capacity,
            expires: c.expires,
        },
    );
    Ok(id)
}

pub fn offer_info(m: &mut Metered<'_>, id: U256) -> Result<ISockets::Offer, ModuleError> {
    let provider: Address = OFFERS.get(m, &id, o::PROVIDER)?;
    if provider.is_zero() {
        return Err(revert(format!("no offer {id}")));
    }
    Ok(ISockets::Offer {
        provider,
        node: OFFERS.get(m, &id, o::NODE)?,
        app: OFFERS.get_str(m, &id, o::APP, MAX_APP)?,
        appHash: OFFERS.get(m, &id, o::APP_HASH)?,
        unit: OFFERS.get::<u64>(m, &id, o::UNIT)? as u8,
        pricePerUnit: OFFERS.get(m, &id, o::PRICE)?,
        minUnits: OFFERS.get(m, &id, o::MIN)?,
        maxUnits: OFFERS.get(m, &id, o::MAX)?,
        validFor: OFFERS.get(m, &id, o::VALID_FOR)?,
        capacity: OFFERS.get(m, &id, o::CAPACITY)?,
        expires: OFFERS.get(m, &id, o::EXPIRES)?,
        renewalPricePerSecond: OFFERS.get(m, &id, o::RENEWAL)?,
    })
}

pub fn withdraw_offer(m: &mut Metered<'_>, caller: Address, id: U256) -> Result<(), ModuleError> {
    let provider: Address = OFFERS.get(m, &id, o::PROVIDER)?;
    if provider.is_zero() {
        return Err(revert(format!("no offer {id}")));
    }
    if provider != caller {
        return Err(revert(format!("offer {id} is {provider}'s")));
    }
    OFFERS.set(m, &id, o::CAPACITY, &0u64)?;
    emit(m, ISockets::OfferWithdrawn { offerId: id });
    Ok(())
}

/// Buys `units` from offer `id`: a new socket for the buyer, the payment in its escrow.
pub fn buy(
    m: &mut Metered<'_>,
    buyer: Address,
    id: U256,
    units: u64,
    value: U256,
    now: u64,
) -> Result<U256, ModuleError> {
    let offer = offer_info(m, id)?;
    if offer.expires <= now {
        return Err(revert(format!("offer {id} lapsed at {}", offer.expires)));
    }
    if units < offer.minUnits || units > offer.maxUnits {
        return Err(revert(format!(
            "offer {id} sells {} to {} units at a time, not {units}",
            offer.minUnits, offer.maxUnits
        )));
    }
    if units > offer.capacity {
        return Err(revert(format!(
            "offer {id} has {} units left",
            offer.capacity
        )));
    }
    if crate::pools::provider_owner(m, offer.node)? != offer.provider {
        return Err(revert(format!(
            "offer {id}'s node is no longer its provider's"
        )));
    }
    exact(
        value,
        cost(units, offer.pricePerUnit)?,
        &format!("{units} units"),
    )?;
    OFFERS.set(m, &id, o::CAPACITY, &(offer.capacity - units))?;
    let terms = Terms {
        node: offer.node,
        app: offer.app,
        app_hash: offer.appHash,
        unit: Unit::from_u8(offer.unit)?,
        price: offer.pricePerUnit,
        expires: now.saturating_add(offer.validFor),
        renewal: offer.renewalPricePerSecond,
    };
    let token = mint(m, buyer, &terms, units)?;
    emit(
        m,
        ISockets::Funded {
            tokenId: token,
            payer: buyer,
            units,
            amount: value,
        },
    );
    Ok(token)
}

/// ERC-5643: extends the socket's validity by `duration` seconds from its expiry (or
/// from now, if it has lapsed), paid to the provider's owner at the socket's renewal
/// price. Anyone may pay.
pub fn renew(
    m: &mut Metered<'_>,
    id: U256,
    duration: u64,
    value: U256,
    now: u64,
) -> Result<u64, ModuleError> {
    owner_of(m, id)?;
    let price: U256 = SOCKETS.get(m, &id, f::RENEWAL)?;
    if price.is_zero() {
        return Err(revert(format!("socket {id} is not renewable")));
    }
    valid_for(duration)?;
    exact(
        value,
        cost(duration, price)?,
        &format!("{duration} s of renewal"),
    )?;
    let node: B256 = SOCKETS.get(m, &id, f::NODE)?;
    let provider = crate::pools::provider_owner(m, node)?;
    if provider.is_zero() {
        return Err(revert(format!(
            "socket {id}'s node is no longer registered"
        )));
    }
    let expires: u64 = SOCKETS.get(m, &id, f::EXPIRES)?;
    let until = expires.max(now).saturating_add(duration);
    SOCKETS.set(m, &id, f::EXPIRES, &until)?;
    m.pay(provider, value)?;
    emit(
        m,
        ISockets::SubscriptionUpdate {
            tokenId: id,
            expiration: until,
        },
    );
    Ok(until)
}

/// ERC-5643: ends the socket now (its refund opens after the settle window). Not while
/// a paid rental runs.
pub fn cancel(m: &mut Metered<'_>, caller: Address, id: U256, now: u64) -> Result<(), ModuleError> {
    let owner = owner_of(m, id)?;
    if !authorized(m, owner, caller, id)? {
        return Err(revert(format!(
            "the caller is neither the owner of socket {id}, nor approved, nor an operator"
        )));
    }
    if let Some(until) = rental::paid_rental_until(m, id, now)? {
        return Err(revert(format!(
            "a paid rental of socket {id} runs until {until}"
        )));
    }
    let expires: u64 = SOCKETS.get(m, &id, f::EXPIRES)?;
    if expires > now {
        SOCKETS.set(m, &id, f::EXPIRES, &now)?;
    }
    emit(
        m,
        ISockets::SubscriptionUpdate {
            tokenId: id,
            expiration: expires.min(now),
        },
    );
    Ok(())
}

/// Pays the escrow of an ended socket's unused credits to its owner; anyone may call.
pub fn refund(m: &mut Metered<'_>, id: U256, now: u64) -> Result<U256, ModuleError> {
    let owner = owner_of(m, id)?;
    let expires: u64 = SOCKETS.get(m, &id, f::EXPIRES)?;
    let opens = expires.saturating_add(settle_window(m)?);
    if now < opens {
        return Err(revert(format!("socket {id}'s refund opens at {opens}")));
    }
    rental::release(m, id, now)?;
    let credits: u64 = SOCKETS.get(m, &id, f::CREDITS)?;
    if credits == 0 {
        return Err(revert(format!("socket {id} has no unused credits")));
    }
    let price: U256 = SOCKETS.get(m, &id, f::PRICE)?;
    let amount = cost(credits, price)?;
    SOCKETS.set(m, &id, f::CREDITS, &0u64)?;
    m.pay(owner, amount)?;
    emit(
        m,
        ISockets::Refunded {
            tokenId: id,
            holder: owner,
            units: credits,
            amount,
        },
    );
    Ok(amount)
}

/// Socket `id` as `socket(id)` reports it.
pub fn info(m: &mut Metered<'_>, id: U256, now: u64) -> Result<ISockets::Socket, ModuleError> {
    let owner = owner_of(m, id)?;
    let credits: u64 = SOCKETS.get(m, &id, f::CREDITS)?;
    let price: U256 = SOCKETS.get(m, &id, f::PRICE)?;
    Ok(ISockets::Socket {
        owner,
        node: SOCKETS.get(m, &id, f::NODE)?,
        app: SOCKETS.get_str(m, &id, f::APP, MAX_APP)?,
        appHash: SOCKETS.get(m, &id, f::APP_HASH)?,
        unit: SOCKETS.get::<u64>(m, &id, f::UNIT)? as u8,
        credits,
        pricePerUnit: price,
        escrow: cost(credits, price)?,
        expires: SOCKETS.get(m, &id, f::EXPIRES)?,
        renewalPricePerSecond: SOCKETS.get(m, &id, f::RENEWAL)?,
        user: rental::user_of(m, id, now)?,
        userExpires: SOCKETS.get(m, &id, f::USER_EXPIRES)?,
        paidRental: rental::paid_rental_until(m, id, now)?.is_some(),
        rentPricePerSecond: SOCKETS.get(m, &id, f::RENT_PRICE)?,
        rentMaxSeconds: SOCKETS.get(m, &id, f::RENT_MAX)?,
    })
}
