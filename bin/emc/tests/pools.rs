//! A computing pool formed by three real `emc node --role compute --pool 1` processes
//! on this machine: each joins the pool on chain from its owner's account, the first
//! becomes the head and starts Ray's head, the others get the cluster's address and
//! lease token from it over `/emc/pool/1` and join Ray with one CPU each. A peer that
//! is not a member is refused the token; Ray refuses a caller without it; a member
//! killed with SIGKILL takes its Ray node with it and drops out of the cluster.
//!
//! Needs Ray in `tests/pools/.venv`: `EMC_POOLS=1 ./scripts/test` installs it and runs
//! this (`cargo nextest run -p emc --test pools --run-ignored only` after).

mod common;

use alloy_primitives::B256;
use alloy_sol_types::SolCall;
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

#[test]
#[ignore = "needs Ray: EMC_POOLS=1 ./scripts/test installs it and runs this"]
fn three_computing_nodes_form_one_ray_pool_that_admits_only_members() {
    let ray = ray_bin();
    let t = common::trio("pool test router", (&[], &[]), 1_000, &[], &[]);
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
    let create = IPools::createPoolCall {
        name: "three on one machine".into(),
        commissionBps: 1_000,
        cpuPrice: alloy_primitives::U256::from(1_000_000u64),
        gpuPrice: alloy_primitives::U256::ZERO,
        apps: vec![],
        frameworks: vec!["numpy".into()],
    };
    cli(&[
        "tx",
        "send",
        "--to",
        &POOLS_ADDRESS.to_string(),
        "--data",
        &alloy_primitives::hex::encode(create.abi_encode()),
        "--private-key",
        operator,
        "--rpc",
        &pool.v0_url,
    ]);

    // The first member joins on chain, becomes the head and starts Ray's head.
    let (a, b, c) = (member("pool a"), member("pool b"), member("pool c"));
    let _na = pool.spawn(&a, 1, None);
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
    let name = |m: &Member| emc_compute::pool::member::node_resource(m.id);
    wait_until("Ray's head up", Duration::from_secs(120), || {
        ray_members(&api) == vec![name(&a)]
    });

    // Members one after another (Ray nodes starting at once on one machine race).
    let _nb = pool.spawn(&b, 2, Some(&a));
    wait_until("the second member in Ray", Duration::from_secs(120), || {
        ray_members(&api).len() == 2
    });
    let mut nc = pool.spawn(&c, 3, Some(&a));
    wait_until("the third member in Ray", Duration::from_secs(120), || {
        ray_members(&api).len() == 3
    });
    let mut want = vec![name(&a), name(&b), name(&c)];
    want.sort();
    assert_eq!(ray_members(&api), want);
    assert!([&b, &c].iter().all(|m| pool.pool_of(m) == 1));

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
    nc.kill();
    wait_until(
        "the killed member out of Ray",
        Duration::from_secs(120),
        || ray_members(&api).len() == 2,
    );
    let mut left = vec![name(&a), name(&b)];
    left.sort();
    assert_eq!(ray_members(&api), left);
}
