//! Every HTTP listener of an EMC node (JSON-RPC, the router's gateway, the computing
//! node's port, metrics) is served by [`spawn`], so the same kinds of abuse are bounded
//! the same way everywhere, before any handler runs:
//!
//! | bound ([`Limits`]) | what it stops |
//! |---|---|
//! | `max_connections` | a crowd of connections taking all memory and file descriptors |
//! | `max_per_ip` | one client address taking every slot (a few hundred idle WebSockets) |
//! | `header_timeout` | a request head sent a byte at a time (slowloris), or a keep-alive connection that never sends its next request |
//! | `body_timeout` | a body sent a byte at a time after full headers: the whole body must arrive within it |
//! | `idle_timeout` | a connection, upgraded or not, from which nothing is read for this long (a WebSocket that answers no ping, a reader that never drains its replies) |
//!
//! A connection over a count is answered at once with a status and a reason in the
//! listener's own error shape ([`Refusal`]) and closed: 429 when the client's address
//! holds its share, 503 when the listener is full. A connection counts from accept to
//! close, upgrades included, so WebSockets count like any other.
//!
//! HTTP/1.1 only (with upgrades): every client of these ports speaks it, and one
//! protocol means one set of timers to reason about.
//!
//! Data flow: `TcpListener` → [`admission::Admission`] (counts) → [`io::Watched`]
//! (idle timer, holds the count until the socket closes) → hyper (header timer) →
//! [`body::DeadlineBody`] (body timer) → the listener's own tower service.

pub mod admission;
pub mod body;
pub mod io;

pub use admission::{Admission, Permit, Refused};
pub use body::{BodyTimeout, DeadlineBody};

use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every listener's response body, boxed once so hyper sees one concrete type.
type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;

/// The bounds of one listener. Every field is named in `docs/ARCHITECTURE.md`'s table
/// of listeners.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at once, from everyone.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_per_ip: usize,
    /// From accept (or the end of the previous response) to the end of a request head.
    pub header_timeout: Duration,
    /// From the end of a request head to the end of its body.
    pub body_timeout: Duration,
    /// Longest a connection may go without the client sending a byte.
    pub idle_timeout: Duration,
    /// How a refused connection is answered.
    pub refusal: Refusal,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_per_ip: 64,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            refusal: Refusal::Text,
        }
    }
}

impl Limits {
    /// Checks the bounds make sense (a zero would refuse everyone).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 || self.max_per_ip == 0 {
            return Err("connection limits must be at least 1".into());
        }
        if self.max_per_ip > self.max_connections {
            return Err(format!(
                "{} connections per client is more than {} in all",
                self.max_per_ip, self.max_connections
            ));
        }
        if [self.header_timeout, self.body_timeout, self.idle_timeout]
            .iter()
            .any(Duration::is_zero)
        {
            return Err("timeouts must be longer than zero".into());
        }
        Ok(())
    }
}

/// The error shape a refused connection is answered in, so each kind of client reads
/// the reason the way it reads every other error of that port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `{"jsonrpc":"2.0","error":{"code":-32005,"message":…},"id":null}`
    JsonRpc,
    /// OpenAI's `{"error":{"message":…,"type":"rate_limit_error"}}`
    OpenAi,
    Text,
}

impl Refusal {
    fn body(self, why: &str) -> (&'static str, String) {
        use serde_json::json;
        match self {
            Refusal::JsonRpc => (
                "application/json",
                json!({"jsonrpc": "2.0", "error": {"code": -32005, "message": why}, "id": null})
                    .to_string(),
            ),
            Refusal::OpenAi => (
                "application/json",
                json!({"error": {"message": why, "type": "rate_limit_error"}}).to_string(),
            ),
            Refusal::Text => ("text/plain; charset=utf-8", format!("{why}\n")),
        }
    }
}

/// What a listener has seen, for tests and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now.
    pub open: AtomicUsize,
    pub accepted: AtomicU64,
    /// Refused because the client's address held its share.
    pub refused_client: AtomicU64,
    /// Refused because the listener was full.
    pub refused_full: AtomicU64,
    /// Closed by the idle timer.
    pub idle_closed: AtomicU64,
}

impl Stats {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// Refusals being written at once; past this a refused socket is just closed.
const MAX_REFUSING: usize = 256;
/// How long closing connections get when the listener stops.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Serves on `listener` within `limits` until `shutdown` resolves, with a service
/// from `make` for each connection; returns the listener's counters at once (the
/// server runs on its own task).
///
/// The service sees each request with its body wrapped in a [`DeadlineBody`].
pub fn spawn<M, H>(
    listener: TcpListener,
    limits: Limits,
    make: M,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Arc<Stats>
where
    M: FnMut() -> H + Send + 'static,
    H: Handler,
{
    let stats = Arc::new(Stats::default());
    let admission = Arc::new(Admission::new(limits.max_connections, limits.max_per_ip));
    tokio::spawn(accept_loop(
        listener,
        limits,
        make,
        shutdown,
        admission,
        stats.clone(),
    ));
    stats
}

async fn accept_loop<M, H>(
    listener: TcpListener,
    limits: Limits,
    mut make: M,
    shutdown: impl Future<Output = ()> + Send + 'static,
    admission: Arc<Admission>,
    stats: Arc<Stats>,
) where
    M: FnMut() -> H + Send + 'static,
    H: Handler,
{
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let refusing = Arc::new(AtomicUsize::new(0));
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let permit = match admission.admit(peer.ip()) {
            Ok(p) => p,
            Err(refused) => {
                let counter = match refused {
                    Refused::Client { .. } => &stats.refused_client,
                    Refused::Full { .. } => &stats.refused_full,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                refuse(socket, &refusing, limits.refusal, refused);
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(connection(
            socket,
            permit,
            limits.clone(),
            make(),
            stop_rx.clone(),
            stats.clone(),
        ));
    }
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while stats.open() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Answers a refused connection with its status and reason, then closes it. The
/// request already sent is read and dropped first, so the client sees the answer
/// rather than a reset.
fn refuse(mut socket: TcpStream, refusing: &Arc<AtomicUsize>, shape: Refusal, why: Refused) {
    if refusing.fetch_add(1, Ordering::SeqCst) >= MAX_REFUSING {
        refusing.fetch_sub(1, Ordering::SeqCst);
        return; // dropped: closed without a word, as a full backlog would
    }
    let refusing = refusing.clone();
    tokio::spawn(async move {
        let (status, text) = why.status();
        let (ct, body) = shape.body(&why.to_string());
        let head = format!(
            "HTTP/1.1 {status} {text}\r\ncontent-type: {ct}\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let mut buf = [0u8; 4096];
            // Give the request a moment to arrive, so closing does not reset it.
            let _ = tokio::time::timeout(Duration::from_millis(50), socket.read(&mut buf)).await;
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(body.as_bytes()).await?;
            socket.shutdown().await?;
            while socket.read(&mut buf).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
        refusing.fetch_sub(1, Ordering::SeqCst);
    });
}

async fn connection<H: Handler>(
    socket: TcpStream,
    permit: Permit,
    limits: Limits,
    service: H,
    mut stop: tokio::sync::watch::Receiver<bool>,
    stats: Arc<Stats>,
) {
    let busy = Arc::new(AtomicUsize::new(0));
    let io = TokioIo::new(io::Watched::new(
        socket,
        limits.idle_timeout,
        busy.clone(),
        permit,
        stats.clone(),
    ));
    let svc = Svc {
        inner: service,
        body_timeout: limits.body_timeout,
        busy,
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, svc)
        .with_upgrades();
    tokio::pin!(conn);
    let stopping = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let r = tokio::select! {
        r = &mut conn => r,
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(STOP_GRACE, conn).await {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// The listener's service as hyper calls it: the request body given its deadline, the
/// request counted as busy while it is handled, the response body boxed.
struct Svc<S> {
    inner: S,
    body_timeout: Duration,
    busy: Arc<AtomicUsize>,
}

type SvcFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<http::Response<Body>, BoxError>> + Send>>;

/// What a listener serves: any tower service of requests with [`DeadlineBody`] bodies
/// whose responses have byte bodies (an axum `Router`, jsonrpsee's `TowerService`).
/// The bounds are stated once, on the blanket impl.
pub trait Handler: Clone + Send + 'static {
    /// Handles one request, the service made ready first, the response body boxed.
    fn handle(&self, req: http::Request<DeadlineBody>) -> SvcFuture;
}

impl<S, B> Handler for S
where
    S: tower_service::Service<http::Request<DeadlineBody>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn handle(&self, req: http::Request<DeadlineBody>) -> SvcFuture {
        let mut svc = self.clone();
        Box::pin(async move {
            std::future::poll_fn(|cx| svc.poll_ready(cx))
                .await
                .map_err(|e| -> BoxError { e.into() })?;
            let r = svc.call(req).await.map_err(|e| -> BoxError { e.into() })?;
            Ok(r.map(|b| {
                http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(
                    b,
                    |e| -> BoxError { e.into() },
                ))
            }))
        })
    }
}

impl<H: Handler> hyper::service::Service<http::Request<hyper::body::Incoming>> for Svc<H> {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = SvcFuture;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> SvcFuture {
        let handling = Busy::start(&self.busy);
        let served = self
            .inner
            .handle(req.map(|b| DeadlineBody::new(b, self.body_timeout)));
        Box::pin(async move {
            let _handling = handling;
            served.await
        })
    }
}

/// A request being handled, counted while it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn start(n: &Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Busy(n.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
