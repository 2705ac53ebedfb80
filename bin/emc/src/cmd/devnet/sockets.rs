//! The devnet's computing sockets: once computing node 0 has registered, its owner
//! (development account 6) mints a socket for each built-in model to development
//! account 1, account 1 buys it [`SOCKET_UNITS`] tokens of credits, and the devnet
//! prints a key for each. A socket an earlier run made (still valid, with credits) is
//! reused, so a resumed devnet mints nothing new. Then the owner posts a standing
//! market offer for each built-in model (unless one of its offers for it is still
//! open) and the devnet prints the one command that buys compute from it.

use super::DEVNET_APPS;
use crate::client::Rpc;
use crate::cmd::gateway::view;
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_sol_types::SolCall;
use anyhow::{bail, Context, Result};
use emc_client::ChainClientExt;
use emc_modules::registry::IRegistry;
use emc_modules::sockets::ISockets;
use emc_modules::{REGISTRY_ADDRESS, SOCKETS_ADDRESS};
use serde_json::json;
use std::time::{Duration, Instant};

/// The credits, in tokens, account 1 buys for each socket.
pub const SOCKET_UNITS: u64 = 100_000;
/// How long the sockets are valid.
const VALID_FOR: u64 = 30 * 86_400;

/// Mints, funds and prints the sockets in the background, once the node is there.
pub(crate) fn start(rpc: String, chain_id: u64) {
    std::thread::spawn(move || {
        if let Err(e) = make_all(&rpc, chain_id) {
            println!("devnet sockets: {e:#}");
        }
    });
}

/// The built-in apps and their prices per token, from [`DEVNET_APPS`].
fn apps() -> Vec<(String, U256)> {
    DEVNET_APPS
        .iter()
        .filter_map(|s| {
            let (name, rest) = s.split_once('=')?;
            let price = rest.split(",price=").nth(1)?.parse::<U256>().ok()?;
            Some((name.to_string(), price))
        })
        .collect()
}

/// The node development account `owner` registered, once it lists every app.
fn wait_for_node(rpc: &Rpc, owner: Address, within: Duration) -> Result<B256> {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Ok(nodes) = view(rpc, REGISTRY_ADDRESS, IRegistry::nodesCall {}) {
            for n in nodes {
                let info = view(rpc, REGISTRY_ADDRESS, IRegistry::nodeInfoCall { nodeId: n })?;
                if info.owner == owner && apps().iter().all(|(a, _)| info.apps.contains(a)) {
                    return Ok(n);
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    bail!("no computing node of account 6 registered within {within:?}")
}

fn make_all(url: &str, chain_id: u64) -> Result<()> {
    let keys = emc_crypto::dev_accounts(8)?;
    let (owner, holder) = (&keys[6], &keys[1]);
    let rpc = Rpc::new(url);
    let node = wait_for_node(&rpc, owner.address(), Duration::from_secs(300))?;
    let client = emc_client::JsonRpc::new(url);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    let send = |from: &alloy_signer_local::PrivateKeySigner, value: U256, data: Vec<u8>| {
        rt.block_on(async {
            let hash = client
                .send(from, SOCKETS_ADDRESS, value, Bytes::from(data), None)
                .await?;
            let o = client.wait(hash, Duration::from_secs(60)).await?;
            if !o.success {
                bail!("transaction {hash} reverted");
            }
            Ok(hash)
        })
    };
    let held = rpc.call("emc_sockets", json!([holder.address()]))?;
    let now = emc_client::keys::now();
    for (app, price) in apps() {
        let reuse = held["sockets"].as_array().into_iter().flatten().find(|s| {
            s["app"] == json!(app)
                && s["node"] == json!(node)
                && crate::cmd::socket::hex_u64(&s["expires"]) > now
                && crate::cmd::socket::hex_u64(&s["credits"]) > 0
        });
        let id = match reuse.and_then(|s| s["id"].as_str()?.parse::<U256>().ok()) {
            Some(id) => id,
            None => {
                let mint = ISockets::mintCall {
                    to: holder.address(),
                    node,
                    app: app.clone(),
                    appHash: B256::ZERO,
                    unit: 2,
                    pricePerUnit: price,
                    validFor: VALID_FOR,
                    renewalPricePerSecond: U256::from(1),
                };
                let id =
                    crate::cmd::socket::minted(&rpc, send(owner, U256::ZERO, mint.abi_encode())?)?;
                let fund = ISockets::fundCall {
                    tokenId: id,
                    units: SOCKET_UNITS,
                };
                send(holder, price * U256::from(SOCKET_UNITS), fund.abi_encode())?;
                id
            }
        };
        let grant = emc_client::keys::grant(chain_id, Address::ZERO, 0, VALID_FOR, U256::MAX);
        let key = emc_client::keys::make_socket(holder, grant, id).map_err(anyhow::Error::msg)?;
        println!(
            "Socket {id} for {app} (account 1 holds it, {SOCKET_UNITS} tokens of credits; `emc socket show {id}`), its API key:\n{key}"
        );
    }
    offers(&rpc, owner, node, url, &send)
}

/// Sends a transaction to the Sockets module and waits for it: its hash.
type Send<'a> = dyn Fn(&alloy_signer_local::PrivateKeySigner, U256, Vec<u8>) -> Result<B256> + 'a;

/// How much an offer sells in all, and how long it stands.
const OFFER_CAPACITY: u64 = 10_000_000;
const OFFER_LAPSE: u64 = 30 * 86_400;

/// Posts (or finds) a standing offer per built-in model and prints how to buy from it.
fn offers(
    rpc: &Rpc,
    owner: &alloy_signer_local::PrivateKeySigner,
    node: B256,
    url: &str,
    send: &Send<'_>,
) -> Result<()> {
    let buyer = emc_crypto::dev_accounts(3)?.remove(2);
    let open = rpc.call("emc_marketOffers", json!([{ "node": node }]))?;
    for (app, price) in apps() {
        let found = open["offers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["app"] == json!(app))
            .and_then(|o| o["offerId"].as_str()?.parse::<U256>().ok());
        let id = match found {
            Some(id) => id,
            None => {
                let offer = ISockets::offerCall {
                    node,
                    app: app.clone(),
                    appHash: B256::ZERO,
                    unit: 2,
                    pricePerUnit: price,
                    minUnits: 1,
                    maxUnits: OFFER_CAPACITY,
                    validFor: VALID_FOR,
                    capacity: OFFER_CAPACITY,
                    expires: emc_client::keys::now() + OFFER_LAPSE,
                    renewalPricePerSecond: U256::from(1),
                };
                send(owner, U256::ZERO, offer.abi_encode())?;
                view(rpc, SOCKETS_ADDRESS, ISockets::offerCountCall {})?
            }
        };
        println!(
            "Offer {id}: {app} at {price} wei a token (`emc market show offers`). Buy 10000 tokens of it as account 2:\nemc market buy --offer {id} --units 10000 --private-key {} --rpc {url}",
            alloy_primitives::hex::encode(buyer.to_bytes())
        );
    }
    Ok(())
}
