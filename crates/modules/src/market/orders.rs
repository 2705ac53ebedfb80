//! Buyers' orders and providers' bids: a reverse auction that ends in a lease.
//!
//! * A buyer posts an order (app, unit, units, the most it pays per unit, a deadline,
//!   the lease's validity, a minimum E, how many bids it takes) and deposits
//!   `units × maxPricePerUnit`: it can never pay more.
//! * A provider bids for its own node (which must serve the app, and whose owner's E
//!   must reach the order's minimum) at no more than the order's maximum and no more
//!   than the genesis's multiple of the market's last clearing price, posting a bond
//!   of `bondBps` of the bid's value. An order takes at most its `maxBids` bids
//!   (at most [`MAX_BIDS`]); a node bids once.
//! * At the deadline (the end-of-block hook awards due orders; `close` lets anyone do
//!   it at once) or when the buyer accepts earlier, the best bid wins by rule, never by
//!   hand: the lowest price, then the highest E, then the fewest evidenced failures,
//!   then the most leases, then the lower node id. The lease starts as a socket minted
//!   to the buyer with the units at the winning price; the buyer's change and every
//!   losing bond go back; an order no one bid on refunds its deposit.
//! * The winner's bond stays until [`REPORT_WINDOW`] after the lease ends
//!   (`releaseBond`), unless at least two staked routers sign that the node refused or
//!   timed out a call during the lease (`reportFailure`): then the bond goes to the
//!   buyer. A buyer alone, or one router, cannot take an honest provider's bond.

use super::storage::{
    bid as b, node as nd, order as o, BIDS, BIDS_MADE, BOND_BPS, DUE, DUE_CURSOR, LEASE_OF, NODES,
    ORDERS, ORDERS_MADE, ORDER_BIDS,
};
use super::{revert, spot, IMarket};
use crate::kit::abi::emit;
use crate::registry::RegistryModule;
use crate::sockets::{economy, ISockets};
use crate::staking;
use crate::{Metered, ModuleError};
use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_sol_types::SolValue;

/// Most bids one order takes.
pub const MAX_BIDS: u8 = 32;
/// Longest an order stays open: seven days.
pub const MAX_OPEN: u64 = 7 * 24 * 3_600;
/// Seconds after a lease ends during which failures may still be reported.
pub const REPORT_WINDOW: u64 = 3_600;
/// The due index's bucket, seconds.
pub const BUCKET: u64 = 10;
/// Most orders the end-of-block hook awards, and empty buckets it steps over, a block.
pub const MAX_AWARDS: u64 = 32;
pub const MAX_STEPS: u64 = 256;
/// Routers that must report a failure before a bond is taken.
pub const REPORTS_NEEDED: usize = 2;
/// The bond when the genesis leaves it out: 10% of the bid's value.
pub const DEFAULT_BOND_BPS: u64 = 1_000;

/// Order states.
const OPEN: u64 = 0;
const LEASED: u64 = 1;
const UNFILLED: u64 = 2;
/// Bid states (0: open).
const WON: u64 = 1;
const LOST: u64 = 2;
const RELEASED: u64 = 3;
const SLASHED: u64 = 4;

pub fn place(
    m: &mut Metered<'_>,
    buyer: Address,
    c: &IMarket::placeOrderCall,
    value: U256,
    now: u64,
) -> Result<U256, ModuleError> {
    super::check_order(&c.app, c.unit, c.units, c.maxPricePerUnit)?;
    if c.deadline <= now || c.deadline > now + MAX_OPEN {
        return Err(revert(format!(
            "the deadline {} is not within the next {MAX_OPEN} seconds (now {now})",
            c.deadline
        )));
    }
    if c.validFor == 0 || c.validFor > economy::MAX_VALID_FOR {
        return Err(revert(format!(
            "a lease is 1 to {} seconds",
            economy::MAX_VALID_FOR
        )));
    }
    if c.maxBids == 0 || c.maxBids > MAX_BIDS {
        return Err(revert(format!("an order takes 1 to {MAX_BIDS} bids")));
    }
    let deposit = c
        .maxPricePerUnit
        .checked_mul(U256::from(c.units))
        .ok_or_else(|| revert("the deposit overflows"))?;
    if value != deposit {
        return Err(revert(format!(
            "send exactly {deposit} wei ({} units at most {} wei), not {value}",
            c.units, c.maxPricePerUnit
        )));
    }
    let id = U256::from(ORDERS_MADE.get(m)? + 1);
    ORDERS_MADE.set(m, &id.saturating_to())?;
    ORDERS.set(m, &id, o::BUYER, &buyer)?;
    ORDERS.set_str(m, &id, o::APP, &c.app)?;
    ORDERS.set(m, &id, o::UNIT, &(c.unit as u64))?;
    ORDERS.set(m, &id, o::UNITS, &c.units)?;
    ORDERS.set(m, &id, o::MAX_PRICE, &c.maxPricePerUnit)?;
    ORDERS.set(m, &id, o::DEADLINE, &c.deadline)?;
    ORDERS.set(m, &id, o::VALID_FOR, &c.validFor)?;
    ORDERS.set(m, &id, o::MIN_SCORE, &c.minScore)?;
    ORDERS.set(m, &id, o::MAX_BIDS, &(c.maxBids as u64))?;
    DUE.push(m, &(c.deadline / BUCKET), &id, u64::MAX)?;
    if DUE_CURSOR.get(m)?.is_zero() {
        DUE_CURSOR.set(m, &(U256::from(now / BUCKET) << 64))?;
    }
    emit(
        m,
        IMarket::OrderPlaced {
            orderId: id,
            buyer,
            app: c.app.clone(),
            unit: c.unit,
            units: c.units,
            maxPricePerUnit: c.maxPricePerUnit,
            deadline: c.deadline,
        },
    );
    Ok(id)
}

/// The order's fields a bid and an award need.
struct Open {
    buyer: Address,
    app: String,
    unit: u8,
    units: u64,
    max_price: U256,
    deadline: u64,
}

fn open_order(m: &mut Metered<'_>, id: U256) -> Result<Open, ModuleError> {
    let buyer: Address = ORDERS.get(m, &id, o::BUYER)?;
    if buyer.is_zero() {
        return Err(revert(format!("no order {id}")));
    }
    if ORDERS.get::<u64>(m, &id, o::STATE)? != OPEN {
        return Err(revert(format!("order {id} is closed")));
    }
    Ok(Open {
        buyer,
        app: ORDERS.get_str(m, &id, o::APP, economy::MAX_APP)?,
        unit: ORDERS.get::<u64>(m, &id, o::UNIT)? as u8,
        units: ORDERS.get(m, &id, o::UNITS)?,
        max_price: ORDERS.get(m, &id, o::MAX_PRICE)?,
        deadline: ORDERS.get(m, &id, o::DEADLINE)?,
    })
}

fn bond_bps(m: &mut Metered<'_>) -> Result<u64, ModuleError> {
    Ok(match BOND_BPS.get(m)? {
        0 => DEFAULT_BOND_BPS,
        k => k,
    })
}

/// A bid's bond: `bondBps` of `units × price`, at least one wei.
pub fn bond_of(m: &mut Metered<'_>, units: u64, price: U256) -> Result<U256, ModuleError> {
    let worth = price.saturating_mul(U256::from(units));
    Ok((worth.saturating_mul(U256::from(bond_bps(m)?)) / U256::from(10_000)).max(U256::from(1)))
}

/// `bondOf(order, price)`.
pub fn bond_for(m: &mut Metered<'_>, id: U256, price: U256) -> Result<U256, ModuleError> {
    let units: u64 = ORDERS.get(m, &id, o::UNITS)?;
    if units == 0 {
        return Err(revert(format!("no order {id}")));
    }
    bond_of(m, units, price)
}

pub fn bid(
    m: &mut Metered<'_>,
    provider: Address,
    c: &IMarket::bidCall,
    value: U256,
    now: u64,
) -> Result<U256, ModuleError> {
    let order = open_order(m, c.orderId)?;
    if now >= order.deadline {
        return Err(revert(format!(
            "order {}'s bidding closed at {}",
            c.orderId, order.deadline
        )));
    }
    super::provider_check(m, provider, c.node, &order.app)?;
    if c.pricePerUnit.is_zero() || c.pricePerUnit > order.max_price {
        return Err(revert(format!(
            "a bid is above zero and at most the order's {} wei a unit",
            order.max_price
        )));
    }
    super::guard::provider_price(m, spot::market_of(&order.app, order.unit), c.pricePerUnit)?;
    let min_score: U256 = ORDERS.get(m, &c.orderId, o::MIN_SCORE)?;
    let score = staking::score_of(m, provider)?;
    if score < min_score {
        return Err(revert(format!(
            "the node's E is {score}, below the order's minimum {min_score}"
        )));
    }
    let max_bids: u64 = ORDERS.get(m, &c.orderId, o::MAX_BIDS)?;
    let bids = ORDER_BIDS.all(m, &c.orderId, MAX_BIDS as u64)?;
    if bids.len() as u64 >= max_bids {
        return Err(revert(format!(
            "order {} takes at most {max_bids} bids",
            c.orderId
        )));
    }
    for other in &bids {
        if BIDS.get::<B256>(m, other, b::NODE)? == c.node {
            return Err(revert(format!(
                "node {} has bid on order {} already",
                c.node, c.orderId
            )));
        }
    }
    let bond = bond_of(m, order.units, c.pricePerUnit)?;
    if value != bond {
        return Err(revert(format!(
            "send exactly the bond, {bond} wei, not {value}"
        )));
    }
    let id = U256::from(BIDS_MADE.get(m)? + 1);
    BIDS_MADE.set(m, &id.saturating_to())?;
    BIDS.set(m, &id, b::ORDER, &c.orderId)?;
    BIDS.set(m, &id, b::PROVIDER, &provider)?;
    BIDS.set(m, &id, b::NODE, &c.node)?;
    BIDS.set(m, &id, b::PRICE, &c.pricePerUnit)?;
    BIDS.set(m, &id, b::BOND, &bond)?;
    ORDER_BIDS.push(m, &c.orderId, &id, MAX_BIDS as u64)?;
    emit(
        m,
        IMarket::BidPlaced {
            orderId: c.orderId,
            bidId: id,
            node: c.node,
            provider,
            pricePerUnit: c.pricePerUnit,
            bond,
        },
    );
    Ok(id)
}

/// A bid as the award ranks it: lower is better.
type Rank = (
    U256,
    std::cmp::Reverse<U256>,
    u64,
    std::cmp::Reverse<u64>,
    B256,
);

fn rank(m: &mut Metered<'_>, id: U256) -> Result<Rank, ModuleError> {
    let node: B256 = BIDS.get(m, &id, b::NODE)?;
    let provider: Address = BIDS.get(m, &id, b::PROVIDER)?;
    Ok((
        BIDS.get(m, &id, b::PRICE)?,
        std::cmp::Reverse(staking::score_of(m, provider)?),
        NODES.get(m, &node, nd::FAILED)?,
        std::cmp::Reverse(NODES.get(m, &node, nd::LEASES)?),
        node,
    ))
}

/// Ends order `id` now: the best bid wins and its lease begins, or, with no bid whose
/// node still serves the app, the deposit goes back.
pub fn award(m: &mut Metered<'_>, id: U256, now: u64) -> Result<(), ModuleError> {
    let order = open_order(m, id)?;
    let bids = ORDER_BIDS.all(m, &id, MAX_BIDS as u64)?;
    let mut ranked = Vec::with_capacity(bids.len());
    for bid in bids {
        ranked.push((rank(m, bid)?, bid));
    }
    ranked.sort();
    let deposit = order.max_price * U256::from(order.units);
    let mut winner = None;
    for (r, bid) in &ranked {
        // A node that left the registry or dropped the app since it bid cannot serve.
        if winner.is_none() && RegistryModule::price(m, r.4, &order.app)?.is_some() {
            winner = Some((*bid, r.0, r.4));
            continue;
        }
        refund_bond(m, *bid, LOST)?;
    }
    let Some((bid, price, node)) = winner else {
        ORDERS.set(m, &id, o::STATE, &UNFILLED)?;
        m.pay(order.buyer, deposit)?;
        emit(
            m,
            IMarket::OrderUnfilled {
                orderId: id,
                refunded: deposit,
            },
        );
        return Ok(());
    };
    let valid_for: u64 = ORDERS.get(m, &id, o::VALID_FOR)?;
    let cost = price * U256::from(order.units);
    let token = super::issue_socket(
        m,
        ISockets::issueCall {
            to: order.buyer,
            node,
            app: order.app.clone(),
            unit: order.unit,
            units: order.units,
            pricePerUnit: price,
            validFor: valid_for,
        },
    )?;
    if deposit > cost {
        m.pay(order.buyer, deposit - cost)?;
    }
    ORDERS.set(m, &id, o::STATE, &LEASED)?;
    ORDERS.set(m, &id, o::WINNER, &bid)?;
    ORDERS.set(m, &id, o::TOKEN, &token)?;
    ORDERS.set(m, &id, o::LEASE_START, &now)?;
    ORDERS.set(m, &id, o::LEASE_END, &now.saturating_add(valid_for))?;
    BIDS.set(m, &bid, b::STATE, &WON)?;
    LEASE_OF.set(m, &token, &bid)?;
    let leases: u64 = NODES.get(m, &node, nd::LEASES)?;
    NODES.set(m, &node, nd::LEASES, &(leases + 1))?;
    emit(
        m,
        IMarket::Leased {
            orderId: id,
            bidId: bid,
            tokenId: token,
            node,
            pricePerUnit: price,
            units: order.units,
        },
    );
    Ok(())
}

fn refund_bond(m: &mut Metered<'_>, bid: U256, state: u64) -> Result<(), ModuleError> {
    let provider: Address = BIDS.get(m, &bid, b::PROVIDER)?;
    let bond: U256 = BIDS.get(m, &bid, b::BOND)?;
    BIDS.set(m, &bid, b::STATE, &state)?;
    m.pay(provider, bond)?;
    emit(
        m,
        IMarket::BondReleased {
            bidId: bid,
            to: provider,
            amount: bond,
        },
    );
    Ok(())
}

/// The buyer ends its order before the deadline; the rule still picks the winner.
pub fn accept(m: &mut Metered<'_>, caller: Address, id: U256, now: u64) -> Result<(), ModuleError> {
    let order = open_order(m, id)?;
    if order.buyer != caller {
        return Err(revert(format!("order {id} is {}'s", order.buyer)));
    }
    if ORDER_BIDS.len(m, &id)? == 0 {
        return Err(revert(format!("order {id} has no bids to accept")));
    }
    award(m, id, now)
}

/// Anyone ends an order whose deadline has passed.
pub fn close(m: &mut Metered<'_>, id: U256, now: u64) -> Result<(), ModuleError> {
    let order = open_order(m, id)?;
    if now < order.deadline {
        return Err(revert(format!(
            "order {id} is open until {}",
            order.deadline
        )));
    }
    award(m, id, now)
}

/// The end-of-block part: awards the orders of buckets wholly past, at most
/// [`MAX_AWARDS`] a block, resuming where the last block stopped.
pub fn award_due(m: &mut Metered<'_>, now: u64) -> Result<(), ModuleError> {
    let cursor = DUE_CURSOR.get(m)?;
    if cursor.is_zero() {
        return Ok(());
    }
    let (mut bucket, mut i) = super::storage::unseq(cursor);
    let (mut awarded, mut steps) = (0, 0);
    while bucket < now / BUCKET && awarded < MAX_AWARDS && steps < MAX_STEPS {
        steps += 1;
        let n = DUE.len(m, &bucket)?;
        while i < n && awarded < MAX_AWARDS {
            let id = DUE.element(m, &bucket, i)?;
            i += 1;
            if ORDERS.get::<u64>(m, &id, o::STATE)? == OPEN {
                award(m, id, now)?;
                awarded += 1;
            }
        }
        if i >= n {
            bucket += 1;
            i = 0;
        }
    }
    DUE_CURSOR.set(m, &(U256::from(bucket) << 64 | U256::from(i)))
}

/// What a router signs to report that `node` failed lease bid `bidId`'s call at `at`
/// (kind 1 refused, 2 timed out): routers sign its 32 bytes with EIP-191
/// (`personal_sign`).
pub fn failure_message(chain_id: u64, r: &IMarket::FailureReport) -> B256 {
    keccak256(
        (
            "emc lease failure v1".to_string(),
            chain_id,
            r.bidId,
            r.node,
            r.at,
            U256::from(r.kind),
            r.requestHash,
        )
            .abi_encode_params(),
    )
}

pub fn report_failure(
    m: &mut Metered<'_>,
    bid_id: U256,
    reports: &[IMarket::FailureReport],
    now: u64,
) -> Result<(), ModuleError> {
    if BIDS.get::<u64>(m, &bid_id, b::STATE)? != WON {
        return Err(revert(format!("bid {bid_id} holds no lease's bond")));
    }
    if reports.len() > 16 {
        return Err(revert("at most 16 reports at once"));
    }
    let order: U256 = BIDS.get(m, &bid_id, b::ORDER)?;
    let node: B256 = BIDS.get(m, &bid_id, b::NODE)?;
    let (start, end): (u64, u64) = (
        ORDERS.get(m, &order, o::LEASE_START)?,
        ORDERS.get(m, &order, o::LEASE_END)?,
    );
    if now > end.saturating_add(REPORT_WINDOW) {
        return Err(revert(format!(
            "bid {bid_id}'s lease ended at {end}: reports are closed"
        )));
    }
    let chain_id = m.host().chain_id();
    let mut routers: Vec<Address> = Vec::new();
    for r in reports {
        if r.bidId != bid_id
            || r.node != node
            || r.at < start
            || r.at > end
            || !(1..=2).contains(&r.kind)
        {
            return Err(revert(
                "a report names another lease, node, kind or a time outside the lease",
            ));
        }
        m.charge_signature()?;
        let digest = failure_message(chain_id, r);
        let sig = alloy_primitives::Signature::try_from(r.signature.as_ref())
            .map_err(|_| revert("a report's signature is not 65 bytes"))?;
        let router = sig
            .recover_address_from_msg(digest.as_slice())
            .map_err(|_| revert("a report's signature does not recover"))?;
        if !staking::staked_as(m, router, staking::Role::Router)? {
            return Err(revert(format!("{router} is not a staked router")));
        }
        if !routers.contains(&router) {
            routers.push(router);
        }
    }
    if routers.len() < REPORTS_NEEDED {
        return Err(revert(format!(
            "a bond is taken on reports from {REPORTS_NEEDED} staked routers, not {}",
            routers.len()
        )));
    }
    let buyer: Address = ORDERS.get(m, &order, o::BUYER)?;
    let bond: U256 = BIDS.get(m, &bid_id, b::BOND)?;
    BIDS.set(m, &bid_id, b::STATE, &SLASHED)?;
    let failed: u64 = NODES.get(m, &node, nd::FAILED)?;
    NODES.set(m, &node, nd::FAILED, &(failed + 1))?;
    m.pay(buyer, bond)?;
    emit(
        m,
        IMarket::BondSlashed {
            bidId: bid_id,
            to: buyer,
            amount: bond,
            routers: routers.len() as u64,
        },
    );
    Ok(())
}

/// The winner's bond back, once the lease and its report window are over.
pub fn release_bond(m: &mut Metered<'_>, bid_id: U256, now: u64) -> Result<(), ModuleError> {
    if BIDS.get::<u64>(m, &bid_id, b::STATE)? != WON {
        return Err(revert(format!("bid {bid_id} holds no lease's bond")));
    }
    let order: U256 = BIDS.get(m, &bid_id, b::ORDER)?;
    let end: u64 = ORDERS.get(m, &order, o::LEASE_END)?;
    if now <= end.saturating_add(REPORT_WINDOW) {
        return Err(revert(format!(
            "bid {bid_id}'s bond is held until {}",
            end.saturating_add(REPORT_WINDOW)
        )));
    }
    refund_bond(m, bid_id, RELEASED)
}

/// `orderInfo(id)`.
pub fn info(m: &mut Metered<'_>, id: U256) -> Result<IMarket::Order, ModuleError> {
    let buyer: Address = ORDERS.get(m, &id, o::BUYER)?;
    if buyer.is_zero() {
        return Err(revert(format!("no order {id}")));
    }
    Ok(IMarket::Order {
        buyer,
        app: ORDERS.get_str(m, &id, o::APP, economy::MAX_APP)?,
        unit: ORDERS.get::<u64>(m, &id, o::UNIT)? as u8,
        units: ORDERS.get(m, &id, o::UNITS)?,
        maxPricePerUnit: ORDERS.get(m, &id, o::MAX_PRICE)?,
        deadline: ORDERS.get(m, &id, o::DEADLINE)?,
        validFor: ORDERS.get(m, &id, o::VALID_FOR)?,
        minScore: ORDERS.get(m, &id, o::MIN_SCORE)?,
        state: ORDERS.get::<u64>(m, &id, o::STATE)? as u8,
        bids: ORDER_BIDS.all(m, &id, MAX_BIDS as u64)?,
        winner: ORDERS.get(m, &id, o::WINNER)?,
        tokenId: ORDERS.get(m, &id, o::TOKEN)?,
    })
}

/// `nodeRecord(node)`.
pub fn node_record(
    m: &mut Metered<'_>,
    node: B256,
) -> Result<IMarket::nodeRecordReturn, ModuleError> {
    let owner = RegistryModule::owner(m, node)?;
    Ok(IMarket::nodeRecordReturn {
        owner,
        score: staking::score_of(m, owner)?,
        leases: NODES.get(m, &node, nd::LEASES)?,
        failures: NODES.get(m, &node, nd::FAILED)?,
    })
}

/// `bidInfo(id)`.
pub fn bid_info(m: &mut Metered<'_>, id: U256) -> Result<IMarket::Bid, ModuleError> {
    let provider: Address = BIDS.get(m, &id, b::PROVIDER)?;
    if provider.is_zero() {
        return Err(revert(format!("no bid {id}")));
    }
    Ok(IMarket::Bid {
        orderId: BIDS.get(m, &id, b::ORDER)?,
        provider,
        node: BIDS.get(m, &id, b::NODE)?,
        pricePerUnit: BIDS.get(m, &id, b::PRICE)?,
        bond: BIDS.get(m, &id, b::BOND)?,
        state: BIDS.get::<u64>(m, &id, b::STATE)? as u8,
    })
}
