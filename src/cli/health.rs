//! `floe health`: asks a running Floe's operations port whether it is live
//! or ready; the exit code is the answer (the container health check).

use std::process::ExitCode;

use clap::Args;

use floe::telemetry;

use super::run::runtime;

#[derive(Args)]
pub(crate) struct HealthArgs {
    /// The running Floe's operations address (0.0.0.0 means this host).
    #[arg(long, env = "FLOE_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    metrics_addr: std::net::SocketAddr,
    /// Ask /health/ready instead of /health/live.
    #[arg(long)]
    ready: bool,
}

/// `floe health`: prints the answer's body and exits 0, or prints why not
/// and exits 1.
pub(crate) fn health(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let path = if args.ready {
        "/health/ready"
    } else {
        "/health/live"
    };
    match runtime()?.block_on(telemetry::http::check(args.metrics_addr, path)) {
        Ok(body) => {
            println!("{body}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("floe health: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
