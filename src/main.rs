//! The `floe` command: parses flags, runs one command (the commands are in
//! `cli/`) and turns an error into its exit code: 2 for invalid settings, 1
//! for any other.

use std::process::ExitCode;

use clap::Parser;

use floe::config::ConfigError;

mod cli;

use cli::{Cli, Command, SchemaCommand};

/// Floe allocates and frees many small strings per record; mimalloc does
/// that at a fraction of glibc's cost (measured in `just bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process (Linux), unless
/// `MIMALLOC_ALLOW_THP` asks for mimalloc's own choice. With them, each
/// first touch of fresh memory had the kernel zero 2 MiB: measured on 1M
/// events, 9% more CPU on a file and 11% on a stream, over twice the kernel
/// time, and a higher peak RSS (docs/performance.md). The flag holds for the
/// whole process, including memory mapped before `main`.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: prctl with integer arguments; it only sets this process's
        // no-THP flag. A failure (an old kernel) leaves THP as it was.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// mimalloc v3's `mi_option_purge_delay` (its `include/mimalloc.h`); the
/// sys crate exports no constant for it. A test reads its default back.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long memory freed and left unused stays with the process before
/// mimalloc hands it back to the kernel: 250 ms, not mimalloc's 1 s.
/// Between a flush's write and the next batch's filling, memory one
/// thread freed sat unused while others took fresh pages: on 1M events
/// peak RSS was 513-549 MiB at 1 s and 475-498 at 250 ms, for about 3% more
/// CPU on a stream (pages faulted in again; docs/performance.md).
/// `MIMALLOC_PURGE_DELAY` in the environment still wins.
const PURGE_DELAY_MS: std::ffi::c_long = 250;

fn return_freed_memory_sooner() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's option values; called first thing
        // in `main`, before any other thread exists.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

fn main() -> ExitCode {
    no_huge_pages();
    return_freed_memory_sooner();
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

    /// The option number names the purge delay: only that option defaults
    /// to 1,000 (ms) in mimalloc v3; a renumbered header fails here.
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads an option value; no test sets one.
        let value = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(value, 1_000);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_are_turned_off() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
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
