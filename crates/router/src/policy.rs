//! The routing policy: which node takes a call. Pure, so every rule is tested alone.
//!
//! Each node that serves the app, is registered on chain for it (so its call can be
//! settled), is not draining and has room gets a cost; the cheapest cost wins and the
//! rest are the order of retries. The cost is a weighted sum of six terms, each
//! scaled so that 1 is "notably worse":
//!
//! | term | value | 1 means |
//! |---|---|---|
//! | distance | (measured RTT + the hops between routers) / 10 ms | 10 ms farther |
//! | load | (running + queued) / capacity | a full node |
//!
//! A node has room while it runs and queues fewer calls than its capacity plus its
//! queue ([`room`]); past that it would refuse, so it is not a candidate (and a router
//! never has more of its own calls there than that: see `RouterTable::try_start`).
//! | price | price / cheapest price − 1 | twice the cheapest |
//! | E | 1 − E / best E | no measured computing power |
//! | reliability | failed / (ok + failed + 1) × 4 | a node failing a quarter of calls |
//! | stake | 1 − stake / most stake | nothing staked |
//!
//! The stake term is the whitepaper's "nodes with more stake are more likely to
//! receive tasks": the stake is the node owner's compute stake in the Staking module,
//! so it is something the owner loses when the node is slashed, not a claim.
//!
//! Default weights are 1 each; a caller sets its own per request
//! (`x-emc-weights: distance=2,price=0`) and caps the price per unit
//! (`x-emc-max-price`). When no node qualifies, [`NoRoute`] says why.

use alloy_primitives::U256;
use emc_protocol::Load;

/// Round trips kept per peer.
pub const RTT_SAMPLES: usize = 8;

/// The measured distance to a peer: the least of its last [`RTT_SAMPLES`] round trips
/// (16 s of pings). A node busy computing answers pings late; that is load, which has
/// its own term, not distance, so the minimum over a short window (as TCP estimates
/// its base round trip) is what routing weighs, and one busy moment does not send the
/// next calls elsewhere. Serialized as that distance in milliseconds (null before the
/// first round trip).
#[derive(Clone, Debug, Default)]
pub struct Rtt {
    samples: std::collections::VecDeque<f64>,
}

impl Rtt {
    pub fn add(&mut self, ms: f64) {
        if self.samples.len() == RTT_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(ms);
    }

    /// The distance in milliseconds; `None` before the first round trip.
    pub fn distance_ms(&self) -> Option<f64> {
        self.samples.iter().copied().reduce(f64::min)
    }
}

impl serde::Serialize for Rtt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.distance_ms().serialize(s)
    }
}

/// What the policy knows of one node.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The price per unit the node registered on chain for the app; `None`: serves the
    /// app but is not registered for it.
    pub price: Option<U256>,
    pub load: Load,
    /// Round trip to the node, plus the router hops on the way, milliseconds; `None`:
    /// not measured yet.
    pub distance_ms: Option<f64>,
    /// The node's last E from the Poc module (0: never measured).
    pub e: u64,
    pub ok: u64,
    pub failed: u64,
    /// The node owner's compute stake, wei (0: none, or not known).
    pub stake: U256,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    pub distance: f64,
    pub load: f64,
    pub price: f64,
    pub e: f64,
    pub reliability: f64,
    pub stake: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            distance: 1.0,
            load: 1.0,
            price: 1.0,
            e: 1.0,
            reliability: 1.0,
            stake: 1.0,
        }
    }
}

impl std::str::FromStr for Weights {
    type Err = String;

    /// `name=value` pairs separated by commas; names not given keep their default.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut w = Weights::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("weight {part:?} is not name=value"))?;
            let v: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && (0.0..=1000.0).contains(v))
                .ok_or_else(|| format!("weight {k:?} must be a number from 0 to 1000"))?;
            match k.trim() {
                "distance" => w.distance = v,
                "load" => w.load = v,
                "price" => w.price = v,
                "e" | "E" => w.e = v,
                "reliability" => w.reliability = v,
                "stake" => w.stake = v,
                other => {
                    return Err(format!(
                        "unknown weight {other:?} (distance, load, price, e, reliability, stake)"
                    ))
                }
            }
        }
        Ok(w)
    }
}

/// Why no node can take a call.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NoRoute {
    #[error("no connected node serves {0:?}")]
    NoApp(String),
    #[error("no node serving {0:?} is registered on chain for it, so no call could be settled")]
    Unregistered(String),
    #[error("every node serving {app:?} asks more than your cap of {cap} wei per unit (cheapest: {cheapest})")]
    AboveCap {
        app: String,
        cap: U256,
        cheapest: U256,
    },
    #[error("every node serving {0:?} is saturated or draining")]
    Saturated(String),
}

/// A node's cost for a call; lower is better.
pub fn cost(c: &Candidate, best: &Best, w: &Weights) -> f64 {
    let (cheapest, best_e) = (best.price, best.e);
    let distance = c.distance_ms.unwrap_or(50.0) / 10.0;
    let load = (c.load.running + c.load.queued) as f64 / c.load.capacity.max(1) as f64;
    let price = match c.price {
        Some(p) if !cheapest.is_zero() => (f64::from(p) / f64::from(cheapest) - 1.0).max(0.0),
        _ => 0.0,
    };
    let e = if best_e == 0 {
        0.0
    } else {
        1.0 - c.e as f64 / best_e as f64
    };
    let reliability = c.failed as f64 / (c.ok + c.failed + 1) as f64 * 4.0;
    let stake = if best.stake.is_zero() {
        0.0
    } else {
        1.0 - f64::from(c.stake) / f64::from(best.stake)
    };
    w.distance * distance
        + w.load * load
        + w.price * price
        + w.e * e
        + w.reliability * reliability
        + w.stake * stake
}

/// The best of each relative term among the open candidates.
#[derive(Clone, Copy, Debug, Default)]
pub struct Best {
    /// The cheapest price.
    pub price: U256,
    /// The highest E.
    pub e: u64,
    /// The most stake.
    pub stake: U256,
}

/// The calls a node takes at once: those it runs and those it lets wait for a slot
/// (past that it refuses as saturated).
pub fn room(l: &Load) -> u32 {
    l.capacity.max(1).saturating_add(l.max_queue)
}

fn has_room(l: &Load) -> bool {
    !l.draining && l.running + l.queued < room(l)
}

/// The candidates that may take a call for `app`, best first (indices into `nodes`).
pub fn rank(
    app: &str,
    nodes: &[Candidate],
    cap: Option<U256>,
    w: &Weights,
) -> Result<Vec<usize>, NoRoute> {
    if nodes.is_empty() {
        return Err(NoRoute::NoApp(app.into()));
    }
    let registered: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].price.is_some())
        .collect();
    if registered.is_empty() {
        return Err(NoRoute::Unregistered(app.into()));
    }
    let price = |i: usize| nodes[i].price.unwrap_or_default();
    let affordable: Vec<usize> = registered
        .iter()
        .copied()
        .filter(|&i| cap.is_none_or(|c| price(i) <= c))
        .collect();
    if affordable.is_empty() {
        return Err(NoRoute::AboveCap {
            app: app.into(),
            cap: cap.unwrap_or_default(),
            cheapest: registered
                .iter()
                .map(|&i| price(i))
                .min()
                .unwrap_or_default(),
        });
    }
    let open: Vec<usize> = affordable
        .into_iter()
        .filter(|&i| has_room(&nodes[i].load))
        .collect();
    if open.is_empty() {
        return Err(NoRoute::Saturated(app.into()));
    }
    let best = Best {
        price: open.iter().map(|&i| price(i)).min().unwrap_or_default(),
        e: open.iter().map(|&i| nodes[i].e).max().unwrap_or(0),
        stake: open
            .iter()
            .map(|&i| nodes[i].stake)
            .max()
            .unwrap_or_default(),
    };
    let mut scored: Vec<(f64, usize)> = open
        .into_iter()
        .map(|i| (cost(&nodes[i], &best, w), i))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    Ok(scored.into_iter().map(|(_, i)| i).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(price: u64, running: u32, rtt: f64, e: u64) -> Candidate {
        Candidate {
            price: Some(U256::from(price)),
            load: Load {
                running,
                queued: 0,
                capacity: 4,
                max_queue: 4,
                served: 0,
                draining: false,
            },
            distance_ms: Some(rtt),
            e,
            ok: 10,
            failed: 0,
            stake: U256::from(1_000),
        }
    }

    #[test]
    fn each_term_moves_the_choice() {
        let w = Weights::default();
        let base = node(10, 0, 1.0, 1000);
        let pick = |others: Vec<Candidate>| rank("a", &others, None, &w).unwrap()[0];
        // Equal nodes: the first. Then the one that is worse on one term loses.
        assert_eq!(pick(vec![base.clone(), base.clone()]), 0);
        assert_eq!(pick(vec![node(10, 0, 30.0, 1000), base.clone()]), 1, "far");
        assert_eq!(
            pick(vec![node(10, 3, 1.0, 1000), base.clone()]),
            1,
            "loaded"
        );
        assert_eq!(pick(vec![node(25, 0, 1.0, 1000), base.clone()]), 1, "dear");
        assert_eq!(pick(vec![node(10, 0, 1.0, 100), base.clone()]), 1, "slow");
        let mut flaky = base.clone();
        (flaky.ok, flaky.failed) = (5, 5);
        assert_eq!(pick(vec![flaky, base.clone()]), 1, "unreliable");
        let mut unstaked = base.clone();
        unstaked.stake = U256::from(100);
        assert_eq!(pick(vec![unstaked, base.clone()]), 1, "less stake");
        // A caller who only cares about price takes the far, cheap node.
        let w: Weights = "distance=0,load=0,e=0,reliability=0,stake=0"
            .parse()
            .unwrap();
        let r = rank(
            "a",
            &[node(20, 0, 1.0, 1000), node(10, 0, 80.0, 10)],
            None,
            &w,
        );
        assert_eq!(r.unwrap(), vec![1, 0]);
    }

    #[test]
    fn no_route_says_why() {
        let w = Weights::default();
        assert_eq!(rank("a", &[], None, &w), Err(NoRoute::NoApp("a".into())));
        let mut unreg = node(1, 0, 1.0, 1);
        unreg.price = None;
        assert_eq!(
            rank("a", &[unreg], None, &w),
            Err(NoRoute::Unregistered("a".into()))
        );
        let e = rank(
            "a",
            &[node(30, 0, 1.0, 1), node(20, 0, 1.0, 1)],
            Some(U256::from(10)),
            &w,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "every node serving \"a\" asks more than your cap of 10 wei per unit (cheapest: 20)"
        );
        let mut draining = node(1, 0, 1.0, 1);
        draining.load.draining = true;
        assert_eq!(
            rank("a", &[draining, node(1, 8, 1.0, 1)], None, &w),
            Err(NoRoute::Saturated("a".into()))
        );
        // Under the cap and with room: routed, dearer ones left out.
        assert_eq!(
            rank(
                "a",
                &[node(30, 0, 1.0, 1), node(5, 7, 1.0, 1)],
                Some(U256::from(10)),
                &w
            ),
            Ok(vec![1])
        );
    }

    #[test]
    fn distance_is_the_least_recent_round_trip() {
        let mut r = Rtt::default();
        assert_eq!(r.distance_ms(), None);
        for ms in [2.0, 1.5, 40.0, 35.0] {
            r.add(ms);
        }
        assert_eq!(r.distance_ms(), Some(1.5), "a busy moment is not distance");
        for _ in 0..RTT_SAMPLES {
            r.add(20.0);
        }
        assert_eq!(
            r.distance_ms(),
            Some(20.0),
            "a node that moved away is farther"
        );
    }

    #[test]
    fn weights_parse_with_clear_errors() {
        let w: Weights = "distance=2, price=0".parse().unwrap();
        assert_eq!((w.distance, w.price, w.load), (2.0, 0.0, 1.0));
        assert!("speed=1"
            .parse::<Weights>()
            .unwrap_err()
            .contains("unknown weight"));
        assert!("load=-1"
            .parse::<Weights>()
            .unwrap_err()
            .contains("0 to 1000"));
        assert!("load"
            .parse::<Weights>()
            .unwrap_err()
            .contains("name=value"));
    }

    #[test]
    fn stake_is_weighed_with_the_other_terms_not_above_them() {
        // Twice the stake wins between equal nodes, and loses to a node much nearer
        // or much cheaper: it is one term among six.
        let w = Weights::default();
        let staked = |stake: u64, price: u64, rtt: f64| Candidate {
            stake: U256::from(stake),
            ..node(price, 0, rtt, 1000)
        };
        let table: [(Vec<Candidate>, usize, &str); 5] = [
            (
                vec![staked(100, 10, 1.0), staked(200, 10, 1.0)],
                1,
                "more stake",
            ),
            (
                vec![staked(200, 10, 1.0), staked(100, 10, 1.0)],
                0,
                "more stake first",
            ),
            (
                vec![staked(200, 10, 30.0), staked(100, 10, 1.0)],
                1,
                "nearer beats staked",
            ),
            (
                vec![staked(200, 30, 1.0), staked(100, 10, 1.0)],
                1,
                "cheaper beats staked",
            ),
            (
                vec![staked(0, 10, 1.0), staked(0, 10, 1.0)],
                0,
                "nobody staked: no term",
            ),
        ];
        for (nodes, want, why) in table {
            assert_eq!(rank("a", &nodes, None, &w).unwrap()[0], want, "{why}");
        }
        // A caller who does not care about stake sees the tie.
        let w: Weights = "stake=0".parse().unwrap();
        let r = rank("a", &[staked(100, 10, 1.0), staked(200, 10, 1.0)], None, &w);
        assert_eq!(r.unwrap()[0], 0);
        assert!("stake=x".parse::<Weights>().is_err());
    }
}
