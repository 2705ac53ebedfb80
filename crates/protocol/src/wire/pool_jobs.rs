//! `/emc/pool-jobs/1`: a pool's jobs, spoken to its head member. One request and one
//! answer per stream.
//!
//! * A router (the one that opened the job on chain) sends `Submit` with the job's
//!   spec and the salt its job id commits to, then `Status`, `Logs`, `Stop` and, once
//!   the job has ended, `Settlement`: Ray's accounting of every member signed by the
//!   head's node key, and each member's latest signed report.
//! * A member sends `Round` every few seconds with its signed reports of the jobs it
//!   worked on, and gets back `Work`: Ray's task records on its own Ray node for
//!   each job the head knows, from which it computes its next reports.
//!
//! The head answers `Refused` with a reason (and an HTTP status, so the router can
//! pass it on) to anything it will not do. Frames are bounded by [`MAX_JOBS_FRAME`].

use super::{expect, unexpected, write_frame};
use crate::CallError;
use borsh::{BorshDeserialize, BorshSerialize};
use futures::{AsyncRead, AsyncWrite};

/// Largest frame of this exchange: a job's inline files, a page of logs, a round of
/// task records.
pub const MAX_JOBS_FRAME: usize = 8 << 20;
/// Most bytes of a job's inline files (its working directory).
pub const MAX_JOB_FILES: usize = 4 << 20;
/// Most bytes of logs, or of an output file, one answer carries.
pub const MAX_LOG_PAGE: usize = 1 << 20;
/// Most files in a job's working directory, and most output files listed.
pub const MAX_FILES: usize = 1000;

/// Refuses a path that is not relative and inside its directory (no `..`, no root,
/// not empty).
pub fn relative_path(path: &str) -> Result<(), CallError> {
    let plain = std::path::Path::new(path)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if path.is_empty() || !plain {
        return Err(CallError::BadRequest(format!(
            "{} is not a relative path inside the job's directory",
            crate::clip(path)
        )));
    }
    Ok(())
}

/// What a job runs, as the router passes it on.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq)]
pub struct JobSpec {
    /// The shell command Ray's job driver runs, in the working directory.
    pub entrypoint: String,
    /// Ray's runtime environment as JSON (`pip`, `env_vars`, ...; no `working_dir`:
    /// `files` is the working directory).
    pub runtime_env: String,
    /// The working directory: relative paths and their contents.
    pub files: Vec<(String, Vec<u8>)>,
    /// CPUs and GPUs the job asks of the pool (Ray schedules within them).
    pub cpus: u32,
    pub gpus: u32,
}

impl JobSpec {
    /// What the job's id commits to: the Keccak-256 of the spec's borsh encoding.
    pub fn hash(&self) -> [u8; 32] {
        alloy_primitives::keccak256(borsh::to_vec(self).unwrap_or_default()).0
    }

    /// The job's Ray runtime environment, checked: a JSON object without
    /// `working_dir` (the job's files are its working directory), the files within
    /// bounds, each path relative and inside the directory. The router checks before
    /// it opens a job on chain, the head again before it runs one.
    pub fn check(&self) -> Result<serde_json::Map<String, serde_json::Value>, CallError> {
        let bad = |s: String| Err(CallError::BadRequest(s));
        if self.entrypoint.trim().is_empty() {
            return bad("a job needs an entrypoint".into());
        }
        if self.files.len() > MAX_FILES || self.files_size() > MAX_JOB_FILES {
            return Err(CallError::TooLarge(format!(
                "a job's files are at most {MAX_FILES} and {MAX_JOB_FILES} bytes"
            )));
        }
        for (path, _) in &self.files {
            relative_path(path)?;
        }
        let env: serde_json::Value = if self.runtime_env.trim().is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_str(&self.runtime_env)
                .map_err(|e| CallError::BadRequest(format!("runtime_env is not JSON: {e}")))?
        };
        let serde_json::Value::Object(env) = env else {
            return bad("runtime_env is a JSON object".into());
        };
        if env.contains_key("working_dir") || env.contains_key("py_modules") {
            return bad(
                "runtime_env names no working_dir or py_modules: send the job's files instead"
                    .into(),
            );
        }
        Ok(env)
    }

    /// The inline files' total size.
    pub fn files_size(&self) -> usize {
        self.files.iter().map(|(p, c)| p.len() + c.len()).sum()
    }
}

/// A job's id: `keccak256("emc pool job v1" ‖ router ‖ spec hash ‖ salt)`. The head
/// runs a job only when the id the router opened on chain is this one, so nobody who
/// saw `JobOpened` can run other work under it.
pub fn job_id(router: [u8; 20], spec: &JobSpec, salt: [u8; 32]) -> [u8; 32] {
    let mut m = b"emc pool job v1".to_vec();
    m.extend_from_slice(&router);
    m.extend_from_slice(&spec.hash());
    m.extend_from_slice(&salt);
    alloy_primitives::keccak256(m).0
}

/// One member's usage of one job (CPU- and GPU-milliseconds), signed by its node key
/// over the Pools module's `usage_message`.
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq)]
pub struct SignedUsage {
    pub job: [u8; 32],
    pub node: [u8; 32],
    pub cpu_ms: u64,
    pub gpu_ms: u64,
    pub signature: Vec<u8>,
}

/// One Ray task record, as the state API gives it (times in unix milliseconds).
#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq)]
pub struct Task {
    pub cpus: f64,
    pub gpus: f64,
    pub start_ms: Option<f64>,
    pub end_ms: Option<f64>,
}

#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq)]
pub enum JobsMsg {
    Submit {
        pool: u64,
        job: [u8; 32],
        salt: [u8; 32],
        spec: JobSpec,
    },
    Status {
        job: [u8; 32],
    },
    /// Logs from byte `from` on.
    Logs {
        job: [u8; 32],
        from: u64,
    },
    Stop {
        job: [u8; 32],
    },
    Settlement {
        job: [u8; 32],
    },
    /// The files the job wrote to its output directory.
    Outputs {
        job: [u8; 32],
    },
    /// Output file `path` from byte `from` on.
    Output {
        job: [u8; 32],
        path: String,
        from: u64,
    },
    Round {
        pool: u64,
        reports: Vec<SignedUsage>,
    },
    // Answers.
    Submitted,
    State {
        status: String,
        message: String,
    },
    LogPage {
        text: String,
        /// The logs' whole length so far, where the next page starts.
        next: u64,
    },
    Stopped(bool),
    Accounts {
        /// `(node, cpu_ms, gpu_ms)` for every member Ray ran a task of the job on.
        accounted: Vec<([u8; 32], u64, u64)>,
        head_signature: Vec<u8>,
        reports: Vec<SignedUsage>,
    },
    Work {
        jobs: Vec<([u8; 32], Vec<Task>)>,
    },
    /// `(path, bytes)` of each output file.
    OutputList {
        files: Vec<(String, u64)>,
    },
    OutputPage {
        bytes: Vec<u8>,
        /// Where the next page starts, and the file's size.
        next: u64,
        size: u64,
    },
    Refused {
        status: u16,
        reason: String,
    },
}

impl JobsMsg {
    /// The refusal that carries `e` as the caller should hear it.
    pub fn refused(e: &CallError) -> Self {
        JobsMsg::Refused {
            status: e.status(),
            reason: e.to_string(),
        }
    }
}

/// The asking side: sends `ask`, reads the answer (a refusal becomes its error).
pub async fn ask<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    ask: &JobsMsg,
) -> Result<JobsMsg, CallError> {
    write_frame(s, ask).await?;
    match expect::<_, JobsMsg>(s, MAX_JOBS_FRAME).await? {
        JobsMsg::Refused { status, reason } => Err(CallError::from_status(status, reason)),
        answer => Ok(answer),
    }
}

/// The head's side of one stream: reads a request, answers what `answer` returns.
pub async fn serve<S, F, Fut>(s: &mut S, answer: F) -> Result<(), CallError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(JobsMsg) -> Fut,
    Fut: std::future::Future<Output = Result<JobsMsg, CallError>>,
{
    let req = expect::<_, JobsMsg>(s, MAX_JOBS_FRAME).await?;
    let is_request = matches!(
        req,
        JobsMsg::Submit { .. }
            | JobsMsg::Status { .. }
            | JobsMsg::Logs { .. }
            | JobsMsg::Stop { .. }
            | JobsMsg::Settlement { .. }
            | JobsMsg::Outputs { .. }
            | JobsMsg::Output { .. }
            | JobsMsg::Round { .. }
    );
    let reply = if is_request {
        answer(req).await.unwrap_or_else(|e| JobsMsg::refused(&e))
    } else {
        JobsMsg::refused(&unexpected("a request", &req))
    };
    write_frame(s, &reply).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testing::pipe;

    fn spec(files: Vec<(String, Vec<u8>)>, env: &str) -> JobSpec {
        JobSpec {
            entrypoint: "python main.py".into(),
            runtime_env: env.into(),
            files,
            cpus: 1,
            gpus: 0,
        }
    }

    #[test]
    fn a_spec_outside_its_bounds_is_refused_with_the_reason() {
        let ok = spec(vec![("a/main.py".into(), b"print(1)".to_vec())], "");
        assert!(ok.check().is_ok());
        for (s, why) in [
            (spec(vec![("../x".into(), vec![])], ""), "relative path"),
            (spec(vec![("/etc/x".into(), vec![])], ""), "relative path"),
            (spec(vec![], r#"{"working_dir": "/"}"#), "no working_dir"),
            (spec(vec![], "[1]"), "JSON object"),
            (spec(vec![], "{"), "not JSON"),
            (
                spec(vec![("big".into(), vec![0; MAX_JOB_FILES + 1])], ""),
                "at most",
            ),
        ] {
            let e = s.check().expect_err(why);
            assert!(e.to_string().contains(why), "{e} lacks {why}");
        }
    }

    #[test]
    fn a_request_is_answered_and_a_refusal_keeps_its_status() {
        let rt = tokio::runtime::Runtime::new().expect("rt");
        rt.block_on(async {
            let (mut a, mut b) = pipe();
            let head = tokio::spawn(async move {
                serve(&mut b, |m| async move {
                    match m {
                        JobsMsg::Status { .. } => Err(CallError::NotFound("no job 7".into())),
                        _ => Ok(JobsMsg::Submitted),
                    }
                })
                .await
            });
            let e = ask(&mut a, &JobsMsg::Status { job: [7; 32] })
                .await
                .expect_err("refused");
            assert_eq!(e.status(), 404);
            assert!(e.to_string().contains("no job 7"), "{e}");
            head.await.expect("join").expect("served");

            // An answer sent as a request is refused, not obeyed.
            let (mut a, mut b) = pipe();
            let head =
                tokio::spawn(
                    async move { serve(&mut b, |_| async { Ok(JobsMsg::Submitted) }).await },
                );
            let e = ask(&mut a, &JobsMsg::Stopped(true))
                .await
                .expect_err("refused");
            assert_eq!(e.status(), 400, "{e}");
            head.await.expect("join").expect("served");
        });
    }
}
