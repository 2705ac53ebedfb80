//! A real network: four validator processes and a full node on loopback, talking
//! libp2p. SIGKILL one validator and the rest go on; SIGKILL a second and the chain
//! halts without forking; restart both and they sync and consensus resumes; a full node
//! started late syncs to the head; every node reports the same state root.

mod common;

use common::{quantity, wait_until, DevNode};
use serde_json::json;
use std::time::Duration;

const N: usize = 4;

/// Fixed listen ports for one network's nodes (`base + i`): below Linux's ephemeral
/// range (32768 and up), where concurrent tests' outgoing connections would take
/// them, and apart from every other test's ([`common::port_block`]).
fn region() -> u16 {
    common::port_block()
}

struct Net {
    dir: tempfile::TempDir,
    genesis: String,
    base: u16,
}

impl Net {
    fn new() -> Net {
        Self::with_base(region())
    }

    fn with_base(base: u16) -> Net {
        Self::with_genesis_args(base, &[])
    }

    /// Genesis with the four validators, and one more consensus key (`v4.json`) that
    /// is in no set: a candidate's.
    fn with_genesis_args(base: u16, extra: &[&str]) -> Net {
        let dir = tempfile::tempdir().expect("tmp");
        let mut args: Vec<String> = vec![
            "genesis".into(),
            "--dev-accounts".into(),
            "2".into(),
            "--block-time-ms".into(),
            "400".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        for i in 0..=N {
            let key = dir.path().join(format!("v{i}.json"));
            emc_crypto::ConsensusKey::dev(i as u32)
                .write(&key)
                .expect("key");
            if i == N {
                break;
            }
            let account = format!("0x{:040x}", 0xfee0 + i);
            args.extend(["--validator".into(), format!("{account}={}", key.display())]);
        }
        let genesis = dir.path().join("genesis.json").display().to_string();
        args.extend(["--out".into(), genesis.clone()]);
        let out = common::emc().args(&args).output().expect("emc genesis");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Net { dir, genesis, base }
    }

    fn p2p(&self, i: usize) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.base as usize + i)
    }

    fn bootnode(&self, i: usize) -> String {
        let id = emc_p2p::peer_id_of(emc_node::p2p_seed_of(&emc_crypto::ConsensusKey::dev(
            i as u32,
        )));
        format!("{}/p2p/{id}", self.p2p(i))
    }

    /// A node in no validator set, in `full/`, bootstrapping from `boot`'s validators.
    fn full_node(&self, boot: &[usize]) -> DevNode {
        let data = self.dir.path().join("full").display().to_string();
        let p2p = self.p2p(N);
        let mut args = vec![
            "--genesis",
            &self.genesis,
            "--datadir",
            &data,
            "--p2p-addr",
            &p2p,
        ];
        let boots: Vec<String> = boot.iter().map(|&j| self.bootnode(j)).collect();
        for b in &boots {
            args.extend(["--bootnode", b.as_str()]);
        }
        DevNode::spawn(&args)
    }

    fn start(&self, i: usize, validator: bool) -> DevNode {
        self.start_with(i, validator, &[])
    }

    fn start_with(&self, i: usize, validator: bool, extra: &[&str]) -> DevNode {
        let data = self.dir.path().join(format!("node{i}"));
        let key = self.dir.path().join(format!("v{i}.json"));
        let mut args: Vec<String> = vec![
            "--genesis".into(),
            self.genesis.clone(),
            "--datadir".into(),
            data.display().to_string(),
            "--p2p-addr".into(),
            self.p2p(i),
        ];
        if validator {
            args.extend(["--consensus-key".into(), key.display().to_string()]);
        }
        for j in 0..N {
            if j != i {
                args.extend(["--bootnode".into(), self.bootnode(j)]);
            }
        }
        let mut refs: Vec<&str> = args.iter().map(String::as_str).collect();
        refs.extend_from_slice(extra);
        DevNode::spawn(&refs)
    }
}

fn height(n: &DevNode) -> u64 {
    n.block_number()
}

fn block(n: &DevNode, h: u64) -> serde_json::Value {
    n.result("eth_getBlockByNumber", json!([format!("{h:#x}"), false]))
}

/// No two live nodes disagree on any block they both have.
fn same_chain(nodes: &[&DevNode]) {
    let top = nodes.iter().map(|n| height(n)).min().expect("nodes");
    for h in 1..=top {
        let hashes: Vec<_> = nodes.iter().map(|n| block(n, h)["hash"].clone()).collect();
        assert!(
            hashes.windows(2).all(|w| w[0] == w[1]),
            "fork at height {h}: {hashes:?}"
        );
    }
}

#[test]
fn validators_survive_a_crash_halt_without_forking_and_a_late_node_syncs() {
    let net = Net::new();
    // Validator 0 takes its settings from a node.toml, with metrics on.
    let metrics_port = net.base as usize + 50;
    let bootnodes: Vec<String> = (1..N).map(|j| format!("{:?}", net.bootnode(j))).collect();
    let toml = format!(
        "genesis = {:?}\nconsensus_key = {:?}\ndatadir = {:?}\np2p_addr = {:?}\nbootnodes = [{}]\nmetrics_addr = \"127.0.0.1:{metrics_port}\"\n",
        net.genesis,
        net.dir.path().join("v0.json").display().to_string(),
        net.dir.path().join("node0").display().to_string(),
        net.p2p(0),
        bootnodes.join(", ")
    );
    let config = net.dir.path().join("node.toml");
    std::fs::write(&config, toml).expect("write node.toml");
    let first = DevNode::spawn(&["--config", config.to_str().expect("utf8")]);
    let mut nodes: Vec<Option<DevNode>> = std::iter::once(Some(first))
        .chain((1..N).map(|i| Some(net.start(i, true))))
        .collect();
    let live = |nodes: &Vec<Option<DevNode>>| -> Vec<usize> {
        (0..N).filter(|i| nodes[*i].is_some()).collect()
    };
    let min_height = |nodes: &Vec<Option<DevNode>>| {
        live(nodes)
            .iter()
            .map(|i| height(nodes[*i].as_ref().unwrap()))
            .min()
            .unwrap()
    };
    wait_until(
        "4 validators make 3 blocks",
        Duration::from_secs(60),
        || min_height(&nodes) >= 3,
    );
    let text = ureq::get(&format!("http://127.0.0.1:{metrics_port}/metrics"))
        .call()
        .expect("metrics")
        .into_string()
        .expect("text");
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    assert!(value("emc_height") >= 3.0, "{text}");
    assert!(value("emc_peers") >= 2.0, "{text}");
    assert!(value("emc_block_interval_seconds_count") >= 2.0, "{text}");
    // net_peerCount tells JSON-RPC clients what the metric says.
    let n0 = nodes[0].as_ref().unwrap();
    assert!(
        common::quantity(&n0.result("net_peerCount", serde_json::json!([]))) >= 2,
        "net_peerCount of a validator with peers"
    );

    // One of four down: the other three are still a quorum.
    nodes[3].take().unwrap().kill();
    let h = min_height(&nodes);
    wait_until("3 validators go on", Duration::from_secs(60), || {
        min_height(&nodes) >= h + 3
    });

    // Two of four down: no quorum, so no progress (at most the block already in flight).
    nodes[2].take().unwrap().kill();
    std::thread::sleep(Duration::from_secs(2));
    let stalled = min_height(&nodes);
    std::thread::sleep(Duration::from_secs(5));
    let after = live(&nodes)
        .iter()
        .map(|i| height(nodes[*i].as_ref().unwrap()))
        .max()
        .unwrap();
    assert!(
        after <= stalled + 1,
        "progress without a quorum: {stalled} -> {after}"
    );
    same_chain(
        &live(&nodes)
            .iter()
            .map(|i| nodes[*i].as_ref().unwrap())
            .collect::<Vec<_>>(),
    );

    // Both return: they sync what they missed and consensus resumes.
    nodes[2] = Some(net.start(2, true));
    nodes[3] = Some(net.start(3, true));
    wait_until("all four resume", Duration::from_secs(120), || {
        min_height(&nodes) >= after + 3
    });

    // A full node that joins now syncs to the head by checking certificates.
    let full = net.full_node(&[0, 1]);
    let target = min_height(&nodes);
    wait_until("the full node syncs", Duration::from_secs(60), || {
        height(&full) >= target
    });

    // A transaction sent to the full node is gossiped to the validators and included.
    let hash = full.result("eth_sendRawTransaction", json!([transfer()]));
    wait_until("the transfer's receipt", Duration::from_secs(60), || {
        !full
            .result("eth_getTransactionReceipt", json!([hash]))
            .is_null()
    });
    let rc = nodes[0]
        .as_ref()
        .unwrap()
        .result("eth_getTransactionReceipt", json!([hash]));
    assert_eq!(rc["status"], json!("0x1"), "{rc}");

    let all: Vec<&DevNode> = nodes
        .iter()
        .flatten()
        .chain(std::iter::once(&full))
        .collect();
    same_chain(&all);
    let h = all.iter().map(|n| height(n)).min().unwrap();
    let roots: Vec<_> = all
        .iter()
        .map(|n| block(n, h)["stateRoot"].clone())
        .collect();
    assert!(
        roots.windows(2).all(|w| w[0] == w[1]),
        "state roots differ at {h}: {roots:?}"
    );
    assert!(quantity(&block(&full, h)["number"]) == h);
}

/// A transaction a full node accepted before it knew any peer still reaches the
/// validators: the node publishes its own pending transactions again until they leave
/// its pool (a first publish with no peers subscribed reaches nobody).
#[test]
fn a_transaction_sent_before_the_node_has_peers_is_still_mined() {
    let net = Net::new();
    let full = net.full_node(&[0]);
    let hash = full.result("eth_sendRawTransaction", json!([transfer()]));
    let nodes: Vec<DevNode> = (0..N).map(|i| net.start(i, true)).collect();
    wait_until("the transfer mined", Duration::from_secs(60), || {
        !nodes[0]
            .result("eth_getTransactionReceipt", json!([hash]))
            .is_null()
    });
}

/// A signed transfer from development account 0 on the dev chain id.
fn transfer() -> String {
    use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
    use alloy_eips::eip2718::Encodable2718;
    use alloy_network::TxSignerSync;
    let key: alloy_signer_local::PrivateKeySigner = common::KEY0.parse().expect("key");
    let mut t = TxEip1559 {
        chain_id: 31337,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: alloy_primitives::TxKind::Call(alloy_primitives::Address::repeat_byte(0x77)),
        value: alloy_primitives::U256::from(12_345),
        ..Default::default()
    };
    let sig = key.sign_transaction_sync(&mut t).expect("sign");
    format!(
        "0x{}",
        alloy_primitives::hex::encode(TxEnvelope::from(t.into_signed(sig)).encoded_2718())
    )
}

#[test]
fn a_peer_sending_garbage_is_banned_and_consensus_carries_on() {
    let net = Net::with_base(region());
    // Validator 0 counts its bans in its metrics: a flood goes on until it has banned
    // the sender (a disconnect alone may have another cause on a loaded machine).
    let metrics = format!("127.0.0.1:{}", net.base + 50);
    let nodes: Vec<DevNode> = (0..N)
        .map(|i| match i {
            0 => net.start_with(0, true, &["--metrics-addr", &metrics]),
            _ => net.start(i, true),
        })
        .collect();
    wait_until("blocks", Duration::from_secs(60), || {
        nodes.iter().all(|n| height(n) >= 2)
    });
    let bans = || banned_by(&metrics);
    // Alternately: bytes that do not decode, and a well-formed PREPARE for the next
    // heights whose signature is not the named validator's.
    let garbage = |i: u32| {
        if i.is_multiple_of(2) {
            format!("garbage {i}").into_bytes()
        } else {
            forged_prepare(i)
        }
    };
    let own = emc_p2p::GossipLimits::default();
    let before = bans();
    assert!(
        flood(&net, 0xbd, own, 50, 60, garbage, || bans() > before),
        "validator 0 never banned the peer sending garbage"
    );
    assert!(refused(&net, 0xbd), "the garbage peer was let back in");
    // Messages over the consensus topic's limit (8.5 MiB) from a peer that raised its
    // own: validator 0 reads them (frames up to twice the limit), blames the sender
    // and bans it.
    let raised = emc_p2p::GossipLimits {
        consensus: 64 << 20,
        transactions: 64 << 20,
    };
    let oversized = |i: u32| vec![i as u8; 10 << 20];
    let before = bans();
    assert!(
        flood(&net, 0xbe, raised, 300, 60, oversized, || bans() > before),
        "validator 0 never banned the peer sending oversized messages"
    );
    assert!(refused(&net, 0xbe), "the oversized peer was let back in");
    // Frames beyond that cap are dropped unread (nothing allocated or forwarded) and
    // cannot be blamed on a message; consensus carries on through a 10 s flood.
    let before = nodes.iter().map(height).min().unwrap();
    let huge = |i: u32| vec![i as u8; 24 << 20];
    flood(&net, 0xbf, raised, 500, 10, huge, || false);
    assert!(
        nodes.iter().map(height).min().unwrap() >= before + 3,
        "consensus stalled under a flood of frames over the cap"
    );
    let h = nodes.iter().map(height).min().unwrap();
    wait_until("consensus carries on", Duration::from_secs(60), || {
        nodes.iter().all(|n| height(n) >= h + 3)
    });
    same_chain(&nodes.iter().collect::<Vec<_>>());
}

fn forged_prepare(i: u32) -> Vec<u8> {
    use emc_consensus::{Message, Sig, Signed, ValidatorIndex, Vote};
    let body = Vote {
        height: emc_types::Height(1_000 + i as u64),
        round: emc_types::Round(0),
        digest: alloy_primitives::B256::repeat_byte(7),
    };
    Message::Prepare(Signed {
        body,
        signer: ValidatorIndex(1),
        sig: Sig([i as u8; 64]),
    })
    .encode()
}

#[test]
fn a_light_client_checks_state_proofs_from_a_peer() {
    let net = Net::with_base(region());
    let nodes: Vec<DevNode> = (0..N).map(|i| net.start(i, true)).collect();
    wait_until("blocks", Duration::from_secs(60), || {
        nodes.iter().all(|n| height(n) >= 2)
    });
    let h = height(&nodes[1]);
    // The light client trusts only a certified header's state root (read here over RPC).
    let root: alloy_primitives::B256 = block(&nodes[1], h)["stateRoot"]
        .as_str()
        .expect("root")
        .parse()
        .expect("hex");
    let who: alloy_primitives::Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        .parse()
        .expect("addr");
    let key = emc_storage::StateKey::Account(who);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let response = rt.block_on(async {
        let mut light = test_peer(&net, 0x11, emc_p2p::GossipLimits::default());
        let target = validator0();
        let request = emc_p2p::StateRequest {
            height: h,
            key: serde_bytes::ByteBuf::from(borsh::to_vec(&key).expect("key")),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ev = tokio::time::timeout_at(deadline, light.events.recv())
                .await
                .expect("a state response in time");
            match ev {
                Some(emc_p2p::Event::Connected(p)) if p == target => {
                    let _ = light.commands.send(emc_p2p::Command::RequestState {
                        peer: p,
                        request: request.clone(),
                    });
                }
                Some(emc_p2p::Event::StateResponse { response, .. }) => return response,
                // The connection the request went out on may close while another to
                // the same peer stays up (no new `Connected`): ask again.
                Some(emc_p2p::Event::StateFailed { peer, error }) if peer == target => {
                    eprintln!("state request failed ({error}); asking again");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let _ = light.commands.send(emc_p2p::Command::RequestState {
                        peer,
                        request: request.clone(),
                    });
                }
                Some(_) => {}
                None => panic!("light client stopped"),
            }
        }
    });
    assert!(response.found);
    let value = response.value.as_ref().map(|v| v.as_slice());
    assert!(
        emc_storage::verify_state_proof(root, &key, value, &response.proof),
        "proof does not verify"
    );
    let acct: emc_storage::AccountState =
        borsh::from_slice(value.expect("funded account")).expect("account");
    let rpc_balance = nodes[1].result(
        "eth_getBalance",
        serde_json::json!([who, format!("{h:#x}")]),
    );
    assert_eq!(
        format!("{:#x}", acct.balance),
        rpc_balance.as_str().expect("hex")
    );
    // A peer lying about the balance is caught.
    let lie = borsh::to_vec(&emc_storage::AccountState {
        balance: acct.balance + alloy_primitives::U256::from(1),
        ..acct
    })
    .expect("encode");
    assert!(!emc_storage::verify_state_proof(
        root,
        &key,
        Some(&lie),
        &response.proof
    ));
}

/// A peer that publishes `make(i)` on the consensus topic every `every_ms` while
/// connected to validator 0 (dialling it again when dropped); true when `done()` turns
/// true within `secs` seconds.
fn flood(
    net: &Net,
    seed: u8,
    limits: emc_p2p::GossipLimits,
    every_ms: u64,
    secs: u64,
    make: impl Fn(u32) -> Vec<u8>,
    done: impl Fn() -> bool,
) -> bool {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut bad = test_peer(net, seed, limits);
        let target = validator0();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let mut connected = false;
        let mut i = 0u32;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return false,
                ev = bad.events.recv() => match ev {
                    Some(emc_p2p::Event::Connected(p)) if p == target => connected = true,
                    Some(emc_p2p::Event::Disconnected(p)) if p == target => {
                        connected = false;
                        if tokio::task::block_in_place(&done) {
                            return true;
                        }
                        let _ = bad.commands.send(emc_p2p::Command::Dial(net.bootnode(0).parse().expect("addr")));
                    }
                    Some(_) => {}
                    None => return false,
                },
                _ = tokio::time::sleep(Duration::from_millis(every_ms)) => {
                    if tokio::task::block_in_place(&done) {
                        return true;
                    }
                    if connected {
                        i += 1;
                        let _ = bad.commands.send(emc_p2p::Command::Publish(emc_p2p::Topic::Consensus, make(i)));
                    }
                }
            }
        }
    })
}

/// How many peers the validator whose metrics listen at `addr` has banned.
fn banned_by(addr: &str) -> f64 {
    let text = ureq::get(&format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(5))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("emc_peers_banned_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// True when a peer with this seed, dialling validator 0 again for 8 s, is never let
/// stay 3 s (an honest peer stays for as long as it likes). A connection still open
/// at the end is watched until it closes or has stayed 3 s.
fn refused(net: &Net, seed: u8) -> bool {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut again = test_peer(net, seed, emc_p2p::GossipLimits::default());
        let target = validator0();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        let mut since = None;
        loop {
            let stayed = since.map(|t: tokio::time::Instant| t.elapsed() >= Duration::from_secs(3));
            match stayed {
                Some(true) => return false,
                None if tokio::time::Instant::now() >= deadline => return true,
                _ => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                ev = again.events.recv() => match ev {
                    Some(emc_p2p::Event::Connected(p)) if p == target => since = Some(tokio::time::Instant::now()),
                    Some(emc_p2p::Event::Disconnected(p)) if p == target => since = None,
                    Some(_) => {}
                    None => return true,
                },
            }
        }
    })
}

/// A libp2p peer run by the test itself, bootstrapping from validator 0.
fn test_peer(net: &Net, seed: u8, limits: emc_p2p::GossipLimits) -> emc_p2p::P2p {
    emc_p2p::start(emc_p2p::P2pConfig {
        key_seed: [seed; 32],
        listen: "/ip4/127.0.0.1/tcp/0".parse().expect("addr"),
        bootnodes: vec![net.bootnode(0).parse().expect("bootnode")],
        chain_id: 31337,
        limits,
    })
    .expect("test peer")
}

fn validator0() -> emc_p2p::Peer {
    emc_p2p::peer_id_of(emc_node::p2p_seed_of(&emc_crypto::ConsensusKey::dev(0)))
}

/// The staking module driving the validator set of real processes: a candidate process
/// stakes, is elected at the epoch's end and proposes; a validator that equivocates is
/// slashed from evidence anyone submits and leaves the set; the candidate unstakes and
/// leaves; blocks never stop across the epoch changes and no node forks.
#[test]
fn staking_changes_the_validator_set_of_a_running_network() {
    use alloy_sol_types::SolCall;
    let net = Net::with_genesis_args(
        region(),
        &["--epoch-blocks", "8", "--unbonding-blocks", "400"],
    );
    let nodes: Vec<DevNode> = (0..N).map(|i| net.start(i, true)).collect();
    // The candidate runs from the start with its key; it is in no set yet.
    let candidate = net.start(N, true);
    wait_until("blocks", Duration::from_secs(60), || {
        nodes.iter().all(|n| height(n) >= 2)
    });
    let accounts = emc_crypto::dev_accounts(2).expect("dev accounts");
    let key_hex = |i: usize| alloy_primitives::hex::encode(accounts[i].to_bytes());
    let me = accounts[0].address();
    let cli = |args: &[&str]| {
        let out = common::emc()
            .args(args)
            .args(["--rpc", &nodes[0].url])
            .output()
            .expect("emc");
        assert!(
            out.status.success(),
            "emc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let pk0 = key_hex(0);
    let v4 = net.dir.path().join("v4.json").display().to_string();
    cli(&[
        "stake",
        "add",
        "--role",
        "validator",
        "--amount",
        "2000",
        "--private-key",
        &pk0,
    ]);
    cli(&[
        "stake",
        "register",
        "--consensus-key",
        &v4,
        "--private-key",
        &pk0,
    ]);
    let set = |n: &DevNode| -> Vec<String> {
        n.result("emc_validators", json!([]))["validators"]
            .as_array()
            .expect("validators")
            .iter()
            .map(|v| v["address"].as_str().expect("address").to_lowercase())
            .collect()
    };
    let me_hex = format!("{me:#x}");
    wait_until("the candidate is elected", Duration::from_secs(60), || {
        set(&nodes[0]).contains(&me_hex)
    });
    assert_eq!(set(&nodes[0])[0], me_hex, "ranked first by its 2,000 EMC");
    let elected_at = height(&nodes[0]);
    wait_until(
        "the new validator proposes a block",
        Duration::from_secs(60),
        || {
            (elected_at..=height(&nodes[0])).any(|h| {
                block(&nodes[0], h)["miner"].as_str().map(str::to_lowercase) == Some(me_hex.clone())
            })
        },
    );
    assert!(cli(&["validators"]).contains(&me_hex));

    // Validator 1 signs two PREPAREs for different blocks at one height and round;
    // development account 1 submits the evidence.
    let h = height(&nodes[0]);
    let signer = emc_consensus::Ed25519Crypto::from_seed(emc_crypto::ConsensusKey::dev(1).seed());
    let sign = |d: alloy_primitives::B256| {
        use emc_consensus::Crypto;
        let vote = emc_consensus::Vote {
            height: emc_types::Height(h),
            round: emc_types::Round(0),
            digest: d,
        };
        let payload =
            emc_consensus::messages::payload(31337, emc_consensus::messages::Kind::Prepare, &vote);
        alloy_primitives::Bytes::from(signer.sign(&payload).0.to_vec())
    };
    let v1: alloy_primitives::Address = format!("0x{:040x}", 0xfee1).parse().expect("addr");
    let (a, b) = (
        alloy_primitives::B256::repeat_byte(1),
        alloy_primitives::B256::repeat_byte(2),
    );
    let evidence = emc_modules::staking::IStaking::submitEvidenceCall {
        validator: v1,
        kind: 1,
        height: h,
        round: 0,
        digestA: a,
        sigA: sign(a),
        digestB: b,
        sigB: sign(b),
    };
    let data = format!("0x{}", alloy_primitives::hex::encode(evidence.abi_encode()));
    let staking = format!("{}", emc_modules::STAKING_ADDRESS);
    cli(&[
        "tx",
        "send",
        "--to",
        &staking,
        "--data",
        &data,
        "--gas",
        "500000",
        "--private-key",
        &key_hex(1),
    ]);
    let st = nodes[0].result("emc_staking", json!([v1]));
    assert_eq!(
        st["roles"]["validator"]["staked"],
        json!(format!(
            "{:#x}",
            emc_types::EMC * alloy_primitives::U256::from(900)
        )),
        "10% of 1,000 EMC slashed"
    );
    let v1_hex = format!("{v1:#x}");
    wait_until(
        "the equivocator leaves the set",
        Duration::from_secs(60),
        || !set(&nodes[0]).contains(&v1_hex),
    );
    let rewards = nodes[0].result("emc_rewards", json!([me]));
    assert_ne!(
        rewards["pending"],
        json!("0x0"),
        "the new validator earned block rewards"
    );

    // The candidate unstakes and leaves at the next epoch's end.
    cli(&[
        "stake",
        "remove",
        "--role",
        "validator",
        "--amount",
        "2000",
        "--private-key",
        &pk0,
    ]);
    wait_until(
        "the unstaked validator leaves",
        Duration::from_secs(60),
        || !set(&nodes[0]).contains(&me_hex),
    );
    let h = nodes.iter().map(height).min().unwrap();
    wait_until("blocks continue", Duration::from_secs(60), || {
        nodes.iter().all(|n| height(n) >= h + 10)
    });
    let mut all: Vec<&DevNode> = nodes.iter().collect();
    all.push(&candidate);
    same_chain(&all);
}
