//! Built-in models, loaded offline from the model cache that `scripts/fetch-models`
//! fills from PyPI packages (`$EMC_MODELS`, default `~/.cache/emc-models`).

pub mod minilm;
pub mod smollm;

use crate::runtime::{Call, Reply};
use emc_protocol::Unit;
use std::path::PathBuf;

/// Checks an OpenAI-shaped call: the path the model serves, and a body `parse`
/// accepts; otherwise the 404 or 400 reply (in OpenAI's error shape) to send instead.
pub(crate) fn openai_request<T>(
    call: &Call,
    path: &str,
    parse: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Result<T, Reply> {
    let bad =
        |status, msg: &str| Reply::error(status, "invalid_request_error", msg, Unit::Tokens, 0);
    if call.path != path {
        return Err(bad(404, &format!("this app serves POST {path}")));
    }
    parse(&call.body).map_err(|e| bad(400, &e))
}

/// The reply to a call whose budget cannot pay for what it asks: 402 in OpenAI's
/// error shape (`insufficient_quota`), nothing charged.
pub(crate) fn over_budget(e: &crate::CallError) -> Reply {
    Reply::error(402, "insufficient_quota", &e.to_string(), Unit::Tokens, 0)
}

pub use emc_protocol::http::kind_for;

/// The model cache directory.
pub fn model_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("EMC_MODELS") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("emc-models")
}

pub fn minilm_dir() -> PathBuf {
    model_dir().join("minilm")
}

pub fn smollm_gguf() -> PathBuf {
    model_dir()
        .join("smollm2")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf")
}
