//! Prometheus metrics, served as text at `GET /metrics` on the node's metrics address.
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `emc_height` | gauge | height of the last committed block |
//! | `emc_round` | gauge | consensus round at the height in progress |
//! | `emc_round_changes` | counter | rounds entered above 0 |
//! | `emc_peers` | gauge | connected libp2p peers |
//! | `emc_mempool_pending`, `emc_mempool_queued` | gauge | pool transactions ready / waiting for a nonce gap |
//! | `emc_block_interval_seconds` | histogram | wall time between consecutive commits |
//! | `emc_sync_blocks` | counter | blocks committed from block sync rather than consensus |
//! | `emc_peers_banned` | counter | peers banned for invalid or oversized data |

use emc_chain::{Chain, ChainEvent};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use std::{net::SocketAddr, sync::Arc, time::Instant};

pub struct Metrics {
    registry: Registry,
    pub height: Gauge,
    pub round: Gauge,
    pub round_changes: Counter,
    pub peers: Gauge,
    pub mempool_pending: Gauge,
    pub mempool_queued: Gauge,
    pub block_interval: Histogram,
    pub sync_blocks: Counter,
    pub peers_banned: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("emc");
        let m = Metrics {
            height: Gauge::default(),
            round: Gauge::default(),
            round_changes: Counter::default(),
            peers: Gauge::default(),
            mempool_pending: Gauge::default(),
            mempool_queued: Gauge::default(),
            block_interval: Histogram::new([0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 60.0]),
            sync_blocks: Counter::default(),
            peers_banned: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "height",
            "Height of the last committed block",
            m.height.clone(),
        );
        registry.register(
            "round",
            "Consensus round at the height in progress",
            m.round.clone(),
        );
        registry.register(
            "round_changes",
            "Rounds entered above 0",
            m.round_changes.clone(),
        );
        registry.register("peers", "Connected libp2p peers", m.peers.clone());
        registry.register(
            "mempool_pending",
            "Pool transactions ready for a block",
            m.mempool_pending.clone(),
        );
        registry.register(
            "mempool_queued",
            "Pool transactions waiting for a nonce gap",
            m.mempool_queued.clone(),
        );
        registry.register(
            "block_interval_seconds",
            "Wall time between commits",
            m.block_interval.clone(),
        );
        registry.register(
            "sync_blocks",
            "Blocks committed from block sync",
            m.sync_blocks.clone(),
        );
        registry.register(
            "peers_banned",
            "Peers banned for invalid or oversized data",
            m.peers_banned.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String never fails");
        out
    }

    /// Follows the chain: height, block interval and pool sizes.
    pub async fn follow(self: Arc<Self>, chain: Arc<Chain>) {
        let mut events = chain.subscribe();
        self.height.set(chain.head().height.0 as i64);
        let mut last = Instant::now();
        loop {
            match events.recv().await {
                Ok(ChainEvent::NewBlock { header, .. }) => {
                    self.height.set(header.height.0 as i64);
                    self.block_interval.observe(last.elapsed().as_secs_f64());
                    last = Instant::now();
                    let (pending, queued) = chain.pool_counts();
                    self.mempool_pending.set(pending as i64);
                    self.mempool_queued.set(queued as i64);
                }
                Ok(ChainEvent::PendingTx(_))
                | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    }
}

/// The metrics port's bounds: scrapers are few.
pub fn limits() -> emc_http::Limits {
    emc_http::Limits {
        max_connections: 64,
        max_per_ip: 16,
        ..Default::default()
    }
}

/// Serves `/metrics` until the process stops.
pub async fn serve(metrics: Arc<Metrics>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.render(),
                )
            }
        }),
    );
    emc_http::spawn(
        listener,
        limits(),
        move || app.clone(),
        std::future::pending(),
    );
    Ok(local)
}
