//! `emc bench gateway`: EMC's routers against nginx, with wrk, in one run.
//!
//! One local backend (a small axum server answering `GET /hello`) is reached four
//! ways, each driven by `wrk` with the same threads, connections and duration:
//!
//! | path | hops |
//! |---|---|
//! | direct | wrk → backend |
//! | nginx | wrk → nginx (Debian package, `least_conn` upstream, keep-alive) → backend |
//! | 1 router | wrk → router gateway → computing node (libp2p) → backend |
//! | 2 routers | wrk → router → peer router (mesh relay) → computing node → backend |
//!
//! The EMC paths are a devnet of one validator, two peered routers and one computing
//! node serving the backend as an http-app at 1 wei per call, dialing router 0 only;
//! every request carries the devnet's API key, so each is authenticated, reserved
//! against escrow, forwarded, signed by the node, checked (signature, request hash,
//! result hash) and metered into a receipt. The paths are measured in interleaved
//! rounds so the machine's noise falls on all of them alike.

use crate::cmd::devnet::{dev_api_key, launch, stop_all, DevnetArgs, Extra};
use anyhow::{bail, Context, Result};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct GatewayBench {
    /// Seconds each path is driven per round.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Rounds over the four paths.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// wrk's open connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// wrk's threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// First port to use; the bench takes a range above it.
    #[arg(long, default_value_t = 19_000)]
    port: u16,
}

struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// `wrk -d SECS` against `url`; parses requests/s and the latency percentiles.
fn wrk(a: &GatewayBench, url: &str, header: Option<&str>, secs: u64) -> Result<Figures> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t",
        &a.threads.to_string(),
        "-c",
        &a.connections.to_string(),
        "-d",
        &format!("{secs}s"),
        "--latency",
    ]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let ms = |s: &str| -> Option<f64> {
        let s = s.trim();
        if let Some(v) = s.strip_suffix("us") {
            v.parse::<f64>().ok().map(|v| v / 1e3)
        } else if let Some(v) = s.strip_suffix("ms") {
            v.parse().ok()
        } else if let Some(v) = s.strip_suffix('s') {
            v.parse::<f64>().ok().map(|v| v * 1e3)
        } else {
            None
        }
    };
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix).map(str::to_string))
    };
    let rps = field("Requests/sec:")
        .and_then(|v| v.trim().parse().ok())
        .context("wrk printed no Requests/sec")?;
    let p50 = field("50%").and_then(|v| ms(&v)).context("no p50")?;
    let p99 = field("99%").and_then(|v| ms(&v)).context("no p99")?;
    // "Non-2xx or 3xx responses: N" and "Socket errors: ..." count as errors.
    let errors = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(Figures {
        rps,
        p50_ms: p50,
        p99_ms: p99,
        errors,
    })
}

/// The benches' backend, on its own two-thread runtime: `GET /hello` answers a few
/// bytes, `POST /echo` the body it was sent.
pub(super) fn backend() -> Result<std::net::SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    l.set_nonblocking(true)?;
    let addr = l.local_addr()?;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).expect("listener");
            let app = axum::Router::new()
                .route(
                    "/hello",
                    axum::routing::get(|| async { "hello from the backend\n" }),
                )
                .route(
                    "/echo",
                    axum::routing::post(|body: bytes::Bytes| async move { body }),
                );
            let _ = axum::serve(l, app).await;
        });
    });
    Ok(addr)
}

struct Nginx(std::process::Child);
impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, so the master stops its workers too (SIGKILL would orphan them
        // on the port).
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn nginx(dir: &std::path::Path, listen: u16, backend: std::net::SocketAddr) -> Result<Nginx> {
    let d = dir.display();
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           upstream backend {{ least_conn; server {backend}; keepalive 64; }}\n\
           server {{ listen 127.0.0.1:{listen};\n    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let child = Command::new("nginx")
        .args(["-c", &path.display().to_string(), "-p", &d.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting nginx (apt-get install nginx-light)")?;
    Ok(Nginx(child))
}

fn wait_ok(url: &str, header: Option<&str>, within: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let mut req = ureq::get(url).timeout(Duration::from_secs(5));
        if let Some(h) = header {
            let (k, v) = h.split_once(": ").unwrap_or((h, ""));
            req = req.set(k, v);
        }
        if req.call().is_ok() {
            return Ok(());
        }
        if start.elapsed() > within {
            bail!("{url} did not answer within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

pub fn run(a: GatewayBench) -> Result<()> {
    for tool in ["wrk", "nginx"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            bail!("{tool} is not installed (Debian: apt-get install nginx-light wrk)");
        }
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; build with --release for meaningful figures");
    }
    let tmp = tempfile::tempdir()?;
    let back = backend()?;
    let _nginx = nginx(tmp.path(), a.port + 90, back)?;
    let args = DevnetArgs {
        routers: 2,
        compute_nodes: 1,
        gateway_port: Some(a.port + 60),
        ..DevnetArgs::bench(tmp.path().join("net"), a.port, 1)
    };
    let extra = Extra {
        compute_apps: Some(vec![format!("bench=http://{back},price=1")]),
        compute_router: Some(0),
        // An http-app waits on its backend, not on the node's CPUs: room for every
        // connection wrk opens.
        compute_args: vec![
            "--capacity".into(),
            (a.connections * 2).to_string(),
            "--max-queue".into(),
            (a.connections * 4).to_string(),
        ],
        ..Default::default()
    };
    let (_, genesis, mut procs) = launch(&args, &extra)?;
    let result = (|| -> Result<()> {
        let key = dev_api_key(genesis.chain_id)?;
        let auth = format!("Authorization: Bearer {key}");
        let paths: [(&str, String, Option<&str>); 4] = [
            ("direct", format!("http://{back}/hello"), None),
            (
                "nginx",
                format!("http://127.0.0.1:{}/hello", a.port + 90),
                None,
            ),
            (
                "1 router",
                format!("http://{}/call/bench/hello", args.gateway(0)),
                Some(auth.as_str()),
            ),
            (
                "2 routers",
                format!("http://{}/call/bench/hello", args.gateway(1)),
                Some(auth.as_str()),
            ),
        ];
        for (name, url, h) in &paths {
            wait_ok(url, *h, Duration::from_secs(120))
                .with_context(|| format!("waiting for the {name} path"))?;
        }
        println!(
            "EMC gateway benchmark: wrk -t{} -c{} -d{}s, {} interleaved rounds, backend GET /hello",
            a.threads, a.connections, a.secs, a.rounds
        );
        let mut all: Vec<Vec<Figures>> = (0..paths.len()).map(|_| Vec::new()).collect();
        for (i, (_, url, h)) in paths.iter().enumerate() {
            wrk(&a, url, *h, 2)?; // warm-up
            let _ = i;
        }
        for _ in 0..a.rounds {
            for (i, (_, url, h)) in paths.iter().enumerate() {
                all[i].push(wrk(&a, url, *h, a.secs)?);
            }
        }
        let mean =
            |v: &[Figures], f: fn(&Figures) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
        let nginx_rps = mean(&all[1], |f| f.rps);
        println!(
            "{:<10} {:>12} {:>10} {:>10} {:>10} {:>8}",
            "path", "requests/s", "p50 ms", "p99 ms", "vs nginx", "errors"
        );
        for (i, (name, _, _)) in paths.iter().enumerate() {
            let rps = mean(&all[i], |f| f.rps);
            println!(
                "{:<10} {:>12.0} {:>10.2} {:>10.2} {:>9.2}x {:>8}",
                name,
                rps,
                mean(&all[i], |f| f.p50_ms),
                mean(&all[i], |f| f.p99_ms),
                nginx_rps / rps,
                all[i].iter().map(|f| f.errors).sum::<u64>()
            );
        }
        println!("(vs nginx: nginx's requests/s over the path's; 1.00x is nginx's throughput)");
        Ok(())
    })();
    stop_all(&mut procs);
    result
}
