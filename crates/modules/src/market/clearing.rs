//! The spot market's call auction, as pure code: the bids and asks of one market
//! (one app's standard unit) submitted in one block go in, one uniform price and the
//! fills come out.
//!
//! The rule, in order:
//! 1. The price is a limit price of some order at which the matched volume,
//!    `min(demand, supply)`, is largest (demand: units bid at or above the price;
//!    supply: units asked at or below it).
//! 2. Among those, the one that leaves the least imbalance `|demand − supply|`.
//! 3. Among those, the lower median.
//!
//! At that price every bid above it and every ask below it is filled first (price
//! priority); the long side's marginal level (orders exactly at the price) is
//! rationed pro rata by units, rounded down, and the units left over go one each to
//! that level's orders in the order of their keys. Bids are then paired with asks
//! in priority order (best limit first, then key) to say which provider serves which
//! buyer.
//!
//! Invariants (the property tests check each): the price and every order's fill
//! depend only on the set of orders, never on the order they are given in (keys are
//! unique and come from what the submitter controls, not from the block's order);
//! no filled bid pays above its limit and no filled ask sells below its own; both
//! sides fill the same volume, which is the largest any single price could match;
//! no order fills more than it asked for.

use alloy_primitives::{B256, U256};
use std::cmp::Ordering;

/// One order of a call auction: a key unique within its block (a hash of what its
/// submitter controls), units and a limit price per unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    pub key: B256,
    pub units: u64,
    pub limit: U256,
}

/// `units` of bid `bid` (an index into the bids given) served by ask `ask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fill {
    pub bid: usize,
    pub ask: usize,
    pub units: u64,
}

/// A cleared auction: its one price, the volume matched, and the fills.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clearing {
    pub price: U256,
    pub volume: u64,
    pub fills: Vec<Fill>,
}

/// Demand and supply at `p`, saturating (a block's units are bounded far below).
fn depth(bids: &[Order], asks: &[Order], p: U256) -> (u64, u64) {
    let d = bids
        .iter()
        .filter(|b| b.limit >= p)
        .fold(0u64, |s, b| s.saturating_add(b.units));
    let s = asks
        .iter()
        .filter(|a| a.limit <= p)
        .fold(0u64, |s, a| s.saturating_add(a.units));
    (d, s)
}

/// The clearing price and volume of `bids` against `asks`, or `None` when nothing
/// crosses. `O(n²)` in the orders of one market; a block's book is bounded.
pub fn price(bids: &[Order], asks: &[Order]) -> Option<(U256, u64)> {
    let mut candidates: Vec<U256> = bids.iter().chain(asks).map(|o| o.limit).collect();
    candidates.sort();
    candidates.dedup();
    let scored: Vec<(U256, u64, u64)> = candidates
        .into_iter()
        .map(|p| {
            let (d, s) = depth(bids, asks, p);
            (p, d.min(s), d.abs_diff(s))
        })
        .collect();
    let volume = scored.iter().map(|c| c.1).max()?;
    if volume == 0 {
        return None;
    }
    let least = scored.iter().filter(|c| c.1 == volume).map(|c| c.2).min()?;
    let best: Vec<U256> = scored
        .iter()
        .filter(|c| c.1 == volume && c.2 == least)
        .map(|c| c.0)
        .collect();
    Some((best[(best.len() - 1) / 2], volume))
}

/// How `volume` units go to `orders` (those that trade at the price), best first by
/// `better`: whole levels while they fit, then the marginal level pro rata, its
/// remainder one unit each by key. Returns each order's units, by index.
fn allocate(
    orders: &[Order],
    eligible: &[usize],
    volume: u64,
    better: impl Fn(&Order, &Order) -> Ordering,
) -> Vec<u64> {
    let mut sorted = eligible.to_vec();
    sorted.sort_by(|&i, &j| better(&orders[i], &orders[j]).then(orders[i].key.cmp(&orders[j].key)));
    let mut filled = vec![0u64; orders.len()];
    let mut left = volume;
    let mut k = 0;
    while k < sorted.len() && left > 0 {
        let limit = orders[sorted[k]].limit;
        let level: Vec<usize> = sorted[k..]
            .iter()
            .copied()
            .take_while(|&i| orders[i].limit == limit)
            .collect();
        k += level.len();
        let total = level
            .iter()
            .fold(0u64, |s, &i| s.saturating_add(orders[i].units));
        if total <= left {
            for &i in &level {
                filled[i] = orders[i].units;
            }
            left -= total;
            continue;
        }
        // Pro rata, rounded down, in u128 so no product overflows.
        for &i in &level {
            filled[i] = (orders[i].units as u128 * left as u128 / total as u128) as u64;
        }
        let mut rest = left - level.iter().map(|&i| filled[i]).sum::<u64>();
        // `level` is in key order within the level; each short order gets one more.
        for &i in &level {
            if rest == 0 {
                break;
            }
            if filled[i] < orders[i].units {
                filled[i] += 1;
                rest -= 1;
            }
        }
        left = 0;
    }
    filled
}

/// Clears one market's block: the price, the volume and who serves whom.
pub fn clear(bids: &[Order], asks: &[Order]) -> Option<Clearing> {
    let (price, volume) = price(bids, asks)?;
    let buyers: Vec<usize> = (0..bids.len())
        .filter(|&i| bids[i].limit >= price)
        .collect();
    let sellers: Vec<usize> = (0..asks.len())
        .filter(|&i| asks[i].limit <= price)
        .collect();
    let got = allocate(bids, &buyers, volume, |a, b| b.limit.cmp(&a.limit));
    let gave = allocate(asks, &sellers, volume, |a, b| a.limit.cmp(&b.limit));
    // Pair them in priority order: best bid with best ask, and so on.
    let order = |orders: &[Order], idx: Vec<usize>, desc: bool| {
        let mut v: Vec<usize> = idx;
        v.sort_by(|&i, &j| {
            let by = orders[i].limit.cmp(&orders[j].limit);
            (if desc { by.reverse() } else { by }).then(orders[i].key.cmp(&orders[j].key))
        });
        v
    };
    let b = order(bids, buyers, true);
    let a = order(asks, sellers, false);
    let (mut bi, mut ai) = (0, 0);
    let (mut bleft, mut aleft) = (
        b.first().map(|&i| got[i]).unwrap_or(0),
        a.first().map(|&i| gave[i]).unwrap_or(0),
    );
    let mut fills = Vec::new();
    while bi < b.len() && ai < a.len() {
        if bleft == 0 {
            bi += 1;
            bleft = b.get(bi).map(|&i| got[i]).unwrap_or(0);
            continue;
        }
        if aleft == 0 {
            ai += 1;
            aleft = a.get(ai).map(|&i| gave[i]).unwrap_or(0);
            continue;
        }
        let units = bleft.min(aleft);
        fills.push(Fill {
            bid: b[bi],
            ask: a[ai],
            units,
        });
        bleft -= units;
        aleft -= units;
    }
    Some(Clearing {
        price,
        volume,
        fills,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn o(k: u8, units: u64, limit: u64) -> Order {
        Order {
            key: B256::repeat_byte(k),
            units,
            limit: U256::from(limit),
        }
    }

    /// What bid `i` got in all.
    fn units_of_bid(c: &Clearing, i: usize) -> u64 {
        c.fills.iter().filter(|f| f.bid == i).map(|f| f.units).sum()
    }

    #[test]
    fn a_worked_book_clears_where_the_volume_is_largest() {
        // Demand at 10: 5+3 = 8; at 11: 5; supply at 10: 4+2 = 6, at 9: 4.
        let bids = [o(1, 5, 12), o(2, 3, 10), o(3, 2, 8)];
        let asks = [o(4, 4, 9), o(5, 2, 10), o(6, 6, 13)];
        // At 9: min(10, 4) = 4; at 10: min(8, 6) = 6; at 12: min(5, 6) = 5.
        let c = clear(&bids, &asks).expect("crosses");
        assert_eq!((c.price, c.volume), (U256::from(10), 6));
        // The bid at 12 fills whole (5), the one at 10 gets the remaining 1.
        let per_bid = |i| units_of_bid(&c, i);
        assert_eq!((per_bid(0), per_bid(1), per_bid(2)), (5, 1, 0));
        // The best bid meets the cheapest ask first.
        assert_eq!(
            c.fills[0],
            Fill {
                bid: 0,
                ask: 0,
                units: 4
            }
        );
    }

    #[test]
    fn nothing_clears_when_no_bid_reaches_an_ask() {
        assert_eq!(clear(&[o(1, 5, 8)], &[o(2, 5, 9)]), None);
        assert_eq!(clear(&[], &[o(2, 5, 9)]), None);
    }

    #[test]
    fn the_marginal_level_is_rationed_pro_rata_then_by_key() {
        // Two bids of 3 and 1 at the price compete for 2 units: 1.5 and 0.5, so 1
        // and 0, and the one unit left goes to the lower key that is short.
        let bids = [o(9, 3, 10), o(1, 1, 10)];
        let asks = [o(5, 2, 10)];
        let c = clear(&bids, &asks).expect("crosses");
        let per_bid = |i| units_of_bid(&c, i);
        assert_eq!((per_bid(0), per_bid(1)), (1, 1));
    }

    fn book() -> impl Strategy<Value = (Vec<Order>, Vec<Order>)> {
        let side = |tag: u8| {
            prop::collection::vec((1..50u64, 1..20u64), 0..24).prop_map(move |v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, (u, l))| {
                        let mut key = [tag; 32];
                        key[31] = i as u8;
                        Order {
                            key: B256::from(key),
                            units: u,
                            limit: U256::from(l),
                        }
                    })
                    .collect::<Vec<_>>()
            })
        };
        (side(1), side(2))
    }

    /// The price and each (bid key, ask key, units) fill.
    type Outcome = Option<(U256, Vec<(B256, B256, u64)>)>;

    /// Each order's fill, by key, and the price: what a permutation must not change.
    fn outcome(bids: &[Order], asks: &[Order]) -> Outcome {
        clear(bids, asks).map(|c| {
            let mut f: Vec<_> = c
                .fills
                .iter()
                .map(|f| (bids[f.bid].key, asks[f.ask].key, f.units))
                .collect();
            f.sort();
            (c.price, f)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn the_outcome_does_not_depend_on_arrival_order_and_keeps_every_limit(
            (bids, asks) in book(),
            seed in any::<u64>(),
        ) {
            let want = outcome(&bids, &asks);
            // Any permutation (a seeded shuffle) clears the same.
            let (mut b2, mut a2) = (bids.clone(), asks.clone());
            let mut r = seed;
            for v in [&mut b2, &mut a2] {
                for i in (1..v.len()).rev() {
                    r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    v.swap(i, (r >> 33) as usize % (i + 1));
                }
            }
            prop_assert_eq!(outcome(&b2, &a2), want.clone());
            let Some(c) = clear(&bids, &asks) else { return Ok(()) };
            let mut per_bid = vec![0u64; bids.len()];
            let mut per_ask = vec![0u64; asks.len()];
            for f in &c.fills {
                prop_assert!(bids[f.bid].limit >= c.price, "a bid pays above its limit");
                prop_assert!(asks[f.ask].limit <= c.price, "an ask sells below its limit");
                per_bid[f.bid] += f.units;
                per_ask[f.ask] += f.units;
            }
            prop_assert!(per_bid.iter().zip(&bids).all(|(u, b)| *u <= b.units));
            prop_assert!(per_ask.iter().zip(&asks).all(|(u, a)| *u <= a.units));
            prop_assert_eq!(per_bid.iter().sum::<u64>(), c.volume);
            prop_assert_eq!(per_ask.iter().sum::<u64>(), c.volume);
            // No single price matches more.
            for p in bids.iter().chain(&asks).map(|o| o.limit) {
                let (d, s) = depth(&bids, &asks, p);
                prop_assert!(d.min(s) <= c.volume);
            }
        }
    }
}
