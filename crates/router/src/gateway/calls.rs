//! Calls to any app (`ANY /call/{app}/{path...}`), and the call loop every surface
//! ends in: authenticate, route, reserve, forward (retrying on the next route as
//! [`crate::attempt`] decides), check the node's signed result, charge.

use super::state::Gateway;
use crate::attempt::{self, Attempt, Decision, Event, MAX_TRIES};
use crate::forward::call_node;
use crate::ledger::Reservation;
use crate::policy::{self, Weights};
use crate::receipts::{Receipting, Tariff};
use crate::sockets::SocketTerms;
use crate::table::Route;
use alloy_primitives::{keccak256, B256, U256};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use emc_client::keys::ApiKey;
use emc_protocol::call::collect;
use emc_protocol::http::{
    app_path, error_response, to_response, Check, RequestBody, RESULT_HEADER,
};
use emc_protocol::{Call, CallError, NodeId, SignedResult};
use std::time::Duration;

/// How long one node may take to complete a one-body reply, or start a stream.
const TRY_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn call_root(
    State(g): State<Gateway>,
    Path(app): Path<String>,
    method: Method,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    call(g, app, "/".into(), method, headers, body).await
}

pub async fn call_path(
    State(g): State<Gateway>,
    Path((app, path)): Path<(String, String)>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    let path = app_path(&path, &uri);
    call(g, app, path, method, headers, body).await
}

/// What a caller asked of the routing, from its headers.
struct Ask {
    max_price: Option<U256>,
    max_cost: Option<U256>,
    weights: Weights,
    cache: bool,
}

fn ask(h: &HeaderMap) -> Result<Ask, CallError> {
    let text = |name: &str| -> Result<Option<&str>, CallError> {
        h.get(name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| CallError::BadRequest(format!("{name} is not text")))
            })
            .transpose()
    };
    let wei = |name: &str| -> Result<Option<U256>, CallError> {
        text(name)?
            .map(|s| {
                s.trim().parse::<U256>().map_err(|_| {
                    CallError::BadRequest(format!("{name} must be a whole number of wei"))
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
            .map_err(|e| CallError::BadRequest(format!("x-emc-weights: {e}")))?
            .unwrap_or_default(),
        cache: text("x-emc-cache")?.is_some_and(|v| v.eq_ignore_ascii_case("allow")),
    })
}

/// One call through the gateway: authenticate, route, reserve, forward (retrying on
/// another node), check the node's signed result, charge.
pub async fn call(
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
    /// The socket that pays, for a socket key.
    socket: Option<SocketTerms>,
    /// The envelopes of a sealed call, per node.
    sealed: Option<super::sealed::Sealed>,
}

impl Job {
    /// What `node` is sent: the call id, content type, body and request hash (a
    /// sealed call's own envelope for that node under its offered id).
    fn request_for(&self, node: NodeId) -> (B256, Option<String>, Bytes, B256) {
        match self
            .sealed
            .as_ref()
            .and_then(|s| s.envelope(node).map(|e| (s.call, e)))
        {
            Some((call, e)) => (
                call,
                Some(emc_protocol::sealed::CONTENT_TYPE.into()),
                e.clone(),
                emc_protocol::request_hash(&self.app, &self.path, e),
            ),
            None => (
                B256::from(rand::random::<[u8; 32]>()),
                self.content_type.clone(),
                self.body.clone(),
                self.request_hash,
            ),
        }
    }
}

async fn try_call(
    g: Gateway,
    app: String,
    path: String,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, CallError> {
    let key = g.signin.resolve(g.key(&headers)?, &app).await?;
    let ask = ask(&headers)?;
    let sealed = super::sealed::request(&g, &headers, &app, &body)?;
    let first = sealed.as_ref().map_or(&body, |s| &s.envelopes[0].1);
    let request_hash = emc_protocol::request_hash(&app, &path, first);
    if sealed.is_some() && !key.grant.request.is_zero() {
        return Err(CallError::Unauthorized(
            "a key signed for one request cannot make a sealed call".into(),
        ));
    }
    if !key.grant.request.is_zero() && key.grant.request != request_hash {
        return Err(CallError::Unauthorized(format!(
            "the key was signed for request {}, this request is {request_hash}",
            key.grant.request
        )));
    }
    if ask.cache && sealed.is_none() {
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
    let socket = match key.socket {
        Some(_) => Some(g.socket(&key, &app).await?),
        None => None,
    };
    let cands = candidates(&g, &app, socket.as_ref()).inspect_err(|e| {
        // A lease's node this router served it through, and can no longer reach.
        if let Some(s) = socket.as_ref() {
            note_failure(&g, s, e, request_hash);
        }
    })?;
    let weights_view: Vec<policy::Candidate> = cands.iter().map(|c| c.candidate.clone()).collect();
    let order = policy::rank(&app, &weights_view, ask.max_price, &ask.weights)
        .map_err(attempt::no_route)?;
    let routes: Vec<&Route> = match &sealed {
        // A sealed call goes only to the nodes sealed to, in the order offered.
        Some(s) => s
            .envelopes
            .iter()
            .filter_map(|(n, _)| cands.iter().find(|r| r.node == *n))
            .collect(),
        None => order.iter().take(MAX_TRIES).map(|&i| &cands[i]).collect(),
    };
    // The budget must pay for at least one unit on the cheapest of the routes tried.
    let one_unit = routes
        .iter()
        .map(|r| tariff(socket.as_ref(), r).unit_cost())
        .min()
        .unwrap_or_default();
    let cap = ask.max_cost.unwrap_or(g.reserve);
    let mut reservation = Some(g.reserve(&key, cap, one_unit).await?);
    let job = Job {
        content_type: emc_protocol::http::content_type(&headers),
        key,
        app,
        path,
        method,
        headers,
        body,
        request_hash,
        socket,
        sealed,
    };
    let mut attempt = Attempt::default();
    for route in routes {
        let (event, reply) = try_route(&g, &job, route, &mut reservation).await;
        if let (Some(s), Event::Failed(e)) = (job.socket.as_ref(), &event) {
            note_failure(&g, s, e, job.request_hash);
        }
        if let (Some(s), Event::Checked) = (job.socket.as_ref(), &event) {
            if !s.lease.is_zero() {
                g.failures.served(s.lease, s.node);
            }
        }
        match attempt.on(route.node, event) {
            Decision::Charge => {
                return Ok(reply.expect("a checked result comes with its reply"));
            }
            Decision::Next { blame } => {
                if blame {
                    g.table.record(&route.peer, false);
                }
            }
        }
    }
    // Dropping the reservation here releases it: nothing was charged.
    Err(attempt.give_up(&job.app))
}

/// Signs a failure report when a market lease's node could not serve (unreachable or
/// out of time: [`crate::failures::kind_of`]).
fn note_failure(g: &Gateway, s: &SocketTerms, e: &CallError, request: B256) {
    if s.lease.is_zero() {
        return;
    }
    if let Some(kind) = crate::failures::kind_of(e) {
        g.failures
            .note(s.lease, s.node, kind, request, emc_client::keys::now());
    }
}

/// The routes for a call of `app`: every node serving it, or, for a socket key, the
/// socket's node alone, priced at the socket's price.
fn candidates(
    g: &Gateway,
    app: &str,
    socket: Option<&SocketTerms>,
) -> Result<Vec<Route>, CallError> {
    let mut cands = g.table.candidates(app);
    if let Some(s) = socket {
        cands.retain(|r| r.node == s.node);
        if cands.is_empty() {
            return Err(CallError::Unavailable(format!(
                "socket {}'s node {} is not connected to this router",
                s.id, s.node
            )));
        }
        for r in &mut cands {
            r.candidate.price = Some(s.price);
        }
    }
    Ok(cands)
}

/// How a call on `route` is priced: the socket's terms, or the node's registered price.
fn tariff(socket: Option<&SocketTerms>, route: &Route) -> Tariff {
    match socket {
        Some(s) => Tariff::Socket {
            unit: s.unit,
            price: s.price,
        },
        None => Tariff::Escrow {
            price: route.candidate.price.unwrap_or_default(),
        },
    }
}

/// The call tried on one route: what happened ([`Event`]) and, when the node's result
/// checked, the reply (the reservation became its charge).
async fn try_route(
    g: &Gateway,
    job: &Job,
    route: &Route,
    reservation: &mut Option<Reservation>,
) -> (Event, Option<Response>) {
    let Some(budget) = reservation.as_ref().map(|r| r.amount()) else {
        return (Event::NoRoom, None);
    };
    let tariff = tariff(job.socket.as_ref(), route);
    let Some(max_units) = tariff.max_units(budget) else {
        let unit_cost = tariff.unit_cost();
        return (Event::OverBudget { unit_cost, budget }, None);
    };
    // Counted before the call goes out, so a burst of calls cannot all pick one node
    // past the room it announced.
    let Some(inflight) = g.table.try_start(route) else {
        return (Event::NoRoom, None);
    };
    let (id, content_type, body, request_hash) = job.request_for(route.node);
    let call = Call {
        id,
        app: job.app.clone(),
        method: job.method.to_string(),
        path: job.path.clone(),
        content_type,
        body,
        max_units,
    };
    let call_id = call.id;
    let receipt = Receipting {
        node: route.node,
        node_key: route.key,
        key: job.key.clone(),
        app: job.app.clone(),
        tariff,
        request_hash,
        call_id,
        max_units,
        max_cost: budget,
    };
    let served = tokio::time::timeout(
        TRY_TIMEOUT,
        call_node(g.control.clone(), &g.table, route, call),
    )
    .await
    .unwrap_or_else(|_| Err(CallError::Timeout(format!("no reply in {TRY_TIMEOUT:?}"))));
    let served = match served {
        Ok(s) => s,
        Err(e) => return (Event::Failed(e), None),
    };
    if served.streaming {
        // A stream is answered as it comes; its result is checked (and charged) at its
        // end, and a stream whose check fails ends in an error.
        let Some(reservation) = reservation.take() else {
            return (Event::NoRoom, None);
        };
        let (table, peer) = (g.table.clone(), route.peer);
        let check: Check = Box::new(move |s, hash| {
            drop(inflight);
            let ok = receipt.checks(s, hash);
            table.record(&peer, ok);
            if !ok {
                return Err(attempt::MISMATCH.into());
            }
            receipt.charge(reservation, s);
            Ok(())
        });
        let mut r = to_response(served, &job.headers, check).await;
        meta(&mut r, &route.node.to_string(), call_id, None);
        return (Event::Checked, Some(r));
    }
    let (status, ct) = (served.status, served.content_type.clone());
    let collected = tokio::time::timeout(TRY_TIMEOUT, collect(served))
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
        (_, Err(e)) => return (Event::Failed(CallError::Unavailable(e)), None),
    };
    if !receipt.checks(&signed, keccak256(&out)) {
        return (Event::Mismatch, None);
    }
    g.table.record(&route.peer, true);
    let Some(res) = reservation.take() else {
        return (Event::NoRoom, None);
    };
    let total = receipt.charge(res, &signed);
    let r = one_body(status, &ct, out.clone(), &signed, total);
    if route.deterministic && status == 200 && job.sealed.is_none() {
        g.cache
            .lock()
            .put(job.request_hash, status, ct, out, signed);
    }
    (Event::Checked, Some(r))
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
