//! The DID resolver every node serves, from its own topic index (not by walking
//! logs): `emc_resolveDid(did, {accept})` over JSON-RPC, and
//! `GET /1.0/identifiers/{did}` on the same port in the DIF universal resolver's
//! shape. did:ethr reads the identity's ERC-1056 events at `DIDS_ADDRESS` through
//! [`emc_storage::Store::logs_by_topic`]; did:pkh and did:key need no chain.
//!
//! HTTP answers: 200 with the resolution result
//! (`application/ld+json;profile="https://w3id.org/did-resolution"`), or, when the
//! client accepts only `application/did+ld+json` or `application/did+json`, the
//! document alone in that representation; 400 `invalidDid`, 404 `notFound` and
//! `unknownNetwork`, 406 `representationNotSupported`, 410 for a deactivated DID
//! (its empty document still given), 501 `methodNotSupported`, each with the result
//! saying why. Validity of delegates and keys counts against this machine's clock,
//! as ethr-did-resolver's does; a `versionId` counts against that block's time.

use crate::{invalid_params, Ctx, RpcError};
use alloy_primitives::Address;
use alloy_sol_types::SolEvent;
use emc_chain::Chain;
use emc_identity::{ethr, Resolution, Source};
use emc_modules::dids::IEthereumDIDRegistry as I;
use emc_modules::DIDS_ADDRESS;
use jsonrpsee::{server::HttpBody, types::ErrorObjectOwned, types::Params, RpcModule};
use serde_json::Value;
use std::sync::Arc;

pub(crate) fn register(m: &mut RpcModule<Ctx>) -> Result<(), RpcError> {
    method!(m, "emc_resolveDid", resolve_did);
    Ok(())
}

/// What the chain tells the resolver: the DID registry's events by identity, from
/// the topic index, and block times.
struct ChainSource<'c>(&'c Chain);

impl Source for ChainSource<'_> {
    fn chain_id(&self) -> u64 {
        self.0.chain_id()
    }

    fn events(&self, identity: Address, limit: usize) -> Result<Option<Vec<ethr::Event>>, String> {
        let Some(logs) = self
            .0
            .store()
            .logs_by_topic(DIDS_ADDRESS, identity.into_word(), limit)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        Ok(Some(
            logs.iter()
                .filter(|l| l.log.topics.get(1) == Some(&identity.into_word()))
                .filter_map(|l| event(l.height, &l.log))
                .collect(),
        ))
    }

    fn block_time(&self, height: u64) -> Result<Option<u64>, String> {
        let header = self.0.store().header(emc_types::Height(height));
        Ok(header.map_err(|e| e.to_string())?.map(|h| h.timestamp))
    }
}

/// A registry log as the resolver's event (none for a log of another shape).
fn event(block: u64, log: &emc_types::Log) -> Option<ethr::Event> {
    let topics = log.topics.iter().copied();
    let change = match *log.topics.first()? {
        I::DIDOwnerChanged::SIGNATURE_HASH => {
            let e = I::DIDOwnerChanged::decode_raw_log(topics, &log.data).ok()?;
            ethr::Change::Owner { owner: e.owner }
        }
        I::DIDDelegateChanged::SIGNATURE_HASH => {
            let e = I::DIDDelegateChanged::decode_raw_log(topics, &log.data).ok()?;
            ethr::Change::Delegate {
                delegate_type: e.delegateType.0,
                delegate: e.delegate,
                valid_to: e.validTo,
            }
        }
        I::DIDAttributeChanged::SIGNATURE_HASH => {
            let e = I::DIDAttributeChanged::decode_raw_log(topics, &log.data).ok()?;
            ethr::Change::Attribute {
                name: e.name.0,
                value: e.value,
                valid_to: e.validTo,
            }
        }
        _ => return None,
    };
    Some(ethr::Event { block, change })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Resolves `did` on `chain`.
pub(crate) fn resolve(chain: &Chain, did: &str, accept: Option<&str>) -> Resolution {
    emc_identity::resolve(did, accept, &ChainSource(chain), now())
}

/// `emc_resolveDid(did, {"accept": …}?)`: the resolution result (a failure is a
/// result whose `didResolutionMetadata.error` says why, as DID Resolution has it).
fn resolve_did(c: &Ctx, p: Params<'_>) -> Result<Value, ErrorObjectOwned> {
    let mut s = p.sequence();
    let did: String = s
        .next()
        .map_err(|_| invalid_params("the first parameter must be a DID string"))?;
    let options: Option<Value> = s.optional_next()?;
    let accept = match options.as_ref().map(|o| &o["accept"]) {
        None | Some(Value::Null) => None,
        Some(Value::String(a)) => Some(a.clone()),
        Some(_) => return Err(invalid_params("options.accept must be a string")),
    };
    Ok(resolve(&c.chain, &did, accept.as_deref()).to_json())
}

// ---- GET /1.0/identifiers/{did} --------------------------------------------------

const PREFIX: &str = "/1.0/identifiers/";
const RESULT_TYPE: &str = "application/ld+json;profile=\"https://w3id.org/did-resolution\"";

/// The layer that answers `GET /1.0/identifiers/{did}` before JSON-RPC sees it.
#[derive(Clone)]
pub(crate) struct Identifiers(pub Arc<Chain>);

impl<S> tower::Layer<S> for Identifiers {
    type Service = IdentifiersService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        IdentifiersService {
            inner,
            chain: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct IdentifiersService<S> {
    inner: S,
    chain: Arc<Chain>,
}

type Reply<E> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<http::Response<HttpBody>, E>> + Send>,
>;

impl<S, B> tower::Service<http::Request<B>> for IdentifiersService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<HttpBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<HttpBody>;
    type Error = S::Error;
    type Future = Reply<S::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let Some(did) = req.uri().path().strip_prefix(PREFIX).map(str::to_string) else {
            return Box::pin(self.inner.call(req));
        };
        if req.method() != http::Method::GET {
            return Box::pin(async { Ok(text(405, "only GET resolves a DID")) });
        }
        let accept = req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .map(str::to_string);
        let chain = self.chain.clone();
        Box::pin(async move {
            let answer =
                tokio::task::spawn_blocking(move || answer(&chain, &did, accept.as_deref())).await;
            Ok(answer.unwrap_or_else(|_| text(500, "the resolver stopped")))
        })
    }
}

fn text(status: u16, why: &str) -> http::Response<HttpBody> {
    let mut r = http::Response::new(HttpBody::from(format!("{why}\n")));
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The status DID Resolution's HTTP binding gives a result.
fn status(r: &Resolution) -> u16 {
    match r.error() {
        None if r.document_metadata.get("deactivated") == Some(&Value::Bool(true)) => 410,
        None => 200,
        Some("invalidDid") => 400,
        Some("notFound") | Some("unknownNetwork") => 404,
        Some("representationNotSupported") => 406,
        Some("methodNotSupported") => 501,
        Some(_) => 500,
    }
}

fn answer(chain: &Chain, path_did: &str, accept: Option<&str>) -> http::Response<HttpBody> {
    let Some(did) = percent_decode(path_did) else {
        return text(
            400,
            "the DID in the path is not valid percent-encoded UTF-8",
        );
    };
    // A client that asks for a document representation gets the document alone.
    let bare = accept
        .map(|a| a.split(';').next().unwrap_or("").trim())
        .filter(|a| *a == "application/did+ld+json" || *a == "application/did+json");
    let r = resolve(chain, &did, bare.or(Some("application/did+ld+json")));
    let (body, kind) = match (bare, &r.document) {
        (Some(kind), Some(doc)) => (doc.to_string(), kind.to_string()),
        _ => (r.to_json().to_string(), RESULT_TYPE.to_string()),
    };
    let mut resp = http::Response::new(HttpBody::from(body));
    *resp.status_mut() = http::StatusCode::from_u16(status(&r)).unwrap_or(http::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(&kind) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

/// `%3A` and friends back to bytes; `None` for a bad escape or bytes that are not
/// UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn paths_are_percent_decoded_and_bad_escapes_refused() {
        assert_eq!(
            percent_decode("did%3Aethr%3A0x1a4%3A0xab").as_deref(),
            Some("did:ethr:0x1a4:0xab")
        );
        assert_eq!(
            percent_decode("did:key:z6Mk").as_deref(),
            Some("did:key:z6Mk")
        );
        assert_eq!(percent_decode("did%3"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff%fe"), None);
    }
}
