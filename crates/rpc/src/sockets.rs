//! `emc_sockets` and `emc_socket`: computing sockets (the `Sockets` module) as JSON,
//! for wallets' dashboards and the CLI. Views of the module at a block, quantities in
//! hex, the unit by name.

use crate::{eth::resolve_block, internal, json, server_error, Ctx, RpcError};
use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use emc_modules::sockets::{ISockets, Unit, MAX_LISTED};
use emc_modules::SOCKETS_ADDRESS;
use emc_types::Height;
use jsonrpsee::{types::ErrorObjectOwned, types::Params, RpcModule};
use serde_json::{json, Value};
use std::sync::Arc;

type R = Result<Value, ErrorObjectOwned>;
type Handler = fn(&Ctx, Params<'_>) -> R;

pub(crate) fn register(m: &mut RpcModule<Ctx>) -> Result<(), RpcError> {
    let methods: [(&'static str, Handler); 2] = [("emc_sockets", sockets), ("emc_socket", socket)];
    for (name, f) in methods {
        m.register_blocking_method(name, move |p: Params<'_>, ctx: Arc<Ctx>, _| f(&ctx, p))
            .map_err(|e| RpcError::Register(name, e.to_string()))?;
    }
    Ok(())
}

fn view<C: SolCall>(c: &Ctx, at: Height, call: C) -> Result<C::Return, ErrorObjectOwned> {
    c.chain
        .view(at, SOCKETS_ADDRESS, call)
        .map_err(|e| match e {
            emc_chain::ChainError::View(m) => server_error(m),
            other => internal(other),
        })
}

fn q(v: U256) -> Value {
    json!(format!("{v:#x}"))
}

/// A socket as JSON.
pub fn socket_json(id: U256, s: &ISockets::Socket) -> Value {
    let unit = Unit::from_u8(s.unit).map(Unit::name).unwrap_or("unknown");
    json!({
        "id": q(id),
        "owner": s.owner,
        "node": s.node,
        "app": s.app,
        "appHash": s.appHash,
        "unit": unit,
        "credits": json::q(s.credits),
        "pricePerUnit": q(s.pricePerUnit),
        "escrow": q(s.escrow),
        "expires": json::q(s.expires),
        "renewalPricePerSecond": q(s.renewalPricePerSecond),
        "user": s.user,
        "userExpires": json::q(s.userExpires),
        "paidRental": s.paidRental,
        "rentPricePerSecond": q(s.rentPricePerSecond),
        "rentMaxSeconds": json::q(s.rentMaxSeconds),
    })
}

/// `emc_socket(id, [block])`: one socket.
fn socket(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let id: U256 = s.next()?;
    let at = resolve_block(&c.chain, s.optional_next()?)?;
    let info = view(c, at, ISockets::socketCall { tokenId: id })?;
    Ok(socket_json(id, &info))
}

/// `emc_sockets(owner, [block])`: every socket `owner` holds (at most 1,024), in its
/// ERC-721 enumeration's order.
fn sockets(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let owner: Address = s.next()?;
    let at = resolve_block(&c.chain, s.optional_next()?)?;
    let n: u64 = view(c, at, ISockets::balanceOfCall { owner })?.saturating_to();
    let mut out = Vec::new();
    for i in 0..n.min(MAX_LISTED) {
        let index = U256::from(i);
        let id = view(c, at, ISockets::tokenOfOwnerByIndexCall { owner, index })?;
        let info = view(c, at, ISockets::socketCall { tokenId: id })?;
        out.push(socket_json(id, &info));
    }
    Ok(json!({"owner": owner, "block": json::q(at.0), "sockets": out}))
}
