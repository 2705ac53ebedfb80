//! `/emc/pool/1` (member → head member): how a pool member gets into the pool's Ray
//! cluster. The member sends `Join { pool }`; the head member answers `Admit` with the
//! cluster's GCS address and the lease token, or `Refused` with the reason. The
//! stream is libp2p's: noise-encrypted and authenticated by both peers' keys, so the
//! head knows which node asks (its peer id is its node key) and the token never
//! travels in clear. The head admits only nodes the Pools module lists as members.

use super::{read_frame, write_frame, MAX_SMALL_FRAME};
use crate::CallError;
use borsh::{BorshDeserialize, BorshSerialize};
use futures::{AsyncRead, AsyncWrite};

#[derive(BorshSerialize, BorshDeserialize, Clone, Debug, PartialEq, Eq)]
pub enum PoolMsg {
    Join { pool: u64 },
    Admit { gcs: String, token: String },
    Refused(String),
}

/// The member's side: asks to join `pool`; the GCS address and token.
pub async fn join<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    pool: u64,
) -> Result<(String, String), CallError> {
    write_frame(s, &PoolMsg::Join { pool }).await?;
    match read_frame::<_, PoolMsg>(s, MAX_SMALL_FRAME).await? {
        Some(PoolMsg::Admit { gcs, token }) => Ok((gcs, token)),
        Some(PoolMsg::Refused(why)) => Err(CallError::Forbidden(why)),
        Some(other) => Err(CallError::Runtime(format!(
            "the head member answered a join with {other:?}"
        ))),
        None => Err(CallError::Unavailable(
            "the head member closed the stream".into(),
        )),
    }
}

/// The head's side of one request: `admit(pool)` decides.
pub async fn serve<S, F, Fut>(s: &mut S, admit: F) -> Result<(), CallError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(String, String), String>>,
{
    let Some(PoolMsg::Join { pool }) = read_frame::<_, PoolMsg>(s, MAX_SMALL_FRAME).await? else {
        return Err(CallError::BadRequest("expected a join".into()));
    };
    let answer = match admit(pool).await {
        Ok((gcs, token)) => PoolMsg::Admit { gcs, token },
        Err(why) => PoolMsg::Refused(why),
    };
    write_frame(s, &answer).await
}
