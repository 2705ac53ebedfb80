//! Resolving a DID URL to a resolution result, in DID Resolution's shape (what the DIF
//! universal resolver's `GET /1.0/identifiers/{did}` answers):
//! `{"@context", "didDocument", "didResolutionMetadata", "didDocumentMetadata"}`.

use crate::did::{self, Did, Parsed};
use crate::{ethr, key, pkh, IdentityError};
use alloy_primitives::Address;
use serde_json::{json, Map, Value};

/// The longest DID URL read.
pub const MAX_DID_BYTES: usize = 512;
/// The most ERC-1056 events one did:ethr identity may have for this resolver; past
/// it the answer is `notFound`, saying so (every identity's events are read whole).
pub const MAX_EVENTS: usize = 10_000;

const LD_JSON: &str = "application/did+ld+json";
const JSON: &str = "application/did+json";

/// What the chain tells the resolver.
pub trait Source {
    fn chain_id(&self) -> u64;
    /// The identity's events in the DID registry, in chain order; `None` when it
    /// has more than `limit`.
    fn events(&self, identity: Address, limit: usize) -> Result<Option<Vec<ethr::Event>>, String>;
    /// Block `height`'s timestamp (Unix seconds), if the chain has that block.
    fn block_time(&self, height: u64) -> Result<Option<u64>, String>;
}

/// A resolution result.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolution {
    pub document: Option<Value>,
    pub resolution_metadata: Map<String, Value>,
    pub document_metadata: Map<String, Value>,
}

impl Resolution {
    fn failed(e: &IdentityError) -> Self {
        let mut m = Map::new();
        m.insert("error".into(), json!(e.code()));
        m.insert("message".into(), json!(e.to_string()));
        Resolution {
            document: None,
            resolution_metadata: m,
            document_metadata: Map::new(),
        }
    }

    /// The error code, when it failed.
    pub fn error(&self) -> Option<&str> {
        self.resolution_metadata
            .get("error")
            .and_then(Value::as_str)
    }

    /// The DIF universal resolver's JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "@context": "https://w3id.org/did-resolution/v1",
            "didDocument": self.document,
            "didResolutionMetadata": self.resolution_metadata,
            "didDocumentMetadata": self.document_metadata,
        })
    }
}

/// Resolves `url` in representation `accept` (`application/did+ld+json`, the
/// default, or `application/did+json`), counting validity against `now`.
pub fn resolve(url: &str, accept: Option<&str>, source: &dyn Source, now: u64) -> Resolution {
    let accept = accept.unwrap_or(LD_JSON);
    if accept != LD_JSON && accept != JSON {
        let e = IdentityError::InvalidDid(format!(
            "representation {accept:?} is not supported ({LD_JSON} or {JSON} are)"
        ));
        let mut r = Resolution::failed(&e);
        r.resolution_metadata
            .insert("error".into(), json!("representationNotSupported"));
        return r;
    }
    let ld = accept == LD_JSON;
    let built = did::parse(url).and_then(|p| match &p.method {
        Did::Pkh { account } => Ok((pkh::document(&p.did, account, ld), Map::new())),
        Did::Key { fingerprint, key } => {
            Ok((key::document(&p.did, fingerprint, key, ld)?, Map::new()))
        }
        Did::Ethr { .. } => resolve_ethr(&p, source, now, ld),
    });
    match built {
        Ok((doc, meta)) => {
            let mut m = Map::new();
            m.insert("contentType".into(), json!(accept));
            Resolution {
                document: Some(Value::Object(doc)),
                resolution_metadata: m,
                document_metadata: meta,
            }
        }
        Err(e) => Resolution::failed(&e),
    }
}

type Document = (Map<String, Value>, Map<String, Value>);

fn resolve_ethr(
    p: &Parsed,
    source: &dyn Source,
    now: u64,
    ld: bool,
) -> Result<Document, IdentityError> {
    let Did::Ethr { network, id } = &p.method else {
        return Err(IdentityError::InvalidDid("not did:ethr".into()));
    };
    let chain_id = source.chain_id();
    let ours = network
        .strip_prefix("0x")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .is_some_and(|n| n == chain_id);
    if !ours {
        return Err(IdentityError::UnknownNetwork(format!(
            "The DID resolver does not have a configuration for network: {network} (this chain is 0x{chain_id:x})"
        )));
    }
    let not_found = |e: String| IdentityError::NotFound(e);
    let time_of = |h: u64| -> Result<u64, IdentityError> {
        source
            .block_time(h)
            .map_err(not_found)?
            .ok_or_else(|| not_found(format!("Block at height {h} not found")))
    };
    let now = match p.version_id {
        Some(v) => time_of(v)?,
        None => now,
    };
    let history = source
        .events(id.address(), crate::MAX_EVENTS)
        .map_err(not_found)?
        .ok_or_else(|| {
            not_found(format!(
                "{} has more than {} registry events; this resolver reads at most that many",
                id.address(),
                crate::MAX_EVENTS
            ))
        })?;
    let built = ethr::document(&p.did, id, chain_id, &history, p.version_id, now);
    let mut meta = Map::new();
    if built.deactivated {
        meta.insert("deactivated".into(), json!(true));
    }
    if built.version_id != 0 {
        meta.insert("versionId".into(), json!(built.version_id.to_string()));
        meta.insert(
            "updated".into(),
            json!(iso_date(time_of(built.version_id)?)),
        );
    }
    if let Some(n) = built.next_version_id {
        meta.insert("nextVersionId".into(), json!(n.to_string()));
        meta.insert("nextUpdate".into(), json!(iso_date(time_of(n)?)));
    }
    let mut doc = built.document;
    if ld {
        doc.insert(
            "@context".into(),
            json!([
                "https://www.w3.org/ns/did/v1",
                "https://w3id.org/security/suites/secp256k1recovery-2020/v2",
                "https://w3id.org/security/v3-unstable"
            ]),
        );
    }
    Ok((doc, meta))
}

/// Unix seconds as ISO 8601 in UTC without fractions (`2026-12-03T18:30:05Z`), as
/// ethr-did-resolver writes block times.
pub fn iso_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_as_javascript_writes_them() {
        assert_eq!(iso_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_date(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_date(1_796_318_405), "2026-12-03T17:20:05Z");
    }

    struct Empty;
    impl Source for Empty {
        fn chain_id(&self) -> u64 {
            420
        }
        fn events(&self, _: Address, _: usize) -> Result<Option<Vec<ethr::Event>>, String> {
            Ok(Some(vec![]))
        }
        fn block_time(&self, h: u64) -> Result<Option<u64>, String> {
            Ok((h < 10).then_some(h * 2))
        }
    }

    #[test]
    fn results_carry_the_document_or_an_error_code() {
        let r = resolve(
            "did:ethr:0x1a4:0xb9c5714089478a327f09197987f16f9e5d936e8a",
            None,
            &Empty,
            5,
        );
        assert_eq!(r.error(), None);
        let doc = r.document.clone().expect("a document");
        assert_eq!(
            doc["verificationMethod"][0]["blockchainAccountId"],
            "eip155:420:0xB9C5714089478a327F09197987f16f9E5d936E8a"
        );
        assert!(doc["@context"].is_array());
        assert_eq!(r.to_json()["didResolutionMetadata"]["contentType"], LD_JSON);
        let other = resolve(
            "did:ethr:0x1:0xb9c5714089478a327f09197987f16f9e5d936e8a",
            None,
            &Empty,
            5,
        );
        assert_eq!(other.error(), Some("unknownNetwork"));
        let future = resolve(
            "did:ethr:0x1a4:0xb9c5714089478a327f09197987f16f9e5d936e8a?versionId=99",
            None,
            &Empty,
            5,
        );
        assert_eq!(future.error(), Some("notFound"));
        let bad = resolve("did:ethr:0x1a4:0x12", Some(JSON), &Empty, 5);
        assert_eq!(bad.error(), Some("invalidDid"));
        assert!(bad.to_json()["didDocument"].is_null());
        let format = resolve(
            "did:key:z6MktvqCyLxTsXUH1tUZncNdVeEZ7hNh7npPRbUU27GTrYb8",
            Some("text/html"),
            &Empty,
            5,
        );
        assert_eq!(format.error(), Some("representationNotSupported"));
    }
}
