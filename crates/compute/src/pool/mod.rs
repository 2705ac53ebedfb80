//! The pool runtime: a pool member's Ray node, driven by its `emc node`, and the head
//! member's clients of Ray's Jobs and state APIs.
//!
//! A pool is a Ray cluster, never a scheduler of EMC's own: the head member runs
//! `ray start --head`, every other member `ray start --address=<head>:<gcs port>`
//! with its declared CPUs, GPUs and memory ([`ray`]). Token authentication is on
//! (`RAY_AUTH_MODE=token`, Ray 2.52 and later): every RPC and HTTP entry point of the
//! cluster wants the pool's token, which the head member makes per lease and hands
//! to members over their authenticated connection, never on chain.
//!
//! Ports. The GCS port is pinned (members must name it) and is the one port members
//! reach across machines. The dashboard port (Ray's HTTP server: the Jobs API, the
//! state API, the dashboard) is pinned and bound to the head member's loopback only:
//! its one client is the head member's `emc node`, which routers reach over EMC's own
//! authenticated connection, so nothing outside the pool can even try the token. Ray's
//! worker ports are moved out of the range below 32,768 that EMC's own listeners use.
//!
//! Metering ([`metering`]) reads Ray's own per-node accounting, the state API's task
//! records: a task's resources times the time it ran, per node, per job.

pub mod head;
pub mod jobs;
pub mod member;
pub mod metering;
pub mod outputs;
pub mod ray;
