//! The `Market` system module: where compute is bought and sold, every trade on chain.
//!
//! * Standing offers (a provider's price list) are the Sockets module's `offer` and
//!   `buy` (issue 14): one offer book, which the market's views read.
//! * The spot market ([`spot`]): for each app's standard unit, the bids and asks of
//!   one block clear together at its end at one uniform price, in the module kit's
//!   end-of-block hook that every validator runs ([`clearing`] is the rule, pure).
//!   Neither the price nor any fill depends on the order of the block's
//!   transactions. Matched buyers receive sockets for their units.
//! * Price guards ([`guard`]): a provider's price above a genesis-set multiple of the
//!   last clearing price is refused; no order pays above its limit.
//!
//! Invariant: the module holds exactly the deposits of this block's unfilled spot
//! bids (none between blocks: the clearing pays every bid its change). Every socket it
//! has the Sockets module issue is paid for first, so every credit stays backed.

mod abi;
pub mod clearing;
pub mod guard;
pub mod orders;
pub mod resale;
pub mod spot;
mod storage;
#[cfg(test)]
mod tests;

pub use abi::IMarket;

use crate::{Metered, ModuleCall, ModuleError, MARKET_ADDRESS, SYSTEM_CALLER};
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolInterface, SolValue};

/// A revert in this module's name (the kit's `"<Module>: <why>"`).
fn revert(why: impl std::fmt::Display) -> ModuleError {
    crate::kit::abi::revert("Market", why)
}

/// Has the Sockets module issue the socket `call` describes, paying it the credits'
/// escrow (`units × pricePerUnit`) first, so every credit stays backed: the token's id.
fn issue_socket(
    m: &mut Metered<'_>,
    call: crate::sockets::ISockets::issueCall,
) -> Result<U256, ModuleError> {
    let escrow = call.pricePerUnit * U256::from(call.units);
    m.pay(crate::SOCKETS_ADDRESS, escrow)?;
    let out = m.call_module(crate::SOCKETS_ADDRESS, &call.abi_encode())?;
    U256::abi_decode(&out).map_err(|_| revert("the Sockets module answered no token id"))
}

/// The terms every order names, spot or not: an app, a unit, 1 to
/// [`spot::MAX_UNITS`] units and a price per unit above zero.
fn check_order(app: &str, unit: u8, units: u64, price: U256) -> Result<(), ModuleError> {
    let max_app = crate::sockets::economy::MAX_APP;
    if app.is_empty() || app.len() > max_app {
        return Err(revert(format!("an app name is 1 to {max_app} bytes")));
    }
    crate::sockets::Unit::from_u8(unit)
        .map_err(|_| revert(format!("unit {unit} is none of 0 to 3")))?;
    if units == 0 || units > spot::MAX_UNITS {
        return Err(revert(format!(
            "an order is 1 to {} units",
            spot::MAX_UNITS
        )));
    }
    if price.is_zero() {
        return Err(revert("an order has a price per unit above zero"));
    }
    Ok(())
}

/// Refuses, in the Market's name, a provider that does not own `node` or whose node
/// does not serve `app` (the Sockets module's rule).
fn provider_check(
    m: &mut Metered<'_>,
    provider: Address,
    node: B256,
    app: &str,
) -> Result<(), ModuleError> {
    match crate::sockets::economy::provider_refusal(m, provider, node, app)? {
        Some(why) => Err(revert(why)),
        None => Ok(()),
    }
}

pub struct MarketModule;

impl crate::kit::SystemModule for MarketModule {
    fn address(&self) -> Address {
        MARKET_ADDRESS
    }

    fn name(&self) -> &'static str {
        "Market"
    }

    fn genesis(&self, g: &emc_types::Genesis) -> crate::kit::ModuleGenesis {
        crate::kit::ModuleGenesis {
            storage: [
                (
                    storage::PRICE_MULTIPLE.slot(),
                    U256::from(g.market.max_price_multiple),
                ),
                (storage::BOND_BPS.slot(), U256::from(g.market.bond_bps)),
                (storage::FEE_BPS.slot(), U256::from(g.market.fee_bps)),
            ]
            .into(),
            balance: None,
        }
    }

    fn call(&self, m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        use IMarket::IMarketCalls as C;
        let c =
            C::abi_decode(call.input).map_err(|_| revert("unknown function or bad arguments"))?;
        let payable = matches!(
            c,
            C::spotBid(_) | C::placeOrder(_) | C::bid(_) | C::buyListing(_) | C::bidAuction(_)
        );
        if !payable && !call.value.is_zero() {
            return Err(revert("this call takes no value"));
        }
        let view = matches!(
            c,
            C::marketOf(_)
                | C::quote(_)
                | C::markets(_)
                | C::spotOrder(_)
                | C::spotOrderCount(_)
                | C::failureMessage(_)
                | C::orderInfo(_)
                | C::bidInfo(_)
                | C::orderCount(_)
                | C::listingInfo(_)
                | C::leaseOf(_)
                | C::bondOf(_)
                | C::nodeRecord(_)
                | C::listingCount(_)
        );
        if call.is_static && !view {
            return Err(revert("state change in a static call"));
        }
        serve(m, call, c)
    }

    fn end_block(&self, _end: &crate::kit::BlockEnd) -> Option<Bytes> {
        Some(IMarket::clearBlockCall {}.abi_encode().into())
    }
}

fn word<T: SolValue>(v: T) -> Bytes {
    v.abi_encode().into()
}

fn serve(
    m: &mut Metered<'_>,
    call: &ModuleCall<'_>,
    c: IMarket::IMarketCalls,
) -> Result<Bytes, ModuleError> {
    use IMarket::IMarketCalls as C;
    let (who, now) = (call.caller, m.host().timestamp());
    let none = Bytes::new;
    Ok(match c {
        C::spotBid(b) => word(spot::bid(m, who, &b, call.value)?),
        C::spotAsk(a) => word(spot::ask(m, who, &a)?),
        C::clearBlock(_) => {
            if who != SYSTEM_CALLER {
                return Err(revert("only the chain clears the block"));
            }
            spot::clear_block(m)?;
            orders::award_due(m, now)?;
            none()
        }
        C::placeOrder(o) => word(orders::place(m, who, &o, call.value, now)?),
        C::bid(b) => word(orders::bid(m, who, &b, call.value, now)?),
        C::accept(a) => {
            orders::accept(m, who, a.orderId, now)?;
            none()
        }
        C::close(c) => {
            orders::close(m, c.orderId, now)?;
            none()
        }
        C::reportFailure(r) => {
            orders::report_failure(m, r.bidId, &r.reports, now)?;
            none()
        }
        C::releaseBond(r) => {
            orders::release_bond(m, r.bidId, now)?;
            none()
        }
        C::failureMessage(f) => word(orders::failure_message(m.host().chain_id(), &f.report)),
        C::orderInfo(o) => {
            IMarket::orderInfoCall::abi_encode_returns(&orders::info(m, o.orderId)?).into()
        }
        C::bidInfo(b) => {
            IMarket::bidInfoCall::abi_encode_returns(&orders::bid_info(m, b.bidId)?).into()
        }
        C::orderCount(_) => word(U256::from(storage::ORDERS_MADE.get(m)?)),
        C::list(x) => word(resale::list(
            m, who, x.tokenId, x.price, x.ends, false, now,
        )?),
        C::auction(x) => word(resale::list(
            m,
            who,
            x.tokenId,
            x.reservePrice,
            x.ends,
            true,
            now,
        )?),
        C::buyListing(x) => {
            resale::buy(m, who, x.listingId, call.value, now)?;
            none()
        }
        C::bidAuction(x) => {
            resale::bid(m, who, x.listingId, call.value, now)?;
            none()
        }
        C::settleAuction(x) => {
            resale::settle(m, x.listingId, now)?;
            none()
        }
        C::cancelListing(x) => {
            resale::cancel(m, who, x.listingId)?;
            none()
        }
        C::listingInfo(x) => {
            IMarket::listingInfoCall::abi_encode_returns(&resale::info(m, x.listingId)?).into()
        }
        C::bondOf(x) => word(orders::bond_for(m, x.orderId, x.pricePerUnit)?),
        C::leaseOf(x) => word(storage::LEASE_OF.get(m, &x.tokenId)?),
        C::nodeRecord(x) => {
            IMarket::nodeRecordCall::abi_encode_returns(&orders::node_record(m, x.node)?).into()
        }
        C::listingCount(_) => word(U256::from(storage::LISTINGS_MADE.get(m)?)),
        C::marketOf(k) => word(spot::market_of(&k.app, k.unit)),
        C::quote(q) => IMarket::quoteCall::abi_encode_returns(&spot::quote(m, q.market)?).into(),
        C::markets(_) => word(storage::MARKET_LIST.all(m, spot::MAX_MARKETS)?),
        C::spotOrder(o) => {
            IMarket::spotOrderCall::abi_encode_returns(&spot::order_info(m, o.orderId)?).into()
        }
        C::spotOrderCount(_) => word(U256::from(storage::SPOT_MADE.get(m)?)),
    })
}
