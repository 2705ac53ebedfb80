//! `emc_sockets` and `emc_socket`: computing sockets (the `Sockets` module) as JSON,
//! for wallets' dashboards and the CLI. Views of the module at a block, quantities in
//! hex, the unit by name.

use crate::json::wei;
use crate::module_view as view;
use crate::{eth::resolve_block, json, Ctx, RpcError};
use alloy_primitives::{Address, U256};
use emc_modules::sockets::{ISockets, Unit, MAX_LISTED};
use emc_modules::SOCKETS_ADDRESS;
use jsonrpsee::{types::ErrorObjectOwned, types::Params, RpcModule};
use serde_json::{json, Value};

type R = Result<Value, ErrorObjectOwned>;

pub(crate) fn register(m: &mut RpcModule<Ctx>) -> Result<(), RpcError> {
    method!(m, "emc_sockets", sockets);
    method!(m, "emc_socket", socket);
    Ok(())
}

/// A socket as JSON.
pub fn socket_json(id: U256, s: &ISockets::Socket) -> Value {
    let unit = Unit::from_u8(s.unit).map(Unit::name).unwrap_or("unknown");
    json!({
        "id": wei(id),
        "owner": s.owner,
        "node": s.node,
        "app": s.app,
        "appHash": s.appHash,
        "unit": unit,
        "credits": json::q(s.credits),
        "pricePerUnit": wei(s.pricePerUnit),
        "escrow": wei(s.escrow),
        "expires": json::q(s.expires),
        "renewalPricePerSecond": wei(s.renewalPricePerSecond),
        "user": s.user,
        "userExpires": json::q(s.userExpires),
        "paidRental": s.paidRental,
        "rentPricePerSecond": wei(s.rentPricePerSecond),
        "rentMaxSeconds": json::q(s.rentMaxSeconds),
    })
}

/// `emc_socket(id, [block])`: one socket.
fn socket(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let id: U256 = s.next()?;
    let at = resolve_block(&c.chain, s.optional_next()?)?;
    let info = view(c, at, SOCKETS_ADDRESS, ISockets::socketCall { tokenId: id })?;
    Ok(socket_json(id, &info))
}

/// `emc_sockets(owner, [block])`: every socket `owner` holds (at most 1,024), in its
/// ERC-721 enumeration's order.
fn sockets(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let owner: Address = s.next()?;
    let at = resolve_block(&c.chain, s.optional_next()?)?;
    let n: u64 = view(c, at, SOCKETS_ADDRESS, ISockets::balanceOfCall { owner })?.saturating_to();
    let mut out = Vec::new();
    for i in 0..n.min(MAX_LISTED) {
        let index = U256::from(i);
        let id = view(
            c,
            at,
            SOCKETS_ADDRESS,
            ISockets::tokenOfOwnerByIndexCall { owner, index },
        )?;
        let info = view(c, at, SOCKETS_ADDRESS, ISockets::socketCall { tokenId: id })?;
        out.push(socket_json(id, &info));
    }
    Ok(json!({"owner": owner, "block": json::q(at.0), "sockets": out}))
}
