//! `/emc/compute/1`: a router's call and the node's reply, both sides.

use super::{
    expect, read_frame, unexpected, write_frame, DATA_CHUNK, MAX_CALL_FRAME, MAX_SMALL_FRAME,
};
use crate::call::{Call, Frame, Served};
use crate::result::SignedResult;
use crate::CallError;
use alloy_primitives::B256;
use borsh::{BorshDeserialize, BorshSerialize};
use futures::{AsyncRead, AsyncWrite};

#[derive(Debug, Clone, PartialEq, BorshSerialize, BorshDeserialize)]
pub enum CallMsg {
    Call {
        id: B256,
        app: String,
        method: String,
        path: String,
        content_type: Option<String>,
        body: Vec<u8>,
        max_units: u64,
    },
    Head {
        status: u16,
        content_type: String,
        streaming: bool,
    },
    Data(Vec<u8>),
    Done(SignedResult),
    Failed(String),
    Refused {
        status: u16,
        message: String,
    },
}

/// The node's side: serves calls with `serve`, one after another on the same stream,
/// until the router closes it (a router keeps idle streams to reuse, so a call costs
/// no stream negotiation).
pub async fn serve<S, F, Fut>(s: &mut S, serve: F) -> Result<(), CallError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Fn(Call) -> Fut,
    Fut: std::future::Future<Output = Result<Served, CallError>>,
{
    loop {
        let call = match read_frame(s, MAX_CALL_FRAME).await? {
            None => return Ok(()),
            Some(CallMsg::Call {
                id,
                app,
                method,
                path,
                content_type,
                body,
                max_units,
            }) => Call {
                id,
                app,
                method,
                path,
                content_type,
                body: body.into(),
                max_units,
            },
            Some(other) => return Err(unexpected("a call", &other)),
        };
        match serve(call).await {
            Ok(served) => send_reply(s, served).await?,
            Err(e) => {
                let refused = CallMsg::Refused {
                    status: e.status(),
                    message: e.to_string(),
                };
                write_frame(s, &refused).await?;
            }
        }
    }
}

/// Writes a reply: its head, its data in chunks, and its end.
async fn send_reply<S: AsyncWrite + Unpin>(s: &mut S, mut served: Served) -> Result<(), CallError> {
    let head = CallMsg::Head {
        status: served.status,
        content_type: served.content_type.clone(),
        streaming: served.streaming,
    };
    write_frame(s, &head).await?;
    while let Some(f) = served.frames.recv().await {
        match f {
            Frame::Data(b) => {
                for c in b.chunks(DATA_CHUNK) {
                    write_frame(s, &CallMsg::Data(c.to_vec())).await?;
                }
            }
            Frame::Done(r) => return write_frame(s, &CallMsg::Done(r)).await,
            Frame::Failed(e) => return write_frame(s, &CallMsg::Failed(e)).await,
        }
    }
    let end = CallMsg::Failed("the reply ended without a signature".into());
    write_frame(s, &end).await
}

/// The caller's side: sends the call and returns the reply's head (status, content
/// type, whether it streams); read the rest with [`read_reply`].
pub async fn send_call<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    call: &Call,
) -> Result<(u16, String, bool), CallError> {
    let m = CallMsg::Call {
        id: call.id,
        app: call.app.clone(),
        method: call.method.clone(),
        path: call.path.clone(),
        content_type: call.content_type.clone(),
        body: call.body.to_vec(),
        max_units: call.max_units,
    };
    write_frame(s, &m).await?;
    match expect(s, MAX_SMALL_FRAME).await? {
        CallMsg::Head {
            status,
            content_type,
            streaming,
        } => Ok((status, content_type, streaming)),
        CallMsg::Refused { status, message } => Err(CallError::from_status(status, message)),
        other => Err(unexpected("a reply head", &other)),
    }
}

/// The next piece of a reply: data, or the signed end.
pub async fn read_reply<S: AsyncRead + Unpin>(s: &mut S) -> Result<Frame, CallError> {
    Ok(match expect(s, DATA_CHUNK + 1024).await? {
        CallMsg::Data(b) => Frame::Data(b.into()),
        CallMsg::Done(r) => Frame::Done(r),
        CallMsg::Failed(e) => Frame::Failed(e),
        other => return Err(unexpected("a frame of a reply", &other)),
    })
}

/// A refusal before any head (a relay that cannot reach the node it was asked for).
pub async fn refuse<S: AsyncWrite + Unpin>(s: &mut S, e: &CallError) -> Result<(), CallError> {
    let m = CallMsg::Refused {
        status: e.status(),
        message: e.to_string(),
    };
    write_frame(s, &m).await
}
