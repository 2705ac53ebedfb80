//! API keys at the gateway: where a request carries its key, and the key's checks as
//! the caller hears them (401). Making and parsing keys is `emc_client::keys`.

use alloy_primitives::Address;
use emc_client::keys::{self, ApiKey};
use emc_protocol::CallError;

/// The key a request's headers carry: `Authorization: Bearer <key>` or `x-api-key`.
pub fn raw_key(h: &axum::http::HeaderMap) -> Option<&str> {
    h.get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("bearer ")))
        .or_else(|| h.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

/// The refusal of a request that carries no key.
pub fn missing() -> CallError {
    CallError::Unauthorized(
        "no API key: send `Authorization: Bearer <key>` (make one with `emc gateway key`)".into(),
    )
}

/// Decodes a key and recovers its account.
pub fn parse(raw: &str) -> Result<ApiKey, CallError> {
    keys::parse(raw).map_err(|e| CallError::Unauthorized(e.to_string()))
}

/// Checks a key against this chain, this router and the time.
pub fn check(k: &ApiKey, chain_id: u64, router: Address, now: u64) -> Result<(), CallError> {
    keys::check(k, chain_id, router, now).map_err(|e| CallError::Unauthorized(e.to_string()))
}

pub use keys::now;
