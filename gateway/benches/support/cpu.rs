//! The CPU time of a bench's own threads, read from /proc, so that each
//! server's cost per request is known apart from the client's sharing the
//! cores (Linux only).

use std::time::Instant;

pub fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// USER_HZ on Linux: the unit of CPU times in /proc.
const TICKS: f64 = 100.0;

/// A /proc `stat` line's name and its user + system CPU time, in ticks.
fn stat_cpu(stat: &str) -> Option<(&str, u64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((&stat[open + 1..close], ticks))
}

/// CPU time (user + system) of this process's live threads whose name
/// starts with `prefix` (every live thread for ""), in seconds.
fn cpu_of(prefix: &str) -> f64 {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((name, ticks)) = stat_cpu(&stat)
            && name.starts_with(prefix)
        {
            total += ticks;
        }
    }
    total as f64 / TICKS
}

/// CPU time of this process's threads that have ended, in seconds: the
/// process's total, which keeps theirs, less its live threads'.
fn cpu_of_ended() -> f64 {
    cpu_of_process() - cpu_of("")
}

/// CPU time of the whole process, ended threads included, in seconds.
fn cpu_of_process() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    stat_cpu(&stat).map_or(0, |(_, ticks)| ticks) as f64 / TICKS
}

/// Measures the CPU time of `server`'s threads between `from` and `to`
/// (of the whole process for "").
/// The audited gateway's threads include the audit log's writer and
/// indexer (`lienthong-audit`, as /proc shortens both names), and the
/// threads that prepare its next segments, which end once they have (the
/// only threads of the bench that end: its runtimes keep theirs); the
/// audited gateway over PostgreSQL (`gw-postgres`) the same.
pub fn meter(server: &'static str, from: Instant, to: Instant) -> tokio::task::JoinHandle<f64> {
    let cpu = move || match server {
        "" => cpu_of_process(),
        // Both audited gateways' audit threads have that name; they take
        // turns, so the idle one's adds next to nothing.
        "gw-server" | "gw-postgres" => cpu_of(server) + cpu_of("lienthong-audit") + cpu_of_ended(),
        _ => cpu_of(server),
    };
    tokio::spawn(async move {
        tokio::time::sleep_until(from.into()).await;
        let before = cpu();
        tokio::time::sleep_until(to.into()).await;
        cpu() - before
    })
}

/// A 2-worker runtime whose threads are named `name`, so that [`meter`]
/// finds them.
pub fn runtime(name: &'static str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        // Blocking threads must outlive a phase for their CPU time to count.
        .thread_keep_alive(std::time::Duration::from_secs(3600))
        .enable_all()
        .build()
        .unwrap()
}
