//! The socket of one connection: it holds the connection's [`Permit`] (so the count
//! lasts as long as the socket, across an upgrade to a WebSocket) and closes the
//! connection once nothing has moved for the idle timeout.
//!
//! Activity is a byte read from the client, a byte the client took from us, or a
//! request being handled (a handler waiting on a computing node is not idle). A
//! client that neither sends nor reads, so that its replies stall in the socket, is
//! idle; so is a silent WebSocket (servers ping theirs, and a live client's pong is
//! activity).

use crate::{Permit, Stats};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

pub struct Watched {
    io: TcpStream,
    idle: Duration,
    last: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    /// Requests of this connection being handled now.
    busy: Arc<AtomicUsize>,
    stats: Arc<Stats>,
    _permit: Permit,
}

impl Watched {
    pub fn new(
        io: TcpStream,
        idle: Duration,
        busy: Arc<AtomicUsize>,
        permit: Permit,
        stats: Arc<Stats>,
    ) -> Self {
        stats.open.fetch_add(1, Ordering::Relaxed);
        Self {
            io,
            idle,
            last: Instant::now(),
            timer: None,
            busy,
            stats,
            _permit: permit,
        }
    }

    /// Pending while the client is within its idle allowance; an error once it is not.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        loop {
            if self.busy.load(Ordering::Relaxed) > 0 {
                self.last = Instant::now();
            }
            let deadline = self.last + self.idle;
            if Instant::now() >= deadline {
                self.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                return Poll::Ready(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("nothing from the client in {:?}", self.idle),
                ));
            }
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.last = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.last = Instant::now();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
            r => r,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.poll_idle(cx).map(Err),
            r => r,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
