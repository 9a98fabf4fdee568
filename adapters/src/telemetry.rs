//! Metrics in the Prometheus text format, for an adapter and for the
//! gateway alike: the scrape endpoint, `GET /metrics` over plain HTTP/1.1,
//! one answer per connection; and what an adapter exports.
//!
//! ```text
//! lienthong_adapter_applied_seq{sector}   gauge: the highest event seq the
//!     sector's store has applied (the gateway's lienthong_outbox_last_seq
//!     less this: how far the adapter is behind)
//! ```
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

/// The highest event seq a sector's store has applied.
pub const APPLIED_SEQ: &str = "lienthong_adapter_applied_seq";

/// Installs the process-wide Prometheus recorder for an adapter run alone
/// and describes its metrics; the handle renders them.
pub fn install() -> Result<PrometheusHandle, String> {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| "a recorder is already installed")?;
    describe();
    Ok(handle)
}

/// Describes the adapters' metrics to the recorder installed (the
/// gateway's, under `lienthong up`).
pub fn describe() {
    metrics::describe_gauge!(
        APPLIED_SEQ,
        "The highest event seq the sector's store has applied"
    );
}

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
