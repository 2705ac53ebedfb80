//! `emc socket ...`: computing sockets, the `Sockets` module's ERC-721 tokens for
//! compute access. Providers mint and offer; buyers buy, fund, renew and refund;
//! holders transfer, rent out and make API keys that pay from a socket's credits.

use crate::client::Rpc;
use crate::cmd::gateway::view;
use crate::cmd::tx::parse_duration;
use crate::cmd::tx::{parse_amount, send, send_tx, SignerArgs};
use crate::cmd::RpcArg;
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use anyhow::{bail, Context, Result};
use emc_modules::sockets::ISockets;
use emc_modules::SOCKETS_ADDRESS;
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum SocketCmd {
    /// Mint a socket for your own node (no credits until someone funds them).
    Mint {
        #[command(flatten)]
        terms: Terms,
        /// Who gets it [default: the signer].
        #[arg(long)]
        to: Option<Address>,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Post a standing offer for your node that anyone can buy sockets from.
    Offer {
        #[command(flatten)]
        offer: OfferArgs,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Buy UNITS from offer OFFER: a new socket with the credits paid.
    Buy {
        offer: U256,
        units: u64,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Buy UNITS more credits for socket ID at its price.
    Fund {
        id: U256,
        units: u64,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// The sockets an account holds.
    List {
        owner: Address,
        #[command(flatten)]
        rpc: RpcArg,
    },
    /// One socket.
    Show {
        id: U256,
        #[command(flatten)]
        rpc: RpcArg,
    },
    /// Move socket ID to TO (with `safeTransferFrom`, which asks a contract whether
    /// it accepts ERC-721 tokens; --unsafe uses `transferFrom`).
    Transfer {
        id: U256,
        to: Address,
        #[arg(long = "unsafe")]
        not_safe: bool,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Rent socket ID for DURATION at its listed price (the owner cannot cut it short).
    Rent {
        id: U256,
        #[arg(value_parser = parse_duration)]
        duration: u64,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// List socket ID for rent: a price per second and the longest rental.
    RentOut {
        id: U256,
        #[arg(long, value_parser = parse_amount)]
        price_per_second: U256,
        #[arg(long, value_parser = parse_duration)]
        max: u64,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Extend socket ID by DURATION, paid to its provider at its renewal price.
    Renew {
        id: U256,
        #[arg(value_parser = parse_duration)]
        duration: u64,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Pay an ended socket's unused credits back to its holder.
    Refund {
        id: U256,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// An API key that pays from socket ID's credits, signed by its holder.
    Key {
        id: U256,
        #[command(flatten)]
        key: crate::cmd::gateway::KeyArgs,
    },
}

/// A standing offer: its terms, how much one purchase takes, how much it sells.
#[derive(clap::Args)]
pub struct OfferArgs {
    #[command(flatten)]
    pub(crate) terms: Terms,
    /// Fewest and most units one purchase takes.
    #[arg(long, default_value_t = 1)]
    pub(crate) min: u64,
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) max: u64,
    /// Units for sale in all.
    #[arg(long)]
    pub(crate) capacity: u64,
    /// When the offer lapses, from now.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub(crate) lapse: u64,
}

/// What a socket or an offer is for.
#[derive(clap::Args)]
pub struct Terms {
    /// The node (its id, 0x and 64 hex digits).
    #[arg(long)]
    pub(crate) node: B256,
    #[arg(long)]
    pub(crate) app: String,
    /// The app's content hash, if it has one.
    #[arg(long, default_value_t = B256::ZERO)]
    pub(crate) app_hash: B256,
    /// calls, fuel, tokens or seconds.
    #[arg(long, default_value = "calls", value_parser = parse_unit)]
    pub(crate) unit: u8,
    /// Price per unit ("0.001emc", "1000wei").
    #[arg(long, value_parser = parse_amount)]
    pub(crate) price: U256,
    /// How long a socket is valid.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub(crate) valid: u64,
    /// Renewal price per second [default: not renewable].
    #[arg(long, value_parser = parse_amount, default_value = "0wei")]
    pub(crate) renewal: U256,
}

fn parse_unit(s: &str) -> Result<u8, String> {
    match s {
        "calls" | "call" => Ok(0),
        "fuel" => Ok(1),
        "tokens" => Ok(2),
        "seconds" => Ok(3),
        _ => Err(format!("{s:?} is none of calls, fuel, tokens, seconds")),
    }
}

/// The id of the socket a transaction minted, from its `Transfer` log.
pub(crate) fn minted(rpc: &Rpc, tx: B256) -> Result<U256> {
    let r = rpc.call("eth_getTransactionReceipt", json!([tx]))?;
    let logs = r["logs"].as_array().context("the receipt has no logs")?;
    for l in logs {
        let topics: Vec<B256> = serde_json::from_value(l["topics"].clone()).unwrap_or_default();
        let from_module = l["address"]
            .as_str()
            .and_then(|a| a.parse::<Address>().ok())
            == Some(SOCKETS_ADDRESS);
        if from_module
            && topics.len() == 4
            && topics[0] == ISockets::Transfer::SIGNATURE_HASH
            && topics[1].is_zero()
        {
            return Ok(U256::from_be_bytes(topics[3].0));
        }
    }
    bail!("the transaction minted no socket")
}

pub fn run(c: SocketCmd) -> Result<()> {
    let tx = |signer: &SignerArgs, value: U256, call: &dyn Fn() -> Vec<u8>| {
        send_tx(
            signer,
            SOCKETS_ADDRESS,
            value,
            Bytes::from(call()),
            None,
            true,
        )
    };
    match c {
        SocketCmd::Mint {
            terms: t,
            to,
            signer,
        } => {
            let to = match to {
                Some(a) => a,
                None => signer.key()?.address(),
            };
            let call = ISockets::mintCall {
                to,
                node: t.node,
                app: t.app,
                appHash: t.app_hash,
                unit: t.unit,
                pricePerUnit: t.price,
                validFor: t.valid,
                renewalPricePerSecond: t.renewal,
            };
            let hash = tx(&signer, U256::ZERO, &|| call.abi_encode())?;
            println!("socket {}", minted(&Rpc::new(&signer.rpc.rpc), hash)?);
        }
        SocketCmd::Offer {
            offer:
                OfferArgs {
                    terms: t,
                    min,
                    max,
                    capacity,
                    lapse,
                },
            signer,
        } => {
            let call = ISockets::offerCall {
                node: t.node,
                app: t.app,
                appHash: t.app_hash,
                unit: t.unit,
                pricePerUnit: t.price,
                minUnits: min,
                maxUnits: max,
                validFor: t.valid,
                capacity,
                expires: emc_client::keys::now() + lapse,
                renewalPricePerSecond: t.renewal,
            };
            tx(&signer, U256::ZERO, &|| call.abi_encode())?;
            let rpc = Rpc::new(&signer.rpc.rpc);
            println!(
                "offer {}",
                view(&rpc, SOCKETS_ADDRESS, ISockets::offerCountCall {})?
            );
        }
        SocketCmd::Buy {
            offer,
            units,
            signer,
        } => {
            let rpc = Rpc::new(&signer.rpc.rpc);
            let o = view(
                &rpc,
                SOCKETS_ADDRESS,
                ISockets::offerInfoCall { offerId: offer },
            )?;
            let value = o
                .pricePerUnit
                .checked_mul(U256::from(units))
                .context("the price overflows")?;
            let hash = tx(&signer, value, &|| {
                ISockets::buyCall {
                    offerId: offer,
                    units,
                }
                .abi_encode()
            })?;
            println!("socket {}", minted(&rpc, hash)?);
        }
        SocketCmd::Fund { id, units, signer } => {
            let s = socket(&signer.rpc, id)?;
            let value = s
                .pricePerUnit
                .checked_mul(U256::from(units))
                .context("the price overflows")?;
            tx(&signer, value, &|| {
                ISockets::fundCall { tokenId: id, units }.abi_encode()
            })?;
        }
        SocketCmd::List { owner, rpc } => {
            let r = Rpc::new(&rpc.rpc).call("emc_sockets", json!([owner]))?;
            println!("{}", serde_json::to_string_pretty(&r["sockets"])?);
        }
        SocketCmd::Show { id, rpc } => {
            let r = Rpc::new(&rpc.rpc).call("emc_socket", json!([id]))?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        SocketCmd::Transfer {
            id,
            to,
            not_safe,
            signer,
        } => {
            let from = signer.key()?.address();
            let data = if not_safe {
                ISockets::transferFromCall {
                    from,
                    to,
                    tokenId: id,
                }
                .abi_encode()
            } else {
                ISockets::safeTransferFrom_1Call {
                    from,
                    to,
                    tokenId: id,
                }
                .abi_encode()
            };
            send(
                &signer,
                SOCKETS_ADDRESS,
                U256::ZERO,
                data.into(),
                None,
                true,
            )?;
        }
        SocketCmd::Rent {
            id,
            duration,
            signer,
        } => {
            let s = socket(&signer.rpc, id)?;
            if s.rentPricePerSecond.is_zero() {
                bail!("socket {id} is not listed for rent");
            }
            let value = s.rentPricePerSecond * U256::from(duration);
            tx(&signer, value, &|| {
                ISockets::rentCall {
                    tokenId: id,
                    duration,
                }
                .abi_encode()
            })?;
        }
        SocketCmd::RentOut {
            id,
            price_per_second,
            max,
            signer,
        } => {
            let call = ISockets::listRentalCall {
                tokenId: id,
                pricePerSecond: price_per_second,
                maxSeconds: max,
            };
            tx(&signer, U256::ZERO, &|| call.abi_encode())?;
        }
        SocketCmd::Renew {
            id,
            duration,
            signer,
        } => {
            let s = socket(&signer.rpc, id)?;
            if s.renewalPricePerSecond.is_zero() {
                bail!("socket {id} is not renewable");
            }
            let value = s.renewalPricePerSecond * U256::from(duration);
            tx(&signer, value, &|| {
                ISockets::renewSubscriptionCall {
                    tokenId: id,
                    duration,
                }
                .abi_encode()
            })?;
        }
        SocketCmd::Refund { id, signer } => {
            tx(&signer, U256::ZERO, &|| {
                ISockets::refundCall { tokenId: id }.abi_encode()
            })?;
        }
        SocketCmd::Key { id, key } => println!("{}", socket_key(id, key)?),
    }
    Ok(())
}

fn socket(rpc: &RpcArg, id: U256) -> Result<ISockets::Socket> {
    view(
        &Rpc::new(&rpc.rpc),
        SOCKETS_ADDRESS,
        ISockets::socketCall { tokenId: id },
    )
}

/// A key for socket `id` signed by `a`'s signer.
pub fn socket_key(id: U256, a: crate::cmd::gateway::KeyArgs) -> Result<String> {
    let (signer, grant) = crate::cmd::gateway::signed_grant(&a)?;
    emc_client::keys::make_socket(&signer, grant, id).map_err(anyhow::Error::msg)
}

/// A JSON-RPC hex quantity as a number (zero if it is not one).
pub(crate) fn hex_u64(v: &serde_json::Value) -> u64 {
    v.as_str()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0)
}
