//! A 2|2 partition of four validator processes, each in a network namespace the test
//! makes itself (iproute2): every validator has a veth into one bridge; the partition
//! moves two of them onto a second bridge, the heal moves them back. The chain must stall
//! without forking while split, and resume once healed.
//!
//! Addresses are the test's own hosts (10.231.<k>.0/24 inside its namespaces), and
//! everything is removed when the test ends. Needs root for `ip netns`: outside CI the
//! test skips with a message when it cannot create a namespace; under CI=true it fails.

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const N: usize = 4;

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn must(args: &[&str]) {
    assert!(ip(args), "ip {}", args.join(" "));
}

struct Lab {
    tag: String,
    subnet: u32,
    children: Vec<Child>,
}

impl Lab {
    fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }
    fn host_if(&self, i: usize) -> String {
        format!("{}h{i}", self.tag)
    }
    fn bridge(&self, side: char) -> String {
        format!("{}b{side}", self.tag)
    }
    fn addr(&self, i: usize) -> String {
        format!("10.231.{}.{}", self.subnet, i + 1)
    }

    fn new() -> Option<Lab> {
        let pid = std::process::id();
        let lab = Lab {
            tag: format!("e{}", pid % 100_000),
            subnet: pid % 200 + 20,
            children: Vec::new(),
        };
        if !ip(&["netns", "add", &lab.ns(0)]) {
            return None;
        }
        for side in ['a', 'b'] {
            must(&["link", "add", &lab.bridge(side), "type", "bridge"]);
            must(&["link", "set", &lab.bridge(side), "up"]);
        }
        for i in 0..N {
            let (ns, host) = (lab.ns(i), lab.host_if(i));
            if i > 0 {
                must(&["netns", "add", &ns]);
            }
            let inner = format!("{}c{i}", lab.tag);
            must(&["link", "add", &host, "type", "veth", "peer", "name", &inner]);
            must(&["link", "set", &inner, "netns", &ns]);
            must(&["link", "set", &host, "master", &lab.bridge('a')]);
            must(&["link", "set", &host, "up"]);
            must(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
            must(&[
                "netns",
                "exec",
                &ns,
                "ip",
                "addr",
                "add",
                &format!("{}/24", lab.addr(i)),
                "dev",
                &inner,
            ]);
            must(&["netns", "exec", &ns, "ip", "link", "set", &inner, "up"]);
        }
        Some(lab)
    }

    /// Moves validator `i`'s link onto bridge `side`.
    fn attach(&self, i: usize, side: char) {
        must(&[
            "link",
            "set",
            &self.host_if(i),
            "master",
            &self.bridge(side),
        ]);
    }

    /// Runs `emc <args>` inside validator `i`'s namespace.
    fn emc(&self, i: usize, args: &[String]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(i), env!("CARGO_BIN_EXE_emc")])
            .args(args);
        c
    }

    fn height(&self, i: usize) -> Option<u64> {
        let out = self
            .emc(
                i,
                &[
                    "query".into(),
                    "block".into(),
                    "latest".into(),
                    "--rpc".into(),
                    "http://127.0.0.1:8545".into(),
                ],
            )
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(common::quantity(&v["number"]))
    }

    fn hash_at(&self, i: usize, h: u64) -> Option<String> {
        let args = [
            "query".into(),
            "block".into(),
            h.to_string(),
            "--rpc".into(),
            "http://127.0.0.1:8545".into(),
        ];
        let out = self.emc(i, &args).output().ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["hash"].as_str().map(String::from)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for i in 0..N {
            ip(&["link", "del", &self.host_if(i)]);
            ip(&["netns", "del", &self.ns(i)]);
        }
        for side in ['a', 'b'] {
            ip(&["link", "del", &self.bridge(side)]);
        }
    }
}

fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_two_two_partition_stalls_without_forking_and_heals() {
    let Some(mut lab) = Lab::new() else {
        let msg = "cannot create network namespaces (needs root and iproute2)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let mut args: Vec<String> = vec!["genesis".into(), "--block-time-ms".into(), "400".into()];
    for i in 0..N {
        let key = dir.path().join(format!("v{i}.json"));
        emc_crypto::ConsensusKey::dev(i as u32)
            .write(&key)
            .expect("key");
        args.extend([
            "--validator".into(),
            format!("0x{:040x}={}", 0xfee0 + i, key.display()),
        ]);
    }
    let genesis = dir.path().join("genesis.json").display().to_string();
    args.extend(["--out".into(), genesis.clone()]);
    assert!(common::emc()
        .args(&args)
        .output()
        .expect("genesis")
        .status
        .success());

    for i in 0..N {
        let mut a: Vec<String> = vec![
            "node".into(),
            "--genesis".into(),
            genesis.clone(),
            "--consensus-key".into(),
            dir.path().join(format!("v{i}.json")).display().to_string(),
            "--datadir".into(),
            dir.path().join(format!("n{i}")).display().to_string(),
            "--rpc-addr".into(),
            "127.0.0.1:8545".into(),
            "--p2p-addr".into(),
            format!("/ip4/{}/tcp/30303", lab.addr(i)),
            "--log".into(),
            "warn".into(),
        ];
        for j in (0..N).filter(|j| *j != i) {
            let id = emc_p2p::peer_id_of(emc_node::p2p_seed_of(&emc_crypto::ConsensusKey::dev(
                j as u32,
            )));
            a.extend([
                "--bootnode".into(),
                format!("/ip4/{}/tcp/30303/p2p/{id}", lab.addr(j)),
            ]);
        }
        let child = lab
            .emc(i, &a)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        lab.children.push(child);
    }
    let heights = |lab: &Lab| -> Vec<u64> { (0..N).map(|i| lab.height(i).unwrap_or(0)).collect() };
    wait("all four make blocks", 60, || {
        heights(&lab).iter().all(|h| *h >= 3)
    });

    // Split {0, 1} | {2, 3}: neither side holds more than 2/3 of the power.
    lab.attach(2, 'b');
    lab.attach(3, 'b');
    std::thread::sleep(Duration::from_secs(2));
    let split = *heights(&lab).iter().max().expect("heights");
    std::thread::sleep(Duration::from_secs(6));
    let during = *heights(&lab).iter().max().expect("heights");
    assert!(
        during <= split + 1,
        "a side made progress while split: {split} -> {during}"
    );

    // Heal: consensus resumes and everyone agrees.
    lab.attach(2, 'a');
    lab.attach(3, 'a');
    wait("progress after the heal", 120, || {
        heights(&lab).iter().all(|h| *h >= during + 3)
    });
    let top = *heights(&lab).iter().min().expect("heights");
    for h in 1..=top {
        let hashes: Vec<_> = (0..N).map(|i| lab.hash_at(i, h)).collect();
        assert!(
            hashes.windows(2).all(|w| w[0] == w[1] && w[0].is_some()),
            "fork at {h}: {hashes:?}"
        );
    }
}
