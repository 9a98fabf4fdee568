//! The real `lienthong` binary in a test: spawned with its log kept, its
//! address read from the log, signalled, and always bounded in time.

use std::net::SocketAddr;
use std::sync::Arc;

/// The `lienthong` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lienthong");

/// Starts `lienthong` with `args` (which listen on 127.0.0.1:0) and waits
/// for the log line that names the address.
pub async fn spawn_serve(args: &[&str]) -> (tokio::process::Child, SocketAddr) {
    let (child, addr, _) = spawn_serve_logged(args).await;
    (child, addr)
}

/// The log lines a spawned `lienthong` has written so far; [`LOG_END`] last
/// once it has closed its log.
pub type Log = Arc<std::sync::Mutex<Vec<String>>>;

/// The line a [`Log`] ends with once the process closed stderr.
pub const LOG_END: &str = "(end of log)";

/// [`spawn_serve`], keeping the log lines.
pub async fn spawn_serve_logged(args: &[&str]) -> (tokio::process::Child, SocketAddr, Log) {
    spawn_serve_at(args, "info").await
}

/// [`spawn_serve_logged`] with `LIENTHONG_LOG=filter`.
pub async fn spawn_serve_at(
    args: &[&str],
    filter: &str,
) -> (tokio::process::Child, SocketAddr, Log) {
    spawn_serve_with(args, &[("LIENTHONG_LOG", filter)]).await
}

/// The address in the log line that says the gateway serves, in either log
/// format (text: `listen=ADDR`; JSON: `"listen":"ADDR"`).
fn listen_addr(line: &str) -> Option<SocketAddr> {
    if line.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(line).ok()?;
        return json["fields"]["listen"].as_str()?.parse().ok();
    }
    line.split("listen=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// [`spawn_serve_logged`] with the environment variables `env` set.
pub async fn spawn_serve_with(
    args: &[&str],
    env: &[(&str, &str)],
) -> (tokio::process::Child, SocketAddr, Log) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .env("LIENTHONG_LOG", "info")
        // Every spawned gateway scrapes on a port of its own.
        .env("LIENTHONG_METRICS_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let log: Log = Arc::default();
    let addr = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.lock().unwrap().push(line.clone());
            if let Some(addr) = listen_addr(&line) {
                return addr;
            }
        }
        panic!("serve exited before listening: {:#?}", log.lock().unwrap());
    })
    .await
    .expect("serve listens within 60 s");
    // Keep reading the log so the child never blocks on a full pipe.
    let kept = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            kept.lock().unwrap().push(line);
        }
        kept.lock().unwrap().push(LOG_END.to_owned());
    });
    (child, addr, log)
}

/// Sends `signal` (as `kill` spells it: `-TERM`, `-HUP`) to `child`, which
/// must still be running.
pub fn signal(child: &tokio::process::Child, signal: &str) {
    let id = child.id().expect("still running").to_string();
    assert!(
        std::process::Command::new("kill")
            .args([signal, &id])
            .status()
            .unwrap()
            .success()
    );
}

/// Sends SIGTERM to `child` and waits up to `within` for it to exit: its
/// exit status. Panics if it is still running then.
pub async fn terminate(
    child: &mut tokio::process::Child,
    within: std::time::Duration,
) -> std::process::ExitStatus {
    signal(child, "-TERM");
    tokio::time::timeout(within, child.wait())
        .await
        .unwrap_or_else(|_| panic!("still running {within:?} after SIGTERM"))
        .unwrap()
}

/// Runs `command` to its end, as `Command::output` does, but kills it and
/// panics if it is still running after `within`: a test never hangs on a
/// child process.
pub fn output_within(
    command: &mut std::process::Command,
    within: std::time::Duration,
) -> std::process::Output {
    use std::io::Read;
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let until = std::time::Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} still running after {within:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Runs `lienthong` with `args`, waiting at most `within`: success and
/// everything it printed (standard output, then standard error).
pub fn run_bin(args: &[&str], within: std::time::Duration) -> (bool, String) {
    let out = output_within(std::process::Command::new(BIN).args(args), within);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `lienthong serve` on the data directory `data`, listening on
/// 127.0.0.1:0, seeding 2,000 citizens on first start, then `extra`.
pub fn serve_args<'a>(data: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "serve",
        "--data-dir",
        data,
        "--listen",
        "127.0.0.1:0",
        "--citizens",
        "2000",
    ];
    args.extend_from_slice(extra);
    args
}

/// Runs `lienthong` with `args` to its end (two minutes at most).
pub fn run(args: &[&str]) -> std::process::Output {
    output_within(
        std::process::Command::new(BIN).args(args),
        std::time::Duration::from_secs(120),
    )
}

/// Bytes a process printed, as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
