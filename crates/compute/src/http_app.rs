//! The `http-app` runtime: forwards a call to a local HTTP app the operator runs (a
//! Stable Diffusion WebUI, an OpenAI-compatible LLM server, anything) and relays its
//! reply. An event stream (`text/event-stream`) or any chunked reply is passed on chunk
//! by chunk, unchanged, as it arrives. Limits: a connect timeout, a time to the reply's
//! headers, an idle time between chunks, and [`MAX_RESULT_BYTES`] in all; a reply that
//! breaks one is cut off with an error the caller sees.

use crate::runtime::{Call, Chunk, Reply, Runtime, MAX_RESULT_BYTES};
use emc_protocol::CallError;
use emc_protocol::Unit;
use futures::StreamExt;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub connect: Duration,
    /// From sending the request to the reply's headers (an image model may take long).
    pub headers: Duration,
    /// Longest silence between two chunks of a reply.
    pub idle: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            headers: Duration::from_secs(300),
            idle: Duration::from_secs(60),
        }
    }
}

pub struct HttpApp {
    base: reqwest::Url,
    client: reqwest::Client,
    limits: HttpLimits,
}

impl HttpApp {
    pub fn new(base: &str, limits: HttpLimits) -> Result<Self, CallError> {
        let base = reqwest::Url::parse(base)
            .map_err(|e| CallError::Config(format!("http app url {base:?}: {e}")))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(CallError::Config(format!(
                "http app url {base}: not http(s)"
            )));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(limits.connect)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CallError::Config(e.to_string()))?;
        Ok(Self {
            base,
            client,
            limits,
        })
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, CallError> {
        if !path.starts_with('/') || path.split('/').any(|seg| seg == "..") {
            return Err(CallError::BadRequest(format!("bad app path {path:?}")));
        }
        let base = self.base.as_str().trim_end_matches('/');
        reqwest::Url::parse(&format!("{base}{path}"))
            .map_err(|e| CallError::BadRequest(format!("app path {path:?}: {e}")))
    }
}

#[async_trait::async_trait]
impl Runtime for HttpApp {
    fn kind(&self) -> String {
        "http-app".into()
    }

    fn deterministic(&self) -> bool {
        false
    }

    async fn call(&self, call: Call) -> Result<Reply, CallError> {
        let method = reqwest::Method::from_bytes(call.method.as_bytes())
            .map_err(|_| CallError::BadRequest(format!("bad method {:?}", call.method)))?;
        let mut req = self.client.request(method, self.url(&call.path)?);
        if let Some(ct) = &call.content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        if !call.body.is_empty() {
            req = req.body(call.body.clone());
        }
        let resp = tokio::time::timeout(self.limits.headers, req.send())
            .await
            .map_err(|_| {
                CallError::Timeout(format!(
                    "the app sent no reply within {:?}",
                    self.limits.headers
                ))
            })?
            .map_err(|e| {
                CallError::Unavailable(format!("the app at {} is unreachable: {e}", self.base))
            })?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let streaming =
            content_type.starts_with("text/event-stream") || resp.content_length().is_none();
        if let Some(n) = resp.content_length() {
            if n > MAX_RESULT_BYTES {
                return Err(CallError::TooLarge(format!(
                    "the app's reply of {n} bytes is over {MAX_RESULT_BYTES}"
                )));
            }
        }
        let (tx, rx) = tokio::sync::mpsc::channel(32);
        let idle = self.limits.idle;
        tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let mut total = 0u64;
            loop {
                let next = match tokio::time::timeout(idle, body.next()).await {
                    Err(_) => Err(CallError::Timeout(format!(
                        "the app was silent for {idle:?} mid-reply"
                    ))),
                    Ok(None) => break,
                    Ok(Some(Err(e))) => Err(CallError::Unavailable(format!(
                        "the app's reply broke off: {e}"
                    ))),
                    Ok(Some(Ok(b))) => {
                        total += b.len() as u64;
                        if total > MAX_RESULT_BYTES {
                            Err(CallError::TooLarge(format!(
                                "the app's reply is over {MAX_RESULT_BYTES} bytes"
                            )))
                        } else {
                            Ok(Chunk::Data(b))
                        }
                    }
                };
                let stop = next.is_err();
                if tx.send(next).await.is_err() || stop {
                    return;
                }
            }
            let _ = tx
                .send(Ok(Chunk::End {
                    unit: Unit::Call,
                    units: 1,
                }))
                .await;
        });
        Ok(Reply {
            status,
            content_type,
            streaming,
            chunks: rx,
        })
    }
}
