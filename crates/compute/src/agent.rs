//! The computing node's agent: its apps and their prices, its load, and the signature
//! over every reply.
//!
//! Admission: at most `capacity` calls run at once; up to `max_queue` more wait for a
//! slot; beyond that a call is refused at once as saturated, so a router can send it
//! elsewhere rather than wait. Draining (on shutdown) refuses new calls and waits for
//! the running ones to finish.
//!
//! Every reply stream ends with a [`Frame::Done`] carrying the node's signature over
//! (request hash, result hash, node id, metering, budget); a reply that breaks off ends
//! with [`Frame::Failed`] and no signature, so nothing unsigned can be charged for.
//!
//! Budget: a call carries the most units its caller pays for
//! ([`Call::max_units`]). A priced app refuses a call whose budget is zero before it
//! runs; each runtime stops at the budget (see [`crate::runtime::Call`]); and the
//! metering the node signs never exceeds it.

use crate::http_app::{HttpApp, HttpLimits};
use crate::models::{minilm::MiniLm, smollm::SmolLm};
use crate::runtime::{Call, Chunk, Runtime, MAX_REQUEST_BYTES};
use crate::wasm::{WasmLimits, WasmRuntime};
use alloy_primitives::Keccak256;
use emc_protocol::CallError;
use emc_protocol::{
    request_hash, AppInfo, Frame, Load, Metering, NodeId, ResultClaim, Served, SignedResult, Unit,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify, Semaphore};

/// One `--app` flag: `name=source[,price=WEI][,fuel=N][,memory_mb=N]`, where source is
/// `http://host:port`, `builtin:minilm`, `builtin:smollm2` or `wasm:<path to .wat/.wasm>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSpec {
    pub name: String,
    pub source: String,
    /// Price per unit of the runtime's measure (call, token or fuel), in wei.
    pub price: u128,
    pub fuel: Option<u64>,
    pub memory_mb: Option<usize>,
}

impl FromStr for AppSpec {
    type Err = CallError;
    fn from_str(s: &str) -> Result<Self, CallError> {
        let bad = |why: &str| {
            CallError::Config(format!(
                "--app {s:?}: {why} (expected name=source[,price=WEI])"
            ))
        };
        let (name, rest) = s.split_once('=').ok_or_else(|| bad("no '='"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(bad("the name must be letters, digits, '-', '_' or '.'"));
        }
        let mut parts = rest.split(',');
        let source = parts.next().unwrap_or_default().to_string();
        let mut spec = AppSpec {
            name: name.to_string(),
            source,
            price: 0,
            fuel: None,
            memory_mb: None,
        };
        for opt in parts {
            let (k, v) = opt
                .split_once('=')
                .ok_or_else(|| bad("an option needs '='"))?;
            match k {
                "price" => {
                    spec.price = v
                        .parse()
                        .map_err(|_| bad("price is a whole number of wei"))?
                }
                "fuel" => spec.fuel = Some(v.parse().map_err(|_| bad("fuel is a whole number"))?),
                "memory_mb" => {
                    spec.memory_mb =
                        Some(v.parse().map_err(|_| bad("memory_mb is a whole number"))?)
                }
                _ => return Err(bad(&format!("unknown option {k:?}"))),
            }
        }
        if !(spec.source.starts_with("http://")
            || spec.source.starts_with("https://")
            || spec.source.starts_with("wasm:")
            || spec.source == "builtin:minilm"
            || spec.source == "builtin:smollm2")
        {
            return Err(bad(
                "source must be http(s)://..., wasm:<file>, builtin:minilm or builtin:smollm2",
            ));
        }
        Ok(spec)
    }
}

impl AppSpec {
    /// Builds the runtime (loading a model or compiling a job: blocking, seconds).
    pub fn build(&self) -> Result<Arc<dyn Runtime>, CallError> {
        let s = self.source.as_str();
        Ok(if let Some(path) = s.strip_prefix("wasm:") {
            let d = WasmLimits::default();
            Arc::new(WasmRuntime::from_file(
                std::path::Path::new(path),
                WasmLimits {
                    fuel: self.fuel.unwrap_or(d.fuel),
                    memory_bytes: self.memory_mb.map(|m| m << 20).unwrap_or(d.memory_bytes),
                },
            )?)
        } else if s == "builtin:minilm" {
            Arc::new(Arc::new(MiniLm::load(&crate::models::minilm_dir())?))
        } else if s == "builtin:smollm2" {
            Arc::new(Arc::new(SmolLm::load(&crate::models::smollm_gguf())?))
        } else {
            Arc::new(HttpApp::new(s, HttpLimits::default())?)
        })
    }

    pub fn unit(&self) -> Unit {
        if self.source.starts_with("wasm:") {
            Unit::Fuel
        } else if self.source.starts_with("builtin:") {
            Unit::Tokens
        } else {
            Unit::Call
        }
    }
}

/// Counts a call as running while it lives.
struct Running(Arc<Agent>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.finish_one();
    }
}

/// What a reply sent so far: its hash and length (a sealed reply's records, as they
/// went out).
struct Sent {
    hasher: Keccak256,
    bytes: u64,
}

impl Sent {
    fn frame(&mut self, b: bytes::Bytes) -> Frame {
        self.hasher.update(&b);
        self.bytes += b.len() as u64;
        Frame::Data(b)
    }
}

struct App {
    info: AppInfo,
    runtime: Arc<dyn Runtime>,
}

pub struct Agent {
    signer: ed25519_consensus::SigningKey,
    id: NodeId,
    apps: BTreeMap<String, App>,
    capacity: u32,
    max_queue: u32,
    slots: Arc<Semaphore>,
    running: AtomicU32,
    queued: AtomicU32,
    served: AtomicU64,
    draining: AtomicBool,
    idle: Notify,
    /// The key sealed calls are opened with, once [`Agent::seal_for`] named the chain.
    sealing: Option<crate::sealed::Sealing>,
}

impl Agent {
    pub fn new(key: emc_crypto::ConsensusKey, capacity: u32, max_queue: u32) -> Self {
        let capacity = capacity.max(1);
        Self {
            id: NodeId(key.public()),
            signer: ed25519_consensus::SigningKey::from(key.seed()),
            apps: BTreeMap::new(),
            capacity,
            max_queue,
            slots: Arc::new(Semaphore::new(capacity as usize)),
            running: AtomicU32::new(0),
            queued: AtomicU32::new(0),
            served: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            idle: Notify::new(),
            sealing: None,
        }
    }

    pub fn add_app(&mut self, spec: &AppSpec, runtime: Arc<dyn Runtime>) {
        let info = AppInfo {
            name: spec.name.clone(),
            kind: runtime.kind(),
            price: spec.price,
            unit: spec.unit(),
            deterministic: runtime.deterministic(),
        };
        self.apps.insert(spec.name.clone(), App { info, runtime });
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Takes sealed calls on chain `chain_id` ([`crate::sealed`]).
    pub fn seal_for(&mut self, chain_id: u64) {
        self.sealing = Some(crate::sealed::Sealing::derive(&self.signer, chain_id));
    }

    /// The key routers offer clients for sealed calls to this node.
    pub fn sealing_key(&self) -> Option<emc_protocol::sealed::SealingKey> {
        self.sealing.as_ref().map(|s| s.key().clone())
    }

    pub fn apps(&self) -> Vec<AppInfo> {
        self.apps.values().map(|a| a.info.clone()).collect()
    }

    pub fn load(&self) -> Load {
        Load {
            running: self.running.load(Ordering::SeqCst),
            queued: self.queued.load(Ordering::SeqCst),
            capacity: self.capacity,
            max_queue: self.max_queue,
            served: self.served.load(Ordering::SeqCst),
            draining: self.draining.load(Ordering::SeqCst),
        }
    }

    /// Serves one call: admission, the runtime, and the signed end of the reply.
    pub async fn call(self: &Arc<Self>, call: Call) -> Result<Served, CallError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(CallError::Draining);
        }
        let app = self
            .apps
            .get(&call.app)
            .ok_or_else(|| CallError::no_app(&call.app))?;
        if call.body.len() > MAX_REQUEST_BYTES {
            return Err(CallError::TooLarge(format!(
                "request body of {} bytes is over {MAX_REQUEST_BYTES}",
                call.body.len()
            )));
        }
        // Hashed as it came (a sealed body as its envelope), before anything opens it.
        let rh = request_hash(&call.app, &call.path, &call.body);
        let (call, mut sealer) = match call.content_type.as_deref() {
            Some(emc_protocol::sealed::CONTENT_TYPE) => {
                let s = self.sealing.as_ref().ok_or_else(|| {
                    CallError::BadRequest("this node takes no sealed calls".into())
                })?;
                let (inner, sealer) = s.open(call)?;
                (inner, Some(sealer))
            }
            _ => (call, None),
        };
        if call.max_units == 0 && app.info.price > 0 {
            return Err(CallError::Payment(format!(
                "the call's budget covers no {:?} unit of {} at {} wei each",
                app.info.unit, app.info.name, app.info.price
            )));
        }
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.queued.fetch_add(1, Ordering::SeqCst) >= self.max_queue {
                    self.queued.fetch_sub(1, Ordering::SeqCst);
                    return Err(CallError::Saturated(format!(
                        "{} calls running and {} queued",
                        self.capacity, self.max_queue
                    )));
                }
                let p = self.slots.clone().acquire_owned().await;
                self.queued.fetch_sub(1, Ordering::SeqCst);
                p.map_err(|_| CallError::Draining)?
            }
        };
        let (call_id, max_units) = (call.id, call.max_units);
        self.running.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        let reply = match app.runtime.call(call).await {
            Ok(r) => r,
            Err(e) => {
                self.finish_one();
                return Err(e);
            }
        };
        let (tx, rx) = mpsc::channel(32);
        let me = self.clone();
        let (status, mut content_type, streaming) =
            (reply.status, reply.content_type.clone(), reply.streaming);
        if sealer.is_some() {
            content_type = emc_protocol::sealed::CONTENT_TYPE.into();
        }
        let mut chunks = reply.chunks;
        tokio::spawn(async move {
            let _slot = slot;
            let mut sent = Sent {
                hasher: Keccak256::new(),
                bytes: 0,
            };
            'reply: while let Some(c) = chunks.recv().await {
                let frames = match c {
                    Ok(Chunk::Data(b)) => match sealer.as_mut() {
                        None => vec![sent.frame(b)],
                        Some(s) => b
                            .chunks(crate::sealed::RECORD_PLAIN)
                            .map(|p| sent.frame(s.record(p, false).into()))
                            .collect(),
                    },
                    Ok(Chunk::End { unit, units }) => {
                        if let Some(s) = sealer.as_mut() {
                            let last = sent.frame(s.record(&[], true).into());
                            if tx.send(last).await.is_err() {
                                break;
                            }
                        }
                        // Runtimes stop at the budget; this is the one place that
                        // makes sure no claim passes it.
                        let claim = ResultClaim {
                            request_hash: rh,
                            call: call_id,
                            result_hash: std::mem::replace(&mut sent.hasher, Keccak256::new())
                                .finalize(),
                            node: me.id,
                            metering: Metering {
                                unit,
                                units: units.min(max_units),
                                bytes: sent.bytes,
                                wall_us: started.elapsed().as_micros() as u64,
                            },
                            max_units,
                            extensions: vec![],
                        };
                        let _ = tx
                            .send(Frame::Done(SignedResult::sign(&me.signer, claim)))
                            .await;
                        me.served.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    Err(e) => {
                        let _ = tx.send(Frame::Failed(e.to_string())).await;
                        break;
                    }
                };
                for frame in frames {
                    if tx.send(frame).await.is_err() {
                        break 'reply; // the caller went away; dropping `chunks` stops the runtime
                    }
                }
            }
        });
        Ok(Served {
            status,
            content_type,
            streaming,
            request_hash: rh,
            frames: rx,
            guard: Some(Box::new(Running(self.clone()))),
        })
    }

    fn finish_one(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.idle.notify_waiters();
    }

    /// Refuses new calls and waits (up to `max`) for running and queued ones to end.
    /// Returns whether the node drained in time.
    pub async fn drain(&self, max: Duration) -> bool {
        self.draining.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let notified = self.idle.notified();
            let l = self.load();
            if l.running == 0 && l.queued == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use emc_protocol::call::collect;

    #[test]
    fn app_specs_parse_and_bad_ones_say_why() {
        let a: AppSpec = "sd=http://127.0.0.1:7860,price=1000"
            .parse()
            .expect("parses");
        assert_eq!(
            (a.name.as_str(), a.source.as_str(), a.price),
            ("sd", "http://127.0.0.1:7860", 1000)
        );
        assert_eq!(a.unit(), Unit::Call);
        let e: AppSpec = "embed=builtin:minilm".parse().expect("parses");
        assert_eq!(e.unit(), Unit::Tokens);
        let w: AppSpec = "primes=wasm:jobs/primes.wat,fuel=5000,memory_mb=8"
            .parse()
            .expect("parses");
        assert_eq!((w.fuel, w.memory_mb), (Some(5000), Some(8)));
        for bad in [
            "noequals",
            "=http://x",
            "a=ftp://x",
            "a=builtin:gpt9",
            "a=http://x,price=lots",
            "a=http://x,color=red",
        ] {
            let err = bad.parse::<AppSpec>().expect_err(bad).to_string();
            assert!(err.contains("--app"), "{err}");
        }
    }

    fn agent_with_job(capacity: u32, max_queue: u32) -> Arc<Agent> {
        let mut agent = Agent::new(
            emc_crypto::ConsensusKey::from_seed([1; 32]),
            capacity,
            max_queue,
        );
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/jobs/primes.wat");
        let spec: AppSpec = format!("primes=wasm:{path},price=3").parse().expect("spec");
        agent.add_app(&spec, spec.build().expect("builds"));
        Arc::new(agent)
    }

    fn call(n: &str) -> Call {
        Call {
            id: alloy_primitives::B256::ZERO,
            app: "primes".into(),
            method: "POST".into(),
            path: "/".into(),
            content_type: None,
            body: Bytes::from(n.to_string()),
            max_units: crate::runtime::UNLIMITED,
        }
    }

    #[tokio::test]
    async fn every_reply_is_signed_over_what_was_sent() {
        let agent = agent_with_job(2, 2);
        let served = agent.call(call("1000")).await.expect("served");
        let rh = served.request_hash;
        let (body, signed) = collect(served).await;
        assert_eq!(body, b"168");
        let signed = signed.expect("signed");
        signed.verify().expect("verifies");
        assert_eq!(signed.claim.request_hash, rh);
        assert_eq!(signed.claim.result_hash, alloy_primitives::keccak256(&body));
        assert_eq!(signed.claim.node, agent.id());
        assert_eq!(signed.claim.metering.unit, Unit::Fuel);
        assert!(signed.claim.metering.units > 0);
        assert_eq!(agent.load().served, 1);
        assert!(matches!(
            agent
                .call(Call {
                    id: alloy_primitives::B256::ZERO,
                    app: "nope".into(),
                    ..call("1")
                })
                .await,
            Err(CallError::NoSuchApp(_))
        ));
    }

    #[tokio::test]
    async fn a_full_node_refuses_at_once_and_a_draining_one_takes_nothing_new() {
        let agent = agent_with_job(1, 0);
        let a1 = agent.clone();
        let first =
            tokio::spawn(
                async move { collect(a1.call(call("2000000")).await.expect("runs")).await },
            );
        while agent.load().running == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let second = agent.call(call("10")).await;
        assert!(
            matches!(second, Err(CallError::Saturated(_))),
            "no queue: refused"
        );
        let a2 = agent.clone();
        let drained = tokio::spawn(async move { a2.drain(Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(matches!(
            agent.call(call("10")).await,
            Err(CallError::Draining)
        ));
        let (_, signed) = first.await.expect("join");
        signed.expect("the running call finishes and is signed");
        assert!(drained.await.expect("join"), "drained once the call ended");
        assert_eq!(agent.load().running, 0);
    }
}
