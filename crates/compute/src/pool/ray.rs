//! One member's Ray node as a child process: `ray start --block`, so the node lives as
//! long as the process, in a process group of its own, so stopping it stops every
//! process Ray started for it (raylet, GCS, dashboard, workers).

use emc_protocol::CallError;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The Ray custom resource naming an EMC node: one unit on its own Ray node.
pub fn node_resource(node: alloy_primitives::B256) -> String {
    format!("emc_node_{}", alloy_primitives::hex::encode(node))
}

/// Ray's worker processes bind here: just below Linux's ephemeral range (32,768 and
/// up, where outgoing connections and port-0 listeners land) and above the ports
/// EMC's tests pin (10,000 to 32,000). Ray's default (10,002 to 19,999) is where EMC
/// listeners live.
pub const WORKER_PORTS: (u16, u16) = (32_000, 32_767);

/// Where Ray is installed: the `bin` folder of a Python environment with `ray`.
#[derive(Clone, Debug)]
pub struct RayInstall {
    pub bin: PathBuf,
}

impl RayInstall {
    pub fn new(bin: impl Into<PathBuf>) -> Result<Self, CallError> {
        let bin = bin.into();
        if !bin.join("ray").is_file() {
            return Err(CallError::Config(format!(
                "no `ray` in {} (install it with `pip install \"ray[default]\"`)",
                bin.display()
            )));
        }
        Ok(RayInstall { bin })
    }

    pub fn python(&self) -> PathBuf {
        self.bin.join("python")
    }
}

/// What a member brings, as it declared on chain, and the Ray custom resource that
/// names its EMC node (one unit of `emc_node_<node id>`), so Ray's node list maps
/// Ray's node ids to EMC's.
#[derive(Clone, Debug)]
pub struct Resources {
    pub cpus: u32,
    pub gpus: u32,
    pub memory_mb: u64,
    pub name: Option<String>,
}

/// The head's pinned ports: the GCS (members connect to it), the dashboard (the
/// Jobs and state APIs, on loopback only) and Ray Client's server (unused by EMC,
/// pinned so Ray's default, 10,001, stays free).
#[derive(Clone, Copy, Debug)]
pub struct HeadPorts {
    pub gcs: u16,
    pub dashboard: u16,
    pub client: u16,
}

/// Every node's own pinned port: its dashboard agent's HTTP port (Ray's default,
/// 52,365, would make two nodes on one machine collide).
#[derive(Clone, Copy, Debug)]
pub struct NodePorts {
    pub agent: u16,
}

/// A running Ray node.
pub struct RayNode {
    child: tokio::process::Child,
    /// The dashboard's URL, on the head.
    pub dashboard: Option<String>,
}

impl RayNode {
    /// The head: `ray start --head` on `ip` with its GCS and dashboard ports.
    pub fn head(
        ray: &RayInstall,
        dir: &Path,
        ip: &str,
        ports: HeadPorts,
        own: NodePorts,
        res: &Resources,
        token: &str,
    ) -> Result<RayNode, CallError> {
        let mut args = vec![
            "--head".to_string(),
            format!("--port={}", ports.gcs),
            format!("--ray-client-server-port={}", ports.client),
            "--dashboard-host=127.0.0.1".into(),
            format!("--dashboard-port={}", ports.dashboard),
            "--include-dashboard=true".into(),
            format!("--temp-dir={}", dir.display()),
        ];
        args.extend(common_args(ip, own, res));
        let child = spawn(ray, &args, token, dir)?;
        Ok(RayNode {
            child,
            dashboard: Some(format!("http://127.0.0.1:{}", ports.dashboard)),
        })
    }

    /// A member: `ray start --address=<gcs>` with its resources.
    pub fn member(
        ray: &RayInstall,
        dir: &Path,
        ip: &str,
        gcs: &str,
        own: NodePorts,
        res: &Resources,
        token: &str,
    ) -> Result<RayNode, CallError> {
        let mut args = vec![format!("--address={gcs}")];
        args.extend(common_args(ip, own, res));
        let child = spawn(ray, &args, token, dir)?;
        Ok(RayNode {
            child,
            dashboard: None,
        })
    }

    /// The process group's id (the `ray start` process's).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the node's `ray start` still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the node: SIGTERM to its process group, SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            signal_group(pid, Signal::SIGTERM);
            if tokio::time::timeout(grace, self.child.wait())
                .await
                .is_err()
            {
                signal_group(pid, Signal::SIGKILL);
            }
            // Ray's daemons may outlive `ray start`; the group goes whole.
            signal_group(pid, Signal::SIGKILL);
        }
        let _ = self.child.wait().await;
    }
}

impl Drop for RayNode {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            signal_group(pid, Signal::SIGKILL);
        }
    }
}

fn common_args(ip: &str, own: NodePorts, res: &Resources) -> Vec<String> {
    vec![
        "--block".into(),
        format!("--dashboard-agent-listen-port={}", own.agent),
        format!("--node-ip-address={ip}"),
        format!("--num-cpus={}", res.cpus),
        format!("--num-gpus={}", res.gpus),
        format!("--memory={}", res.memory_mb * 1024 * 1024),
        format!(
            "--resources={}",
            match &res.name {
                Some(n) => serde_json::json!({ n: 1 }),
                None => serde_json::json!({}),
            }
        ),
        format!("--min-worker-port={}", WORKER_PORTS.0),
        format!("--max-worker-port={}", WORKER_PORTS.1),
        "--disable-usage-stats".into(),
    ]
}

/// Starts `ray start`, its output in `<dir>/ray-start.log` (never the node's own
/// stderr: Ray's daemons keep what they inherit open long after the node stops).
fn spawn(
    ray: &RayInstall,
    args: &[String],
    token: &str,
    dir: &Path,
) -> Result<tokio::process::Child, CallError> {
    let config = |e: std::io::Error| CallError::Config(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(config)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("ray-start.log"))
        .map_err(config)?;
    // `setpriv --pdeathsig` (util-linux) makes the kernel signal `ray start` when the
    // thread that started it dies, so a member's `emc node` killed with SIGKILL takes
    // its Ray node with it (`ray start --block` stops what it started on SIGTERM).
    let mut cmd = match which_setpriv() {
        Some(setpriv) => {
            let mut c = tokio::process::Command::new(setpriv);
            c.args(["--pdeathsig", "TERM", "--"])
                .arg(ray.bin.join("ray"));
            c
        }
        None => tokio::process::Command::new(ray.bin.join("ray")),
    };
    cmd.arg("start")
        .args(args)
        .env("RAY_AUTH_MODE", "token")
        .env("RAY_AUTH_TOKEN", token)
        // Ray's job drivers and workers find `python` (and its packages) first here.
        .env("PATH", path_with(&ray.bin))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().map_err(config)?))
        .stderr(Stdio::from(log))
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CallError::Config(format!("starting `ray start`: {e}")))
}

fn which_setpriv() -> Option<PathBuf> {
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn path_with(bin: &Path) -> String {
    let rest = std::env::var("PATH").unwrap_or_default();
    format!("{}:{rest}", bin.display())
}

fn signal_group(pid: u32, sig: Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig);
}
