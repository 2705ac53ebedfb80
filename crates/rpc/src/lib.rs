//! JSON-RPC for Ethereum tools: `eth_`, `net_` and `web3_` over HTTP and WebSocket on
//! one port (jsonrpsee), so MetaMask, ethers.js, web3.py, Foundry and Hardhat talk to
//! an EMC node unchanged; plus `emc_validators`, `emc_staking` and `emc_rewards`, views
//! of the staking module, and `emc_sockets` and `emc_socket`, views of the computing
//! sockets, for dashboards and the CLI; `emc_resolveDid` and
//! `GET /1.0/identifiers/{did}`, the node's DID resolver ([`identity`]).
//!
//! Errors use the codes clients act on: -32700 parse error, -32600 invalid request,
//! -32601 method not found, -32602 invalid params (with the parameter named),
//! -32000 a refused transaction or missing state (with geth's wording, such as
//! "nonce too low", that ethers and web3.py map to their own error types), 3 for a
//! reverted call with the revert data, and -32005 when a log query is too large.
//!
//! Requests are bounded before anything is allocated for them: body size, batch size,
//! log range and result count. Connections are served by [`emc_http`]: at most
//! [`RpcConfig::http`]`.max_connections` in all and `max_per_ip` from one address,
//! with header, body and idle timeouts, so slow or silent clients cannot hold the
//! port. WebSockets are pinged, hold at most `max_subscriptions` subscriptions, and a
//! subscriber that does not read its notifications loses the subscription once
//! `ws_buffer` of them wait, so no client can make the node hold memory for it.
//!
//! Data flow: reads go to the chain's store and state snapshots; writes go only through
//! [`emc_chain::Chain::submit`]; subscriptions follow the chain's event channel.

/// Registers `$f(&Ctx, Params) -> Result<Value, ErrorObjectOwned>` as the blocking
/// JSON-RPC method `$name` (the handlers read the store, so off the async threads).
macro_rules! method {
    ($m:expr, $name:literal, $f:expr) => {
        $m.register_blocking_method(
            $name,
            move |p: jsonrpsee::types::Params<'_>,
                  ctx: std::sync::Arc<$crate::Ctx>,
                  _|
                  -> Result<serde_json::Value, jsonrpsee::types::ErrorObjectOwned> {
                $f(&ctx, p)
            },
        )
        .map_err(|e| $crate::RpcError::Register($name, e.to_string()))?;
    };
}

/// A system module's view at `at`, its revert reason as the JSON-RPC error.
pub(crate) fn module_view<C: alloy_sol_types::SolCall>(
    c: &Ctx,
    at: emc_types::Height,
    to: alloy_primitives::Address,
    call: C,
) -> Result<C::Return, jsonrpsee::types::ErrorObjectOwned> {
    c.chain.view(at, to, call).map_err(|e| match e {
        emc_chain::ChainError::View(m) => server_error(m),
        other => internal(other),
    })
}

mod credentials;
mod emc;
mod eth;
mod filters;
mod identity;
mod json;
mod market;
mod proof;
mod sockets;
mod subs;

use emc_chain::Chain;
use jsonrpsee::{server::ServerHandle, types::ErrorObjectOwned, RpcModule};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use std::{net::SocketAddr, sync::Arc};

/// Bounds on what one client may ask of the node.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    pub max_request_bytes: u32,
    pub max_response_bytes: u32,
    pub max_batch: u32,
    pub max_log_range: u64,
    pub max_logs: usize,
    /// The tip `eth_maxPriorityFeePerGas` suggests, in wei.
    pub suggested_tip: u64,
    /// Connections in all and per client, and the header, body and idle timeouts.
    pub http: emc_http::Limits,
    /// Subscriptions one WebSocket may hold.
    pub max_subscriptions: u32,
    /// Notifications waiting for one WebSocket to read them; past this the
    /// subscription that could not deliver is closed.
    pub ws_buffer: u32,
    /// How often WebSockets are pinged; one that answers none for two periods is
    /// closed.
    pub ws_ping: Duration,
    /// Polling filters (`eth_newFilter` and kin) kept at once, and how long one lives
    /// without being polled.
    pub max_filters: usize,
    pub filter_ttl: Duration,
    /// The validator's consensus key, on a validator: it signs the credentials
    /// `emc_issueCredential` issues.
    pub issuer: Option<emc_crypto::ConsensusKey>,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 5 << 20,
            max_response_bytes: 64 << 20,
            max_batch: 100,
            max_log_range: 10_000,
            max_logs: 10_000,
            suggested_tip: 1_000_000_000,
            http: emc_http::Limits {
                max_connections: 1024,
                max_per_ip: 64,
                refusal: emc_http::Refusal::JsonRpc,
                ..Default::default()
            },
            max_subscriptions: 128,
            ws_buffer: 256,
            ws_ping: Duration::from_secs(30),
            max_filters: 4096,
            filter_ttl: Duration::from_secs(300),
            issuer: None,
        }
    }
}

/// What the node knows of its network, for `net_peerCount`.
#[derive(Debug, Default)]
pub struct NetInfo {
    peers: AtomicUsize,
}

impl NetInfo {
    pub fn set_peers(&self, n: usize) {
        self.peers.store(n, Ordering::Relaxed);
    }

    pub fn peers(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }
}

pub(crate) struct Ctx {
    pub chain: Arc<Chain>,
    pub cfg: RpcConfig,
    pub net: Arc<NetInfo>,
    pub filters: Arc<filters::Filters>,
    /// The last block's `newHeads` notification, rendered once for every subscriber.
    pub heads: subs::Rendered,
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot serve JSON-RPC on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("registering {0}: {1}")]
    Register(&'static str, String),
}

/// Starts the server; it runs until the handle is stopped.
pub async fn start(
    chain: Arc<Chain>,
    addr: SocketAddr,
    cfg: RpcConfig,
    net: Arc<NetInfo>,
) -> Result<(ServerHandle, SocketAddr), RpcError> {
    let bind = |e: &dyn std::fmt::Display| RpcError::Bind {
        addr,
        reason: e.to_string(),
    };
    cfg.http.validate().map_err(|e| bind(&e))?;
    let filters = Arc::new(filters::Filters::new(cfg.max_filters, cfg.filter_ttl));
    filters::follow_pending(&chain, filters.clone());
    let identifiers = identity::Identifiers(chain.clone());
    let module = build_module(chain, cfg.clone(), net, filters)?;
    let methods: jsonrpsee::Methods = module.into();
    let ws_ping = jsonrpsee::server::PingConfig::new()
        .ping_interval(cfg.ws_ping)
        .inactive_limit(cfg.ws_ping * 2);
    let config = jsonrpsee::server::ServerConfig::builder()
        .max_request_body_size(cfg.max_request_bytes)
        .max_response_body_size(cfg.max_response_bytes)
        // emc_http counts connections; this only has to let those through.
        .max_connections(cfg.http.max_connections as u32)
        .max_subscriptions_per_connection(cfg.max_subscriptions)
        .set_message_buffer_capacity(cfg.ws_buffer.max(1))
        .enable_ws_ping(ws_ping)
        .set_batch_request_config(jsonrpsee::server::BatchRequestConfig::Limit(cfg.max_batch))
        .build();
    let builder = jsonrpsee::server::Server::builder()
        .set_config(config)
        .set_http_middleware(
            tower::ServiceBuilder::new()
                .layer(cors())
                .layer(subs::MarkHttp)
                .layer(identifiers),
        )
        .set_rpc_middleware(
            jsonrpsee::server::middleware::rpc::RpcServiceBuilder::new().layer_fn(move |inner| {
                subs::SubscriptionErrors {
                    inner,
                    max: cfg.max_subscriptions,
                }
            }),
        )
        .to_service_builder();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| bind(&e))?;
    let local = listener.local_addr().map_err(|e| bind(&e))?;
    let (stop, handle) = jsonrpsee::server::stop_channel();
    let shutdown = stop.clone().shutdown();
    // One service per connection: jsonrpsee keys subscriptions by connection.
    let make = move || builder.clone().build(methods.clone(), stop.clone());
    emc_http::spawn(listener, cfg.http.clone(), make, shutdown);
    Ok((handle, local))
}

fn cors() -> tower_http::cors::CorsLayer {
    // Browser dApps (MetaMask pages, explorers) call the node from other origins.
    tower_http::cors::CorsLayer::permissive()
}

pub(crate) fn build_module(
    chain: Arc<Chain>,
    cfg: RpcConfig,
    net: Arc<NetInfo>,
    filters: Arc<filters::Filters>,
) -> Result<RpcModule<Ctx>, RpcError> {
    let mut m = RpcModule::new(Ctx {
        chain,
        cfg,
        net,
        filters,
        heads: Default::default(),
    });
    eth::register(&mut m)?;
    filters::register(&mut m)?;
    proof::register(&mut m)?;
    emc::register(&mut m)?;
    sockets::register(&mut m)?;
    market::register(&mut m)?;
    identity::register(&mut m)?;
    credentials::register(&mut m)?;
    subs::register(&mut m)?;
    Ok(m)
}

// ---- error helpers -------------------------------------------------------------

pub(crate) fn invalid_params(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, msg.into(), None::<()>)
}

pub(crate) fn server_error(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32000, msg.into(), None::<()>)
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    tracing::error!(error = %e, "internal error serving JSON-RPC");
    ErrorObjectOwned::owned(-32603, format!("internal error: {e}"), None::<()>)
}

pub(crate) fn limit_exceeded(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32005, msg.into(), None::<()>)
}
