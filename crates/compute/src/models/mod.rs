//! Built-in models, loaded offline from the model cache that `scripts/fetch-models`
//! fills from PyPI packages (`$EMC_MODELS`, default `~/.cache/emc-models`).

pub mod minilm;
pub mod smollm;

use std::path::PathBuf;

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
