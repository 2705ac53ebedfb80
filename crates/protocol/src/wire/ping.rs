//! `/emc/ping/1`: round trips, 8 bytes out and the same 8 back.

use super::io;
use crate::CallError;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::time::{Duration, Instant};

/// The answering side: echoes every 8 bytes until the stream ends.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<(), CallError> {
    let mut b = [0u8; 8];
    loop {
        if s.read_exact(&mut b).await.is_err() {
            return Ok(());
        }
        s.write_all(&b).await.map_err(io)?;
        s.flush().await.map_err(io)?;
    }
}

/// One round trip; `seq` tells one ping from the next.
pub async fn ping<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    seq: u64,
) -> Result<Duration, CallError> {
    let t = Instant::now();
    let out = seq.to_le_bytes();
    s.write_all(&out).await.map_err(io)?;
    s.flush().await.map_err(io)?;
    let mut back = [0u8; 8];
    s.read_exact(&mut back).await.map_err(io)?;
    if back != out {
        return Err(CallError::BadRequest("the ping came back changed".into()));
    }
    Ok(t.elapsed())
}
