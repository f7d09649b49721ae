//! `/healthz`, `/readyz` and `/metrics` on one port: a deliberately tiny HTTP/1.1 server
//! (one request per connection), enough for kubelet probes and Prometheus scrapes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info};

/// What the probes report.
#[derive(Default)]
pub struct Health {
    /// The process is ready: a follower waiting for the lease, or a leader whose caches synced.
    pub ready: AtomicBool,
}

/// Serves until the process exits.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    metrics: impl Fn() -> String + Send + Sync + 'static,
) {
    let metrics = Arc::new(metrics);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving /healthz, /readyz and /metrics");
    }
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let (health, metrics) = (health.clone(), metrics.clone());
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &health, &*metrics).await {
                debug!(%peer, error = %e, "http connection failed");
            }
        });
    }
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

async fn handle(
    mut stream: TcpStream,
    health: &Health,
    metrics: &(dyn Fn() -> String + Send + Sync),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    // Read until the end of the request head (or a full buffer); bodies are ignored.
    while len < buf.len() {
        let n =
            tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf[len..])).await??;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let (status, content_type, body) =
        respond(head.lines().next().unwrap_or_default(), health, metrics);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Status line, content type and body for one request line, e.g. `GET /readyz HTTP/1.1`.
pub fn respond(
    request_line: &str,
    health: &Health,
    metrics: &dyn Fn() -> String,
) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let mut parts = request_line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if method != "GET" && method != "HEAD" {
        return (
            "405 Method Not Allowed",
            TEXT,
            "method not allowed\n".into(),
        );
    }
    match path.split('?').next().unwrap_or_default() {
        "/healthz" | "/livez" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" if health.ready.load(Ordering::Relaxed) => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" => (
            "503 Service Unavailable",
            TEXT,
            "caches not synced\n".into(),
        ),
        "/metrics" => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics(),
        ),
        _ => ("404 Not Found", TEXT, "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probes answer by state; unknown paths and methods are refused.
    #[test]
    fn routes() {
        let health = Health::default();
        let m = || "halo_leader 1\n".to_string();
        assert_eq!(respond("GET /healthz HTTP/1.1", &health, &m).0, "200 OK");
        assert_eq!(
            respond("GET /readyz HTTP/1.1", &health, &m).0,
            "503 Service Unavailable"
        );
        health.ready.store(true, Ordering::Relaxed);
        assert_eq!(respond("GET /readyz HTTP/1.1", &health, &m).0, "200 OK");
        let metrics = respond("GET /metrics HTTP/1.1", &health, &m);
        assert_eq!(metrics.2, "halo_leader 1\n");
        assert_eq!(
            respond("GET /nope HTTP/1.1", &health, &m).0,
            "404 Not Found"
        );
        assert_eq!(
            respond("POST /healthz HTTP/1.1", &health, &m).0,
            "405 Method Not Allowed"
        );
    }

    /// A real connection gets a well-formed response.
    #[tokio::test]
    async fn serves_over_tcp() {
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let health = Arc::new(Health::default());
        tokio::spawn(serve(listener, health, || "x 1\n".to_string()));
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut out = String::new();
        stream.read_to_string(&mut out).await.expect("read");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nx 1\n"), "{out}");
    }
}
