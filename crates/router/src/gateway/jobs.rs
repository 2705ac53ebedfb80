//! `/v1/jobs`: jobs on computing pools (see [`crate::jobs`]).
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /v1/jobs` | submit: `{"entrypoint", "files": {path: text}, "runtime_env": {...}, "resources": {"cpus", "gpus"}, "pool", "max_cost", "timeout_s"}`; the job's view |
//! | `GET /v1/jobs` | the caller's jobs, newest first |
//! | `GET /v1/jobs/{id}` | status, metering and settlement |
//! | `GET /v1/jobs/{id}/logs` | the logs as `text/plain`, streamed until the job ends (`?follow=false`: what there is now) |
//! | `DELETE /v1/jobs/{id}` | stops the job; what it metered until then is still paid |
//!
//! `max_cost` (wei; or `x-emc-max-cost`) is the budget reserved from escrow and
//! opened on chain; without it [`DEFAULT_BUDGET`], or what the escrow holds if less.
//! A socket key pays too when its socket names a pool as its provider (app `jobs`):
//! the job runs on that pool, from the socket's credits.

use super::Gateway;
use crate::jobs::pools::Want;
use crate::jobs::run::Submission;
use alloy_primitives::{B256, U256};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use emc_modules::pools::MAX_JOB_SECONDS;
use emc_protocol::http::error_response;
use emc_protocol::wire::pool_jobs::JobSpec;
use emc_protocol::CallError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The budget a job reserves when the client names none: 1 EMC.
pub const DEFAULT_BUDGET: u128 = 1_000_000_000_000_000_000;
/// How long a job may run when the client names no `timeout_s`.
pub const DEFAULT_TIMEOUT_S: u64 = 3_600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    entrypoint: String,
    #[serde(default)]
    files: BTreeMap<String, String>,
    #[serde(default)]
    runtime_env: Option<serde_json::Value>,
    #[serde(default)]
    resources: Resources,
    #[serde(default)]
    pool: Option<u64>,
    #[serde(default)]
    max_cost: Option<String>,
    #[serde(default)]
    timeout_s: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resources {
    #[serde(default = "one")]
    cpus: u32,
    #[serde(default)]
    gpus: u32,
}

fn one() -> u32 {
    1
}

impl Default for Resources {
    fn default() -> Self {
        Resources { cpus: 1, gpus: 0 }
    }
}

fn bad(why: String) -> CallError {
    CallError::BadRequest(why)
}

impl JobRequest {
    fn budget(&self, headers: &HeaderMap) -> Result<U256, CallError> {
        let header = headers
            .get("x-emc-max-cost")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        match self.max_cost.clone().or(header) {
            Some(s) => s
                .trim()
                .parse::<U256>()
                .ok()
                .filter(|v| !v.is_zero())
                .ok_or_else(|| bad("max_cost must be a whole number of wei above zero".into())),
            None => Ok(U256::from(DEFAULT_BUDGET)),
        }
    }

    fn submission(self) -> Result<Submission, CallError> {
        let timeout_s = self.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
        if timeout_s == 0 || timeout_s > MAX_JOB_SECONDS {
            return Err(bad(format!(
                "timeout_s is from 1 to {MAX_JOB_SECONDS} seconds"
            )));
        }
        let runtime_env = match self.runtime_env {
            None => String::new(),
            Some(v @ serde_json::Value::Object(_)) => v.to_string(),
            Some(_) => return Err(bad("runtime_env is a JSON object".into())),
        };
        Ok(Submission {
            spec: JobSpec {
                entrypoint: self.entrypoint,
                runtime_env,
                files: self
                    .files
                    .into_iter()
                    .map(|(p, c)| (p, c.into_bytes()))
                    .collect(),
                cpus: self.resources.cpus,
                gpus: self.resources.gpus,
            },
            want: Want {
                cpus: self.resources.cpus,
                gpus: self.resources.gpus,
                pool: self.pool,
            },
            timeout_s,
        })
    }
}

fn job_id(raw: &str) -> Result<B256, CallError> {
    raw.parse::<B256>().map_err(|_| {
        bad(format!(
            "{} is not a job id",
            emc_protocol::error::clip(raw)
        ))
    })
}

/// The key that pays for a job: an escrow key, or the key of a socket that names a
/// pool as its provider (the job then runs on that pool); a socket of a node is for
/// calls.
async fn paying_key(
    g: &Gateway,
    h: &HeaderMap,
) -> Result<(emc_client::keys::ApiKey, Option<u64>), CallError> {
    let key = g.key(h)?;
    if key.socket.is_none() {
        return Ok((key, None));
    }
    let terms = g.socket(&key, emc_modules::pools::JOBS_APP).await?;
    match emc_modules::pools::pool_of_provider(terms.node.0) {
        Some(pool) => Ok((key, Some(pool))),
        None => Err(CallError::Forbidden(format!(
            "socket {} is for calls on node {}; jobs need an escrow key or a socket of a pool",
            terms.id, terms.node
        ))),
    }
}

/// `POST /v1/jobs`.
pub async fn create(
    State(g): State<Gateway>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let run = async {
        let (key, socket_pool) = paying_key(&g, &headers).await?;
        let req: JobRequest = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("the job is not a valid job request: {e}")))?;
        let budget = req.budget(&headers)?;
        let mut sub = req.submission()?;
        // Refused here, before the job is opened on chain, as the head would.
        sub.spec.check()?;
        if let Some(pool) = socket_pool {
            if sub.want.pool.is_some_and(|p| p != pool) {
                return Err(CallError::Forbidden(format!(
                    "the key's socket pays for jobs on pool {pool} only"
                )));
            }
            sub.want.pool = Some(pool);
        }
        let reservation = g.reserve(&key, budget, U256::from(1)).await?;
        g.jobs.submit(key, reservation, sub).await
    };
    match run.await {
        Ok(v) => (axum::http::StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `GET /v1/jobs`.
pub async fn list(State(g): State<Gateway>, headers: HeaderMap) -> Response {
    match g.key(&headers) {
        Ok(k) => Json(serde_json::json!({"object": "list", "data": g.jobs.book.of(k.account)}))
            .into_response(),
        Err(e) => error_response(&e),
    }
}

/// `GET /v1/jobs/{id}`.
pub async fn get(State(g): State<Gateway>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let run = || {
        let key = g.key(&headers)?;
        let id = job_id(&id)?;
        g.jobs
            .book
            .with(id, Some(key.account), |j| j.view())
            .ok_or_else(|| CallError::NotFound(format!("no job {id}")))
    };
    match run() {
        Ok(v) => Json(v).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `DELETE /v1/jobs/{id}`.
pub async fn stop(
    State(g): State<Gateway>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let run = async {
        let key = g.key(&headers)?;
        let id = job_id(&id)?;
        let was_running = g.jobs.stop(id, key.account).await?;
        let mut v = g
            .jobs
            .book
            .with(id, Some(key.account), |j| j.view())
            .ok_or_else(|| CallError::NotFound(format!("no job {id}")))?;
        v["stopping"] = was_running.into();
        Ok::<_, CallError>(v)
    };
    match run.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => error_response(&e),
    }
}

#[derive(Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    follow: Option<bool>,
}

/// `GET /v1/jobs/{id}/logs`: pages of the head's logs, streamed until the job ends.
pub async fn logs(
    State(g): State<Gateway>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    let (key, id) = match g.key(&headers).and_then(|k| Ok((k, job_id(&id)?))) {
        Ok(x) => x,
        Err(e) => return error_response(&e),
    };
    let account = key.account;
    // The first page answers errors (404, an unreachable head) as a status.
    let (first, next, done) = match g.jobs.logs(id, account, 0).await {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let follow = q.follow.unwrap_or(true);
    let jobs = g.jobs.clone();
    let rest = futures::stream::unfold((next, done || !follow), move |(mut next, mut done)| {
        let jobs = jobs.clone();
        async move {
            while !done {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match jobs.logs(id, account, next).await {
                    Ok((text, n, d)) => {
                        // A job that ended is read once more, for its last lines.
                        (next, done) = (n, d);
                        if !text.is_empty() {
                            return Some((Ok::<_, std::io::Error>(text), (next, done)));
                        }
                    }
                    Err(e) => {
                        let text = format!("\n[emc: the logs stopped: {e}]\n");
                        return Some((Ok(text), (next, true)));
                    }
                }
            }
            None
        }
    });
    let stream = futures::StreamExt::chain(futures::stream::once(async move { Ok(first) }), rest);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        Body::from_stream(stream),
    )
        .into_response()
}

/// `GET /v1/jobs/{id}/files`.
pub async fn files(
    State(g): State<Gateway>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let run = async {
        let key = g.key(&headers)?;
        let files = g.jobs.outputs(job_id(&id)?, key.account).await?;
        let data: Vec<serde_json::Value> = files
            .into_iter()
            .map(|(path, bytes)| serde_json::json!({"path": path, "bytes": bytes}))
            .collect();
        Ok::<_, CallError>(serde_json::json!({"object": "list", "data": data}))
    };
    match run.await {
        Ok(v) => Json(v).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `GET /v1/jobs/{id}/files/{path}`: the file's pages from the head, streamed.
pub async fn file(
    State(g): State<Gateway>,
    headers: HeaderMap,
    Path((id, path)): Path<(String, String)>,
) -> Response {
    let (account, id) = match g.key(&headers).and_then(|k| Ok((k.account, job_id(&id)?))) {
        Ok(x) => x,
        Err(e) => return error_response(&e),
    };
    // The first page answers errors (no such file, a path outside) as a status.
    let (first, next, size) = match g.jobs.output(id, account, path.clone(), 0).await {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let jobs = g.jobs.clone();
    let rest = futures::stream::unfold(next, move |from| {
        let (jobs, path) = (jobs.clone(), path.clone());
        async move {
            if from >= size {
                return None;
            }
            match jobs.output(id, account, path, from).await {
                Ok((bytes, next, _)) if next > from => Some((Ok(bytes::Bytes::from(bytes)), next)),
                Ok(_) => None,
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), size)),
            }
        }
    });
    let first =
        futures::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(first)) });
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_string(),
            ),
            (axum::http::header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(futures::StreamExt::chain(first, rest)),
    )
        .into_response()
}
