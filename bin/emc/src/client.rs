//! A minimal blocking JSON-RPC client for the CLI's own calls.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

pub struct Rpc {
    url: String,
}

impl Rpc {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
        }
    }

    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let resp = match ureq::post(&self.url).send_json(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => bail!("cannot reach the node at {}: {e}", self.url),
        };
        let v: Value = resp
            .into_json()
            .with_context(|| format!("{method}: the node sent something that is not JSON"))?;
        if let Some(err) = v.get("error") {
            let msg = err
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("unknown error");
            let code = err.get("code").and_then(|c| c.as_i64()).unwrap_or(0);
            bail!("{method}: {msg} (code {code})");
        }
        v.get("result")
            .cloned()
            .ok_or_else(|| anyhow!("{method}: response has no result"))
    }

    pub fn quantity(&self, method: &str, params: Value) -> Result<u128> {
        let v = self.call(method, params)?;
        parse_quantity(&v).with_context(|| format!("{method} returned {v}"))
    }
}

pub fn parse_quantity(v: &Value) -> Result<u128> {
    let s = v.as_str().ok_or_else(|| anyhow!("not a string"))?;
    u128::from_str_radix(s.trim_start_matches("0x"), 16)
        .map_err(|e| anyhow!("bad quantity {s}: {e}"))
}
