//! [`ChainClient`] over any EMC node's eth JSON-RPC.

use crate::chain::{ChainClient, Head, TxOutcome};
use crate::tx::Fees;
use crate::ClientError;
use alloy_primitives::{Address, Bytes, B256, U256};
use serde_json::{json, Value};
use std::time::Duration;

/// A JSON-RPC endpoint (`http://127.0.0.1:8545`).
#[derive(Clone, Debug)]
pub struct JsonRpc {
    url: String,
    http: reqwest::Client,
}

/// Longest answer read from a node (a view's return data is far smaller).
const MAX_ANSWER: usize = 16 << 20;

impl JsonRpc {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One JSON-RPC call: its `result`, or the error the node answered.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let unreachable = |e: reqwest::Error| {
            ClientError::Unreachable(format!("cannot reach the node at {}: {e}", self.url))
        };
        let resp = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(unreachable)?;
        let bytes = resp.bytes().await.map_err(unreachable)?;
        if bytes.len() > MAX_ANSWER {
            return Err(ClientError::Unreachable(format!(
                "{method}: an answer of {} bytes is over {MAX_ANSWER}",
                bytes.len()
            )));
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| {
            ClientError::Unreachable(format!(
                "{method}: the node sent something that is not JSON"
            ))
        })?;
        if let Some(err) = v.get("error") {
            let message = err["message"]
                .as_str()
                .unwrap_or("unknown error")
                .to_string();
            let code = err["code"].as_i64().unwrap_or(0);
            return Err(match code {
                3 => ClientError::Reverted(
                    message
                        .strip_prefix("execution reverted: ")
                        .unwrap_or(&message)
                        .to_string(),
                ),
                _ => ClientError::Rpc { code, message },
            });
        }
        v.get("result")
            .cloned()
            .ok_or_else(|| ClientError::Unreachable(format!("{method}: the answer has no result")))
    }

    async fn quantity(&self, method: &str, params: Value) -> Result<u128, ClientError> {
        let v = self.request(method, params).await?;
        quantity(&v).ok_or_else(|| ClientError::Decode(format!("{method} returned {v}")))
    }
}

/// A hex quantity (`"0x1a"`).
pub fn quantity(v: &Value) -> Option<u128> {
    u128::from_str_radix(v.as_str()?.strip_prefix("0x")?, 16).ok()
}

fn hash(v: &Value, what: &str) -> Result<B256, ClientError> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::Decode(format!("{what} is not a hash: {v}")))
}

#[async_trait::async_trait]
impl ChainClient for JsonRpc {
    async fn chain_id(&self) -> Result<u64, ClientError> {
        Ok(self.quantity("eth_chainId", json!([])).await? as u64)
    }

    async fn head(&self) -> Result<Head, ClientError> {
        let b = self
            .request("eth_getBlockByNumber", json!(["latest", false]))
            .await?;
        Ok(Head {
            height: quantity(&b["number"])
                .ok_or_else(|| ClientError::Decode(format!("block number in {b}")))?
                as u64,
            hash: hash(&b["hash"], "the block hash")?,
        })
    }

    async fn call(&self, to: Address, data: Bytes) -> Result<Bytes, ClientError> {
        let v = self
            .request("eth_call", json!([{"to": to, "data": data}, "latest"]))
            .await?;
        v.as_str()
            .and_then(|s| alloy_primitives::hex::decode(s).ok())
            .map(Bytes::from)
            .ok_or_else(|| ClientError::Decode(format!("eth_call returned {v}")))
    }

    async fn nonce(&self, account: Address) -> Result<u64, ClientError> {
        Ok(self
            .quantity("eth_getTransactionCount", json!([account, "pending"]))
            .await? as u64)
    }

    async fn fees(&self) -> Result<Fees, ClientError> {
        let tip = self.quantity("eth_maxPriorityFeePerGas", json!([])).await?;
        let price = self.quantity("eth_gasPrice", json!([])).await?;
        Ok(Fees {
            base_fee: price.saturating_sub(tip),
            tip,
        })
    }

    async fn estimate_gas(
        &self,
        from: Address,
        to: Address,
        value: U256,
        data: Bytes,
    ) -> Result<u64, ClientError> {
        let req = json!([{"from": from, "to": to, "value": value, "data": data}]);
        Ok(self.quantity("eth_estimateGas", req).await? as u64)
    }

    async fn submit(&self, raw: Bytes) -> Result<B256, ClientError> {
        match self.request("eth_sendRawTransaction", json!([raw])).await {
            Ok(v) => hash(&v, "the transaction hash"),
            Err(ClientError::Rpc { message, .. }) => Err(ClientError::Refused(message)),
            Err(e) => Err(e),
        }
    }

    async fn receipt(&self, tx: B256) -> Result<Option<TxOutcome>, ClientError> {
        let r = self
            .request("eth_getTransactionReceipt", json!([tx]))
            .await?;
        if r.is_null() {
            return Ok(None);
        }
        Ok(Some(TxOutcome {
            block: quantity(&r["blockNumber"]).unwrap_or(0) as u64,
            success: r["status"] == "0x1",
            gas_used: quantity(&r["gasUsed"]).unwrap_or(0) as u64,
        }))
    }
}
