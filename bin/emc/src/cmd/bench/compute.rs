//! `emc bench compute`: each runtime called directly and through a computing node's
//! HTTP port (the node's overhead: admission, metering, hashing and signing the
//! result, HTTP), in one run, side by side; embeddings per second, chat tokens per
//! second, and E's run-to-run spread.
//!
//! The HTTP app is a small axum server on loopback started by the bench (a real HTTP
//! server the node forwards to). The models need `scripts/fetch-models`; without them
//! their rows are skipped with a note.

use anyhow::{Context, Result};
use emc_compute::agent::{Agent, AppSpec};
use emc_protocol::poc::{self, Behaviour, PocParams};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args)]
pub struct ComputeBench {
    /// Calls per latency measurement.
    #[arg(long, default_value_t = 200)]
    calls: usize,
    /// Concurrent callers for the throughput measurement.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Tokens to generate per chat call.
    #[arg(long, default_value_t = 64)]
    tokens: usize,
    /// PoC runs for E's spread.
    #[arg(long, default_value_t = 5)]
    poc_runs: usize,
}

struct Row {
    name: String,
    direct: Stats,
    node: Stats,
}

#[derive(Clone, Copy, Default)]
struct Stats {
    p50_ms: f64,
    p99_ms: f64,
    per_s: f64,
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Latency over `n` sequential calls, throughput with `c` concurrent callers.
async fn measure<F, Fut>(n: usize, c: usize, f: F) -> Result<Stats>
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    f().await?; // warm up
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f().await?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let t = Instant::now();
    let per = n.div_ceil(c);
    let mut tasks = Vec::new();
    for _ in 0..c {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                f().await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let per_s = (per * c) as f64 / t.elapsed().as_secs_f64();
    Ok(Stats {
        p50_ms: percentile(&mut lat.clone(), 0.5),
        p99_ms: percentile(&mut lat, 0.99),
        per_s,
    })
}

pub fn run(a: ComputeBench) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(bench(a))
}

async fn bench(a: ComputeBench) -> Result<()> {
    // The local HTTP app.
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: bytes::Bytes| async move { body }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_addr = l.local_addr()?;
    tokio::spawn(async move { axum::serve(l, app).await });

    let models = emc_compute::models::minilm_dir()
        .join("model.safetensors")
        .exists()
        && emc_compute::models::smollm_gguf().exists();
    let job = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crates/compute/jobs/primes.wat"
    );
    let mut specs = vec![
        format!("http=http://{app_addr}"),
        format!("primes=wasm:{job}"),
    ];
    if models {
        specs.push("embed=builtin:minilm".into());
        specs.push("chat=builtin:smollm2".into());
    } else {
        println!(
            "(models not in {}: run scripts/fetch-models; their rows are skipped)",
            emc_compute::models::model_dir().display()
        );
    }
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as u32;
    let mut agent = Agent::new(emc_crypto::ConsensusKey::from_seed([1; 32]), cpus * 4, 1024);
    let mut runtimes = std::collections::BTreeMap::new();
    for s in &specs {
        let spec: AppSpec = s.parse()?;
        let rt = spec.build().with_context(|| spec.name.clone())?;
        runtimes.insert(spec.name.clone(), rt.clone());
        agent.add_app(&spec, rt);
    }
    let agent = Arc::new(agent);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let node_addr = l.local_addr()?;
    emc_compute::server::serve(
        l,
        agent,
        emc_compute::server::limits(),
        std::future::pending(),
    );
    let client = reqwest::Client::new();
    let (n, c) = (a.calls, a.concurrency);
    let mut rows = Vec::new();

    // HTTP app: a 1 KiB echo.
    let payload = bytes::Bytes::from(vec![b'x'; 1024]);
    let post = |url: String, body: bytes::Bytes| {
        let client = client.clone();
        move || {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            async move {
                let r = client.post(url).body(body).send().await?;
                anyhow::ensure!(r.status().is_success(), "status {}", r.status());
                r.bytes().await?;
                Ok(())
            }
        }
    };
    rows.push(Row {
        name: "http-app echo 1 KiB".into(),
        direct: measure(
            n,
            c,
            post(format!("http://{app_addr}/echo"), payload.clone()),
        )
        .await?,
        node: measure(
            n,
            c,
            post(format!("http://{node_addr}/call/http/echo"), payload),
        )
        .await?,
    });

    // WASM: primes below 10,000.
    let wasm = runtimes["primes"].clone();
    let direct_wasm = move || {
        let wasm = wasm.clone();
        async move {
            let call = emc_compute::runtime::Call {
                id: alloy_primitives::B256::ZERO,
                app: "primes".into(),
                method: "POST".into(),
                path: "/".into(),
                content_type: None,
                body: bytes::Bytes::from_static(b"10000"),
                max_units: emc_protocol::call::UNLIMITED,
            };
            let mut r = wasm.call(call).await?;
            while r.chunks.recv().await.is_some() {}
            Ok(())
        }
    };
    rows.push(Row {
        name: "wasm primes<10000".into(),
        direct: measure(n, c, direct_wasm).await?,
        node: measure(
            n,
            c,
            post(
                format!("http://{node_addr}/call/primes"),
                bytes::Bytes::from_static(b"10000"),
            ),
        )
        .await?,
    });

    let mut extra = Vec::new();
    if models {
        let embed_body = |inputs: usize| {
            let v: Vec<String> = (0..inputs)
                .map(|i| format!("Sentence number {i} about computing networks."))
                .collect();
            bytes::Bytes::from(serde_json::json!({"model": "embed", "input": v}).to_string())
        };
        let direct = |app: &str, path: &'static str, body: bytes::Bytes| {
            let rt = runtimes[app].clone();
            move || {
                let (rt, body) = (rt.clone(), body.clone());
                async move {
                    let call = emc_compute::runtime::Call {
                        id: alloy_primitives::B256::ZERO,
                        app: String::new(),
                        method: "POST".into(),
                        path: path.into(),
                        content_type: None,
                        body,
                        max_units: emc_protocol::call::UNLIMITED,
                    };
                    let mut r = rt.call(call).await?;
                    while r.chunks.recv().await.is_some() {}
                    Ok(())
                }
            }
        };
        let en = (n / 4).max(10);
        rows.push(Row {
            name: "embeddings, 1 sentence".into(),
            direct: measure(en, c, direct("embed", "/v1/embeddings", embed_body(1))).await?,
            node: measure(
                en,
                c,
                post(format!("http://{node_addr}/v1/embeddings"), embed_body(1)),
            )
            .await?,
        });
        let batch = measure(10, 1, direct("embed", "/v1/embeddings", embed_body(32))).await?;
        extra.push(format!(
            "embeddings per second, batches of 32 on one caller: {:.0}",
            batch.per_s * 32.0
        ));
        let chat_body = bytes::Bytes::from(
            serde_json::json!({"model": "chat", "max_tokens": a.tokens, "messages": [{"role": "user", "content": "Write a long story about a robot who learns to paint."}]})
                .to_string(),
        );
        let cn = 5;
        let d = measure(
            cn,
            1,
            direct("chat", "/v1/chat/completions", chat_body.clone()),
        )
        .await?;
        let v = measure(
            cn,
            1,
            post(format!("http://{node_addr}/v1/chat/completions"), chat_body),
        )
        .await?;
        extra.push(format!(
            "chat, {} tokens: {:.1} tokens/s direct, {:.1} through the node (p50 {:.0} ms vs {:.0} ms)",
            a.tokens,
            a.tokens as f64 * 1e3 / d.p50_ms,
            a.tokens as f64 * 1e3 / v.p50_ms,
            d.p50_ms,
            v.p50_ms
        ));
    }

    println!(
        "\n{:<26} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "runtime",
        "direct p50",
        "node p50",
        "direct p99",
        "node p99",
        "direct/s",
        "node/s",
        "overhead"
    );
    for r in &rows {
        println!(
            "{:<26} {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>10.0} {:>10.0} {:>8.2}ms",
            r.name,
            r.direct.p50_ms,
            r.node.p50_ms,
            r.direct.p99_ms,
            r.node.p99_ms,
            r.direct.per_s,
            r.node.per_s,
            r.node.p50_ms - r.direct.p50_ms
        );
    }
    println!("(latency: {n} sequential calls; per second: {c} concurrent callers)");
    for e in extra {
        println!("{e}");
    }

    // E's spread, and the cost of checking.
    let params = PocParams::default();
    let mut es = Vec::new();
    let mut verify_pct = Vec::new();
    for r in 0..a.poc_runs.max(2) {
        let seed = alloy_primitives::keccak256((r as u64).to_be_bytes());
        let t = Instant::now();
        let proof = tokio::task::spawn_blocking(move || {
            poc::prove(seed, params, cpus as usize, Behaviour::Honest)
        })
        .await??;
        let wall = t.elapsed();
        let asked = poc::sample(&params, alloy_primitives::keccak256(seed));
        let openings = proof.open(&asked)?;
        let t = Instant::now();
        poc::verify(seed, &params, proof.root(), &asked, &openings)?;
        verify_pct.push(100.0 * t.elapsed().as_secs_f64() / wall.as_secs_f64());
        es.push(poc::score(&params, wall) as f64);
    }
    let mean = es.iter().sum::<f64>() / es.len() as f64;
    let sd = (es.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / es.len() as f64).sqrt();
    let (lo, hi) = es
        .iter()
        .fold((f64::MAX, 0f64), |(l, h), e| (l.min(*e), h.max(*e)));
    println!(
        "PoC E over {} runs on {cpus} threads: mean {mean:.0} steps/ms, min {lo:.0}, max {hi:.0}, sd/mean {:.1}%",
        es.len(),
        100.0 * sd / mean,
    );
    println!(
        "PoC checking cost: {:.2}% of the prover's wall time on {cpus} threads (mean), {:.2}% of its work in hash steps",
        verify_pct.iter().sum::<f64>() / verify_pct.len() as f64,
        100.0 * params.verify_steps() as f64 / params.total_steps() as f64
    );
    Ok(())
}
