//! Which pool runs a job: the pools the chain lists, refreshed every few seconds, and
//! the routing policy extended to pools. Pure but for [`Directory::pools`].
//!
//! A pool is eligible when it has a head and its members (those not leaving) bring
//! the CPUs and GPUs the job asks for. Among those the cheapest wins on the job's
//! expected cost (CPU and GPU prices for what it asks), then the highest mean E, then
//! the lowest share of this router's jobs there that failed, then the most CPUs.

use alloy_primitives::{B256, U256};
use emc_client::{ChainClient, ChainClientExt};
use emc_modules::pools::IPools;
use emc_modules::POOLS_ADDRESS;
use emc_protocol::CallError;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pools the router reads (the first ones; a chain with more lists them later).
pub const MAX_POOLS: u64 = 256;
/// How long a read of the pools serves.
const FRESH: Duration = Duration::from_secs(5);

/// A pool as the policy sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolView {
    pub id: u64,
    pub head: B256,
    pub cpu_price: U256,
    pub gpu_price: U256,
    pub cpus: u64,
    pub gpus: u64,
    /// Mean E of its members (the PoC module's last score).
    pub score: u64,
    pub frameworks: Vec<String>,
}

impl PoolView {
    pub fn of(id: u64, p: &IPools::Pool, members: &[IPools::Member]) -> Self {
        let active: Vec<&IPools::Member> = members.iter().filter(|m| !m.leaving).collect();
        let n = active.len().max(1) as u64;
        PoolView {
            id,
            head: p.head,
            cpu_price: p.cpuPrice,
            gpu_price: p.gpuPrice,
            cpus: active.iter().map(|m| u64::from(m.cpus)).sum(),
            gpus: active.iter().map(|m| u64::from(m.gpus)).sum(),
            score: active.iter().map(|m| m.score).sum::<u64>() / n,
            frameworks: p.frameworks.clone(),
        }
    }
}

/// What a job asks of a pool.
#[derive(Clone, Debug, Default)]
pub struct Want {
    pub cpus: u32,
    pub gpus: u32,
    /// A pool the client named; none: the policy picks.
    pub pool: Option<u64>,
}

/// This router's jobs per pool: `(tried, failed)`.
pub type Outcomes = HashMap<u64, (u64, u64)>;

/// The best pool for `want`, or why none fits.
pub fn choose(pools: &[PoolView], want: &Want, outcomes: &Outcomes) -> Result<PoolView, CallError> {
    let fits = |p: &&PoolView| {
        !p.head.is_zero() && p.cpus >= u64::from(want.cpus) && p.gpus >= u64::from(want.gpus)
    };
    if let Some(id) = want.pool {
        let p = pools
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| CallError::NotFound(format!("no pool {id}")))?;
        return if fits(&p) {
            Ok(p.clone())
        } else {
            Err(CallError::Saturated(format!(
                "pool {id} has {} CPUs and {} GPUs and {} head; the job asks {} and {}",
                p.cpus,
                p.gpus,
                if p.head.is_zero() { "no" } else { "a" },
                want.cpus,
                want.gpus
            )))
        };
    }
    let failed_share = |p: &PoolView| {
        let (tried, failed) = outcomes.get(&p.id).copied().unwrap_or_default();
        failed * 1_000 / tried.max(1)
    };
    let price =
        |p: &PoolView| p.cpu_price * U256::from(want.cpus) + p.gpu_price * U256::from(want.gpus);
    pools
        .iter()
        .filter(fits)
        .min_by(|a, b| {
            price(a)
                .cmp(&price(b))
                .then(b.score.cmp(&a.score))
                .then(failed_share(a).cmp(&failed_share(b)))
                .then(b.cpus.cmp(&a.cpus))
                .then(a.id.cmp(&b.id))
        })
        .cloned()
        .ok_or_else(|| {
            CallError::Saturated(format!(
                "no pool with a head has {} CPUs and {} GPUs free to run this job",
                want.cpus, want.gpus
            ))
        })
}

/// The pools on chain, read at most every [`FRESH`].
pub struct Directory {
    chain: Arc<dyn ChainClient>,
    cached: Mutex<Option<(Instant, Vec<PoolView>)>>,
}

impl Directory {
    pub fn new(chain: Arc<dyn ChainClient>) -> Self {
        Directory {
            chain,
            cached: Mutex::default(),
        }
    }

    pub async fn pools(&self) -> Result<Vec<PoolView>, CallError> {
        if let Some((at, p)) = self.cached.lock().as_ref() {
            if at.elapsed() < FRESH {
                return Ok(p.clone());
            }
        }
        let chain = |e: emc_client::ClientError| CallError::Unavailable(format!("the chain: {e}"));
        let count = self
            .chain
            .view(POOLS_ADDRESS, IPools::poolCountCall {})
            .await
            .map_err(chain)?;
        let mut out = Vec::new();
        for id in 1..=count.min(MAX_POOLS) {
            let p = self
                .chain
                .view(POOLS_ADDRESS, IPools::poolCall { poolId: id })
                .await
                .map_err(chain)?;
            let m = self
                .chain
                .view(POOLS_ADDRESS, IPools::membersCall { poolId: id })
                .await
                .map_err(chain)?;
            out.push(PoolView::of(id, &p, &m));
        }
        *self.cached.lock() = Some((Instant::now(), out.clone()));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(id: u64, price: u64, cpus: u64, score: u64) -> PoolView {
        PoolView {
            id,
            head: B256::repeat_byte(id as u8),
            cpu_price: U256::from(price),
            gpu_price: U256::ZERO,
            cpus,
            gpus: 0,
            score,
            frameworks: vec![],
        }
    }

    #[test]
    fn the_cheapest_pool_that_fits_wins_then_e_then_reliability() {
        let want = Want {
            cpus: 2,
            ..Default::default()
        };
        let none = Outcomes::default();
        // Too small, however cheap.
        let pools = vec![pool(1, 1, 1, 9), pool(2, 5, 3, 1), pool(3, 4, 2, 1)];
        assert_eq!(choose(&pools, &want, &none).expect("fits").id, 3);
        // Same price: the higher E.
        let pools = vec![pool(1, 4, 3, 1), pool(2, 4, 3, 7)];
        assert_eq!(choose(&pools, &want, &none).expect("fits").id, 2);
        // Same price and E: the one where fewer of this router's jobs failed.
        let pools = vec![pool(1, 4, 3, 7), pool(2, 4, 3, 7)];
        let outcomes = Outcomes::from([(1, (4, 2)), (2, (4, 0))]);
        assert_eq!(choose(&pools, &want, &outcomes).expect("fits").id, 2);
        // A pool without a head runs nothing.
        let mut headless = pool(1, 1, 8, 9);
        headless.head = B256::ZERO;
        let e = choose(&[headless], &want, &none).expect_err("no head");
        assert_eq!(e.status(), 429, "{e}");
    }

    #[test]
    fn a_named_pool_is_used_or_refused_with_the_reason() {
        let pools = vec![pool(1, 1, 1, 1), pool(2, 9, 4, 1)];
        let want = |pool, cpus| Want {
            cpus,
            gpus: 0,
            pool: Some(pool),
        };
        let none = Outcomes::default();
        assert_eq!(choose(&pools, &want(2, 2), &none).expect("named").id, 2);
        let e = choose(&pools, &want(1, 2), &none).expect_err("small");
        assert!(e.to_string().contains("has 1 CPUs"), "{e}");
        assert_eq!(
            choose(&pools, &want(7, 1), &none)
                .expect_err("none")
                .status(),
            404
        );
    }
}
