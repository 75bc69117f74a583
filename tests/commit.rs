//! The snapshot producer against a real SQLite catalog and real files: commits
//! from a stale base lose the compare-and-swap, reload and land on top of the
//! winner without losing its files; a commit that would repeat another
//! writer's source positions is refused.

// A test crate: a panic is the failure report (clippy.toml allows it only
// inside #[test] functions, and the helpers below are not).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use floe::catalog::TableName;
use floe::checkpoint::{Checkpoint, FilePosition, SourcePosition};
use floe::config::{CatalogKind, StoreConfig, Warehouse};
use floe::event::{DecodeLimits, Origin, RecordPosition, Row, decode, events_batch};
use floe::pipeline::open_store;

/// A file position `offset` bytes and lines in.
fn at(offset: u64) -> SourcePosition {
    SourcePosition::File(FilePosition {
        offset,
        line: offset,
        ..Default::default()
    })
}
use floe::table::inspect::rows_by_day_and_type;
use floe::table::writer::{DataWriter, FileSettings, Partition};
use floe::table::{
    Change, LoadedTable, SchemaSource, TableError, TableKind, TableLayout, TableStore,
};

fn row(uuid: &str, event_name: &str, created_at: u64) -> Row {
    let line = format!(
        r#"{{"event_uuid":"{uuid}","event_name":"{event_name}","created_at":{created_at}}}"#
    );
    let limits = DecodeLimits {
        max_record_size: 1 << 20,
        now_seconds: 1_790_000_000.0,
        ..Default::default()
    };
    Row {
        event: decode(line.as_bytes(), &limits).expect("valid test event"),
        origin: Origin {
            source: Arc::from("test"),
            position: RecordPosition::Line { line: 1, offset: 0 },
            ingested_micros: 0,
        },
    }
}

async fn setup(dir: &std::path::Path) -> (TableStore, LoadedTable, DataWriter) {
    let store = open_store(&StoreConfig {
        catalog: CatalogKind::Sql,
        catalog_name: "floe".into(),
        warehouse: Warehouse::Local(dir.to_path_buf()),
        s3: Default::default(),
    })
    .await
    .unwrap();
    let layout = Arc::new(TableLayout::load(TableKind::Events, &SchemaSource::Embedded).unwrap());
    let table = store
        .load_or_create(&TableName::parse("analytics.events").unwrap(), &layout)
        .await
        .unwrap();
    let writer = DataWriter::new(
        &table,
        layout,
        store.file_io().clone(),
        FileSettings { zstd_level: 3 },
    );
    (store, table, writer)
}

/// A change adding one file with `rows` (all of one partition) and moving `source` to `to`.
async fn change(
    writer: &DataWriter,
    rows: &[Row],
    source: &str,
    from: Option<u64>,
    to: u64,
) -> Change {
    let schema = writer.arrow_schema().unwrap();
    let refs: Vec<&Row> = rows.iter().collect();
    let batch = events_batch(&schema, &refs).unwrap();
    let first = &rows[0].event;
    let file = writer
        .write(
            &Partition::events(first.day(), first.event_type()),
            batch.num_rows(),
            std::iter::once(Ok(batch)),
        )
        .await
        .unwrap();
    let mut checkpoint_to = Checkpoint::new();
    checkpoint_to.set(source, at(to));
    Change {
        added_data_files: vec![file],
        added_delete_files: vec![],
        removed_files: vec![],
        summary: BTreeMap::new(),
        checkpoint_from: BTreeMap::from([(source.to_string(), from.map(at))]),
        checkpoint_to,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_commit_retries_on_top_of_the_winner() {
    let dir = tempfile::tempdir().unwrap();
    let (store, base, writer) = setup(dir.path()).await;

    let a = change(
        &writer,
        &[
            row("a1", "pay:x", 1_780_000_000),
            row("a2", "pay:x", 1_780_000_001),
        ],
        "src-a",
        None,
        10,
    )
    .await;
    let b = change(
        &writer,
        &[row("b1", "cart", 1_780_000_000)],
        "src-b",
        None,
        20,
    )
    .await;

    let won = store.commit(&base, &a).await.unwrap();
    assert_eq!(won.conflicts, 0);
    // `b` is built on the same, now stale, base.
    let retried = store.commit(&base, &b).await.unwrap();
    assert_eq!(retried.conflicts, 1, "the first swap must lose");

    let table = store.load(&base.name).await.unwrap().unwrap();
    assert_eq!(table.metadata_location, retried.table.metadata_location);
    let current = table.metadata.current_snapshot().unwrap();
    assert_eq!(current.snapshot_id(), retried.snapshot_id);
    assert_eq!(current.parent_snapshot_id(), Some(won.snapshot_id));
    assert_eq!(current.sequence_number(), 2);
    assert_eq!(
        current.summary().additional_properties["total-records"],
        "3"
    );
    assert_eq!(
        current.summary().additional_properties["total-data-files"],
        "2"
    );

    let checkpoint = table.checkpoint().unwrap();
    assert_eq!(checkpoint.get("src-a"), Some(&at(10)));
    assert_eq!(checkpoint.get("src-b"), Some(&at(20)));

    let counts = rows_by_day_and_type(&store, &table).await.unwrap();
    let got: Vec<_> = counts.into_iter().collect();
    assert_eq!(
        got,
        vec![
            (("2026-05-28".to_string(), "cart".to_string()), 1),
            (("2026-05-28".to_string(), "pay".to_string()), 2),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn position_deletes_hide_rows_from_readers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, base, writer) = setup(dir.path()).await;
    // Rows are written in the order given: positions 0, 1, 2.
    let rows = [
        row("d1", "pay", 1_780_000_000),
        row("d2", "pay", 1_780_000_001),
        row("d3", "pay", 1_780_000_002),
    ];
    let first = change(&writer, &rows, "src", None, 30).await;
    let data_path = first.added_data_files[0].file_path().to_string();
    let table = store.commit(&base, &first).await.unwrap().table;

    let partition = Partition::events(rows[0].event.day(), "pay");
    let mut deletes = vec![(data_path.clone(), 1)];
    let delete_file = writer
        .write_position_deletes(&partition, &mut deletes)
        .await
        .unwrap();
    assert_eq!(delete_file.record_count(), 1);
    assert_eq!(
        delete_file.referenced_data_file().as_deref(),
        Some(data_path.as_str())
    );
    let upsert = Change {
        added_delete_files: vec![delete_file],
        ..Default::default()
    };
    let outcome = store.commit(&table, &upsert).await.unwrap();
    let summary = &outcome.table.metadata.current_snapshot().unwrap().summary();
    assert_eq!(summary.operation.as_str(), "delete");
    let props = &summary.additional_properties;
    assert_eq!(props["added-position-deletes"], "1");
    assert_eq!(props["total-position-deletes"], "1");
    assert_eq!(props["total-delete-files"], "1");
    assert_eq!(props["total-records"], "3");

    // iceberg-rust's scan applies the delete: two rows are left.
    let counts = rows_by_day_and_type(&store, &outcome.table).await.unwrap();
    assert_eq!(counts.values().sum::<u64>(), 2);
    let files = floe::table::inspect::files_by_partition(&store, &outcome.table)
        .await
        .unwrap();
    let stats = files.values().next().unwrap();
    assert_eq!(
        (stats.data_files, stats.delete_files, stats.rows),
        (1, 1, 3)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_source_positions_are_not_committed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (store, base, writer) = setup(dir.path()).await;
    let first = change(&writer, &[row("x1", "pay", 1_780_000_000)], "src", None, 10).await;
    let again = change(&writer, &[row("x1", "pay", 1_780_000_000)], "src", None, 10).await;
    store.commit(&base, &first).await.unwrap();
    let err = store.commit(&base, &again).await.unwrap_err();
    assert!(matches!(err, TableError::CheckpointMoved { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("source src was committed up to byte 10 (line 10)"),
        "{text}"
    );
    assert!(text.contains("read it from the start"), "{text}");

    let table = store.load(&base.name).await.unwrap().unwrap();
    assert_eq!(
        table.metadata.snapshots().count(),
        1,
        "the refused commit left no snapshot"
    );
}

/// Sets table properties through the snapshot producer's metadata path.
async fn set_properties(
    store: &TableStore,
    table: LoadedTable,
    props: &[(&str, &str)],
) -> LoadedTable {
    let props: std::collections::HashMap<String, String> = props
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    store
        .update_metadata(table, |t| {
            let builder = t
                .metadata
                .as_ref()
                .clone()
                .into_builder(Some(t.metadata_location.clone()))
                .set_properties(props.clone())?;
            Ok(Some(builder.build()?.metadata))
        })
        .await
        .unwrap()
        .0
}

/// The manifests the table's current snapshot lists: (content is data, entries alive).
async fn current_manifests(
    store: &TableStore,
    table: &LoadedTable,
) -> Vec<iceberg::spec::ManifestFile> {
    let snapshot = table.metadata.current_snapshot().unwrap();
    table
        .to_iceberg(store.file_io())
        .unwrap()
        .manifest_list_reader(snapshot)
        .load()
        .await
        .unwrap()
        .entries()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_stay_few_over_many_commits_and_deletes_still_apply() {
    let dir = tempfile::tempdir().unwrap();
    let (store, base, writer) = setup(dir.path()).await;
    assert_eq!(
        base.metadata.properties()["write.metadata.delete-after-commit.enabled"],
        "true",
        "tables Floe creates delete old metadata files"
    );
    let mut table = set_properties(
        &store,
        base,
        &[
            ("commit.manifest.min-count-to-merge", "8"),
            ("write.metadata.previous-versions-max", "5"),
        ],
    )
    .await;
    let commits = 300u64;
    let mut first_file = None;
    let mut most_manifests = 0;
    let mut previous = table.clone();
    let mut seen_added = 0;
    for i in 0..commits {
        let c = change(
            &writer,
            &[row(&format!("k{i}"), "pay:x", 1_780_000_000 + i)],
            "src",
            (i > 0).then_some(i),
            i + 1,
        )
        .await;
        first_file.get_or_insert_with(|| c.added_data_files[0].clone());
        table = store.commit(&table, &c).await.unwrap().table;
        most_manifests = most_manifests.max(current_manifests(&store, &table).await.len());
        if i % 50 == 49 {
            // A concurrent writer's rebase still sees every file added since
            // it last looked, merged or not.
            let changed = store
                .changed_since(&previous, &table, &Default::default())
                .await
                .unwrap();
            seen_added += changed.added_data.len();
            previous = table.clone();
        }
    }
    assert_eq!(seen_added, commits as usize);
    // At most min-count - 1 small manifests, plus the merged one, plus the new one.
    assert!(
        most_manifests <= 10,
        "{most_manifests} manifests in one snapshot"
    );
    assert_eq!(
        store.live_entries(&table).await.unwrap().len(),
        commits as usize
    );

    // A delete of a row of the first commit, whose entry now sits in a
    // merged manifest with its old sequence number: it still applies.
    let partition = Partition::events(row("k0", "pay:x", 1_780_000_000).event.day(), "pay");
    let first_file = first_file.unwrap();
    let first_path = first_file.file_path().to_string();
    let mut deletes = vec![(first_path.clone(), 0)];
    let delete_file = writer
        .write_position_deletes(&partition, &mut deletes)
        .await
        .unwrap();
    let merged_entry = store
        .live_entries(&table)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.file_path() == first_path)
        .unwrap();
    assert_eq!(
        merged_entry.status(),
        iceberg::spec::ManifestStatus::Existing
    );
    assert_eq!(
        merged_entry.sequence_number(),
        Some(1),
        "its first commit's sequence number"
    );
    table = store
        .commit(
            &table,
            &Change {
                added_delete_files: vec![delete_file],
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .table;
    let counts = rows_by_day_and_type(&store, &table).await.unwrap();
    assert_eq!(counts.values().sum::<u64>(), commits - 1);

    // Old metadata files are deleted once they leave the log of 5.
    let metadata_files = std::fs::read_dir(dir.path().join("analytics/events/metadata"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".metadata.json"))
        .count();
    assert_eq!(metadata_files, 6, "the current file and the 5 of its log");
    assert_eq!(table.metadata.metadata_log().len(), 5);

    // A commit removing a file (as compaction does) keeps the manifest that
    // marks it deleted in its own list: a writer that last looked before it
    // learns of the removal, also after later commits merged and pruned.
    let before_removal = table.clone();
    table = store
        .commit(
            &table,
            &Change {
                removed_files: vec![first_file],
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .table;
    for i in 0..10 {
        let c = change(
            &writer,
            &[row(&format!("late{i}"), "pay:x", 1_780_000_000)],
            "src",
            Some(commits + i),
            commits + i + 1,
        )
        .await;
        table = store.commit(&table, &c).await.unwrap().table;
    }
    let changed = store
        .changed_since(&before_removal, &table, &Default::default())
        .await
        .unwrap();
    assert!(changed.removed.contains(&first_path));
    assert_eq!(changed.added_data.len(), 10);
}
