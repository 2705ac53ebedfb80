pub mod bench;
pub mod call;
pub mod db;
pub mod devnet;
pub mod gateway;
pub mod genesis;
pub mod keys;
pub mod market;
pub mod node;
pub mod poc;
pub mod pool;
pub mod query;
pub mod signin;
pub mod socket;
pub mod stake;
pub mod tx;

/// `--rpc` as every client command spells it.
#[derive(clap::Args, Clone)]
pub struct RpcArg {
    /// The node's JSON-RPC URL.
    #[arg(long, env = "EMC_RPC", default_value = "http://127.0.0.1:8545")]
    pub rpc: String,
}
