//! `tokenURI`: an on-chain `data:application/json;base64,` document, so wallets and
//! marketplaces show a socket with no server: its name, a description, and the
//! attributes app, app hash, provider, unit, credits left, price and expiry.

use super::economy;
use super::Unit;
use crate::{Metered, ModuleError};
use alloy_primitives::U256;
use base64::Engine;

pub fn token_uri(m: &mut Metered<'_>, id: U256, now: u64) -> Result<String, ModuleError> {
    let s = economy::info(m, id, now)?;
    let unit = Unit::from_u8(s.unit)?.name();
    let state = if s.expires <= now { "expired" } else { "valid" };
    let mut attributes = vec![
        serde_json::json!({"trait_type": "app", "value": s.app}),
        serde_json::json!({"trait_type": "provider", "value": s.node.to_string()}),
        serde_json::json!({"trait_type": "unit", "value": unit}),
        serde_json::json!({"trait_type": "credits left", "display_type": "number", "value": s.credits}),
        serde_json::json!({"trait_type": "price per unit (wei)", "value": s.pricePerUnit.to_string()}),
        serde_json::json!({"trait_type": "expires", "display_type": "date", "value": s.expires}),
        serde_json::json!({"trait_type": "state", "value": state}),
    ];
    if !s.appHash.is_zero() {
        attributes.insert(
            1,
            serde_json::json!({"trait_type": "app hash", "value": s.appHash.to_string()}),
        );
    }
    let provider = match crate::pools::pool_of_provider(s.node) {
        Some(pool) => format!("computing pool {pool}"),
        None => format!("computing node {}", s.node),
    };
    let doc = serde_json::json!({
        "name": format!("EMC socket #{id}"),
        "description": format!(
            "Access to {} on EMC {provider}: {} {unit} left, {state} until {} (Unix time).",
            s.app, s.credits, s.expires
        ),
        "attributes": attributes,
    });
    let b64 = base64::engine::general_purpose::STANDARD.encode(doc.to_string());
    Ok(format!("data:application/json;base64,{b64}"))
}
