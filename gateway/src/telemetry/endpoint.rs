//! The scrape endpoint: `GET /metrics` over plain HTTP/1.1, one answer per
//! connection.
//!
//! ```text
//! GET /metrics HTTP/1.1       →  200, text/plain; version=0.0.4, the metrics
//! anything else               →  404
//! no request line in 5 s      →  closed
//! ```
//!
//! It carries no personal data and sits on its own port, meant for the
//! operator's network only (bind it to loopback or a management interface).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes answered at once.
const MAX_CONNECTIONS: usize = 16;

/// Answers scrapes on `listener` until `shutdown` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                // Over the limit the connection is closed unanswered.
                let Ok(permit) = open.clone().try_acquire_owned() else { continue };
                let handle = handle.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(READ_TIMEOUT, answer(stream, &handle)).await;
                    drop(permit);
                });
            }
        }
    }
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let (status, body) = if line.starts_with(b"GET /metrics ") || line == b"GET /metrics" {
        handle.run_upkeep();
        ("200 OK", handle.render())
    } else {
        (
            "404 Not Found",
            "not found; scrape GET /metrics\n".to_owned(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
