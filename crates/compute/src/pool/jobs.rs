//! The head member's client of Ray's Jobs REST API (`/api/jobs/`) and state API
//! (`/api/v0/tasks`), on the head's loopback dashboard, with the pool's token.

use super::metering::{self, TaskRecord};
use emc_protocol::CallError;
use serde_json::{json, Value};
use std::time::Duration;

/// The most bytes one reply of Ray's may be (logs included: a caller pages them).
pub const MAX_REPLY: usize = 16 << 20;

/// A job's state as Ray reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobState {
    /// PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED.
    pub status: String,
    /// Ray's job id (hex), which its tasks carry; none until the driver starts.
    pub job_id: Option<String>,
    pub message: String,
}

impl JobState {
    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "STOPPED" | "SUCCEEDED" | "FAILED")
    }
}

/// What a job runs: the shell command, Ray's runtime environment, and the CPUs its
/// driver holds.
#[derive(Clone, Debug)]
pub struct JobSpec {
    pub entrypoint: String,
    pub runtime_env: Value,
    pub entrypoint_cpus: f64,
}

pub struct JobsApi {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl JobsApi {
    /// The API at `dashboard` (`http://127.0.0.1:<port>`), authenticated with `token`.
    pub fn new(dashboard: &str, token: &str) -> Result<Self, CallError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CallError::Config(format!("HTTP client: {e}")))?;
        Ok(JobsApi {
            base: dashboard.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, CallError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| CallError::Unavailable(format!("Ray's dashboard: {e}")))?;
        let status = resp.status();
        let body = read_bounded(resp).await?;
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(CallError::Unauthorized(format!(
                "Ray refused the pool's token ({status})"
            )));
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(CallError::Runtime(format!(
                "Ray answered {status}: {}",
                emc_protocol::error::clip(&text)
            )));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body)
            .map_err(|e| CallError::Runtime(format!("Ray's reply is not JSON: {e}")))
    }

    /// Submits a job under `id` (the router's job id, so a resubmission is refused).
    pub async fn submit(&self, id: &str, spec: &JobSpec) -> Result<String, CallError> {
        let body = json!({
            "entrypoint": spec.entrypoint,
            "submission_id": id,
            "runtime_env": spec.runtime_env,
            "entrypoint_num_cpus": spec.entrypoint_cpus,
        });
        let v = self
            .send(
                self.http
                    .post(format!("{}/api/jobs/", self.base))
                    .json_body(&body),
            )
            .await?;
        v["submission_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| CallError::Runtime("Ray accepted the job without an id".into()))
    }

    pub async fn status(&self, id: &str) -> Result<JobState, CallError> {
        let v = self
            .send(self.http.get(format!("{}/api/jobs/{id}", self.base)))
            .await?;
        Ok(JobState {
            status: v["status"].as_str().unwrap_or("UNKNOWN").to_string(),
            job_id: v["job_id"].as_str().map(str::to_string),
            message: v["message"].as_str().unwrap_or_default().to_string(),
        })
    }

    pub async fn logs(&self, id: &str) -> Result<String, CallError> {
        let v = self
            .send(self.http.get(format!("{}/api/jobs/{id}/logs", self.base)))
            .await?;
        Ok(v["logs"].as_str().unwrap_or_default().to_string())
    }

    /// Asks Ray to stop the job: whether it was running.
    pub async fn stop(&self, id: &str) -> Result<bool, CallError> {
        let v = self
            .send(self.http.post(format!("{}/api/jobs/{id}/stop", self.base)))
            .await?;
        Ok(v["stopped"].as_bool().unwrap_or(false))
    }

    /// Every task record of Ray job `job_id` (hex).
    pub async fn tasks(&self, job_id: &str) -> Result<Vec<TaskRecord>, CallError> {
        let url = format!(
            "{}/api/v0/tasks?detail=1&limit={}&filter_keys=job_id&filter_predicates=%3D&filter_values={job_id}",
            self.base,
            metering::MAX_TASKS
        );
        metering::parse_tasks(&self.send(self.http.get(url)).await?)
    }

    /// Uploads a working-directory package (a zip) to Ray's GCS as
    /// `gcs://<name>`, which a runtime environment's `working_dir` then names.
    pub async fn upload_package(&self, name: &str, zip: Vec<u8>) -> Result<(), CallError> {
        self.send(
            self.http
                .put(format!("{}/api/packages/gcs/{name}", self.base))
                .body(zip),
        )
        .await
        .map(|_| ())
    }

    /// Ray's alive nodes: `(node id, Ray's record of it)` (its `resources_total` names
    /// the EMC node, `emc_node_<id>`).
    pub async fn nodes(&self) -> Result<Vec<(String, Value)>, CallError> {
        Ok(self
            .all_nodes()
            .await?
            .into_iter()
            .filter(|(_, n)| n["state"] == "ALIVE")
            .collect())
    }

    /// Every node Ray knows, alive or dead.
    pub async fn all_nodes(&self) -> Result<Vec<(String, Value)>, CallError> {
        let v = self
            .send(
                self.http
                    .get(format!("{}/api/v0/nodes?detail=1", self.base)),
            )
            .await?;
        let list = v["data"]["result"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(list
            .into_iter()
            .filter_map(|n| Some((n["node_id"].as_str()?.to_string(), n)))
            .collect())
    }
}

trait JsonBody {
    fn json_body(self, v: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(v.to_string())
    }
}

async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, CallError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| CallError::Unavailable(format!("reading Ray's reply: {e}")))?
    {
        if out.len() + chunk.len() > MAX_REPLY {
            return Err(CallError::TooLarge(format!(
                "Ray's reply is over {MAX_REPLY} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
