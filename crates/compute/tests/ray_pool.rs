//! A three-member pool as one Ray cluster on this machine (one CPU each), started the
//! way a member's `emc node` starts it: token authentication on, the dashboard on
//! loopback. A job without the token is refused; a job with it spreads over all three
//! members, and Ray's own task records give each member's CPU-milliseconds.
//!
//! Needs Ray in `tests/pools/.venv`: `EMC_POOLS=1 ./scripts/test` installs it and runs
//! this (`cargo nextest run -p emc-compute --test ray_pool --run-ignored only` after).

use emc_compute::pool::jobs::{JobSpec, JobsApi};
use emc_compute::pool::metering;
use emc_compute::pool::ray::{HeadPorts, NodePorts, RayInstall, RayNode, Resources};
use std::time::{Duration, Instant};

fn ray() -> RayInstall {
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/pools/.venv/bin");
    RayInstall::new(bin).expect("Ray in tests/pools/.venv: EMC_POOLS=1 ./scripts/test installs it")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn agent() -> NodePorts {
    NodePorts { agent: free_port() }
}

const JOB: &str = r#"
import ray, time
ray.init()
@ray.remote(num_cpus=1)
def spin(i):
    t = time.time()
    while time.time() - t < 1.5:
        pass
    return ray.get_runtime_context().get_node_id()
nodes = set(ray.get([spin.remote(i) for i in range(6)]))
print("members used:", len(nodes))
"#;

async fn wait_for<F, Fut>(what: &str, within: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Ray: EMC_POOLS=1 ./scripts/test installs it and runs this"]
async fn a_three_member_pool_runs_a_job_only_with_its_token_and_meters_each_member() {
    let ray = ray();
    let dir = tempfile::tempdir().expect("tmp");
    let token = hex::encode(rand::random::<[u8; 32]>());
    let ports = HeadPorts {
        gcs: free_port(),
        dashboard: free_port(),
        client: free_port(),
    };
    let one = Resources {
        cpus: 1,
        gpus: 0,
        memory_mb: 1_024,
        name: None,
    };
    let head =
        RayNode::head(&ray, dir.path(), "127.0.0.1", ports, agent(), &one, &token).expect("head");
    let url = head.dashboard.clone().expect("dashboard");
    let api = JobsApi::new(&url, &token).expect("api");
    wait_for("the head's dashboard", Duration::from_secs(90), || async {
        match api.nodes().await {
            Ok(n) => n.len() == 1,
            Err(e) => {
                eprintln!("head: {e}");
                false
            }
        }
    })
    .await;
    let gcs = format!("127.0.0.1:{}", ports.gcs);
    // One after another, as members join (several Ray nodes starting at once on one
    // machine race for the same agent ports; a pool has one member per machine).
    let mut members = Vec::new();
    for n in 2..=3 {
        let node = RayNode::member(&ray, dir.path(), "127.0.0.1", &gcs, agent(), &one, &token);
        members.push(node.expect("member"));
        wait_for("the member to join", Duration::from_secs(90), || async {
            api.nodes()
                .await
                .map(|nodes| nodes.len() == n)
                .unwrap_or(false)
        })
        .await;
    }

    // Without the pool's token Ray refuses the job, and says so.
    let stranger = JobsApi::new(&url, "not-the-token").expect("api");
    let spec = JobSpec {
        entrypoint: format!("python -c '{JOB}'"),
        runtime_env: serde_json::json!({}),
        entrypoint_cpus: 0.0,
    };
    let e = stranger
        .submit("stranger-job", &spec)
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("refused the pool's token"), "{e}");

    let id = api.submit("emc-job-1", &spec).await.expect("submitted");
    assert_eq!(id, "emc-job-1");
    let start = Instant::now();
    let state = loop {
        let s = api.status("emc-job-1").await.expect("status");
        if s.finished() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the job never finished: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let logs = api.logs("emc-job-1").await.expect("logs");
    assert_eq!(state.status, "SUCCEEDED", "{state:?}\n{logs}");
    assert!(logs.contains("members used: 3"), "{logs}");

    // Ray's accounting: six tasks of 1.5 s, one CPU each, over three members.
    let job_id = state.job_id.expect("Ray's job id");
    let tasks = api.tasks(&job_id).await.expect("tasks");
    let spent = metering::by_node(&tasks, 0.0);
    assert_eq!(spent.len(), 3, "{spent:?}");
    let total: u64 = spent.values().map(|s| s.cpu_ms).sum();
    assert!(
        (9_000..12_000).contains(&total),
        "6 × 1.5 CPU-s, plus scheduling: {spent:?}"
    );
    assert!(spent.values().all(|s| s.cpu_ms >= 1_400), "{spent:?}");

    for m in members {
        m.stop(Duration::from_secs(10)).await;
    }
    head.stop(Duration::from_secs(10)).await;
}
