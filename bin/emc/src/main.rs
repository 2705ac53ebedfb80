//! `emc`: one binary for every EMC role and tool. `main` only parses the command line
//! and hands each subcommand to its module under `cmd/`.

mod client;
mod cmd;

use clap::{Parser, Subcommand};

/// jemalloc, not glibc's malloc: glibc keeps what a burst of connections freed in its
/// arenas (measured: 36 MiB of 40 still held after an attack's subscribers had gone,
/// until `malloc_trim`); jemalloc's background threads give freed pages back to the
/// system within seconds (its dirty-page decay). reth makes the same choice.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "emc",
    version,
    about = "EMC: a permissionless network that sells AI compute"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (`emc node --dev` for a zero-config development chain).
    Node(Box<cmd::node::NodeArgs>),
    /// Run a local network of validator and full-node processes, with no config.
    Devnet(cmd::devnet::DevnetArgs),
    /// Write a genesis file.
    Genesis(cmd::genesis::GenesisArgs),
    /// Manage account keys (Ethereum keystore v3 files).
    #[command(subcommand)]
    Keys(cmd::keys::KeysCmd),
    /// Sign and send transactions.
    #[command(subcommand)]
    Tx(cmd::tx::TxCmd),
    /// Stake, unstake, lock, register as a validator, claim rewards.
    #[command(subcommand)]
    Stake(cmd::stake::StakeCmd),
    /// The validator set sealing the next block, and every candidate.
    Validators {
        #[command(flatten)]
        rpc: cmd::RpcArg,
    },
    /// An account's unclaimed rewards, and the network's emission and slashing.
    Rewards {
        address: alloy_primitives::Address,
        #[command(flatten)]
        rpc: cmd::RpcArg,
    },
    /// Client API keys for the gateway: `emc gateway key`.
    #[command(subcommand)]
    Gateway(cmd::gateway::GatewayCmd),
    /// Deposit into, withdraw from and show a client's escrow.
    #[command(subcommand)]
    Escrow(cmd::gateway::EscrowCmd),
    /// Computing sockets: mint, offer, buy, fund, list, show, transfer, rent, renew,
    /// refund, and API keys that pay from a socket.
    #[command(subcommand)]
    Socket(cmd::socket::SocketCmd),
    /// The computing market: offer, order, bid, accept, list, buy, auction, settle,
    /// show (offers, apps, prices, orders, listings) and history.
    #[command(subcommand)]
    Market(cmd::market::MarketCmd),
    /// Computing pools: create, terms, head, leave, show, list, and jobs through a
    /// router's gateway (submit, status, logs, stop).
    #[command(subcommand)]
    Pool(cmd::pool::PoolCmd),
    /// What the network serves: every registered node's apps and prices.
    Apps {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        rpc: cmd::RpcArg,
    },
    /// Read balances, blocks and transactions from a node.
    #[command(subcommand)]
    Query(cmd::query::QueryCmd),
    /// Inspect a node's database.
    #[command(subcommand)]
    Db(cmd::db::DbCmd),
    /// Proof of computing: `emc poc run` measures this machine's E.
    #[command(subcommand)]
    Poc(cmd::poc::PocCmd),
    /// Measure this machine: `emc bench chain` prints a table.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCmd),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Node(a) => cmd::node::run(*a),
        Command::Devnet(a) => cmd::devnet::run(a),
        Command::Genesis(a) => cmd::genesis::run(a),
        Command::Keys(c) => cmd::keys::run(c),
        Command::Tx(c) => cmd::tx::run(c),
        Command::Query(c) => cmd::query::run(c),
        Command::Stake(c) => cmd::stake::run(c),
        Command::Validators { rpc } => cmd::stake::validators(rpc),
        Command::Rewards { address, rpc } => cmd::stake::rewards(address, rpc),
        Command::Gateway(cmd::gateway::GatewayCmd::Key(a)) => cmd::gateway::key(a),
        Command::Gateway(cmd::gateway::GatewayCmd::Signin(a)) => cmd::signin::signin(a),
        Command::Gateway(cmd::gateway::GatewayCmd::Call(a)) => cmd::call::call(a),
        Command::Escrow(c) => cmd::gateway::escrow(c),
        Command::Apps { json, rpc } => cmd::gateway::apps(rpc, json),
        Command::Socket(c) => cmd::socket::run(c),
        Command::Market(c) => cmd::market::run(c),
        Command::Pool(c) => cmd::pool::run(c),
        Command::Db(c) => cmd::db::run(c),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Poc(c) => cmd::poc::run(c),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
