//! A computing pool formed by three real `emc node --role compute --pool 1` processes
//! on this machine: each joins the pool on chain from its owner's account, the first
//! becomes the head and starts Ray's head, the others get the cluster's address and
//! lease token from it over `/emc/pool/1` and join Ray with one CPU each. A peer that
//! is not a member is refused the token; Ray refuses a caller without it; a member
//! killed with SIGKILL takes its Ray node with it and drops out of the cluster, and
//! one that leaves the pool on chain stops its Ray node.
//!
//! Then jobs through the router's gateway with an API key: a data-parallel training
//! job whose loss curve is the one the same training gives in one process, and a
//! batch fan-out job during which a member is killed with SIGKILL; both settle on
//! chain, paying each member what its signed report says, to the wei.
//!
//! Needs Ray in `tests/pools/.venv`: `EMC_POOLS=1 ./scripts/test` installs it and runs
//! this (`cargo nextest run -p emc --test pools --run-ignored only` after).

mod common;

use alloy_primitives::B256;
use common::{cli, free_port, wait_until, DevNode};
use emc_compute::pool::jobs::JobsApi;
use emc_modules::pools::IPools;
use emc_modules::POOLS_ADDRESS;
use std::time::Duration;

fn ray_bin() -> String {
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/pools/.venv/bin");
    assert!(
        std::path::Path::new(bin).join("ray").is_file(),
        "Ray in tests/pools/.venv: EMC_POOLS=1 ./scripts/test installs it"
    );
    bin.to_string()
}

/// A member's identity fixed ahead: its p2p seed, its node id, its listen address and
/// the address others dial.
struct Member {
    seed: [u8; 32],
    id: B256,
    listen: String,
    dial: String,
}

fn member(name: &str) -> Member {
    let seed = alloy_primitives::keccak256(name).0;
    let id = emc_crypto::ConsensusKey::from_seed(seed).public();
    let listen = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let dial = format!("{listen}/p2p/{}", emc_p2p::peer_id_of(seed));
    Member {
        seed,
        id,
        listen,
        dial,
    }
}

struct Pool {
    t: common::Trio,
    v0_url: String,
    ray: String,
    dashboard: u16,
}

impl Pool {
    /// `emc node --role compute --pool 1` for `m`, owned by development account `owner`.
    fn spawn(&self, m: &Member, owner: usize, head: Option<&Member>) -> DevNode {
        let data = self.t.dir.path().join(format!("m{owner}"));
        std::fs::create_dir_all(&data).expect("dir");
        std::fs::write(data.join("p2p.key"), m.seed).expect("key");
        let (agent, gcs, client) = (free_port(), free_port(), free_port());
        let (agent, gcs, client, dash) = (
            agent.to_string(),
            gcs.to_string(),
            client.to_string(),
            self.dashboard.to_string(),
        );
        let mut args = vec![
            "--genesis",
            &self.t.genesis,
            "--datadir",
            data.to_str().expect("utf8"),
            "--p2p-addr",
            &m.listen,
            "--bootnode",
            &self.t.boot,
            "--role",
            "compute",
            "--app",
            "embed=builtin:minilm",
            "--owner-key",
            &self.t.keys[owner],
            "--pool",
            "1",
            "--ray",
            &self.ray,
            "--pool-cpus",
            "1",
            "--pool-memory-mb",
            "1024",
            "--ray-agent-port",
            &agent,
            "--ray-gcs-port",
            &gcs,
            "--ray-client-port",
            &client,
            "--ray-dashboard-port",
            &dash,
            "--router",
            &self.t.router_addr,
        ];
        if let Some(h) = head {
            args.extend(["--pool-head", &h.dial]);
        }
        DevNode::spawn(&args)
    }

    fn pool_of(&self, m: &Member) -> u64 {
        self.t
            .v0
            .view(POOLS_ADDRESS, IPools::poolOfCall { nodeId: m.id })
    }
}

/// Ray's nodes as the head's dashboard lists them (with the lease token): each alive
/// node's `emc_node_<id>` resource.
fn ray_members(api: &JobsApi) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let nodes = rt.block_on(api.nodes()).unwrap_or_default();
    let mut names: Vec<String> = nodes
        .iter()
        .filter_map(|(_, n)| {
            n["resources_total"]
                .as_object()?
                .keys()
                .find(|k| k.starts_with("emc_node_"))
                .cloned()
        })
        .collect();
    names.sort();
    names
}

/// A formed pool: pool 1 of three members (a the head, b, c), each one CPU in Ray.
struct Formed {
    pool: Pool,
    members: [Member; 3],
    nodes: Vec<DevNode>,
    api: JobsApi,
    /// The head's lease token, for the benchmark's jobs sent to Ray directly.
    token: String,
    /// How long the second and third members took to join.
    joins: Vec<Duration>,
}

fn name(m: &Member) -> String {
    emc_compute::pool::ray::node_resource(m.id)
}

/// Pool 1, operated by development account 4 (the trio's router), at one CPU-second
/// for 10^6 wei and 10% commission, joined by three members, each in Ray.
fn form(router: &str) -> Formed {
    let ray = ray_bin();
    let t = common::trio(router, (&[], &[]), 1_000, &[], &[]);
    let v0_url = t.v0.url.clone();
    let pool = Pool {
        t,
        v0_url,
        ray,
        dashboard: free_port(),
    };
    // The operator (development account 4) stakes as a router and creates pool 1.
    let operator = &pool.t.keys[4];
    common::stake_router(operator, &pool.v0_url);
    cli(&[
        "pool",
        "create",
        "--name",
        "three on one machine",
        "--commission-bps",
        &COMMISSION_BPS.to_string(),
        "--cpu-price",
        &format!("{CPU_PRICE}wei"),
        "--framework",
        "numpy",
        "--framework",
        "torch",
        "--private-key",
        operator,
        "--rpc",
        &pool.v0_url,
    ]);

    // The first member joins on chain, becomes the head and starts Ray's head.
    let (a, b, c) = (member("pool a"), member("pool b"), member("pool c"));
    let na = pool.spawn(&a, 1, None);
    wait_until("the first member joins", Duration::from_secs(60), || {
        pool.pool_of(&a) == 1
    });
    let info = pool
        .t
        .v0
        .view(POOLS_ADDRESS, IPools::poolCall { poolId: 1 });
    assert_eq!(info.head, a.id, "the first member is the head");
    let token_file = pool.t.dir.path().join("m1/pool/token");
    wait_until("the head's lease token", Duration::from_secs(60), || {
        token_file.is_file()
    });
    let token = std::fs::read_to_string(&token_file).expect("token");
    let api = JobsApi::new(&format!("http://127.0.0.1:{}", pool.dashboard), &token).expect("api");
    wait_until("Ray's head up", Duration::from_secs(120), || {
        ray_members(&api) == vec![name(&a)]
    });

    // Members one after another (Ray nodes starting at once on one machine race).
    // How long each takes from its `emc node` starting to its Ray node in the
    // cluster: the join time of a member (its chain join included).
    let started = std::time::Instant::now();
    let nb = pool.spawn(&b, 2, Some(&a));
    wait_until("the second member in Ray", Duration::from_secs(120), || {
        ray_members(&api).len() == 2
    });
    let join_b = started.elapsed();
    let started = std::time::Instant::now();
    let nc = pool.spawn(&c, 3, Some(&a));
    wait_until("the third member in Ray", Duration::from_secs(120), || {
        ray_members(&api).len() == 3
    });
    let joins = vec![join_b, started.elapsed()];
    let mut want = vec![name(&a), name(&b), name(&c)];
    want.sort();
    assert_eq!(ray_members(&api), want);
    assert!([&b, &c].iter().all(|m| pool.pool_of(m) == 1));
    let shown: serde_json::Value =
        serde_json::from_str(&cli(&["pool", "show", "1", "--rpc", &pool.v0_url])).expect("json");
    assert_eq!(
        shown["members"].as_array().map(Vec::len),
        Some(3),
        "{shown}"
    );
    assert_eq!(shown["head"], a.id.to_string(), "{shown}");
    Formed {
        pool,
        members: [a, b, c],
        nodes: vec![na, nb, nc],
        api,
        token,
        joins,
    }
}

const CPU_PRICE: u64 = 1_000_000;
const COMMISSION_BPS: u16 = 1_000;

#[test]
#[ignore = "needs Ray: EMC_POOLS=1 ./scripts/test installs it and runs this"]
fn three_computing_nodes_form_one_ray_pool_that_admits_only_members() {
    let Formed {
        pool,
        members: [a, b, _c],
        mut nodes,
        api,
        ..
    } = form("pool test router");

    // Without the token Ray answers nothing.
    let stranger =
        JobsApi::new(&format!("http://127.0.0.1:{}", pool.dashboard), "guess").expect("api");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let e = rt.block_on(stranger.nodes()).expect_err("refused");
    assert!(e.to_string().contains("refused the pool's token"), "{e}");

    // A peer that is no member asks the head for the token and is refused.
    let refusal = rt.block_on(async {
        let p2p = emc_p2p::start(emc_p2p::P2pConfig {
            key_seed: [0x5a; 32],
            listen: "/ip4/127.0.0.1/tcp/0".parse().expect("addr"),
            bootnodes: vec![a.dial.parse().expect("addr")],
            chain_id: 31337,
            limits: emc_p2p::GossipLimits::default(),
        })
        .expect("peer");
        let mut control = p2p.streams.clone();
        let peer = emc_p2p::peer_id_of(a.seed);
        let mut last = String::new();
        for _ in 0..20 {
            match control
                .open_stream(
                    peer,
                    emc_p2p::stream_protocol(emc_protocol::wire::POOL_PROTOCOL),
                )
                .await
            {
                Ok(mut s) => {
                    return emc_protocol::wire::pool::join(&mut s, 1)
                        .await
                        .expect_err("a stranger is not admitted")
                        .to_string()
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("never reached the head member: {last}");
    });
    assert!(refusal.contains("is not a member of pool 1"), "{refusal}");

    // A member killed with SIGKILL takes its Ray node with it: Ray marks it dead.
    nodes[2].kill();
    wait_until(
        "the killed member out of Ray",
        Duration::from_secs(120),
        || ray_members(&api).len() == 2,
    );
    let mut left = vec![name(&a), name(&b)];
    left.sort();
    assert_eq!(ray_members(&api), left);

    // A member whose owner takes it out of the pool on chain takes its Ray node out.
    cli(&[
        "pool",
        "leave",
        "--node",
        &b.id.to_string(),
        "--private-key",
        &pool.t.keys[2],
        "--rpc",
        &pool.v0_url,
    ]);
    assert_eq!(pool.pool_of(&b), 0, "it left on chain");
    wait_until(
        "the member that left out of Ray",
        Duration::from_secs(120),
        || ray_members(&api) == vec![name(&a)],
    );
}

/// `METHOD url` with the API key `key` and a JSON body: the status and the JSON.
fn http(
    method: &str,
    url: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = ureq::request(method, url);
    if let Some(k) = key {
        req = req.set("authorization", &format!("Bearer {k}"));
    }
    let resp = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    let (status, r) = match resp {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(s, r)) => (s, r),
        Err(e) => panic!("{method} {url}: {e}"),
    };
    (status, r.into_json().unwrap_or(serde_json::Value::Null))
}

fn job_file(name: &str) -> String {
    let path = format!(
        "{}/../../tests/pools/jobs/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).expect("job script")
}

/// What `python <script> --local` prints in one process, with the pool's Python.
fn local_run(script: &str) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join(script), job_file(script)).expect("write");
    let out = std::process::Command::new(format!("{}/python", ray_bin()))
        .arg(script)
        .arg("--local")
        .current_dir(dir.path())
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `(step, loss)` of every `step N loss X` line.
fn losses(logs: &str) -> Vec<(u32, f64)> {
    logs.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next(), w.next()) {
                (Some("step"), Some(n), Some("loss"), Some(x)) => {
                    Some((n.parse().ok()?, x.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

/// The job's view once it settled.
fn settled(gw: &str, key: &str, id: &str) -> serde_json::Value {
    let url = format!("{gw}/v1/jobs/{id}");
    let mut view = serde_json::Value::Null;
    wait_until("the job settled", Duration::from_secs(240), || {
        view = http("GET", &url, Some(key), None).1;
        assert!(view["error"].is_null(), "the job failed: {view}");
        !view["settlement"].is_null()
    });
    assert_eq!(view["settlement"]["success"], true, "{view}");
    eprintln!("settled: {view:#}");
    view
}

/// Checks a settled job's pay on chain against its signed metering: every member paid
/// the CPU-ms its signed report gives (each within Ray's accounting), the amounts the
/// split of those costs by E gives, to the wei. The members' `(node, paid cpu-ms)`.
/// A job paid from a socket pays whole credits of `credit_price` wei (1 for escrow):
/// what that rounding draws past the cost is the operator's, with its commission.
fn check_paid(f: &Formed, view: &serde_json::Value, credit_price: u64) -> Vec<(B256, u64)> {
    use alloy_primitives::U256;
    let v0 = &f.pool.t.v0;
    let job: B256 = view["id"].as_str().expect("id").parse().expect("b256");
    let node = |u: &serde_json::Value| -> B256 {
        u["node"].as_str().expect("node").parse().expect("b256")
    };
    let ms = |u: &serde_json::Value| u["cpu_ms"].as_u64().expect("ms");
    let accounted: std::collections::HashMap<B256, u64> = view["metering"]["accounted"]
        .as_array()
        .expect("accounted")
        .iter()
        .map(|u| (node(u), ms(u)))
        .collect();
    let reports: Vec<(B256, u64)> = view["metering"]["reports"]
        .as_array()
        .expect("reports")
        .iter()
        .map(|u| (node(u), ms(u)))
        .collect();
    let paid: Vec<IPools::MemberPaid> = v0
        .events::<IPools::MemberPaid>(POOLS_ADDRESS)
        .into_iter()
        .filter(|e| e.jobId == job)
        .collect();
    assert_eq!(paid.len(), reports.len(), "every report is paid: {view}");
    let members = v0.view(POOLS_ADDRESS, IPools::membersCall { poolId: 1 });
    let score = |n: B256| {
        members
            .iter()
            .find(|m| m.nodeId == n)
            .map_or(0, |m| m.score)
    };
    let mut shares = Vec::new();
    for (n, cpu_ms) in &reports {
        assert!(
            cpu_ms <= &accounted[n],
            "{n} reported {cpu_ms} ms, Ray {}",
            accounted[n]
        );
        let e = paid.iter().find(|p| p.nodeId == *n).expect("paid");
        assert_eq!(e.cpuMs, *cpu_ms, "{n} is paid its signed report");
        shares.push((
            U256::from(*cpu_ms) * U256::from(CPU_PRICE) / U256::from(1_000),
            score(*n),
        ));
    }
    let (commission, amounts) = emc_modules::pools::jobs::split(&shares, COMMISSION_BPS);
    for ((n, _), want) in reports.iter().zip(&amounts) {
        let e = paid.iter().find(|p| p.nodeId == *n).expect("paid");
        assert_eq!(e.amount, *want, "{n}'s pay, to the wei");
    }
    let s = v0
        .events::<IPools::JobSettled>(POOLS_ADDRESS)
        .into_iter()
        .find(|e| e.jobId == job)
        .expect("JobSettled");
    let total = shares.iter().fold(U256::ZERO, |a, (c, _)| a + c);
    assert_eq!(s.cost, total, "the job costs its members' costs");
    let rounding = s.commission - commission;
    assert!(
        s.commission >= commission && rounding < U256::from(credit_price),
        "the operator's commission {} is {commission} and under {credit_price} wei of rounding",
        s.commission
    );
    assert!(total > U256::ZERO, "the job was paid for: {view}");
    reports
}

#[test]
#[ignore = "needs Ray: EMC_POOLS=1 ./scripts/test installs it and runs this"]
fn jobs_through_the_router_train_and_fan_out_on_the_pool_and_pay_what_members_metered() {
    let mut f = form("pool jobs router");
    let gw = f.pool.t.gw.clone();
    let key = common::client_key(&f.pool.v0_url, &f.pool.t.keys[5], Some("100"));
    let other = common::client_key(&f.pool.v0_url, &f.pool.t.keys[6], Some("1"));
    let jobs = format!("{gw}/v1/jobs");

    // Refusals first: no key, a malformed job, a pool that does not exist.
    let train = serde_json::json!({
        "entrypoint": "python train.py",
        "files": {"train.py": job_file("train.py")},
        "resources": {"cpus": 3},
        "timeout_s": 600,
    });
    assert_eq!(http("POST", &jobs, None, Some(train.clone())).0, 401);
    let (s, e) = http(
        "POST",
        &jobs,
        Some(&key),
        Some(serde_json::json!({"entry": "x"})),
    );
    assert_eq!(s, 400, "{e}");
    for bad in [
        serde_json::json!({"entrypoint": "python x.py", "files": {"../x.py": "1"}}),
        serde_json::json!({"entrypoint": "python x.py", "runtime_env": {"working_dir": "/"}}),
    ] {
        let (s, e) = http("POST", &jobs, Some(&key), Some(bad));
        assert_eq!(s, 400, "refused before anything opens on chain: {e}");
    }
    let mut elsewhere = train.clone();
    elsewhere["pool"] = 9.into();
    assert_eq!(http("POST", &jobs, Some(&key), Some(elsewhere)).0, 404);

    // Data-parallel training over the three members: the loss curve of one process.
    let (s, job) = http("POST", &jobs, Some(&key), Some(train));
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    assert_eq!(job["pool"], 1);
    let logs = ureq::get(&format!("{jobs}/{id}/logs"))
        .set("authorization", &format!("Bearer {key}"))
        .call()
        .expect("logs")
        .into_string()
        .expect("text");
    let view = settled(&gw, &key, &id);
    assert_eq!(view["status"], "succeeded", "{view}\n{logs}");
    assert!(
        logs.contains("nodes 3 torch 1.13"),
        "PyTorch trained on all three members:\n{logs}"
    );
    let (pooled, alone) = (losses(&logs), losses(&local_run("train.py")));
    assert_eq!(pooled.len(), 40, "{logs}");
    for ((s1, l1), (s2, l2)) in pooled.iter().zip(&alone) {
        assert_eq!(s1, s2);
        assert!(
            (l1 - l2).abs() <= 1e-9 * l2.abs(),
            "step {s1}: {l1} on the pool, {l2} alone"
        );
    }
    // The curve is also the job's output file, downloaded through the gateway.
    let (s, files) = http("GET", &format!("{jobs}/{id}/files"), Some(&key), None);
    assert_eq!(s, 200, "{files}");
    assert_eq!(files["data"][0]["path"], "loss.csv", "{files}");
    let csv = ureq::get(&format!("{jobs}/{id}/files/loss.csv"))
        .set("authorization", &format!("Bearer {key}"))
        .call()
        .expect("file")
        .into_string()
        .expect("text");
    let from_file: Vec<(u32, f64)> = csv
        .lines()
        .filter_map(|l| {
            let (n, x) = l.split_once(',')?;
            Some((n.parse().ok()?, x.parse().ok()?))
        })
        .collect();
    assert_eq!(from_file, pooled, "loss.csv is the curve the job printed");
    assert_eq!(
        http(
            "GET",
            &format!("{jobs}/{id}/files/..%2Fsecret"),
            Some(&key),
            None
        )
        .0,
        400,
        "nothing outside the job's outputs"
    );
    assert_eq!(
        http("GET", &format!("{jobs}/{id}/files"), Some(&other), None).0,
        404,
        "another account cannot list them"
    );
    let paid = check_paid(&f, &view, 1);
    assert_eq!(
        paid.len(),
        3,
        "all three members metered the training: {view}"
    );
    assert!(paid.iter().all(|(_, ms)| *ms > 0), "{view}");
    // Another account does not see the job.
    assert_eq!(
        http("GET", &format!("{jobs}/{id}"), Some(&other), None).0,
        404
    );

    // A socket of the pool (its provider id, app `jobs`), minted by the operator to
    // the client, pays for a job from its credits.
    let provider = emc_modules::pools::provider(1).to_string();
    let client = format!(
        "{}",
        emc_crypto::dev_accounts(6).expect("accounts")[5].address()
    );
    let url = f.pool.v0_url.clone();
    let out = cli(&[
        "socket",
        "mint",
        "--node",
        &provider,
        "--app",
        "jobs",
        "--unit",
        "seconds",
        "--price",
        "1000wei",
        "--valid",
        "1h",
        "--to",
        &client,
        "--private-key",
        &f.pool.t.keys[4],
        "--rpc",
        &url,
    ]);
    let socket = out
        .lines()
        .find_map(|l| l.strip_prefix("socket "))
        .unwrap_or_else(|| panic!("no socket in {out}"))
        .trim()
        .to_string();
    let k5 = f.pool.t.keys[5].clone();
    cli(&[
        "socket",
        "fund",
        &socket,
        "1000000",
        "--private-key",
        &k5,
        "--rpc",
        &url,
    ]);
    let socket_key = cli(&[
        "socket",
        "key",
        &socket,
        "--private-key",
        &k5,
        "--rpc",
        &url,
    ]);
    let socket_id: alloy_primitives::U256 = socket.parse().expect("id");
    let credits = |f: &Formed| {
        let c = emc_modules::sockets::ISockets::socketCall { tokenId: socket_id };
        f.pool.t.v0.view(emc_modules::SOCKETS_ADDRESS, c).credits
    };
    let before = credits(&f);
    let (s, job) = http(
        "POST",
        &jobs,
        Some(&socket_key),
        Some(serde_json::json!({
            "entrypoint": "python quick.py",
            "files": {"quick.py": job_file("quick.py")},
            "resources": {"cpus": 3},
        })),
    );
    assert_eq!(s, 201, "{job}");
    let view = settled(&gw, &socket_key, job["id"].as_str().expect("id"));
    check_paid(&f, &view, 1_000);
    let job_id: B256 = view["id"].as_str().expect("id").parse().expect("b256");
    let settled_job = f
        .pool
        .t
        .v0
        .events::<IPools::JobSettled>(POOLS_ADDRESS)
        .into_iter()
        .find(|e| e.jobId == job_id)
        .expect("settled");
    assert_eq!(settled_job.account.to_string(), client, "the holder paid");
    let cost = settled_job.cost + settled_job.routerFee;
    assert_eq!(
        alloy_primitives::U256::from(before - credits(&f)),
        cost.div_ceil(alloy_primitives::U256::from(1_000)),
        "the socket paid the job's cost and fee in whole credits"
    );

    // Fan-out; a member killed with SIGKILL in the middle.
    let (s, job) = http(
        "POST",
        &jobs,
        Some(&key),
        Some(serde_json::json!({
            "entrypoint": "python fanout.py",
            "files": {"fanout.py": job_file("fanout.py")},
            "resources": {"cpus": 3},
            "timeout_s": 600,
        })),
    );
    assert_eq!(s, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    let page = |id: &str| {
        ureq::get(&format!("{jobs}/{id}/logs?follow=false"))
            .set("authorization", &format!("Bearer {key}"))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default()
    };
    wait_until("six batches done", Duration::from_secs(120), || {
        page(&id).matches(" done").count() >= 6
    });
    // Two metering rounds, so the member has reported what it finished.
    std::thread::sleep(Duration::from_secs(5));
    f.nodes[2].kill();
    let view = settled(&gw, &key, &id);
    assert_eq!(view["status"], "succeeded", "{view}");
    let logs = page(&id);
    let want = local_run("fanout.py");
    assert!(
        logs.contains(want.trim()),
        "the fan-out's result is one process's {want}:\n{logs}"
    );
    let paid = check_paid(&f, &view, 1);
    let killed = f.members[2].id;
    let (_, killed_ms) = paid
        .iter()
        .find(|(n, _)| *n == killed)
        .expect("the killed member is paid");
    assert!(*killed_ms > 0, "it finished batches before it died: {view}");
    let ray_ms = view["metering"]["accounted"]
        .as_array()
        .expect("accounted")
        .iter()
        .find(|u| u["node"].as_str() == Some(&killed.to_string()))
        .and_then(|u| u["cpu_ms"].as_u64())
        .expect("Ray accounted for it");
    assert!(
        *killed_ms <= ray_ms,
        "paid {killed_ms} ms of Ray's {ray_ms}"
    );
    drop(f);
}

/// The benchmark (`EMC_POOLS=1 cargo nextest run -p emc --test pools --run-ignored only
/// -E 'test(bench)' --no-capture`): the same one-minute job sent to the pool's Ray
/// directly (the Jobs API with the lease token) and through EMC (the router's
/// gateway with an API key), one after the other, `ROUNDS` times; time to start
/// (submitted to RUNNING), total (submitted to SUCCEEDED) and, for EMC, to settled on
/// chain; and the members' join times. Figures only: nothing here asserts a time.
#[test]
#[ignore = "a benchmark: needs Ray and about five minutes"]
fn bench_a_minute_job_on_ray_directly_and_through_emc() {
    const ROUNDS: usize = 2;
    let f = form("pool bench router");
    let gw = f.pool.t.gw.clone();
    let key = common::client_key(&f.pool.v0_url, &f.pool.t.keys[5], Some("100"));
    let script = job_file("minute.py");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let direct =
        JobsApi::new(&format!("http://127.0.0.1:{}", f.pool.dashboard), &f.token).expect("api");
    let (mut ray_rows, mut emc_rows) = (Vec::new(), Vec::new());
    let mut gas = (None, None);
    for round in 0..ROUNDS {
        // Ray directly: the same package upload and submission the head makes.
        let t0 = std::time::Instant::now();
        let name = format!("_ray_pkg_bench{round}.zip");
        let zip = {
            use std::io::Write;
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            w.start_file("minute.py", zip::write::SimpleFileOptions::default())
                .expect("zip");
            w.write_all(script.as_bytes()).expect("zip");
            w.finish().expect("zip").into_inner()
        };
        rt.block_on(direct.upload_package(&name, zip))
            .expect("upload");
        let spec = emc_compute::pool::jobs::JobSpec {
            entrypoint: "python minute.py".into(),
            runtime_env: serde_json::json!({"working_dir": format!("gcs://{name}")}),
            entrypoint_cpus: 0.0,
        };
        let id = format!("bench-direct-{round}");
        rt.block_on(direct.submit(&id, &spec)).expect("submit");
        let (mut started, mut total) = (None, None);
        while total.is_none() {
            let s = rt.block_on(direct.status(&id)).expect("status");
            if started.is_none() && s.status != "PENDING" {
                started = Some(t0.elapsed());
            }
            if s.finished() {
                assert_eq!(s.status, "SUCCEEDED", "{s:?}");
                total = Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        ray_rows.push((started.expect("started"), total.expect("total")));

        // Through EMC.
        let t0 = std::time::Instant::now();
        let (s, job) = http(
            "POST",
            &format!("{gw}/v1/jobs"),
            Some(&key),
            Some(serde_json::json!({
                "entrypoint": "python minute.py",
                "files": {"minute.py": script},
                "resources": {"cpus": 3},
                "timeout_s": 900,
            })),
        );
        assert_eq!(s, 201, "{job}");
        let url = format!("{gw}/v1/jobs/{}", job["id"].as_str().expect("id"));
        let (mut started, mut total, mut paid) = (None, None, None);
        while paid.is_none() {
            let v = http("GET", &url, Some(&key), None).1;
            gas = (v["open_gas"].as_u64(), v["settlement"]["gas_used"].as_u64());
            assert!(v["error"].is_null(), "{v}");
            let st = v["status"].as_str().unwrap_or_default().to_string();
            if started.is_none() && st != "queued" {
                started = Some(t0.elapsed());
            }
            if total.is_none() && st == "succeeded" {
                total = Some(t0.elapsed());
            }
            if !v["settlement"].is_null() {
                paid = Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        emc_rows.push((
            started.expect("started"),
            total.expect("total"),
            paid.expect("paid"),
        ));
    }
    let secs = |d: &Duration| d.as_secs_f64();
    println!("| round | Ray start s | Ray total s | EMC start s | EMC total s | EMC settled s | total ratio |");
    println!("|---|---|---|---|---|---|---|");
    for (i, (r, e)) in ray_rows.iter().zip(&emc_rows).enumerate() {
        println!(
            "| {i} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} |",
            secs(&r.0),
            secs(&r.1),
            secs(&e.0),
            secs(&e.1),
            secs(&e.2),
            secs(&e.1) / secs(&r.1)
        );
    }
    println!(
        "gas: openJob {:?}, settleJob {:?} (three members)",
        gas.0, gas.1
    );
    println!(
        "member join times: {}",
        f.joins
            .iter()
            .map(|d| format!("{:.1} s", secs(d)))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
