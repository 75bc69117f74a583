//! Embeds every file under `schemas/` in the binary, so that committing a new
//! schema file is all it takes to evolve the table (no list to keep in sync).

// A build script reports failure by panicking: cargo prints the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read when the script runs, not when it is compiled: a build script
    // compiled for one checkout may be run for another sharing its target
    // folder (a git worktree).
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("schemas");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut entries = Vec::new();
    let tables = std::fs::read_dir(&root).expect("reading schemas/");
    for table in tables {
        let table = table.expect("reading schemas/").path();
        if !table.is_dir() {
            continue;
        }
        println!("cargo:rerun-if-changed={}", table.display());
        for file in std::fs::read_dir(&table).expect("reading a schemas/ folder") {
            let file = file.expect("reading a schemas/ folder").path();
            if file.extension().is_some_and(|e| e == "json") {
                let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
                entries.push((name(&table), name(&file), file.display().to_string()));
            }
        }
    }
    entries.sort();
    let mut out = String::from("&[\n");
    for (table, name, path) in entries {
        writeln!(out, "    ({table:?}, {name:?}, include_str!({path:?})),").unwrap();
    }
    out.push(']');
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("embedded_schemas.rs");
    std::fs::write(dest, out).expect("writing embedded_schemas.rs");
}
