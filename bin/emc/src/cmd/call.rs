//! `emc gateway call`: one call through a gateway, plain or sealed end to end
//! (`--sealed`: the body is sealed to the node with HPKE and the reply opened here, so
//! the routers carry only ciphertext; see `emc_client::sealed`). The reply body goes to
//! stdout; the node, the call id and the charge to stderr.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};

#[derive(clap::Args)]
pub struct CallArgs {
    /// The gateway's base URL (`http://127.0.0.1:8080`).
    #[arg(long)]
    pub gateway: String,
    /// The API key (`emc gateway key` or `emc gateway signin` printed it), or
    /// EMC_API_KEY.
    #[arg(long, env = "EMC_API_KEY", hide_env_values = true)]
    pub key: String,
    /// The app to call.
    pub app: String,
    /// The path inside the app.
    #[arg(default_value = "/")]
    pub path: String,
    /// The request body; `@file` reads a file, `-` standard input [default: empty].
    #[arg(long, short = 'd')]
    pub data: Option<String>,
    #[arg(long, default_value = "application/json")]
    pub content_type: String,
    /// Seal the body to the node and open its reply here: no router can read either.
    #[arg(long)]
    pub sealed: bool,
}

fn body_of(data: &Option<String>) -> Result<Vec<u8>> {
    Ok(match data.as_deref() {
        None => Vec::new(),
        Some("-") => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b)?;
            b
        }
        Some(s) if s.starts_with('@') => {
            std::fs::read(&s[1..]).with_context(|| format!("reading {}", &s[1..]))?
        }
        Some(s) => s.as_bytes().to_vec(),
    })
}

fn refused(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, r) => {
            anyhow::anyhow!(
                "the gateway answered {code}: {}",
                r.into_string().unwrap_or_default()
            )
        }
        other => anyhow::anyhow!("cannot reach the gateway: {other}"),
    }
}

pub fn call(a: CallArgs) -> Result<()> {
    let base = a.gateway.trim_end_matches('/');
    let body = body_of(&a.data)?;
    let path = if a.path.starts_with('/') {
        a.path.clone()
    } else {
        format!("/{}", a.path)
    };
    let url = format!("{base}/call/{}{path}", a.app);
    let auth = format!("Bearer {}", a.key);
    if !a.sealed {
        let r = ureq::post(&url)
            .set("Authorization", &auth)
            .set("Content-Type", &a.content_type)
            .send_bytes(&body)
            .map_err(refused)?;
        report(&r);
        let mut out = Vec::new();
        r.into_reader().read_to_end(&mut out)?;
        std::io::stdout().write_all(&out)?;
        return Ok(());
    }
    let offer: serde_json::Value = ureq::post(&format!("{base}/v1/sealed/offer"))
        .set("Authorization", &auth)
        .send_json(serde_json::json!({ "app": a.app }))
        .map_err(refused)?
        .into_json()?;
    let offer = emc_client::sealed::Offer::from_json(&offer)?;
    let mut sealed = emc_client::sealed::seal(&offer, &path, &a.content_type, &body)?;
    let r = ureq::post(&url)
        .set("Authorization", &auth)
        .set("x-emc-sealed", &sealed.call.to_string())
        .send_json(&sealed.body)
        .map_err(refused)?;
    report(&r);
    let node: alloy_primitives::B256 = r
        .header("x-emc-node")
        .and_then(|n| n.parse().ok())
        .context("the gateway did not say which node answered")?;
    let Some(opener) = sealed.openers.get_mut(&node) else {
        bail!("node {node} answered, but the call was not sealed to it");
    };
    // Opened as it streams: each record is checked as it arrives.
    let mut reader = r.into_reader();
    let mut buf = vec![0u8; 64 << 10];
    let mut stdout = std::io::stdout();
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        stdout.write_all(&opener.push(&buf[..n])?)?;
        stdout.flush()?;
    }
    opener.finish()?;
    Ok(())
}

fn report(r: &ureq::Response) {
    let h = |n: &str| r.header(n).unwrap_or("-").to_string();
    eprintln!(
        "node {} call {} charge {}",
        h("x-emc-node"),
        h("x-emc-call"),
        h("x-emc-charge")
    );
}
