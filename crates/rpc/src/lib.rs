//! JSON-RPC for Ethereum tools: `eth_`, `net_` and `web3_` over HTTP and WebSocket on
//! one port (jsonrpsee), so MetaMask, ethers.js, web3.py, Foundry and Hardhat talk to
//! an EMC node unchanged; plus `emc_validators`, `emc_staking` and `emc_rewards`, views
//! of the staking module for dashboards and the CLI.
//!
//! Errors use the codes clients act on: -32700 parse error, -32600 invalid request,
//! -32601 method not found, -32602 invalid params (with the parameter named),
//! -32000 a refused transaction or missing state (with geth's wording, such as
//! "nonce too low", that ethers and web3.py map to their own error types), 3 for a
//! reverted call with the revert data, and -32005 when a log query is too large.
//!
//! Requests are bounded before anything is allocated for them: body size, batch size,
//! connection count, log range and result count.
//!
//! Data flow: reads go to the chain's store and state snapshots; writes go only through
//! [`emc_chain::Chain::submit`]; subscriptions follow the chain's event channel.

mod emc;
mod eth;
mod json;
mod subs;

use emc_chain::Chain;
use jsonrpsee::{server::ServerHandle, types::ErrorObjectOwned, RpcModule};
use std::{net::SocketAddr, sync::Arc};

/// Bounds on what one client may ask of the node.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    pub max_request_bytes: u32,
    pub max_response_bytes: u32,
    pub max_connections: u32,
    pub max_batch: u32,
    pub max_log_range: u64,
    pub max_logs: usize,
    /// The tip `eth_maxPriorityFeePerGas` suggests, in wei.
    pub suggested_tip: u64,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 5 << 20,
            max_response_bytes: 64 << 20,
            max_connections: 512,
            max_batch: 100,
            max_log_range: 10_000,
            max_logs: 10_000,
            suggested_tip: 1_000_000_000,
        }
    }
}

pub(crate) struct Ctx {
    pub chain: Arc<Chain>,
    pub cfg: RpcConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot serve JSON-RPC on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("registering {0}: {1}")]
    Register(&'static str, String),
}

/// Starts the server; it runs until the handle is stopped or dropped.
pub async fn start(
    chain: Arc<Chain>,
    addr: SocketAddr,
    cfg: RpcConfig,
) -> Result<(ServerHandle, SocketAddr), RpcError> {
    let module = build_module(chain, cfg.clone())?;
    let config = jsonrpsee::server::ServerConfig::builder()
        .max_request_body_size(cfg.max_request_bytes)
        .max_response_body_size(cfg.max_response_bytes)
        .max_connections(cfg.max_connections)
        .set_batch_request_config(jsonrpsee::server::BatchRequestConfig::Limit(cfg.max_batch))
        .build();
    let server = jsonrpsee::server::Server::builder()
        .set_config(config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(cors()))
        .build(addr)
        .await
        .map_err(|e| RpcError::Bind {
            addr,
            reason: e.to_string(),
        })?;
    let local = server.local_addr().map_err(|e| RpcError::Bind {
        addr,
        reason: e.to_string(),
    })?;
    Ok((server.start(module), local))
}

fn cors() -> tower_http::cors::CorsLayer {
    // Browser dApps (MetaMask pages, explorers) call the node from other origins.
    tower_http::cors::CorsLayer::permissive()
}

pub(crate) fn build_module(chain: Arc<Chain>, cfg: RpcConfig) -> Result<RpcModule<Ctx>, RpcError> {
    let mut m = RpcModule::new(Ctx { chain, cfg });
    eth::register(&mut m)?;
    emc::register(&mut m)?;
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
