//! What each Ray node spent on a job, from Ray's own task records (the state API's
//! `/api/v0/tasks`): for every task of the job, its required CPUs and GPUs times the
//! time it ran, summed per node, in milliseconds. A task still running counts up to
//! now; a task that failed (its node died) counts up to its end. Pure: the records
//! in, the sums out.

use emc_protocol::CallError;
use serde_json::Value;
use std::collections::BTreeMap;

/// Most task records one accounting reads (the state API's own page limit).
pub const MAX_TASKS: usize = 10_000;

/// One task as the state API reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    /// Ray's node id (hex), where it ran.
    pub node: String,
    pub cpus: f64,
    pub gpus: f64,
    pub start_ms: Option<f64>,
    pub end_ms: Option<f64>,
}

/// CPU- and GPU-milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    pub cpu_ms: u64,
    pub gpu_ms: u64,
}

/// The task records of a state API reply (`{"data": {"result": {"result": [..]}}}`),
/// refusing a reply of another shape or over [`MAX_TASKS`] records.
pub fn parse_tasks(reply: &Value) -> Result<Vec<TaskRecord>, CallError> {
    let list = reply["data"]["result"]["result"]
        .as_array()
        .ok_or_else(|| {
            CallError::Runtime("Ray's state API answered without task records".into())
        })?;
    if list.len() > MAX_TASKS {
        return Err(CallError::TooLarge(format!(
            "Ray reported {} tasks, more than {MAX_TASKS}",
            list.len()
        )));
    }
    Ok(list
        .iter()
        .filter_map(|t| {
            let node = t["node_id"].as_str()?.to_string();
            let res = &t["required_resources"];
            Some(TaskRecord {
                node,
                cpus: res["CPU"].as_f64().unwrap_or(0.0),
                gpus: res["GPU"].as_f64().unwrap_or(0.0),
                start_ms: t["start_time_ms"].as_f64().filter(|v| *v > 0.0),
                end_ms: t["end_time_ms"].as_f64().filter(|v| *v > 0.0),
            })
        })
        .collect())
}

/// What each node spent: `Σ ⌊resources · (end − start)⌋`, a running task ending
/// `now_ms`. Each task is rounded down on its own, so a sum over any grouping of
/// the same tasks is the same integer (a member's report and the head's accounting
/// cannot differ by a rounding).
pub fn by_node(tasks: &[TaskRecord], now_ms: f64) -> BTreeMap<String, Spent> {
    let mut out: BTreeMap<String, Spent> = BTreeMap::new();
    for t in tasks {
        let Some(start) = t.start_ms else { continue };
        let ran = (t.end_ms.unwrap_or(now_ms) - start).max(0.0);
        let e = out.entry(t.node.clone()).or_default();
        e.cpu_ms += (ran * t.cpus).floor() as u64;
        e.gpu_ms += (ran * t.gpus).floor() as u64;
    }
    out
}

/// What `tasks` spent in their ended runs only: a member's own report, which can
/// never pass Ray's later accounting of the same tasks (a running task is counted
/// once it ends).
pub fn ended_spent(tasks: &[TaskRecord]) -> Spent {
    let ended: Vec<TaskRecord> = tasks
        .iter()
        .filter(|t| t.end_ms.is_some())
        .cloned()
        .collect();
    by_node(&ended, 0.0)
        .into_values()
        .fold(Spent::default(), |a, s| Spent {
            cpu_ms: a.cpu_ms + s.cpu_ms,
            gpu_ms: a.gpu_ms + s.gpu_ms,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tasks_are_summed_per_node_by_resources_and_time_run() {
        let reply = json!({"result": true, "data": {"result": {"total": 4, "result": [
            {"node_id": "aa", "required_resources": {"CPU": 1.0}, "start_time_ms": 1000.0, "end_time_ms": 3000.0},
            {"node_id": "aa", "required_resources": {"CPU": 2.0, "GPU": 1.0}, "start_time_ms": 1000.0, "end_time_ms": 1500.0},
            // Running: counted to now.
            {"node_id": "bb", "required_resources": {"CPU": 1.0}, "start_time_ms": 4000.0, "end_time_ms": 0},
            // Never started: nothing.
            {"node_id": "cc", "required_resources": {"CPU": 1.0}, "start_time_ms": 0, "end_time_ms": 0},
        ]}}});
        let tasks = parse_tasks(&reply).expect("parses");
        let spent = by_node(&tasks, 5_000.0);
        assert_eq!(
            spent["aa"],
            Spent {
                cpu_ms: 3_000,
                gpu_ms: 500
            }
        );
        assert_eq!(
            spent["bb"],
            Spent {
                cpu_ms: 1_000,
                gpu_ms: 0
            }
        );
        assert!(!spent.contains_key("cc"));
    }

    #[test]
    fn a_reply_of_another_shape_or_size_is_refused() {
        assert!(parse_tasks(&json!({"data": {}})).is_err());
        let many: Vec<Value> = (0..=MAX_TASKS).map(|_| json!({})).collect();
        let e = parse_tasks(&json!({"data": {"result": {"result": many}}})).expect_err("too many");
        assert!(e.to_string().contains("more than"), "{e}");
    }
}
