//! `/emc/compute-load/1`: a node's apps and load, reported to a router it dialed.

use super::{read_frame, unexpected, write_frame, MAX_SMALL_FRAME};
use crate::node::{AppInfo, Load, NodeId, SealingKey};
use crate::CallError;
use borsh::{BorshDeserialize, BorshSerialize};
use futures::{AsyncRead, AsyncWrite};
use std::time::Duration;

/// How often a node reports its load to its routers.
pub const EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, BorshSerialize, BorshDeserialize)]
pub enum LoadMsg {
    Hello {
        node: NodeId,
        apps: Vec<AppInfo>,
        load: Load,
        /// The key sealed calls to the node are sealed to, with its binding.
        sealing: Option<SealingKey>,
    },
    Load(Load),
}

/// The node's side: `Hello`, then `load()` every `every`, until the stream breaks.
pub async fn report<S: AsyncWrite + Unpin>(
    s: &mut S,
    (node, apps, sealing): (NodeId, Vec<AppInfo>, Option<SealingKey>),
    load: impl Fn() -> Load,
    every: Duration,
) -> Result<(), CallError> {
    write_frame(
        s,
        &LoadMsg::Hello {
            node,
            apps,
            load: load(),
            sealing,
        },
    )
    .await?;
    loop {
        tokio::time::sleep(every).await;
        write_frame(s, &LoadMsg::Load(load())).await?;
    }
}

/// The node's hello, as the router reads it.
pub struct Hello {
    pub node: NodeId,
    pub apps: Vec<AppInfo>,
    pub load: Load,
    pub sealing: Option<SealingKey>,
}

/// The router's side, first frame: who the node is and what it serves.
pub async fn read_hello<S: AsyncRead + Unpin>(s: &mut S) -> Result<Hello, CallError> {
    match read_frame(s, MAX_SMALL_FRAME).await? {
        Some(LoadMsg::Hello {
            node,
            apps,
            load,
            sealing,
        }) => Ok(Hello {
            node,
            apps,
            load,
            sealing,
        }),
        Some(other) => Err(unexpected("a hello", &other)),
        None => Err(CallError::Unavailable("the node closed the stream".into())),
    }
}

/// The router's side, every later frame: the node's load; `Ok(None)` when the stream
/// ended.
pub async fn read_load<S: AsyncRead + Unpin>(s: &mut S) -> Result<Option<Load>, CallError> {
    match read_frame(s, MAX_SMALL_FRAME).await? {
        Some(LoadMsg::Load(l)) => Ok(Some(l)),
        Some(other) => Err(unexpected("a load report", &other)),
        None => Ok(None),
    }
}
