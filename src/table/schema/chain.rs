//! [`SchemaChain`]: every schema file of a table, in order, each checked (the
//! first defines the columns Floe fills, every file can be written, every
//! step follows the evolution rules); and the checks of the files a table
//! says were applied to it, or that a git revision had.

use std::path::Path;

use iceberg::spec::{Schema, Type};

use super::layout;
use super::source::{SchemaFile, SchemaSource};
use crate::contract::{TableKind, core_column, core_columns};
use crate::table::TableError;
use crate::table::evolution::{self, SchemaChange, StepRules};

/// Every schema file of a table, each step checked.
#[derive(Debug, Clone)]
pub struct SchemaChain {
    /// Which table.
    pub kind: TableKind,
    /// The files in order; at least one.
    pub files: Vec<SchemaFile>,
    /// What each step changes: `steps[i]` goes from `files[i]` to `files[i + 1]`.
    pub steps: Vec<Vec<SchemaChange>>,
}

/// The table property listing the schema files applied to a table with
/// their digests: `0001-initial.json=<hex>,0002-add-amount.json=<hex>`.
pub const SCHEMA_FILES_PROPERTY: &str = "floe.schema-files";

impl SchemaChain {
    /// Reads and checks the chain of `kind` from `source`: every file parses,
    /// the first defines the columns Floe fills, every file can be written,
    /// and every step follows the evolution rules.
    pub fn load(kind: TableKind, source: &SchemaSource) -> Result<Self, TableError> {
        let files = source.chain(kind)?;
        Self::check(kind, files)
    }

    /// Checks parsed files (see [`SchemaChain::load`]).
    pub fn check(kind: TableKind, files: Vec<SchemaFile>) -> Result<Self, TableError> {
        let fail = |file: &SchemaFile, problems: Vec<String>| TableError::Schema {
            origin: file.origin.clone(),
            message: problems.join("; "),
        };
        let first = files.first().ok_or_else(|| TableError::Schema {
            origin: format!("schemas/{}/", kind.schema_folder()),
            message: "no schema file".into(),
        })?;
        let problems = first_file_problems(kind, &first.schema);
        if !problems.is_empty() {
            return Err(fail(first, problems));
        }
        let mut steps = Vec::with_capacity(files.len().saturating_sub(1));
        let mut highest = 0;
        for (i, file) in files.iter().enumerate() {
            let problems = unfillable_columns(kind, &file.schema);
            if !problems.is_empty() {
                return Err(fail(file, problems));
            }
            if i > 0 {
                let rules = StepRules {
                    kind,
                    highest_id_before: highest,
                };
                let changes = evolution::check_step(&files[i - 1].schema, &file.schema, &rules)
                    .map_err(|p| fail(file, p))?;
                steps.push(changes);
            }
            layout::parts(kind, &file.schema, &file.origin)?;
            highest = highest.max(file.schema.highest_field_id());
        }
        Ok(Self { kind, files, steps })
    }

    /// The newest file: the schema the table should have.
    pub fn newest(&self) -> &SchemaFile {
        // `check` refuses an empty chain.
        &self.files[self.files.len() - 1]
    }

    /// The newest file whose schema is `schema` (fields, ids, docs and
    /// identifier fields; the schema id does not count).
    pub fn position_of(&self, schema: &Schema) -> Option<usize> {
        self.files.iter().rposition(|f| {
            f.schema.as_struct() == schema.as_struct()
                && f.schema
                    .identifier_field_ids()
                    .eq(schema.identifier_field_ids())
        })
    }

    /// The [`SCHEMA_FILES_PROPERTY`] value once files `0..=last` are applied.
    pub fn applied_property(&self, last: usize) -> String {
        self.files[..=last]
            .iter()
            .map(|f| format!("{}={}", f.name, f.digest))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Checks the files a table says were applied to it against this chain:
    /// an applied file must still exist, unchanged.
    pub fn check_applied(&self, property: &str) -> Result<(), TableError> {
        for entry in property.split(',').filter(|e| !e.is_empty()) {
            let (name, digest) = entry.split_once('=').unwrap_or((entry, ""));
            let origin = format!("schemas/{}/{name}", self.kind.schema_folder());
            match self.files.iter().find(|f| f.name == name) {
                None => {
                    return Err(TableError::Schema {
                        origin,
                        message: "was applied to the table but is missing from the schema files \
                                  in use: the table was evolved with a newer chain than this one \
                                  (the chain is append-only, files are never removed); pass \
                                  --schema-dir with the folder that holds it"
                            .into(),
                    });
                }
                Some(f) if f.digest != digest => {
                    return Err(TableError::Schema {
                        origin: f.origin.clone(),
                        message: "was edited after it was applied to the table: the chain is \
                                  append-only, add a new file instead"
                            .into(),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

impl SchemaChain {
    /// Checks that every file of this chain's folder at git revision
    /// `git_ref` is still here, byte for byte (the chain is append-only).
    /// `dir` is the `schemas/` folder inside a git work tree.
    pub fn check_unchanged_since(&self, dir: &Path, git_ref: &str) -> Result<(), TableError> {
        let folder = self.kind.schema_folder();
        let git = |args: &[&str]| -> Result<Vec<u8>, TableError> {
            let output = std::process::Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(args)
                .output()
                .map_err(|source| TableError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            if !output.status.success() {
                return Err(TableError::Schema {
                    origin: dir.display().to_string(),
                    message: format!(
                        "git {}: {}",
                        args.join(" "),
                        String::from_utf8_lossy(&output.stderr).trim()
                    ),
                });
            }
            Ok(output.stdout)
        };
        let listing = git(&["ls-tree", "--name-only", git_ref, &format!("{folder}/")])?;
        for path in String::from_utf8_lossy(&listing).lines() {
            let name = path.rsplit('/').next().unwrap_or(path);
            if !name.ends_with(".json") {
                continue;
            }
            let then = git(&["show", &format!("{git_ref}:./{folder}/{name}")])?;
            let digest = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&then));
            let origin = format!("{}/{folder}/{name}", dir.display());
            match self.files.iter().find(|f| f.name == name) {
                None => {
                    return Err(TableError::Schema {
                        origin,
                        message: format!(
                            "exists at {git_ref} but not here: the chain is append-only, files are \
                             never removed"
                        ),
                    });
                }
                Some(f) if f.digest != digest => {
                    return Err(TableError::Schema {
                        origin,
                        message: format!(
                            "differs from its version at {git_ref}: a merged schema file never \
                             changes; revert it and add a new file instead"
                        ),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// What the first file of a chain gets wrong about the columns Floe fills.
fn first_file_problems(kind: TableKind, schema: &Schema) -> Vec<String> {
    let mut problems = Vec::new();
    for c in core_columns(kind) {
        match schema.as_struct().field_by_id(c.id) {
            Some(f) if f.name == c.name && *f.field_type == Type::Primitive(c.ty.clone()) => {}
            _ => problems.push(format!(
                "the first schema file must define column {} as id {} of type {}: Floe fills it",
                c.name, c.id, c.ty
            )),
        }
    }
    for f in schema.as_struct().fields() {
        if f.required && core_column(kind, f.id).is_none() {
            problems.push(format!(
                "column {} (id {}) is required, but Floe does not fill it: make it optional",
                f.name, f.id
            ));
        }
    }
    problems
}

/// Top-level columns of the events table Floe could not fill from JSON.
fn unfillable_columns(kind: TableKind, schema: &Schema) -> Vec<String> {
    if kind != TableKind::Events {
        return Vec::new();
    }
    schema
        .as_struct()
        .fields()
        .iter()
        .filter(|f| core_column(kind, f.id).is_none())
        .filter_map(|f| {
            evolution::fillable(&f.field_type)
                .err()
                .map(|e| format!("column {} (id {}): {e}", f.name, f.id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_the_applied_files_read_as_sentences() {
        let chain = SchemaChain::load(TableKind::Events, &SchemaSource::Embedded).unwrap();
        let first = &chain.files[0];
        let missing = chain
            .check_applied(&format!(
                "{}={},0002-newer.json=00",
                first.name, first.digest
            ))
            .unwrap_err()
            .to_string();
        let edited = chain
            .check_applied(&format!("{}=0000000000000000", first.name))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("0002-newer.json: was applied"),
            "{missing}"
        );
        assert!(missing.contains("--schema-dir"), "{missing}");
        assert!(
            edited.contains("was edited after it was applied"),
            "{edited}"
        );
        for message in [missing, edited] {
            assert!(!message.contains("  "), "a run of spaces: {message:?}");
        }
    }
}
