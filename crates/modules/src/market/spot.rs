//! The spot market: bids and asks for one app's standard unit, collected through a
//! block and cleared together at its end at one price ([`super::clearing`]).
//!
//! * A bid deposits `units × limitPerUnit`; at the clearing it pays the uniform price
//!   for what it got, as the credits' escrow of a new socket per provider that serves
//!   it (minted by the Sockets module, so credits are released to the provider only as
//!   calls settle, as for any socket), and the rest of its deposit comes back.
//! * An ask is a provider's promise to serve: its node must be the caller's and serve
//!   the app. It holds nothing; an unfilled ask ends with its block.
//! * Each order's clearing key is `keccak256(owner, height, n)`, `n` counting the
//!   owner's spot orders in the block: the owner fixes it (its own transactions keep
//!   their nonce order), the proposer cannot, so no reordering of a block changes the
//!   price or any fill.
//! * The clearing runs in the end-of-block call, which must not fail (a failure fails
//!   the block): an ask whose node no longer serves the app under the same owner is
//!   dropped before the auction, so every socket it asks for can be issued.
//! * The book holds at most [`MAX_BOOK`] orders a block, and each order prepays the
//!   clearing's work for it in gas at submission ([`GAS_CLEAR_FILL`]), since the
//!   end-of-block call itself is unmetered.

use super::clearing::{self, Order};
use super::storage::{
    head, market as mk, seq, spot as f, unhead, unseq, Counts, BOOK, MARKETS, MARKET_LIST, SEQ,
    SPOT, SPOT_MADE,
};
use super::{revert, IMarket};
use crate::kit::abi::emit;
use crate::registry::RegistryModule;
use crate::sockets::{economy, ISockets};
use crate::{Metered, ModuleError};
use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_sol_types::SolValue;
use std::collections::BTreeMap;

/// Most spot orders one block's book takes, all markets together.
pub const MAX_BOOK: u64 = 1_000;
/// Most markets ever listed (each has had an order).
pub const MAX_MARKETS: u64 = 4_096;
/// Most units one spot order names.
pub const MAX_UNITS: u64 = 1_000_000_000;
/// How long a socket bought on the spot market is valid: thirty days.
pub const SPOT_VALID_FOR: u64 = 30 * 24 * 3_600;
/// Gas every order prepays for its part of the clearing. A clearing of `b` bids and
/// `a` asks makes at most `b + a − 1` fills (each fill ends a bid's or an ask's
/// allocation, and the last ends both), each a new socket; so when each order prepays
/// one fill, a socket minted and its escrow paid, plus its own share (reading it,
/// recording its fill, returning a bid's change), the orders have paid for the
/// whole clearing. A test checks the bound.
pub const GAS_CLEAR_FILL: u64 = 230_000;
pub const GAS_CLEAR_BID: u64 = GAS_CLEAR_FILL + 45_000;
pub const GAS_CLEAR_ASK: u64 = GAS_CLEAR_FILL + 30_000;

/// The market of `app`'s `unit`: `keccak256(abi.encode(app, unit))`.
pub fn market_of(app: &str, unit: u8) -> B256 {
    keccak256((app.to_string(), U256::from(unit)).abi_encode_params())
}

/// Records the market on its first order.
fn touch_market(m: &mut Metered<'_>, key: B256, app: &str, unit: u8) -> Result<(), ModuleError> {
    let known: String = MARKETS.get_str(m, &key, mk::APP, economy::MAX_APP)?;
    if known.is_empty() {
        MARKET_LIST
            .push(m, &key, MAX_MARKETS)
            .map_err(|_| revert(format!("the market lists {MAX_MARKETS} markets already")))?;
        MARKETS.set_str(m, &key, mk::APP, app)?;
        MARKETS.set(m, &key, mk::UNIT, &(unit as u64))?;
    }
    Ok(())
}

/// Enters an order in this block's book: its id.
fn enter(
    m: &mut Metered<'_>,
    owner: Address,
    ask: bool,
    key: B256,
    node: B256,
    units: u64,
    limit: U256,
) -> Result<U256, ModuleError> {
    let height = m.host().height();
    m.charge(if ask { GAS_CLEAR_ASK } else { GAS_CLEAR_BID })?;
    let id = U256::from(SPOT_MADE.get(m)? + 1);
    BOOK.push(m, &id, MAX_BOOK).map_err(|_| {
        revert(format!(
            "this block's spot book is full ({MAX_BOOK} orders): submit in the next block"
        ))
    })?;
    SPOT_MADE.set(m, &id.saturating_to())?;
    let (h, n) = unseq(SEQ.get(m, &owner)?);
    let n = if h == height { n } else { 0 };
    SEQ.set(m, &owner, &seq(height, n + 1))?;
    SPOT.set(m, &id, f::HEAD, &head(owner, ask))?;
    SPOT.set(m, &id, f::MARKET, &key)?;
    if ask {
        SPOT.set(m, &id, f::NODE, &node)?;
    }
    SPOT.set(m, &id, f::LIMIT, &limit)?;
    let counts = Counts {
        units,
        height,
        filled: 0,
        n,
    };
    SPOT.set(m, &id, f::COUNTS, &counts.encode())?;
    Ok(id)
}

pub fn bid(
    m: &mut Metered<'_>,
    buyer: Address,
    c: &IMarket::spotBidCall,
    value: U256,
) -> Result<U256, ModuleError> {
    super::check_order(&c.app, c.unit, c.units, c.limitPerUnit)?;
    let deposit = c
        .limitPerUnit
        .checked_mul(U256::from(c.units))
        .ok_or_else(|| revert("the deposit overflows"))?;
    if value != deposit {
        return Err(revert(format!(
            "send exactly {deposit} wei ({} units at {} wei), not {value}",
            c.units, c.limitPerUnit
        )));
    }
    let key = market_of(&c.app, c.unit);
    touch_market(m, key, &c.app, c.unit)?;
    let id = enter(m, buyer, false, key, B256::ZERO, c.units, c.limitPerUnit)?;
    emit(
        m,
        IMarket::SpotBid {
            orderId: id,
            market: key,
            buyer,
            units: c.units,
            limitPerUnit: c.limitPerUnit,
        },
    );
    Ok(id)
}

pub fn ask(
    m: &mut Metered<'_>,
    provider: Address,
    c: &IMarket::spotAskCall,
) -> Result<U256, ModuleError> {
    super::check_order(&c.app, c.unit, c.units, c.limitPerUnit)?;
    super::provider_check(m, provider, c.node, &c.app)?;
    let key = market_of(&c.app, c.unit);
    super::guard::provider_price(m, key, c.limitPerUnit)?;
    touch_market(m, key, &c.app, c.unit)?;
    let id = enter(m, provider, true, key, c.node, c.units, c.limitPerUnit)?;
    emit(
        m,
        IMarket::SpotAsk {
            orderId: id,
            market: key,
            node: c.node,
            provider,
            units: c.units,
            limitPerUnit: c.limitPerUnit,
        },
    );
    Ok(id)
}

/// The clearing key of `owner`'s `n`th spot order at `height`.
pub fn clearing_key(owner: Address, height: u64, n: u64) -> B256 {
    keccak256((owner, height, n).abi_encode_params())
}

/// One order of the book, as the clearing and its payments need it.
struct Entry {
    id: U256,
    owner: Address,
    node: B256,
    counts: Counts,
    order: Order,
}

fn load(m: &mut Metered<'_>, id: U256) -> Result<(bool, B256, Entry), ModuleError> {
    let (owner, ask) = unhead(SPOT.get(m, &id, f::HEAD)?);
    let counts = Counts::decode(SPOT.get(m, &id, f::COUNTS)?);
    let e = Entry {
        id,
        owner,
        node: if ask {
            SPOT.get(m, &id, f::NODE)?
        } else {
            B256::ZERO
        },
        counts,
        order: Order {
            key: clearing_key(owner, counts.height, counts.n),
            units: counts.units,
            limit: SPOT.get(m, &id, f::LIMIT)?,
        },
    };
    Ok((ask, SPOT.get(m, &id, f::MARKET)?, e))
}

fn record_fill(m: &mut Metered<'_>, e: &Entry, filled: u64) -> Result<(), ModuleError> {
    let counts = Counts { filled, ..e.counts };
    SPOT.set(m, &e.id, f::COUNTS, &counts.encode())
}

/// The end of a block: clears every market with orders, in the order of their keys,
/// and empties the book.
pub fn clear_block(m: &mut Metered<'_>) -> Result<(), ModuleError> {
    let ids = BOOK.all(m, MAX_BOOK)?;
    if ids.is_empty() {
        return Ok(());
    }
    let mut books: BTreeMap<B256, (Vec<Entry>, Vec<Entry>)> = BTreeMap::new();
    let mut apps: BTreeMap<B256, String> = BTreeMap::new();
    for id in ids {
        let (ask, key, e) = load(m, id)?;
        if ask {
            // An ask whose node left the registry, dropped the app or changed hands
            // since it was made cannot be served: it leaves the book (and the
            // clearing, which may not fail, never asks the Sockets module for it).
            if let std::collections::btree_map::Entry::Vacant(v) = apps.entry(key) {
                v.insert(MARKETS.get_str(m, &key, mk::APP, economy::MAX_APP)?);
            }
            match RegistryModule::price(m, e.node, &apps[&key])? {
                Some((owner, _)) if owner == e.owner => {}
                _ => continue,
            }
        }
        let book = books.entry(key).or_default();
        if ask { &mut book.1 } else { &mut book.0 }.push(e);
    }
    for (key, (bids, asks)) in books {
        clear_market(m, key, &bids, &asks)?;
    }
    m.sstore(BOOK.len_slot(), U256::ZERO)
}

fn clear_market(
    m: &mut Metered<'_>,
    key: B256,
    bids: &[Entry],
    asks: &[Entry],
) -> Result<(), ModuleError> {
    let height = m.host().height();
    let b: Vec<Order> = bids.iter().map(|e| e.order).collect();
    let a: Vec<Order> = asks.iter().map(|e| e.order).collect();
    let cleared = clearing::clear(&b, &a);
    let app: String = MARKETS.get_str(m, &key, mk::APP, economy::MAX_APP)?;
    let unit: u64 = MARKETS.get(m, &key, mk::UNIT)?;
    let mut paid = vec![U256::ZERO; bids.len()];
    let mut filled_bid = vec![0u64; bids.len()];
    let mut filled_ask = vec![0u64; asks.len()];
    if let Some(c) = &cleared {
        for fill in &c.fills {
            let (bid, ask) = (&bids[fill.bid], &asks[fill.ask]);
            let amount = c.price * U256::from(fill.units);
            let token = super::issue_socket(
                m,
                ISockets::issueCall {
                    to: bid.owner,
                    node: ask.node,
                    app: app.clone(),
                    unit: unit as u8,
                    units: fill.units,
                    pricePerUnit: c.price,
                    validFor: SPOT_VALID_FOR,
                },
            )?;
            paid[fill.bid] += amount;
            filled_bid[fill.bid] += fill.units;
            filled_ask[fill.ask] += fill.units;
            emit(
                m,
                IMarket::SpotFilled {
                    market: key,
                    bidId: bid.id,
                    askId: ask.id,
                    buyer: bid.owner,
                    node: ask.node,
                    units: fill.units,
                    price: c.price,
                    tokenId: token,
                },
            );
        }
        MARKETS.set(m, &key, mk::PRICE, &c.price)?;
        MARKETS.set(m, &key, mk::HEIGHT, &height)?;
        MARKETS.set(m, &key, mk::VOLUME, &c.volume)?;
        let total: u64 = MARKETS.get(m, &key, mk::TOTAL)?;
        MARKETS.set(m, &key, mk::TOTAL, &total.saturating_add(c.volume))?;
        emit(
            m,
            IMarket::Cleared {
                market: key,
                height,
                app: app.clone(),
                unit: unit as u8,
                price: c.price,
                volume: c.volume,
            },
        );
    }
    for (i, bid) in bids.iter().enumerate() {
        let deposit = bid.order.limit * U256::from(bid.order.units);
        let change = deposit - paid[i];
        if filled_bid[i] > 0 {
            record_fill(m, bid, filled_bid[i])?;
        }
        if !change.is_zero() {
            m.pay(bid.owner, change)?;
            emit(
                m,
                IMarket::SpotRefunded {
                    orderId: bid.id,
                    to: bid.owner,
                    amount: change,
                },
            );
        }
    }
    for (i, ask) in asks.iter().enumerate() {
        if filled_ask[i] > 0 {
            record_fill(m, ask, filled_ask[i])?;
        }
    }
    Ok(())
}

/// `spotOrder(id)`.
pub fn order_info(m: &mut Metered<'_>, id: U256) -> Result<IMarket::SpotOrder, ModuleError> {
    let (owner, ask) = unhead(SPOT.get(m, &id, f::HEAD)?);
    if owner.is_zero() {
        return Err(revert(format!("no spot order {id}")));
    }
    let c = Counts::decode(SPOT.get(m, &id, f::COUNTS)?);
    Ok(IMarket::SpotOrder {
        owner,
        ask,
        market: SPOT.get(m, &id, f::MARKET)?,
        node: SPOT.get(m, &id, f::NODE)?,
        units: c.units,
        limitPerUnit: SPOT.get(m, &id, f::LIMIT)?,
        height: c.height,
        filled: c.filled,
    })
}

/// `quote(market)`.
pub fn quote(m: &mut Metered<'_>, key: B256) -> Result<IMarket::Quote, ModuleError> {
    let app: String = MARKETS.get_str(m, &key, mk::APP, economy::MAX_APP)?;
    if app.is_empty() {
        return Err(revert(format!("no market {key}")));
    }
    Ok(IMarket::Quote {
        app,
        unit: MARKETS.get::<u64>(m, &key, mk::UNIT)? as u8,
        price: MARKETS.get(m, &key, mk::PRICE)?,
        height: MARKETS.get(m, &key, mk::HEIGHT)?,
        volume: MARKETS.get(m, &key, mk::VOLUME)?,
        totalVolume: MARKETS.get(m, &key, mk::TOTAL)?,
    })
}
