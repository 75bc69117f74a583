//! `floe generate`: deterministic sample events as JSON Lines, to a file
//! (gzip for `.gz`) or stdout; `floe demo` writes its events the same way.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use floe::config::ConfigError;
use floe::generate::{GenerateOptions, GenerateStats, validate_options};

#[derive(Args)]
pub(crate) struct GenerateArgs {
    /// Number of lines to write (events, duplicates and bad lines together).
    #[arg(long)]
    events: u64,
    /// Seed: the same seed and options give the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Days over which created_at is spread.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// First second of the time window (Unix seconds).
    #[arg(long, default_value_t = GenerateOptions::default().start)]
    start: i64,
    /// Share of lines that are exact copies of an earlier event.
    #[arg(long, default_value_t = 0.02)]
    dup_rate: f64,
    /// Share of lines that repeat an earlier event_uuid with a changed body.
    #[arg(long, default_value_t = 0.01)]
    changed_dup_rate: f64,
    /// Share of malformed lines (every reject reason in turn).
    #[arg(long, default_value_t = 0.001)]
    bad_rate: f64,
    /// Output file (`.gz` for gzip), `-` for stdout.
    #[arg(long, short)]
    out: String,
}

impl GenerateArgs {
    fn options(&self) -> GenerateOptions {
        GenerateOptions {
            events: self.events,
            seed: self.seed,
            days: self.days,
            start: self.start,
            dup_rate: self.dup_rate,
            changed_dup_rate: self.changed_dup_rate,
            bad_rate: self.bad_rate,
            ..GenerateOptions::default()
        }
    }
}

/// `floe generate`: writes the events and reports what they hold on stderr.
pub(crate) fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let options = args.options();
    validate_options(&options).map_err(|e| ConfigError { problems: vec![e] })?;
    let stats = write_events(&options, &args.out)?;
    eprintln!(
        "wrote {} lines ({} bytes): {} valid, {} exact duplicates, {} changed duplicates, {} bad",
        stats.lines,
        stats.bytes,
        stats.valid,
        stats.exact_duplicates,
        stats.changed_duplicates,
        stats.bad
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn write_events(options: &GenerateOptions, out: &str) -> anyhow::Result<GenerateStats> {
    if out == "-" {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        return Ok(floe::generate::generate(options, &mut lock)?);
    }
    let file = std::fs::File::create(out).with_context(|| format!("creating {out}"))?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let stats = if out.ends_with(".gz") {
        let mut gz = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
        let stats = floe::generate::generate(options, &mut gz)?;
        gz.finish()?.flush()?;
        stats
    } else {
        let stats = floe::generate::generate(options, &mut writer)?;
        writer.flush()?;
        stats
    };
    Ok(stats)
}
