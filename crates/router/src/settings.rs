//! What a router is configured with.

use alloy_primitives::U256;
use emc_p2p::Addr;

#[derive(Clone, Debug)]
pub struct RouterSettings {
    /// The gateway's HTTP address.
    pub http: std::net::SocketAddr,
    /// The gateway's connection bounds and timeouts ([`crate::gateway::limits`] by default).
    pub http_limits: emc_http::Limits,
    /// The router's account: it submits settlements (paying their gas) and receives
    /// the router's fee.
    pub account: alloy_signer_local::PrivateKeySigner,
    /// What a call reserves of the client's escrow when the client sets no
    /// `x-emc-max-cost`.
    pub reserve: U256,
    /// Peer routers of the mesh (each `/ip4/…/tcp/…/p2p/<peer id>`).
    pub peers: Vec<Addr>,
}
