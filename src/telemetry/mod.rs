//! Logs, live progress, metrics and the operations port. Logs go to stderr
//! through `tracing` (text or JSON); progress is one line redrawn on a
//! terminal, so stdout stays for results (and EMF metric lines when asked).

mod emf;
pub mod events;
pub mod http;
pub mod metrics;
pub mod progress;
mod prometheus;

pub use metrics::metrics;
pub use progress::{LogFormat, Progress, ProgressMode, ShardLag, ShardLags};

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

/// What a panic said (`panic!`'s formatted message), for the log line and
/// error of a supervisor that noticed it.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// What ended a task that did not return: its panic's message, or its
/// cancellation.
pub fn join_error_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => format!("it panicked: {}", panic_message(payload.as_ref())),
        Err(e) => e.to_string(),
    }
}

/// Installs the global log subscriber. The level comes from `FLOE_LOG`
/// (`info` by default; e.g. `FLOE_LOG=floe=debug`).
pub fn init_logging(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_env("FLOE_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

/// Draws progress on stderr (every 250 ms on a terminal, every 5 s
/// otherwise) until the returned task is aborted.
pub fn spawn_progress(
    mode: ProgressMode,
    progress: Arc<Progress>,
) -> Option<tokio::task::JoinHandle<()>> {
    spawn_status_line(mode, move |elapsed| progress_line(&progress, elapsed))
}

/// Draws the line `line` makes of the time elapsed, as [`spawn_progress`]
/// draws a run's, until the returned task is aborted.
pub fn spawn_status_line(
    mode: ProgressMode,
    line: impl Fn(Duration) -> String + Send + 'static,
) -> Option<tokio::task::JoinHandle<()>> {
    let terminal = std::io::stderr().is_terminal();
    let every = match (mode, terminal) {
        (ProgressMode::Never, _) | (ProgressMode::Auto, false) => return None,
        (_, true) => Duration::from_millis(250),
        (ProgressMode::Always, false) => Duration::from_secs(5),
    };
    let started = Instant::now();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let line = line(started.elapsed());
            let mut err = std::io::stderr().lock();
            let _ = if terminal {
                write!(err, "\r\x1b[2K{line}")
            } else {
                writeln!(err, "{line}")
            };
            let _ = err.flush();
        }
    }))
}

/// Clears the progress line (call after stopping the progress task).
pub fn clear_progress(mode: ProgressMode) {
    if mode != ProgressMode::Never && std::io::stderr().is_terminal() {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
}

fn progress_line(p: &Progress, elapsed: Duration) -> String {
    let read = p.records_read.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-3);
    format!(
        "read {} records ({:.1} MiB){}, committed {} rows and {} rejects, {:.0} records/s, {:.0}s",
        read,
        p.bytes_read.load(Ordering::Relaxed) as f64 / 1048576.0,
        objects_progress(p),
        p.rows_committed.load(Ordering::Relaxed),
        p.rejected_committed.load(Ordering::Relaxed),
        read as f64 / secs,
        elapsed.as_secs_f64()
    )
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// For `s3://` inputs: `, objects 1,204/5,310 (listing...), 1.2/4.5 GiB`
/// (objects read and bytes as stored, of those listed so far); empty when
/// no object was listed.
pub fn objects_progress(p: &Progress) -> String {
    let listed = p.objects_listed.load(Ordering::Relaxed);
    if listed == 0 && p.objects_done.load(Ordering::Relaxed) == 0 {
        return String::new();
    }
    let gib = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
    format!(
        ", objects {}/{}{}, {:.2}/{:.2} GiB",
        thousands(p.objects_done.load(Ordering::Relaxed)),
        thousands(listed),
        if p.listing_done.load(Ordering::Relaxed) {
            ""
        } else {
            " (listing...)"
        },
        gib(p.object_bytes_done.load(Ordering::Relaxed)),
        gib(p.object_bytes_listed.load(Ordering::Relaxed)),
    )
}
