//! Test harness: real `emc` processes on loopback.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const KEY0: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// Ports in one [`port_block`].
pub const PORT_BLOCK: u16 = 100;

/// The first of [`PORT_BLOCK`] loopback ports, below the ephemeral range, that no other
/// test process holds: for tests that must name ports before their processes start
/// (bootnodes, peer routers). Each block is claimed by locking its file in the temp
/// dir; the lock lasts as long as this process (the OS drops it however the process
/// ends), and a block with a port in use is passed over. Every call claims another.
pub fn port_block() -> u16 {
    use std::sync::Mutex;
    static HELD: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());
    const FIRST: u16 = 10_000;
    const BLOCKS: u16 = (32_000 - FIRST) / PORT_BLOCK;
    let dir = std::env::temp_dir().join("emc-test-ports");
    std::fs::create_dir_all(&dir).expect("port lock dir");
    let mut held = HELD.lock().expect("port locks");
    let start = (std::process::id() % BLOCKS as u32) as u16;
    for i in 0..BLOCKS {
        let k = (start + i) % BLOCKS;
        let Ok(f) = std::fs::File::create(dir.join(k.to_string())) else {
            continue;
        };
        if f.try_lock().is_err() {
            continue;
        }
        let base = FIRST + k * PORT_BLOCK;
        let free = (base..base + PORT_BLOCK)
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            held.push(f);
            return base;
        }
    }
    panic!("no block of {PORT_BLOCK} free loopback ports between {FIRST} and 32,000");
}

pub fn emc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_emc"))
}

/// A `emc node --dev` process; killed with SIGKILL when dropped.
pub struct DevNode {
    pub child: Child,
    pub url: String,
}

impl DevNode {
    pub fn start(datadir: &Path, block_time_ms: u64) -> DevNode {
        let dir = datadir.to_str().expect("utf-8 path");
        Self::spawn(&[
            "--dev",
            "--datadir",
            dir,
            "--block-time-ms",
            &block_time_ms.to_string(),
        ])
    }

    /// `emc node <args>` on a free loopback port, logging at `warn` (or at the filter
    /// in `EMC_TEST_LOG`, e.g. `warn,libp2p_gossipsub=debug`, when debugging a test).
    pub fn spawn(args: &[&str]) -> DevNode {
        Self::spawn_with(args, &[]).0
    }

    /// [`DevNode::spawn`], also returning what the node printed after each of
    /// `prefixes` (for example `"Router HTTP: "`), in order.
    pub fn spawn_with(args: &[&str], prefixes: &[&str]) -> (DevNode, Vec<String>) {
        let log = std::env::var("EMC_TEST_LOG").unwrap_or("warn".into());
        Self::spawn_logged(args, prefixes, &log, Stdio::inherit())
    }

    /// [`DevNode::spawn_with`], logging at `filter` to `log` (a file, to read later).
    pub fn spawn_logged(
        args: &[&str],
        prefixes: &[&str],
        filter: &str,
        log: Stdio,
    ) -> (DevNode, Vec<String>) {
        let mut child = emc()
            .args(["node", "--rpc-addr", "127.0.0.1:0", "--log", filter])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn emc node");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            assert!(Instant::now() < deadline, "node did not print its RPC URL");
            let line = lines
                .next()
                .expect("node exited before printing its RPC URL")
                .expect("read");
            if let Some(u) = line.strip_prefix("JSON-RPC: ") {
                break u.trim().to_string();
            }
        };
        let mut found: Vec<Option<String>> = vec![None; prefixes.len()];
        while found.iter().any(Option::is_none) {
            assert!(Instant::now() < deadline, "node did not print {prefixes:?}");
            let line = lines
                .next()
                .expect("node exited before printing what was asked")
                .expect("read");
            for (i, p) in prefixes.iter().enumerate() {
                if let Some(v) = line.strip_prefix(p) {
                    found[i] = Some(v.trim().to_string());
                }
            }
        }
        // Keep draining stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        (
            DevNode { child, url },
            found.into_iter().map(|f| f.unwrap_or_default()).collect(),
        )
    }

    pub fn ws_url(&self) -> String {
        self.url.replacen("http", "ws", 1)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    /// Raw JSON-RPC; returns the whole response object.
    pub fn raw(&self, body: &str) -> Value {
        match ureq::post(&self.url)
            .set("content-type", "application/json")
            .send_string(body)
        {
            Ok(r) => r.into_json().expect("json"),
            Err(ureq::Error::Status(_, r)) => r.into_json().expect("json"),
            Err(e) => panic!("transport: {e}"),
        }
    }

    pub fn call(&self, method: &str, params: Value) -> Value {
        self.raw(
            &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string(),
        )
    }

    pub fn result(&self, method: &str, params: Value) -> Value {
        let v = self.call(method, params);
        assert!(v.get("error").is_none(), "{method} failed: {v}");
        v["result"].clone()
    }

    pub fn block_number(&self) -> u64 {
        quantity(&self.result("eth_blockNumber", json!([])))
    }

    /// A system module's (or any contract's) view at the head, decoded by its ABI.
    pub fn view<C: alloy_sol_types::SolCall>(
        &self,
        to: alloy_primitives::Address,
        c: C,
    ) -> C::Return {
        let data = alloy_primitives::hex::encode_prefixed(c.abi_encode());
        let out = self.result("eth_call", json!([{"to": to, "data": data}, "latest"]));
        let bytes = alloy_primitives::hex::decode(out.as_str().expect("hex")).expect("hex");
        C::abi_decode_returns(&bytes).expect("decodes")
    }

    /// Every event `E` that `address` logged, from genesis to the head.
    pub fn events<E: alloy_sol_types::SolEvent>(
        &self,
        address: alloy_primitives::Address,
    ) -> Vec<E> {
        let logs = self.result(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "toBlock": "latest", "address": address, "topics": [E::SIGNATURE_HASH]}]),
        );
        logs.as_array()
            .expect("logs")
            .iter()
            .map(|l| {
                let topics: Vec<alloy_primitives::B256> = l["topics"]
                    .as_array()
                    .expect("topics")
                    .iter()
                    .map(|t| t.as_str().expect("topic").parse().expect("b256"))
                    .collect();
                let data =
                    alloy_primitives::hex::decode(l["data"].as_str().expect("data")).expect("hex");
                E::decode_raw_log(topics, &data).expect("decodes")
            })
            .collect()
    }
}

/// A TCP connection to `to` from loopback address `from` (all of 127.0.0.0/8 reaches
/// a node on 127.0.0.1, so a test's attacker has addresses of its own).
pub fn connect_from(from: [u8; 4], to: std::net::SocketAddr) -> std::net::TcpStream {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(&std::net::SocketAddr::from((from, 0)).into())
        .expect("bind");
    s.connect(&to.into()).expect("connect");
    s.into()
}

impl Drop for DevNode {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn quantity(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("hex string").trim_start_matches("0x"), 16)
        .expect("quantity")
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `emc ARGS`, which must succeed; its trimmed stdout.
pub fn cli(args: &[&str]) -> String {
    let out = emc().args(args).output().expect("emc");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An API key for the account of `private_key` (hex), made with `emc gateway key`,
/// after `emc escrow deposit` of `deposit` EMC when given: a client as a user sets
/// one up.
pub fn client_key(rpc: &str, private_key: &str, deposit: Option<&str>) -> String {
    if let Some(amount) = deposit {
        cli(&[
            "escrow",
            "deposit",
            amount,
            "--private-key",
            private_key,
            "--rpc",
            rpc,
        ]);
    }
    cli(&["gateway", "key", "--private-key", private_key, "--rpc", rpc])
}

/// A genesis for one validator (development key 0, its key file written beside it) with
/// `accounts` funded development accounts, 400 ms blocks, epochs of `epoch_blocks`, and
/// a small PoC task (8 lanes x 512 x 512 steps) that even a debug build proves well
/// within an epoch. Returns the genesis path and the validator's key file.
pub fn small_poc_genesis(
    dir: &Path,
    accounts: usize,
    epoch_blocks: u64,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = dir.join("v0.json");
    emc_crypto::ConsensusKey::dev(0).write(&key).expect("key");
    let genesis = dir.join("genesis.json");
    cli(&[
        "genesis",
        "--dev-accounts",
        &accounts.to_string(),
        "--block-time-ms",
        "400",
        "--epoch-blocks",
        &epoch_blocks.to_string(),
        "--poc-json",
        r#"{"lanes": 8, "segments": 512, "segSteps": 512, "samples": 32}"#,
        "--validator",
        &format!("0x{:040x}={}", 0xfee0, key.display()),
        "--out",
        genesis.to_str().expect("utf8"),
    ]);
    (genesis, key)
}

/// Stakes 10 EMC as a router from hex private key `key` through the node at `rpc`.
pub fn stake_router(key: &str, rpc: &str) {
    cli(&[
        "stake",
        "add",
        "--role",
        "router",
        "--amount",
        "10emc",
        "--private-key",
        key,
        "--rpc",
        rpc,
    ]);
}

/// The Python of `tests/e2e/.venv`, where `./scripts/test` installs the clients the
/// tests drive (openai, web3).
pub fn python() -> String {
    let py = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/e2e/.venv/bin/python"
    );
    assert!(
        Path::new(py).exists(),
        "the Python clients' venv is missing: run ./scripts/test (it installs tests/e2e/requirements.txt)"
    );
    py.to_string()
}

/// A child process killed when dropped.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The computing-node tests' real HTTP app (`crates/compute/tests/fixtures/app.py`)
/// on `port`, once it says it is ready.
pub fn python_app(port: u16) -> Kill {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crates/compute/tests/fixtures/app.py"
    );
    let mut app = Command::new("python3")
        .args([script, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(app.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready");
    Kill(app)
}

/// A port free on loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// One validator, one router (development account 4's key) and one computing node
/// (owned by development account 0, dialing the router) serving a real Python app as
/// `py` at `py_price` per call besides `apps`, on loopback, once the node has
/// registered every app: the network the gateway-limits and sockets tests share.
pub struct Trio {
    pub v0: DevNode,
    /// What the validator printed for `v0_prefixes`.
    pub v0_found: Vec<String>,
    pub router: DevNode,
    /// The router's gateway.
    pub gw: String,
    pub node: DevNode,
    /// The node's id, then its compute HTTP address, then its DID.
    pub node_found: Vec<String>,
    pub app: Kill,
    /// Development accounts 0 to 7, as hex private keys.
    pub keys: Vec<String>,
    /// The router's p2p address, for more computing nodes to dial.
    pub router_addr: String,
    /// The genesis file and the validator's p2p address, for more nodes to join.
    pub genesis: String,
    pub boot: String,
    pub dir: tempfile::TempDir,
}

/// A router's p2p address fixed ahead (from `name`), so a computing node can be told
/// to dial it before it starts: `(seed, listen address, dial address)`.
pub fn router_address(name: &str) -> ([u8; 32], String, String) {
    let seed = alloy_primitives::keccak256(name).0;
    let listen = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let dial = format!("{listen}/p2p/{}", emc_p2p::peer_id_of(seed));
    (seed, listen, dial)
}

/// A router at the address [`router_address`] gave, with private key `key`, joining
/// the network of `genesis` through `boot`, its data in `dir/name`: it and its gateway.
pub fn spawn_router(
    net: (&str, &str, &Path),
    at: &([u8; 32], String, String),
    key: &str,
    name: &str,
) -> (DevNode, String) {
    let log = std::env::var("EMC_TEST_LOG").unwrap_or("warn".into());
    spawn_router_with(net, at, key, name, &[], (&log, Stdio::inherit()))
}

/// [`spawn_router`] with `extra` flags (`--peer-router …`), logging at `log.0` to
/// `log.1`.
pub fn spawn_router_with(
    (genesis, boot, dir): (&str, &str, &Path),
    (seed, listen, _): &([u8; 32], String, String),
    key: &str,
    name: &str,
    extra: &[&str],
    (filter, log): (&str, Stdio),
) -> (DevNode, String) {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).expect("dir");
    std::fs::write(data.join("p2p.key"), seed).expect("key");
    let mut args = vec![
        "--genesis",
        genesis,
        "--datadir",
        data.to_str().expect("utf8"),
        "--p2p-addr",
        listen,
        "--bootnode",
        boot,
        "--role",
        "router",
        "--router-http",
        "127.0.0.1:0",
        "--router-key",
        key,
    ];
    args.extend(extra);
    let (router, found) = DevNode::spawn_logged(&args, &["Router HTTP: "], filter, log);
    (router, found[0].clone())
}

impl Trio {
    /// Another router joining the trio's network (see [`spawn_router`]), with account
    /// `key`'s key.
    pub fn spawn_router(
        &self,
        at: &([u8; 32], String, String),
        key: usize,
        name: &str,
    ) -> (DevNode, String) {
        let net = (self.genesis.as_str(), self.boot.as_str(), self.dir.path());
        spawn_router(net, at, &self.keys[key], name)
    }
}

pub fn trio(
    router_name: &str,
    (v0_extra, v0_prefixes): (&[&str], &[&str]),
    py_price: u64,
    apps: &[String],
    node_extra: &[&str],
) -> Trio {
    let dir = tempfile::tempdir().expect("tmp");
    let (genesis, vkey) = small_poc_genesis(dir.path(), 8, 150);
    let keys: Vec<String> = emc_crypto::dev_accounts(8)
        .expect("dev accounts")
        .iter()
        .map(|a| alloy_primitives::hex::encode(a.to_bytes()))
        .collect();
    let gen = genesis.to_str().expect("utf8").to_string();
    let p2p0 = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let v0_data = dir.path().join("v0");
    let mut v0_args = vec![
        "--genesis",
        &gen,
        "--datadir",
        v0_data.to_str().expect("utf8"),
        "--consensus-key",
        vkey.to_str().expect("utf8"),
        "--p2p-addr",
        &p2p0,
    ];
    v0_args.extend(v0_extra);
    let (v0, v0_found) = DevNode::spawn_with(&v0_args, v0_prefixes);
    let boot = format!(
        "{p2p0}/p2p/{}",
        emc_p2p::peer_id_of(emc_node::p2p_seed_of(&emc_crypto::ConsensusKey::dev(0)))
    );
    let at = router_address(router_name);
    let router_addr = at.2.clone();
    let (router, gw) = spawn_router((&gen, &boot, dir.path()), &at, &keys[4], "r0");
    let app_port = free_port();
    let app = python_app(app_port);
    let py = format!("py=http://127.0.0.1:{app_port},price={py_price}");
    let c0 = dir.path().join("c0");
    let mut node_args = vec![
        "--genesis",
        &gen,
        "--datadir",
        c0.to_str().expect("utf8"),
        "--p2p-addr",
        "/ip4/127.0.0.1/tcp/0",
        "--bootnode",
        &boot,
        "--role",
        "compute",
        "--app",
        &py,
        "--owner-key",
        &keys[0],
        "--router",
        &router_addr,
        "--compute-http",
        "127.0.0.1:0",
    ];
    for a in apps {
        node_args.extend(["--app", a.as_str()]);
    }
    node_args.extend(node_extra);
    let (node, node_found) = DevNode::spawn_with(
        &node_args,
        &["Computing node id: ", "Compute HTTP: ", "Node DID: "],
    );
    let registered = || {
        ureq::get(&format!("{gw}/nodes"))
            .call()
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .and_then(|v| v.as_array().and_then(|a| a.first().cloned()))
            .and_then(|n| n["registered"].as_object().map(|m| m.len()))
    };
    wait_until(
        "the node registered for every app",
        Duration::from_secs(120),
        || registered() == Some(1 + apps.len()),
    );
    Trio {
        v0,
        v0_found,
        router,
        gw,
        node,
        node_found,
        app,
        keys,
        router_addr,
        genesis: gen.clone(),
        boot: boot.clone(),
        dir,
    }
}
