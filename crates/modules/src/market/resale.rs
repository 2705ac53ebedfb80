//! Resale: a holder lists a socket at a fixed price or in an English auction, and a
//! purchase moves the token and the payment in one transaction.
//!
//! * Listing needs the Market approved for the token (`approve` or
//!   `setApprovalForAll`, as any ERC-721 marketplace): the Market moves it with the
//!   Sockets module's own `transferFrom`, so every ERC-721 rule (and the rental's
//!   hand-over) applies as for any transfer.
//! * A listing is valid only while its seller still holds the token: a purchase or an
//!   auction's settlement checks it, and a listing whose seller no longer holds it is
//!   refused with that reason (an auction's high bid is refunded). Moving the token
//!   away and back makes it valid again.
//! * Of the price, the provider's EIP-2981 royalty (the Sockets module's
//!   `royaltyInfo`) goes to the node's owner, the genesis's market fee is burnt (as
//!   the base fee is), and the rest goes to the seller: exactly, to the wei.
//! * An English auction takes bids at or above its reserve, each at least
//!   [`MIN_RAISE_BPS`] above the last; the previous high bid is refunded at once; a bid
//!   in the auction's last stretch (the smaller of [`EXTEND`] seconds and a tenth of
//!   its length) moves the end to that stretch after the bid, so a bid cannot be
//!   sniped.

use super::storage::{listing as l, FEE_BPS, LISTINGS, LISTINGS_MADE};
use super::{revert, IMarket};
use crate::kit::abi::emit;
use crate::sockets::ISockets;
use crate::{Metered, ModuleError, MARKET_ADDRESS, SOCKETS_ADDRESS};
use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;

/// A raise an auction bid must beat the last by: 1%.
pub const MIN_RAISE_BPS: u64 = 100;
/// The longest anti-sniping window, seconds (a short auction's is a tenth of it).
pub const EXTEND: u64 = 300;
/// Longest a listing lasts: ninety days.
pub const MAX_LISTED: u64 = 90 * 24 * 3_600;
/// The market fee when the genesis leaves it out: 1%.
pub const DEFAULT_FEE_BPS: u64 = 100;

const FIXED: u64 = 1;
const AUCTION: u64 = 2;
/// Listing states (0: active).
const SOLD: u64 = 1;
const CANCELLED: u64 = 2;
const VOID: u64 = 3;

fn sockets_view<C: SolCall>(m: &mut Metered<'_>, c: C) -> Result<C::Return, ModuleError> {
    let out = m.call_module(SOCKETS_ADDRESS, &c.abi_encode())?;
    C::abi_decode_returns(&out).map_err(|_| revert("the Sockets module answered garbage"))
}

fn owner_of(m: &mut Metered<'_>, token: U256) -> Result<Address, ModuleError> {
    sockets_view(m, ISockets::ownerOfCall { tokenId: token })
}

/// Whether the Market may move `owner`'s `token`.
fn approved(m: &mut Metered<'_>, owner: Address, token: U256) -> Result<bool, ModuleError> {
    Ok(
        sockets_view(m, ISockets::getApprovedCall { tokenId: token })? == MARKET_ADDRESS
            || sockets_view(
                m,
                ISockets::isApprovedForAllCall {
                    owner,
                    operator: MARKET_ADDRESS,
                },
            )?,
    )
}

pub fn list(
    m: &mut Metered<'_>,
    seller: Address,
    token: U256,
    price: U256,
    ends: u64,
    auction: bool,
    now: u64,
) -> Result<U256, ModuleError> {
    if owner_of(m, token)? != seller {
        return Err(revert(format!("the caller does not hold socket {token}")));
    }
    if !approved(m, seller, token)? {
        return Err(revert(format!(
            "approve the Market ({MARKET_ADDRESS}) for socket {token} first"
        )));
    }
    if price.is_zero() {
        return Err(revert(
            "a listing has a price (an auction, a reserve) above zero",
        ));
    }
    if ends <= now || ends > now + MAX_LISTED {
        return Err(revert(format!(
            "a listing ends within the next {MAX_LISTED} seconds, not at {ends} (now {now})"
        )));
    }
    let id = U256::from(LISTINGS_MADE.get(m)? + 1);
    LISTINGS_MADE.set(m, &id.saturating_to())?;
    let kind = if auction { AUCTION } else { FIXED };
    LISTINGS.set(m, &id, l::SELLER, &seller)?;
    LISTINGS.set(m, &id, l::TOKEN, &token)?;
    LISTINGS.set(m, &id, l::PRICE, &price)?;
    LISTINGS.set(m, &id, l::ENDS, &ends)?;
    LISTINGS.set(m, &id, l::KIND, &kind)?;
    LISTINGS.set(m, &id, l::LISTED_AT, &now)?;
    emit(
        m,
        IMarket::Listed {
            listingId: id,
            tokenId: token,
            seller,
            auction,
            price,
            ends,
        },
    );
    Ok(id)
}

/// A listing's fields, refused unless it is active.
struct Listing {
    seller: Address,
    token: U256,
    price: U256,
    ends: u64,
    kind: u64,
}

fn active(m: &mut Metered<'_>, id: U256) -> Result<Listing, ModuleError> {
    let seller: Address = LISTINGS.get(m, &id, l::SELLER)?;
    if seller.is_zero() {
        return Err(revert(format!("no listing {id}")));
    }
    if LISTINGS.get::<u64>(m, &id, l::STATE)? != 0 {
        return Err(revert(format!("listing {id} is closed")));
    }
    Ok(Listing {
        seller,
        token: LISTINGS.get(m, &id, l::TOKEN)?,
        price: LISTINGS.get(m, &id, l::PRICE)?,
        ends: LISTINGS.get(m, &id, l::ENDS)?,
        kind: LISTINGS.get(m, &id, l::KIND)?,
    })
}

/// Moves the token to `buyer` and splits `price`: royalty, fee, the seller's rest.
fn complete(
    m: &mut Metered<'_>,
    id: U256,
    x: &Listing,
    buyer: Address,
    price: U256,
) -> Result<(), ModuleError> {
    let move_it = ISockets::transferFromCall {
        from: x.seller,
        to: buyer,
        tokenId: x.token,
    };
    m.call_module(SOCKETS_ADDRESS, &move_it.abi_encode())?;
    let r = sockets_view(
        m,
        ISockets::royaltyInfoCall {
            tokenId: x.token,
            salePrice: price,
        },
    )?;
    let bps = match FEE_BPS.get(m)? {
        0 => DEFAULT_FEE_BPS,
        k => k,
    };
    let fee = price * U256::from(bps) / U256::from(10_000);
    let royalty = r.royaltyAmount.min(price - fee);
    if !royalty.is_zero() {
        m.pay(r.receiver, royalty)?;
    }
    if !fee.is_zero() {
        m.burn(fee)?;
    }
    let rest = price - fee - royalty;
    if !rest.is_zero() {
        m.pay(x.seller, rest)?;
    }
    LISTINGS.set(m, &id, l::STATE, &SOLD)?;
    emit(
        m,
        IMarket::Sold {
            listingId: id,
            tokenId: x.token,
            seller: x.seller,
            buyer,
            price,
            royalty,
            royaltyTo: r.receiver,
            fee,
        },
    );
    Ok(())
}

pub fn buy(
    m: &mut Metered<'_>,
    buyer: Address,
    id: U256,
    value: U256,
    now: u64,
) -> Result<(), ModuleError> {
    let x = active(m, id)?;
    if x.kind != FIXED {
        return Err(revert(format!("listing {id} is an auction: bid on it")));
    }
    if now >= x.ends {
        return Err(revert(format!("listing {id} ended at {}", x.ends)));
    }
    if value != x.price {
        return Err(revert(format!("send exactly {} wei, not {value}", x.price)));
    }
    if owner_of(m, x.token)? != x.seller {
        return Err(revert(format!(
            "the seller no longer holds socket {}: listing {id} is void",
            x.token
        )));
    }
    complete(m, id, &x, buyer, value)
}

pub fn bid(
    m: &mut Metered<'_>,
    bidder: Address,
    id: U256,
    value: U256,
    now: u64,
) -> Result<(), ModuleError> {
    let x = active(m, id)?;
    if x.kind != AUCTION {
        return Err(revert(format!("listing {id} has a fixed price: buy it")));
    }
    if now >= x.ends {
        return Err(revert(format!("auction {id} ended at {}", x.ends)));
    }
    if bidder == x.seller {
        return Err(revert("a seller cannot bid on its own auction"));
    }
    let high: U256 = LISTINGS.get(m, &id, l::HIGH_BID)?;
    let least = if high.is_zero() {
        x.price
    } else {
        high + (high * U256::from(MIN_RAISE_BPS) / U256::from(10_000)).max(U256::from(1))
    };
    if value < least {
        return Err(revert(format!(
            "a bid on auction {id} is at least {least} wei, not {value}"
        )));
    }
    if !high.is_zero() {
        let before: Address = LISTINGS.get(m, &id, l::HIGH_BIDDER)?;
        m.pay(before, high)?;
    }
    LISTINGS.set(m, &id, l::HIGH_BIDDER, &bidder)?;
    LISTINGS.set(m, &id, l::HIGH_BID, &value)?;
    let listed: u64 = LISTINGS.get(m, &id, l::LISTED_AT)?;
    let window = EXTEND.min(x.ends.saturating_sub(listed) / 10);
    let ends = if x.ends - now < window {
        now + window
    } else {
        x.ends
    };
    if ends != x.ends {
        LISTINGS.set(m, &id, l::ENDS, &ends)?;
    }
    emit(
        m,
        IMarket::AuctionBid {
            listingId: id,
            bidder,
            amount: value,
            ends,
        },
    );
    Ok(())
}

/// Anyone settles an auction after its end: to the high bidder if the seller still
/// holds the token and the Market may still move it; otherwise the high bid goes back.
pub fn settle(m: &mut Metered<'_>, id: U256, now: u64) -> Result<(), ModuleError> {
    let x = active(m, id)?;
    if x.kind != AUCTION {
        return Err(revert(format!("listing {id} is not an auction")));
    }
    if now < x.ends {
        return Err(revert(format!("auction {id} runs until {}", x.ends)));
    }
    let high: U256 = LISTINGS.get(m, &id, l::HIGH_BID)?;
    let bidder: Address = LISTINGS.get(m, &id, l::HIGH_BIDDER)?;
    if high.is_zero() {
        LISTINGS.set(m, &id, l::STATE, &CANCELLED)?;
        emit(
            m,
            IMarket::ListingClosed {
                listingId: id,
                reason: "no bids".into(),
            },
        );
        return Ok(());
    }
    if owner_of(m, x.token)? != x.seller || !approved(m, x.seller, x.token)? {
        LISTINGS.set(m, &id, l::STATE, &VOID)?;
        m.pay(bidder, high)?;
        emit(
            m,
            IMarket::ListingClosed {
                listingId: id,
                reason: "the seller no longer holds the socket or no longer lets the Market move it; the high bid is refunded".into(),
            },
        );
        return Ok(());
    }
    complete(m, id, &x, bidder, high)
}

pub fn cancel(m: &mut Metered<'_>, caller: Address, id: U256) -> Result<(), ModuleError> {
    let x = active(m, id)?;
    if x.seller != caller {
        return Err(revert(format!("listing {id} is {}'s", x.seller)));
    }
    if x.kind == AUCTION && !LISTINGS.get::<U256>(m, &id, l::HIGH_BID)?.is_zero() {
        return Err(revert(format!(
            "auction {id} has a bid: it runs to its end"
        )));
    }
    LISTINGS.set(m, &id, l::STATE, &CANCELLED)?;
    emit(
        m,
        IMarket::ListingClosed {
            listingId: id,
            reason: "cancelled by the seller".into(),
        },
    );
    Ok(())
}

/// `listingInfo(id)`.
pub fn info(m: &mut Metered<'_>, id: U256) -> Result<IMarket::Listing, ModuleError> {
    let seller: Address = LISTINGS.get(m, &id, l::SELLER)?;
    if seller.is_zero() {
        return Err(revert(format!("no listing {id}")));
    }
    Ok(IMarket::Listing {
        seller,
        tokenId: LISTINGS.get(m, &id, l::TOKEN)?,
        auction: LISTINGS.get::<u64>(m, &id, l::KIND)? == AUCTION,
        price: LISTINGS.get(m, &id, l::PRICE)?,
        ends: LISTINGS.get(m, &id, l::ENDS)?,
        state: LISTINGS.get::<u64>(m, &id, l::STATE)? as u8,
        highBidder: LISTINGS.get(m, &id, l::HIGH_BIDDER)?,
        highBid: LISTINGS.get(m, &id, l::HIGH_BID)?,
    })
}
