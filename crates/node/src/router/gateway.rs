//! The client gateway: HTTP in front of the router.
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /v1/embeddings`, `POST /v1/chat/completions` | OpenAI's API; `model` names the app; `"stream": true` streams server-sent events |
//! | `GET /v1/models` | every model the network serves through this router (no key needed) |
//! | `ANY /call/{app}/{path...}` | any app: an HTTP app gets the method, path, query and body |
//! | `GET /pubsub/{channel}` (WebSocket), `POST /pubsub/{channel}` | publish/subscribe, see [`super::pubsub`] |
//! | `GET /nodes`, `GET /mesh` | the routing table: load, RTT, E, prices, outcomes; the peers' nodes |
//! | `GET /health` | `ok` |
//!
//! Every call needs an API key ([`super::auth`]) as `Authorization: Bearer`. Per
//! request a caller may send `x-emc-max-price` (wei per unit), `x-emc-max-cost` (wei
//! reserved for the call), `x-emc-weights` (routing weights) and `x-emc-cache: allow`
//! (answer a deterministic call from the cache). A reply carries `x-emc-node`,
//! `x-emc-call`, `x-emc-charge` (wei, one-body replies) and the node's signed result
//! in `x-emc-result` (a trailer for streams, with `TE: trailers`).
//!
//! A call goes to the best node by [`super::policy`]; if the node cannot be reached,
//! refuses, or fails before its reply is complete (a one-body reply) or before its
//! stream starts, the next one is tried, up to [`MAX_TRIES`], and only the call that
//! returns a signed result is charged. Errors use OpenAI's shape:
//! `{"error": {"message", "type"}}` with 400 (malformed), 401 (no, bad or expired key),
//! 402 (escrow, limit or price cap), 404 (no such app), 409 (replayed request),
//! 413 (too large), 429 (saturated), 503 (every node failed).

use super::auth::{self, ApiKey};
use super::cache::ResultCache;
use super::ledger::{Ledger, Reservation};
use super::policy::{self, NoRoute, Weights};
use super::pubsub::{self, PubSub};
use super::receipts::{Receipting, MISMATCH};
use super::{call_node, RouterSettings, RouterTable};
use crate::compute::view;
use crate::NodeError;
use alloy_primitives::{keccak256, Address, B256, U256};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Json;
use bytes::Bytes;
use emc_chain::Chain;
use emc_compute::runtime::{Call, MAX_REQUEST_BYTES};
use emc_compute::server::{error_response, RequestBody, RESULT_HEADER};
use emc_compute::{ComputeError, SignedResult};
use emc_modules::tasks::{self, ITasks};
use emc_modules::TASKS_ADDRESS;
use libp2p_stream::Control;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Most nodes one call is tried on.
pub const MAX_TRIES: usize = 3;
/// How long one node may take to complete a one-body reply, or start a stream.
const TRY_TIMEOUT: Duration = Duration::from_secs(120);
/// Parsed API keys kept (parsing recovers a signature).
const KEY_CACHE: usize = 10_000;

#[derive(Clone)]
pub struct Gateway {
    chain: Arc<Chain>,
    table: Arc<RouterTable>,
    control: Control,
    ledger: Arc<Ledger>,
    account: Address,
    reserve: U256,
    cache: Arc<Mutex<ResultCache>>,
    keys: Arc<Mutex<HashMap<String, ApiKey>>>,
    pubsub: Arc<PubSub>,
    /// Escrow balances and grant spending as of a height: read once per block, not
    /// once per call.
    views: Arc<Mutex<ViewCache>>,
}

#[derive(Default)]
struct ViewCache {
    height: u64,
    escrow: HashMap<Address, U256>,
    spent: HashMap<B256, U256>,
}

impl Gateway {
    pub fn new(
        chain: Arc<Chain>,
        table: Arc<RouterTable>,
        control: Control,
        ledger: Arc<Ledger>,
        pubsub: Arc<PubSub>,
        s: &RouterSettings,
    ) -> Self {
        Gateway {
            chain,
            table,
            control,
            ledger,
            account: s.account.address(),
            reserve: s.reserve,
            cache: Arc::default(),
            keys: Arc::default(),
            pubsub,
            views: Arc::default(),
        }
    }
}

/// The gateway's bounds: many clients (a gateway is public), a generous share per
/// address (clients behind one NAT), OpenAI's error shape for refusals.
pub fn limits() -> emc_http::Limits {
    emc_http::Limits {
        max_connections: 4096,
        max_per_ip: 256,
        refusal: emc_http::Refusal::OpenAi,
        ..Default::default()
    }
}

/// How often a pub/sub WebSocket is pinged, and how long a subscriber may stay silent
/// (no pong, no message) before it is dropped.
const PING_EVERY: Duration = Duration::from_secs(30);
const SILENT_MAX: Duration = Duration::from_secs(90);

pub async fn serve(
    g: Gateway,
    addr: std::net::SocketAddr,
    limits: emc_http::Limits,
    mut stopped: watch::Receiver<bool>,
) -> Result<std::net::SocketAddr, NodeError> {
    let app = axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/nodes", get(nodes))
        .route("/mesh", get(mesh))
        .route("/v1/models", get(models))
        .route("/v1/embeddings", post(openai))
        .route("/v1/chat/completions", post(openai))
        .route("/pubsub/{channel}", get(subscribe).post(publish))
        .route("/call/{app}", any(call_root))
        .route("/call/{app}/{*path}", any(call_path))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(g);
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| NodeError::Config(format!("gateway on {addr}: {e}")))?;
    let bound = l
        .local_addr()
        .map_err(|e| NodeError::Config(e.to_string()))?;
    emc_http::spawn(l, limits, move || app.clone(), async move {
        let _ = stopped.wait_for(|s| *s).await;
    });
    Ok(bound)
}

async fn nodes(State(g): State<Gateway>) -> impl IntoResponse {
    Json(g.table.snapshot())
}

async fn mesh(State(g): State<Gateway>) -> impl IntoResponse {
    Json(g.table.remote_snapshot())
}

/// OpenAI's model list: every app a connected node serves, with its cheapest
/// registered price.
async fn models(State(g): State<Gateway>) -> impl IntoResponse {
    let mut by_app: std::collections::BTreeMap<String, (String, Option<U256>, usize)> =
        Default::default();
    for (a, price) in g.table.apps() {
        let e = by_app
            .entry(a.name.clone())
            .or_insert((a.kind.clone(), None, 0));
        e.2 += 1;
        if let Some(p) = price {
            e.1 = Some(e.1.map_or(p, |q: U256| q.min(p)));
        }
    }
    let data: Vec<serde_json::Value> = by_app
        .into_iter()
        .map(|(id, (kind, price, nodes))| {
            serde_json::json!({
                "id": id, "object": "model", "created": 0, "owned_by": "emc",
                "kind": kind, "nodes": nodes, "price": price.map(|p| p.to_string()),
            })
        })
        .collect();
    Json(serde_json::json!({"object": "list", "data": data}))
}

fn bad(m: impl Into<String>) -> Response {
    error_response(&ComputeError::BadRequest(m.into()))
}

async fn openai(
    State(g): State<Gateway>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    let path = uri.path().to_string();
    let kind = emc_compute::models::kind_for(&path);
    let json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("the body is not JSON: {e}")),
    };
    let Some(model) = json.get("model").and_then(|m| m.as_str()) else {
        return bad("name a model (GET /v1/models lists them)");
    };
    match g.table.app_kind(model) {
        None => return error_response(&ComputeError::no_app(model)),
        Some(k) if k != kind => {
            return bad(format!(
                "{} is a {k} app, not one for {path}",
                emc_compute::clip(model)
            ))
        }
        Some(_) => {}
    }
    let app = model.to_string();
    call(g, app, path, Method::POST, headers, body).await
}

async fn call_root(
    State(g): State<Gateway>,
    Path(app): Path<String>,
    method: Method,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    call(g, app, "/".into(), method, headers, body).await
}

async fn call_path(
    State(g): State<Gateway>,
    Path((app, path)): Path<(String, String)>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    let path = emc_compute::server::app_path(&path, &uri);
    call(g, app, path, method, headers, body).await
}

/// What a caller asked of the routing, from its headers.
struct Ask {
    max_price: Option<U256>,
    max_cost: Option<U256>,
    weights: Weights,
    cache: bool,
}

fn ask(h: &HeaderMap) -> Result<Ask, ComputeError> {
    let text = |name: &str| -> Result<Option<&str>, ComputeError> {
        h.get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| ComputeError::BadRequest(format!("{name} is not text")))
            })
            .transpose()
    };
    let wei = |name: &str| -> Result<Option<U256>, ComputeError> {
        text(name)?
            .map(|s| {
                s.trim().parse::<U256>().map_err(|_| {
                    ComputeError::BadRequest(format!("{name} must be a whole number of wei"))
                })
            })
            .transpose()
    };
    Ok(Ask {
        max_price: wei("x-emc-max-price")?,
        max_cost: wei("x-emc-max-cost")?,
        weights: text("x-emc-weights")?
            .map(|s| s.parse::<Weights>())
            .transpose()
            .map_err(|e| ComputeError::BadRequest(format!("x-emc-weights: {e}")))?
            .unwrap_or_default(),
        cache: text("x-emc-cache")?.is_some_and(|v| v.eq_ignore_ascii_case("allow")),
    })
}

impl Gateway {
    fn key(&self, headers: &HeaderMap) -> Result<ApiKey, ComputeError> {
        self.key_or(headers, None)
    }

    /// The request's API key: from its headers, or `query_key` (WebSocket clients in
    /// browsers cannot set headers).
    fn key_or(&self, headers: &HeaderMap, query_key: Option<&str>) -> Result<ApiKey, ComputeError> {
        let raw = auth::raw_key(headers)
            .or(query_key)
            .ok_or_else(auth::missing)?;
        let cached = self.keys.lock().get(raw).cloned();
        let key = match cached {
            Some(k) => k,
            None => {
                let k = auth::parse(raw)?;
                let mut keys = self.keys.lock();
                if keys.len() >= KEY_CACHE {
                    keys.clear();
                }
                keys.insert(raw.to_string(), k.clone());
                k
            }
        };
        auth::check(&key, self.chain.chain_id(), self.account, auth::now())?;
        Ok(key)
    }

    /// Reserves the call's budget: `cap`, or less if the escrow or the key's limit
    /// allow less, as long as it pays `at_least`.
    fn reserve(
        &self,
        key: &ApiKey,
        cap: U256,
        at_least: U256,
    ) -> Result<Reservation, ComputeError> {
        let chain_view = self.escrow_and_spent(key)?;
        self.ledger
            .reserve(key, cap, at_least, chain_view, auth::now())
    }

    /// The client's escrow balance and the grant's spending at the head, read from the
    /// Tasks module once per block.
    fn escrow_and_spent(&self, key: &ApiKey) -> Result<(U256, U256), ComputeError> {
        let height = self.chain.head().height.0;
        {
            let mut v = self.views.lock();
            if v.height != height {
                *v = ViewCache {
                    height,
                    ..Default::default()
                };
            }
            if let (Some(e), Some(s)) = (v.escrow.get(&key.account), v.spent.get(&key.id)) {
                return Ok((*e, *s));
            }
        }
        let escrow = view(
            &self.chain,
            TASKS_ADDRESS,
            ITasks::escrowOfCall {
                account: key.account,
            },
        )
        .map_err(ComputeError::Unavailable)?
        .balance;
        let spent = view(
            &self.chain,
            TASKS_ADDRESS,
            ITasks::spentCall { grantId: key.id },
        )
        .map_err(ComputeError::Unavailable)?;
        let mut v = self.views.lock();
        if v.height == height && v.escrow.len() < KEY_CACHE {
            v.escrow.insert(key.account, escrow);
            v.spent.insert(key.id, spent);
        }
        Ok((escrow, spent))
    }
}

fn no_route(e: NoRoute) -> ComputeError {
    match e {
        NoRoute::NoApp(app) => ComputeError::no_app(&app),
        NoRoute::Unregistered(_) => ComputeError::Unavailable(e.to_string()),
        NoRoute::AboveCap { .. } => ComputeError::Payment(e.to_string()),
        NoRoute::Saturated(_) => ComputeError::Saturated(e.to_string()),
    }
}

/// One call through the gateway: authenticate, route, reserve, forward (retrying on
/// another node), check the node's signed result, charge.
async fn call(
    g: Gateway,
    app: String,
    path: String,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match try_call(g, app, path, method, headers, body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// A call's request, as every route it is tried on gets it.
struct Job {
    key: ApiKey,
    app: String,
    path: String,
    method: Method,
    headers: HeaderMap,
    content_type: Option<String>,
    body: Bytes,
    request_hash: B256,
}

async fn try_call(
    g: Gateway,
    app: String,
    path: String,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ComputeError> {
    let key = g.key(&headers)?;
    let ask = ask(&headers)?;
    let request_hash = emc_compute::result::request_hash(&app, &path, &body);
    if !key.grant.request.is_zero() && key.grant.request != request_hash {
        return Err(ComputeError::Unauthorized(format!(
            "the key was signed for request {}, this request is {request_hash}",
            key.grant.request
        )));
    }
    if ask.cache {
        if let Some(hit) = g.cache.lock().get(&request_hash) {
            let mut r = one_body(
                hit.status,
                &hit.content_type,
                hit.body,
                &hit.signed,
                U256::ZERO,
            );
            r.headers_mut()
                .insert("x-emc-cache", HeaderValue::from_static("hit"));
            return Ok(r);
        }
    }
    let cands = g.table.candidates(&app);
    let weights_view: Vec<policy::Candidate> = cands.iter().map(|c| c.candidate.clone()).collect();
    let order = policy::rank(&app, &weights_view, ask.max_price, &ask.weights).map_err(no_route)?;
    let routes: Vec<&super::Route> = order.iter().take(MAX_TRIES).map(|&i| &cands[i]).collect();
    // The budget must pay for at least one unit on the cheapest of the routes tried.
    let one_unit = routes
        .iter()
        .map(|r| tasks::total(1, r.candidate.price.unwrap_or_default()))
        .min()
        .unwrap_or_default();
    let mut reservation = Some(g.reserve(&key, ask.max_cost.unwrap_or(g.reserve), one_unit)?);
    let job = Job {
        content_type: headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        key,
        app,
        path,
        method,
        headers,
        body,
        request_hash,
    };
    let mut tries = Tries::default();
    for entry in routes {
        if let Some(r) = try_route(&g, &job, entry, &mut reservation, &mut tries).await {
            return Ok(r);
        }
    }
    Err(tries.into_error(&job.app))
}

/// The call tried on one route: its reply if the node served it (and the reservation
/// became its charge), or `None` with the reason noted in `tries`.
async fn try_route(
    g: &Gateway,
    job: &Job,
    entry: &super::Route,
    reservation: &mut Option<Reservation>,
    tries: &mut Tries,
) -> Option<Response> {
    let budget = reservation.as_ref()?.amount();
    let price = entry.candidate.price.unwrap_or_default();
    let max_units = tasks::units_within(budget, price);
    if max_units == 0 {
        let why = format!(
            "one unit costs {} wei there, over the call's budget of {budget}",
            tasks::total(1, price)
        );
        tries.note(entry, ComputeError::Payment(why));
        return None;
    }
    // Counted before the call goes out, so a burst of calls cannot all pick one node
    // past the room it announced.
    let Some(inflight) = g.table.try_start(entry) else {
        let why = "as many calls are running there as it takes".to_string();
        tries.note(entry, ComputeError::Saturated(why));
        return None;
    };
    let call = Call {
        id: B256::from(rand::random::<[u8; 32]>()),
        app: job.app.clone(),
        method: job.method.to_string(),
        path: job.path.clone(),
        content_type: job.content_type.clone(),
        body: job.body.clone(),
        max_units,
    };
    let call_id = call.id;
    let receipt = Receipting {
        node: entry.node,
        node_key: entry.key,
        key: job.key.clone(),
        app: job.app.clone(),
        peer: entry.peer,
        price,
        request_hash: job.request_hash,
        call_id,
        max_units,
        max_cost: budget,
        table: g.table.clone(),
    };
    let served = tokio::time::timeout(
        TRY_TIMEOUT,
        call_node(g.control.clone(), &g.table, entry, call),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ComputeError::Timeout(format!(
            "no reply in {TRY_TIMEOUT:?}"
        )))
    });
    let served = match served {
        Ok(s) => s,
        Err(e) => {
            tries.failed(&g.table, entry, e);
            return None;
        }
    };
    if served.streaming {
        let reservation = reservation.take()?;
        let check: emc_compute::server::Check = Box::new(move |s, hash| {
            drop(inflight);
            if !receipt.checks(s, hash) {
                return Err(MISMATCH.into());
            }
            receipt.charge(reservation, s);
            Ok(())
        });
        let mut r = emc_compute::server::to_response(served, &job.headers, check).await;
        meta(&mut r, &entry.node.to_string(), call_id, None);
        return Some(r);
    }
    let (status, ct) = (served.status, served.content_type.clone());
    let collected = tokio::time::timeout(TRY_TIMEOUT, emc_compute::agent::collect(served))
        .await
        .unwrap_or_else(|_| {
            (
                Vec::new(),
                Err(format!("no complete reply in {TRY_TIMEOUT:?}")),
            )
        });
    drop(inflight);
    let (out, signed) = match collected {
        (out, Ok(s)) => (Bytes::from(out), s),
        (_, Err(e)) => {
            tries.failed(&g.table, entry, ComputeError::Unavailable(e));
            return None;
        }
    };
    if !receipt.checks(&signed, keccak256(&out)) {
        // `checks` already counted it against the node.
        tries.note(entry, ComputeError::BadSignature(MISMATCH.into()));
        return None;
    }
    let total = receipt.charge(reservation.take()?, &signed);
    let r = one_body(status, &ct, out.clone(), &signed, total);
    if entry.deterministic && status == 200 {
        g.cache
            .lock()
            .put(job.request_hash, status, ct, out, signed);
    }
    Some(r)
}

/// The routes a call was tried on and why each did not serve it.
#[derive(Default)]
struct Tries {
    why: Vec<(String, ComputeError)>,
}

impl Tries {
    /// A route that did not serve for a reason already accounted for (passed over by
    /// the router itself, or a result already counted by its check).
    fn note(&mut self, route: &super::Route, e: ComputeError) {
        self.why.push((route.node.to_string(), e));
    }

    /// A route that was called and failed; counted against the node's reliability
    /// only when the failure speaks against the node (a busy node is not a bad one).
    fn failed(&mut self, table: &RouterTable, route: &super::Route, e: ComputeError) {
        if e.counts_against_node() {
            table.record(&route.peer, false);
        }
        self.why.push((route.node.to_string(), e));
    }

    /// What the caller is told when no route served: 429 when every node was busy
    /// (retry soon), 402 when none fits the budget, a caller's error (4xx) as the node
    /// said it, else 503.
    fn into_error(self, app: &str) -> ComputeError {
        let list = self
            .why
            .iter()
            .map(|(n, e)| format!("{n}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        let all = |f: fn(&ComputeError) -> bool| self.why.iter().all(|(_, e)| f(e));
        let n = self.why.len();
        if all(ComputeError::is_busy) {
            return ComputeError::Saturated(format!(
                "every node tried for {} is busy ({list}); retry shortly",
                emc_compute::clip(app)
            ));
        }
        if all(|e| matches!(e, ComputeError::Payment(_))) {
            return ComputeError::Payment(format!("no node fits the call's budget: {list}"));
        }
        if let Some((_, e)) = self
            .why
            .iter()
            .find(|(_, e)| (400..500).contains(&e.status()) && !e.is_busy())
        {
            return ComputeError::from_status(e.status(), e.to_string());
        }
        ComputeError::Unavailable(format!("{n} node(s) tried, none answered: {list}"))
    }
}

fn meta(r: &mut Response, node: &str, call: B256, charge: Option<U256>) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(node) {
        h.insert("x-emc-node", v);
    }
    if let Ok(v) = HeaderValue::from_str(&call.to_string()) {
        h.insert("x-emc-call", v);
    }
    if let Some(c) = charge.and_then(|c| HeaderValue::from_str(&c.to_string()).ok()) {
        h.insert("x-emc-charge", c);
    }
}

/// A one-body reply: the node's status, content type and body, its signed result, and
/// the call's metadata.
fn one_body(status: u16, ct: &str, body: Bytes, signed: &SignedResult, charge: U256) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(ct) {
        r.headers_mut().insert(axum::http::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&signed.to_header()) {
        r.headers_mut().insert(RESULT_HEADER, v);
    }
    meta(
        &mut r,
        &signed.claim.node.to_string(),
        signed.claim.call,
        Some(charge),
    );
    r
}

#[derive(serde::Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

/// `GET /pubsub/{channel}`: a WebSocket that publishes what the client sends and
/// delivers what anyone publishes.
async fn subscribe(
    State(g): State<Gateway>,
    Path(channel): Path<String>,
    axum::extract::Query(q): axum::extract::Query<KeyQuery>,
    headers: HeaderMap,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    let key = match g.key_or(&headers, q.key.as_deref()) {
        Ok(k) => k,
        Err(e) => return error_response(&e),
    };
    let rx = match g.pubsub.subscribe(&channel) {
        Ok(rx) => rx,
        Err(e) => return error_response(&e),
    };
    ws.max_message_size(pubsub::MAX_MESSAGE)
        .on_upgrade(move |socket| session(g, channel, key.account, rx, socket))
}

async fn session(
    g: Gateway,
    channel: String,
    account: Address,
    mut rx: tokio::sync::broadcast::Receiver<Arc<emc_compute::wire::Publication>>,
    mut socket: axum::extract::ws::WebSocket,
) {
    use axum::extract::ws::Message;
    use tokio::sync::broadcast::error::RecvError;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ping.tick() => {
                // A subscriber that answers no ping is gone (or never reads): drop it.
                if heard.elapsed() > SILENT_MAX || socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
            got = rx.recv() => {
                let text = match got {
                    Ok(p) => pubsub::to_json(&p),
                    Err(RecvError::Lagged(n)) => serde_json::json!({"channel": channel, "missed": n}).to_string(),
                    Err(RecvError::Closed) => return,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => {
                heard = tokio::time::Instant::now();
                let data = match msg {
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                if let Err(e) = g.pubsub.publish(&channel, account, data) {
                    let text = serde_json::json!({"error": e.to_string()}).to_string();
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// `POST /pubsub/{channel}`: publishes the body once.
async fn publish(
    State(g): State<Gateway>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    let key = match g.key(&headers) {
        Ok(k) => k,
        Err(e) => return error_response(&e),
    };
    match g.pubsub.publish(&channel, key.account, body.to_vec()) {
        Ok(n) => Json(serde_json::json!({"delivered_here": n})).into_response(),
        Err(e) => error_response(&e),
    }
}
