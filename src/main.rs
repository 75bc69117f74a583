//! The `floe` command: parses flags, runs one command (the commands are in
//! `cli/`) and turns an error into its exit code: 2 for invalid settings, 1
//! for any other.

use std::process::ExitCode;

use clap::Parser;

use floe::config::ConfigError;

mod cli;

use cli::{Cli, Command, SchemaCommand};

/// Turns transparent huge pages off for this process (Linux), unless
/// `FLOE_ALLOW_THP` is set. With them, each first touch of fresh memory had
/// the kernel zero 2 MiB: measured on 1M events, 9% more CPU on a file and
/// 11% on a stream, over twice the kernel time, and a higher peak RSS
/// (docs/performance.md). The flag holds for the whole process, including
/// memory mapped before `main`.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("FLOE_ALLOW_THP").is_none() {
        // SAFETY: prctl with integer arguments; it only sets this process's
        // no-THP flag. A failure (an old kernel) leaves THP as it was.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// Malloc arenas (glibc) for this many cores: one per core, at least two.
fn arenas_for(cores: usize) -> usize {
    cores.max(2)
}

/// Caps glibc malloc's arenas at one per core (at least two), unless
/// `MALLOC_ARENA_MAX` sets the cap. glibc's default is eight per core, and
/// each arena keeps the memory freed into it: a batch's rows are allocated
/// by the thread that fills the buffer and freed by the threads that wrote
/// them, so freed memory sat in arenas the next batch did not allocate
/// from. Measured (docs/performance.md), glibc with two arenas against
/// mimalloc, the allocator before, on 2 cores: peak RSS on 1M events 354
/// against 478 MiB, and at 10M events 569 against 731 MiB, for the same CPU
/// or less.
fn fewer_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arenas = std::ffi::c_int::try_from(arenas_for(cores)).unwrap_or(std::ffi::c_int::MAX);
        // SAFETY: sets one of glibc malloc's parameters; called first thing
        // in `main`, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

fn main() -> ExitCode {
    no_huge_pages();
    fewer_malloc_arenas();
    let cli = Cli::parse();
    match run_command(cli.command) {
        Ok(code) => code,
        Err(e) => {
            if let Some(config) = e.downcast_ref::<ConfigError>() {
                eprintln!("floe: {config}");
                return ExitCode::from(2);
            }
            eprintln!("floe: error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its sources, each message once: a layer whose message
/// already holds its source's (`"writing x: disk full"` over `"disk full"`)
/// would otherwise print that text again for every layer below it.
fn error_chain(error: &anyhow::Error) -> String {
    let mut printed: Vec<String> = Vec::new();
    for message in error.chain().map(ToString::to_string) {
        if printed.last().is_some_and(|last| last.contains(&message)) {
            continue;
        }
        printed.push(message);
    }
    printed.join(": ")
}

/// Runs the chosen command; `Ok` holds its exit code (`floe health` exits 1
/// without an error).
fn run_command(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => cli::run::run(*args),
        Command::Demo(args) => cli::run::demo(*args),
        Command::Inspect(args) => cli::inspect::inspect(args),
        Command::Generate(args) => cli::generate::generate(args),
        Command::Schema(SchemaCommand::Check(args)) => cli::schema::check(args),
        Command::Schema(SchemaCommand::Diff(args)) => cli::schema::schema_tables(args, false),
        Command::Schema(SchemaCommand::Apply(args)) => cli::schema::schema_tables(args, true),
        Command::Health(args) => cli::health::health(args),
        Command::Maintain(args) => cli::maintain::maintain(*args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a message and an optional source.
    #[derive(Debug)]
    struct Layer(String, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|s| s as _)
        }
    }

    #[test]
    fn arenas_are_one_per_core_and_at_least_two() {
        assert_eq!(
            [1, 2, 3, 16].map(arenas_for),
            [2, 2, 3, 16],
            "one core still gets two arenas"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_are_turned_off() {
        if std::env::var_os("FLOE_ALLOW_THP").is_some() {
            return;
        }
        no_huge_pages();
        // SAFETY: reads this process's no-THP flag.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(disabled, 1);
    }

    #[test]
    fn error_chains_print_each_message_once() {
        let layer = |text: &str, source: Option<Layer>| Layer(text.into(), source.map(Box::new));
        let disk = layer("No space left on device", None);
        let write = layer("Failed to write: No space left on device", Some(disk));
        let table = layer(
            "table a.b: Failed to write: No space left on device",
            Some(write),
        );
        assert_eq!(
            error_chain(&anyhow::Error::new(table)),
            "table a.b: Failed to write: No space left on device"
        );

        // A layer that does not repeat its source keeps it.
        let io = layer("permission denied", None);
        let path = layer("/w/catalog.db", Some(io));
        let catalog = layer("catalog database /w/catalog.db", Some(path));
        assert_eq!(
            error_chain(&anyhow::Error::new(catalog)),
            "catalog database /w/catalog.db: permission denied"
        );
    }
}
