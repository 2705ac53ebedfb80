//! `emc market ...`: the computing market. Providers post offers and asks and bid on
//! buyers' orders; buyers buy, order and bid on the spot market; holders resell
//! sockets at a fixed price or by auction; everyone searches and reads the history.

use crate::client::Rpc;
use crate::cmd::gateway::view;
use crate::cmd::socket::{self, OfferArgs, SocketCmd};
use crate::cmd::tx::parse_duration;
use crate::cmd::tx::{parse_amount, send_tx, SignerArgs};
use crate::cmd::RpcArg;
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use anyhow::{bail, Context, Result};
use emc_modules::market::IMarket;
use emc_modules::sockets::ISockets;
use emc_modules::{MARKET_ADDRESS, SOCKETS_ADDRESS};
use serde_json::{json, Value};

#[derive(clap::Subcommand)]
pub enum MarketCmd {
    /// Post a standing offer for your node (--spot: an ask of --capacity units in this
    /// block's auction, at no less than --price).
    Offer {
        #[command(flatten)]
        offer: OfferArgs,
        /// Ask in the spot market's auction of this block instead.
        #[arg(long)]
        spot: bool,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Order UNITS of APP at most MAX_PRICE each: providers bid, the best wins by rule
    /// at the deadline (--spot: a bid in this block's auction).
    Order(OrderArgs),
    /// Bid on order ORDER with your node (the bond is sent), or, with --listing, on
    /// an auction.
    Bid(BidArgs),
    /// End your order ORDER now; the rule picks the winning bid.
    Accept {
        order: U256,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// List socket TOKEN for sale at PRICE (approving the market first if needed).
    List {
        token: U256,
        #[arg(long, value_parser = parse_amount)]
        price: U256,
        #[arg(long = "for", default_value = "7d", value_parser = parse_duration)]
        lasts: u64,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Put socket TOKEN up for auction with a reserve.
    Auction {
        token: U256,
        #[arg(long, value_parser = parse_amount)]
        reserve: U256,
        #[arg(long = "for", default_value = "1d", value_parser = parse_duration)]
        lasts: u64,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Buy a listing, or UNITS from a standing offer.
    Buy(BuyArgs),
    /// Take a lease's failure reports from routers' gateways to the Market: with two
    /// staked routers' word, the provider's bond is the buyer's.
    Report {
        /// The lease's winning bid (`emc market show orders`).
        #[arg(long)]
        bid: U256,
        /// A router's gateway (its base URL, as `emc devnet` prints it); name two or more.
        #[arg(long = "gateway", required = true)]
        gateways: Vec<String>,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Settle an ended auction (anyone may).
    Settle {
        listing: U256,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Search: offers, apps, prices, orders or listings.
    Show(ShowArgs),
    /// Trades (spot fills, leases, resales) in a range of blocks.
    History {
        #[arg(long)]
        from: Option<u64>,
        #[arg(long)]
        to: Option<u64>,
        #[arg(long)]
        app: Option<String>,
        #[command(flatten)]
        rpc: RpcArg,
    },
}

#[derive(clap::Args)]
pub struct OrderArgs {
    #[arg(long)]
    app: String,
    #[arg(long)]
    units: u64,
    #[arg(long, value_parser = parse_amount)]
    max_price: U256,
    #[arg(long, default_value = "calls")]
    unit: String,
    /// How long providers may bid.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    deadline: u64,
    /// How long the lease lasts.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    lease: u64,
    /// The least E a bidder's node has.
    #[arg(long, default_value = "0")]
    min_e: U256,
    #[arg(long, default_value_t = 16)]
    max_bids: u8,
    #[arg(long)]
    spot: bool,
    #[command(flatten)]
    signer: SignerArgs,
}

#[derive(clap::Args)]
pub struct BidArgs {
    #[arg(long, conflicts_with = "listing")]
    order: Option<U256>,
    #[arg(long)]
    node: Option<B256>,
    /// Your price per unit (an order) or your bid (an auction).
    #[arg(long, value_parser = parse_amount)]
    price: U256,
    #[arg(long)]
    listing: Option<U256>,
    #[command(flatten)]
    signer: SignerArgs,
}

#[derive(clap::Args)]
pub struct BuyArgs {
    #[arg(long, conflicts_with = "offer")]
    listing: Option<U256>,
    #[arg(long, requires = "units")]
    offer: Option<U256>,
    #[arg(long)]
    units: Option<u64>,
    #[command(flatten)]
    signer: SignerArgs,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    #[arg(value_parser = ["offers", "apps", "prices", "orders", "listings"])]
    what: String,
    #[arg(long)]
    app: Option<String>,
    /// A part of the app's name.
    #[arg(long)]
    model: Option<String>,
    #[arg(long, value_parser = parse_amount)]
    max_price: Option<U256>,
    #[arg(long)]
    min_e: Option<U256>,
    #[arg(long)]
    provider: Option<Address>,
    #[command(flatten)]
    rpc: RpcArg,
}

fn parse_unit(s: &str) -> Result<u8> {
    Ok(match s {
        "calls" | "call" => 0,
        "fuel" => 1,
        "tokens" => 2,
        "seconds" => 3,
        _ => bail!("unit {s:?} is none of calls, fuel, tokens, seconds"),
    })
}

fn tx(signer: &SignerArgs, to: Address, value: U256, data: Vec<u8>) -> Result<B256> {
    send_tx(signer, to, value, Bytes::from(data), None, true)
}

/// The first `E` the transaction's receipt logged from the Market.
fn logged<E: SolEvent>(rpc: &Rpc, hash: B256) -> Result<E> {
    let r = rpc.call("eth_getTransactionReceipt", json!([hash]))?;
    for l in r["logs"].as_array().context("the receipt has no logs")? {
        let topics: Vec<B256> = serde_json::from_value(l["topics"].clone()).unwrap_or_default();
        let data: Bytes = serde_json::from_value(l["data"].clone()).unwrap_or_default();
        if let Ok(e) = E::decode_raw_log(topics, &data) {
            return Ok(e);
        }
    }
    bail!("the transaction logged no {}", E::SIGNATURE)
}

fn print(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn run(c: MarketCmd) -> Result<()> {
    match c {
        MarketCmd::Offer {
            offer,
            spot,
            signer,
        } => {
            if !spot {
                return socket::run(SocketCmd::Offer { offer, signer });
            }
            spot_ask(&offer, &signer)?;
        }
        MarketCmd::Order(a) => order(a)?,
        MarketCmd::Bid(a) => bid(a)?,
        MarketCmd::Accept { order, signer } => {
            let data = IMarket::acceptCall { orderId: order }.abi_encode();
            let h = tx(&signer, MARKET_ADDRESS, U256::ZERO, data)?;
            let e: IMarket::Leased = logged(&Rpc::new(&signer.rpc.rpc), h)?;
            println!("socket {}", e.tokenId);
            println!("leased on node {} at {} wei a unit", e.node, e.pricePerUnit);
        }
        MarketCmd::List {
            token,
            price,
            lasts,
            signer,
        } => list(&signer, token, price, lasts, false)?,
        MarketCmd::Auction {
            token,
            reserve,
            lasts,
            signer,
        } => list(&signer, token, reserve, lasts, true)?,
        MarketCmd::Buy(a) => buy(a)?,
        MarketCmd::Report {
            bid,
            gateways,
            signer,
        } => report(&signer, bid, &gateways)?,
        MarketCmd::Settle { listing, signer } => {
            let data = IMarket::settleAuctionCall { listingId: listing }.abi_encode();
            tx(&signer, MARKET_ADDRESS, U256::ZERO, data)?;
        }
        MarketCmd::Show(a) => show(a)?,
        MarketCmd::History { from, to, app, rpc } => {
            let mut q = serde_json::Map::new();
            for (k, v) in [
                ("fromBlock", from.map(|f| json!(f))),
                ("toBlock", to.map(|t| json!(t))),
                ("app", app.map(|a| json!(a))),
            ] {
                if let Some(v) = v {
                    q.insert(k.into(), v);
                }
            }
            print(&Rpc::new(&rpc.rpc).call("emc_marketHistory", json!([Value::Object(q)]))?)?;
        }
    }
    Ok(())
}

/// An ask of the offer's capacity in this block's spot auction.
fn spot_ask(offer: &OfferArgs, signer: &SignerArgs) -> Result<()> {
    let call = IMarket::spotAskCall {
        node: offer.terms.node,
        app: offer.terms.app.clone(),
        unit: offer.terms.unit,
        units: offer.capacity,
        limitPerUnit: offer.terms.price,
    };
    let h = tx(signer, MARKET_ADDRESS, U256::ZERO, call.abi_encode())?;
    let e: IMarket::SpotAsk = logged(&Rpc::new(&signer.rpc.rpc), h)?;
    println!("spot ask {}", e.orderId);
    println!("it clears at the end of its block: see `emc market history`");
    Ok(())
}

fn order(a: OrderArgs) -> Result<()> {
    let unit = parse_unit(&a.unit)?;
    let value = a
        .max_price
        .checked_mul(U256::from(a.units))
        .context("the deposit overflows")?;
    let rpc = Rpc::new(&a.signer.rpc.rpc);
    if a.spot {
        let call = IMarket::spotBidCall {
            app: a.app,
            unit,
            units: a.units,
            limitPerUnit: a.max_price,
        };
        let h = tx(&a.signer, MARKET_ADDRESS, value, call.abi_encode())?;
        let e: IMarket::SpotBid = logged(&rpc, h)?;
        println!("spot bid {}", e.orderId);
        println!("it clears at the end of its block: see `emc market history`");
        return Ok(());
    }
    let call = IMarket::placeOrderCall {
        app: a.app,
        unit,
        units: a.units,
        maxPricePerUnit: a.max_price,
        deadline: emc_client::keys::now() + a.deadline,
        validFor: a.lease,
        minScore: a.min_e,
        maxBids: a.max_bids,
    };
    let h = tx(&a.signer, MARKET_ADDRESS, value, call.abi_encode())?;
    let e: IMarket::OrderPlaced = logged(&rpc, h)?;
    println!("order {}", e.orderId);
    println!("bids close at {} (Unix seconds)", e.deadline);
    Ok(())
}

fn bid(a: BidArgs) -> Result<()> {
    let rpc = Rpc::new(&a.signer.rpc.rpc);
    if let Some(listing) = a.listing {
        let call = IMarket::bidAuctionCall { listingId: listing };
        tx(&a.signer, MARKET_ADDRESS, a.price, call.abi_encode())?;
        println!("bid {} wei on auction {listing}", a.price);
        return Ok(());
    }
    let order = a
        .order
        .context("name --order (a buyer's order) or --listing (an auction)")?;
    let node = a
        .node
        .context("--node: the node that will serve the order")?;
    let bond = view(
        &rpc,
        MARKET_ADDRESS,
        IMarket::bondOfCall {
            orderId: order,
            pricePerUnit: a.price,
        },
    )?;
    let call = IMarket::bidCall {
        orderId: order,
        node,
        pricePerUnit: a.price,
    };
    let h = tx(&a.signer, MARKET_ADDRESS, bond, call.abi_encode())?;
    let e: IMarket::BidPlaced = logged(&rpc, h)?;
    println!("bid {}", e.bidId);
    println!("on order {order}, with a bond of {bond} wei");
    Ok(())
}

fn buy(a: BuyArgs) -> Result<()> {
    if let Some(offer) = a.offer {
        return socket::run(SocketCmd::Buy {
            offer,
            units: a.units.unwrap_or(1),
            signer: a.signer,
        });
    }
    let listing = a
        .listing
        .context("name --listing or --offer with --units")?;
    let rpc = Rpc::new(&a.signer.rpc.rpc);
    let x = view(
        &rpc,
        MARKET_ADDRESS,
        IMarket::listingInfoCall { listingId: listing },
    )?;
    if x.auction {
        bail!("listing {listing} is an auction: `emc market bid --listing {listing} --price ...`");
    }
    let data = IMarket::buyListingCall { listingId: listing }.abi_encode();
    let h = tx(&a.signer, MARKET_ADDRESS, x.price, data)?;
    let e: IMarket::Sold = logged(&rpc, h)?;
    println!("socket {} bought for {} wei", e.tokenId, e.price);
    Ok(())
}

/// A search through the `emc_market*` views, printed as their JSON.
fn show(a: ShowArgs) -> Result<()> {
    let method = match a.what.as_str() {
        "offers" => "emc_marketOffers",
        "apps" => "emc_marketApps",
        "prices" => "emc_marketPrices",
        "orders" => "emc_marketOrders",
        _ => "emc_marketListings",
    };
    let mut q = serde_json::Map::new();
    let by_app = a.what == "offers" || a.what == "orders";
    let offers = a.what == "offers";
    let fields = [
        ("app", a.app.filter(|_| by_app).map(|v| json!(v))),
        ("model", a.model.filter(|_| offers).map(|v| json!(v))),
        ("maxPrice", a.max_price.filter(|_| offers).map(|v| json!(v))),
        ("minScore", a.min_e.filter(|_| offers).map(|v| json!(v))),
        ("provider", a.provider.filter(|_| offers).map(|v| json!(v))),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            q.insert(k.into(), v);
        }
    }
    print(&Rpc::new(&a.rpc.rpc).call(method, json!([Value::Object(q)]))?)
}

/// One report from each router's gateway (the newest), submitted together.
fn report(signer: &SignerArgs, bid: U256, gateways: &[String]) -> Result<()> {
    let mut reports = Vec::new();
    for g in gateways {
        let base = g.trim_end_matches('/').trim_end_matches("/v1");
        let url = format!("{base}/v1/market/failures/{bid}");
        let v: Value = ureq::get(&url)
            .call()
            .with_context(|| format!("asking {url}"))?
            .into_json()
            .with_context(|| format!("{url} answered no JSON"))?;
        let Some(r) = v["reports"].as_array().and_then(|a| a.last()) else {
            bail!("{g} has no failure report for bid {bid}");
        };
        let field = |k: &str| r[k].clone();
        reports.push(IMarket::FailureReport {
            bidId: bid,
            node: serde_json::from_value(field("node")).context("a report's node")?,
            at: field("at").as_u64().context("a report's time")?,
            kind: field("kind").as_u64().context("a report's kind")? as u8,
            requestHash: serde_json::from_value(field("requestHash"))
                .context("a report's request")?,
            signature: serde_json::from_value(field("signature"))
                .context("a report's signature")?,
        });
    }
    let call = IMarket::reportFailureCall {
        bidId: bid,
        reports,
    };
    let h = tx(signer, MARKET_ADDRESS, U256::ZERO, call.abi_encode())?;
    let e: IMarket::BondSlashed = logged(&Rpc::new(&signer.rpc.rpc), h)?;
    println!("bond {} wei of bid {bid} paid to {}", e.amount, e.to);
    Ok(())
}

/// Lists `token` (approving the market first if it may not move it yet).
fn list(signer: &SignerArgs, token: U256, price: U256, lasts: u64, auction: bool) -> Result<()> {
    let rpc = Rpc::new(&signer.rpc.rpc);
    let me = signer.key()?.address();
    let approved = view(
        &rpc,
        SOCKETS_ADDRESS,
        ISockets::getApprovedCall { tokenId: token },
    )?;
    let operator = view(
        &rpc,
        SOCKETS_ADDRESS,
        ISockets::isApprovedForAllCall {
            owner: me,
            operator: MARKET_ADDRESS,
        },
    )?;
    if approved != MARKET_ADDRESS && !operator {
        let call = ISockets::approveCall {
            approved: MARKET_ADDRESS,
            tokenId: token,
        };
        tx(signer, SOCKETS_ADDRESS, U256::ZERO, call.abi_encode())?;
    }
    let ends = emc_client::keys::now() + lasts;
    let data = if auction {
        IMarket::auctionCall {
            tokenId: token,
            reservePrice: price,
            ends,
        }
        .abi_encode()
    } else {
        IMarket::listCall {
            tokenId: token,
            price,
            ends,
        }
        .abi_encode()
    };
    let h = tx(signer, MARKET_ADDRESS, U256::ZERO, data)?;
    let e: IMarket::Listed = logged(&rpc, h)?;
    println!("listing {} for socket {token}", e.listingId);
    Ok(())
}
