//! Each bound against real sockets on loopback: the attack is refused or cut off, and
//! an honest client from another address is served all along.

use super::*;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn limits() -> Limits {
    Limits {
        max_connections: 16,
        max_per_ip: 4,
        header_timeout: Duration::from_millis(600),
        body_timeout: Duration::from_millis(600),
        idle_timeout: Duration::from_millis(800),
        refusal: Refusal::JsonRpc,
    }
}

async fn server(limits: Limits) -> (SocketAddr, Arc<Stats>) {
    let app = axum::Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/ws",
            get(|ws: axum::extract::ws::WebSocketUpgrade| async move {
                ws.on_upgrade(|mut s| async move { while let Some(Ok(_)) = s.recv().await {} })
            }),
        );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let stats = spawn(l, limits, move || app.clone(), std::future::pending());
    (addr, stats)
}

/// A connection from loopback address `from` (127.0.0.0/8 all reaches the server).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((from, 0))).unwrap();
    s.connect(to).await.unwrap()
}

/// An honest GET from 127.0.0.1: the status line it got.
async fn honest(to: SocketAddr) -> String {
    let mut s = connect_from([127, 0, 0, 1], to).await;
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
    out.lines().next().unwrap_or_default().to_string()
}

/// Reads until the server closes; returns what it sent and when it closed.
async fn until_closed(s: &mut TcpStream, within: Duration) -> (String, Option<Duration>) {
    let t = Instant::now();
    let mut out = Vec::new();
    let r = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    (
        String::from_utf8_lossy(&out).into_owned(),
        r.ok().map(|_| t.elapsed()),
    )
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_cut_off() {
    let (addr, _) = server(limits()).await;
    let mut slow = connect_from([127, 0, 0, 2], addr).await;
    let dribble = tokio::spawn(async move {
        for b in b"GET / HTTP/1.1\r\nhost: slowloris\r\nx-a: " {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest).await;
        rest
    });
    assert_eq!(honest(addr).await, "HTTP/1.1 200 OK");
    let rest = tokio::time::timeout(Duration::from_secs(5), dribble)
        .await
        .expect("the slow head was cut off")
        .unwrap();
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_refused_within_the_body_timeout() {
    let (addr, _) = server(limits()).await;
    let mut slow = connect_from([127, 0, 0, 2], addr).await;
    slow.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let (mut r, mut w) = slow.into_split();
    tokio::spawn(async move {
        for _ in 0..100 {
            if w.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), r.read_to_end(&mut out)).await;
    let took = t.elapsed();
    assert!(took < Duration::from_secs(3), "held for {took:?}");
    assert!(
        !String::from_utf8_lossy(&out).contains("200 OK"),
        "a body that took 10 s was not served"
    );
    // A body that arrives at once is served.
    let mut s = connect_from([127, 0, 0, 1], addr).await;
    s.write_all(
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
    )
    .await
    .unwrap();
    let (out, _) = until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        out.starts_with("HTTP/1.1 200 OK") && out.ends_with("hello"),
        "{out}"
    );
}

#[tokio::test]
async fn one_address_gets_its_share_and_is_told_why_others_are_served() {
    let (addr, stats) = server(limits()).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from([127, 0, 0, 3], addr).await;
        // Keep-alive requests, so the connections stay open and counted.
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));
        held.push(s);
    }
    let mut over = connect_from([127, 0, 0, 3], addr).await;
    over.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (out, closed) = until_closed(&mut over, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "the refused connection is closed");
    assert!(out.starts_with("HTTP/1.1 429 Too Many Requests"), "{out}");
    assert!(
        out.contains(r#""code":-32005"#) && out.contains("too many connections from 127.0.0.3"),
        "{out}"
    );
    assert_eq!(honest(addr).await, "HTTP/1.1 200 OK");
    assert_eq!(stats.refused_client.load(Ordering::Relaxed), 1);
    drop(held);
}

#[tokio::test]
async fn a_full_listener_says_so_and_frees_slots_as_connections_close() {
    let mut l = limits();
    l.max_connections = 4;
    l.max_per_ip = 4;
    let (addr, stats) = server(l).await;
    let mut held = Vec::new();
    for i in 0..4u8 {
        held.push(connect_from([127, 0, 0, 10 + i], addr).await);
    }
    // Give the server a moment to accept all four.
    while stats.open() < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut over = connect_from([127, 0, 0, 20], addr).await;
    over.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (out, _) = until_closed(&mut over, Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    drop(held);
    while stats.open() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(honest(addr).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn silent_connections_and_websockets_are_closed_after_the_idle_timeout() {
    let (addr, stats) = server(limits()).await;
    // A keep-alive connection that never sends its next request.
    let mut quiet = connect_from([127, 0, 0, 4], addr).await;
    quiet
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (_, closed) = until_closed(&mut quiet, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "an idle keep-alive connection is closed");
    // A WebSocket that says nothing after its upgrade.
    let mut ws = connect_from([127, 0, 0, 4], addr).await;
    ws.write_all(
        b"GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let (out, closed) = until_closed(&mut ws, Duration::from_secs(5)).await;
    assert!(out.starts_with("HTTP/1.1 101"), "{out}");
    let closed = closed.expect("the silent WebSocket is closed");
    assert!(
        closed >= Duration::from_millis(700),
        "after the idle timeout: {closed:?}"
    );
    assert!(stats.idle_closed.load(Ordering::Relaxed) >= 1);
    while stats.open() > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
