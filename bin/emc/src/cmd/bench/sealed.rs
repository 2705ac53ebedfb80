//! `emc bench sealed`: what sealing a call end to end costs, against the same call
//! in plain, side by side in one run.
//!
//! A devnet of one validator, one router and one computing node serving a local
//! backend (`POST /echo` answers the body it was sent) as an http-app at 1 wei per
//! call. `--clients` threads, each with its own keep-alive connection, call it for
//! `--secs` per round, the two ways interleaved over `--rounds`:
//!
//! * **plain**: `POST /call/echo/echo` with a `--body`-byte JSON body;
//! * **sealed**: what a client of `emc_client::sealed` does per call: ask the router
//!   for an offer, check the node's binding, seal the body with HPKE, send it, and
//!   open the sealed reply (the node opens the request and seals the reply);
//! * **offer**: the offer alone (`POST /v1/sealed/offer`), the round trip a sealed
//!   call adds before it is sent, so the rest of the difference is the sealing.
//!
//! Latency is per call as the client sees it (a sealed call's includes its offer);
//! throughput is calls completed per second across all clients.

use crate::cmd::devnet::{dev_api_key, launch, stop_all, DevnetArgs, Extra};
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct SealedBench {
    /// Seconds each way is driven per round.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Rounds over the two ways.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Request body size in bytes (the reply is the same size).
    #[arg(long, default_value_t = 1024)]
    body: usize,
    /// First port to use; the bench takes a range above it.
    #[arg(long, default_value_t = 19_400)]
    port: u16,
}

/// One client's way of making a call.
#[derive(Clone, Copy, PartialEq)]
enum Way {
    Plain,
    Sealed,
    Offer,
}

struct Client {
    agent: ureq::Agent,
    gateway: String,
    auth: String,
    body: Vec<u8>,
}

impl Client {
    /// One call; checks that the reply is the body sent.
    fn call(&self, way: Way) -> Result<()> {
        let url = format!("{}/call/echo/echo", self.gateway);
        let reply = match way {
            Way::Plain => {
                let r = self
                    .agent
                    .post(&url)
                    .set("Authorization", &self.auth)
                    .set("Content-Type", "application/json")
                    .send_bytes(&self.body)?;
                let mut out = Vec::new();
                r.into_reader().read_to_end(&mut out)?;
                out
            }
            Way::Sealed => self.sealed(&url)?,
            Way::Offer => {
                self.offer()?;
                return Ok(());
            }
        };
        if reply != self.body {
            bail!("the reply is not the body sent ({} bytes)", reply.len());
        }
        Ok(())
    }

    fn offer(&self) -> Result<emc_client::sealed::Offer> {
        let offer: serde_json::Value = self
            .agent
            .post(&format!("{}/v1/sealed/offer", self.gateway))
            .set("Authorization", &self.auth)
            .send_json(serde_json::json!({ "app": "echo" }))?
            .into_json()?;
        Ok(emc_client::sealed::Offer::from_json(&offer)?)
    }

    fn sealed(&self, url: &str) -> Result<Vec<u8>> {
        let offer = self.offer()?;
        let mut s = emc_client::sealed::seal(&offer, "/echo", "application/json", &self.body)?;
        let r = self
            .agent
            .post(url)
            .set("Authorization", &self.auth)
            .set("x-emc-sealed", &s.call.to_string())
            .send_json(&s.body)?;
        let node: alloy_primitives::B256 = r
            .header("x-emc-node")
            .and_then(|n| n.parse().ok())
            .context("no x-emc-node")?;
        let opener = s.openers.get_mut(&node).context("a node not sealed to")?;
        let mut raw = Vec::new();
        r.into_reader().read_to_end(&mut raw)?;
        let plain = opener.push(&raw)?;
        opener.finish()?;
        Ok(plain)
    }
}

struct Figures {
    calls_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// `clients` run `way` for `secs`; their latencies, sorted, and the errors.
fn drive(clients: &[Arc<Client>], way: Way, secs: f64) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = clients
        .iter()
        .map(|c| {
            let (c, stop) = (c.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut lat, mut errors) = (Vec::new(), 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match c.call(way) {
                        Ok(()) => lat.push(t.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in threads {
        let (l, e) = t.join().expect("a client thread");
        lat.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    Figures {
        calls_per_s: lat.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
    }
}

fn devnet(
    a: &SealedBench,
    back: std::net::SocketAddr,
    dir: &std::path::Path,
) -> (DevnetArgs, Extra) {
    let args = DevnetArgs {
        routers: 1,
        compute_nodes: 1,
        gateway_port: Some(a.port + 60),
        ..DevnetArgs::bench(dir.join("net"), a.port, 1)
    };
    let extra = Extra {
        compute_apps: Some(vec![format!("echo=http://{back},price=1")]),
        compute_router: Some(0),
        compute_args: vec![
            "--capacity".into(),
            (a.clients * 2).to_string(),
            "--max-queue".into(),
            (a.clients * 4).to_string(),
        ],
        ..Default::default()
    };
    (args, extra)
}

pub fn run(a: SealedBench) -> Result<()> {
    if a.clients == 0 || a.rounds == 0 || a.secs == 0 || a.body > 1 << 20 {
        bail!("--clients, --rounds and --secs must be positive, and --body at most 1 MiB");
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; build with --release for meaningful figures");
    }
    let tmp = tempfile::tempdir()?;
    let back = super::gateway::backend()?;
    let (args, extra) = devnet(&a, back, tmp.path());
    let (_, genesis, mut procs) = launch(&args, &extra)?;
    let result = (|| -> Result<()> {
        let auth = format!("Bearer {}", dev_api_key(genesis.chain_id)?);
        let text = "x".repeat(a.body.saturating_sub(12));
        let body = serde_json::json!({ "p": text }).to_string().into_bytes();
        let clients: Vec<Arc<Client>> = (0..a.clients)
            .map(|_| {
                Arc::new(Client {
                    agent: ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(30))
                        .build(),
                    gateway: format!("http://{}", args.gateway(0)),
                    auth: auth.clone(),
                    body: body.clone(),
                })
            })
            .collect();
        let ready = Instant::now();
        while let Err(e) = clients[0].call(Way::Sealed) {
            if ready.elapsed() > Duration::from_secs(120) {
                bail!("no sealed call went through in 120 s: {e}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        println!(
            "EMC sealed-call benchmark: {} clients, {}-byte bodies, {} s x {} interleaved rounds, one router, http-app echo",
            a.clients, body.len(), a.secs, a.rounds
        );
        drive(&clients, Way::Plain, 2.0); // warm-up
        drive(&clients, Way::Sealed, 2.0);
        let ways = [
            ("plain", Way::Plain),
            ("sealed", Way::Sealed),
            ("offer", Way::Offer),
        ];
        let mut all: Vec<Vec<Figures>> = vec![Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..a.rounds {
            for (i, (_, w)) in ways.iter().enumerate() {
                all[i].push(drive(&clients, *w, a.secs as f64));
            }
        }
        let mean =
            |v: &[Figures], f: fn(&Figures) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
        println!(
            "{:<8} {:>10} {:>10} {:>10} {:>8}",
            "way", "calls/s", "p50 ms", "p99 ms", "errors"
        );
        for (i, (name, _)) in ways.iter().enumerate() {
            println!(
                "{:<8} {:>10.0} {:>10.2} {:>10.2} {:>8}",
                name,
                mean(&all[i], |f| f.calls_per_s),
                mean(&all[i], |f| f.p50_ms),
                mean(&all[i], |f| f.p99_ms),
                all[i].iter().map(|f| f.errors).sum::<u64>()
            );
        }
        let p50 = |i: usize| mean(&all[i], |f| f.p50_ms);
        println!(
            "sealed adds {:.2} ms at p50 (the offer's round trip alone: {:.2} ms); plain's calls/s over sealed's: {:.2}x",
            p50(1) - p50(0),
            p50(2),
            mean(&all[0], |f| f.calls_per_s) / mean(&all[1], |f| f.calls_per_s)
        );
        Ok(())
    })();
    stop_all(&mut procs);
    result
}
