//! The upsert decision and the rebase's key rule, as tables of cases.

use std::sync::Arc;

use super::*;
use crate::event::{DecodeLimits, Origin, RecordPosition, Row, decode};

const UUID: &str = "0b5a6c52-0000-4000-8000-000000000001";

fn row(body: &str) -> Row {
    let line = format!(
        r#"{{"event_uuid":"{UUID}","event_name":"payment:order:completed","created_at":1764547200,"amount":{body}}}"#
    );
    let limits = DecodeLimits {
        max_record_size: 1 << 20,
        now_seconds: 1_764_633_600.0,
        ..Default::default()
    };
    Row {
        event: decode(line.as_bytes(), &limits).unwrap(),
        origin: Origin {
            source: Arc::from("events.jsonl"),
            position: RecordPosition::Line { offset: 0, line: 1 },
            ingested_micros: 0,
        },
    }
}

/// Every branch of the upsert decision: no live row, an identical one,
/// a changed one, in both modes; what is kept, deleted and counted.
#[test]
fn the_upsert_decision_as_a_table() {
    let partition = Partition::events(20_423, "payment");
    // (live row's body, mode, kept, deletes, identical, skipped, replaced)
    let cases = [
        (None, DedupMode::Upsert, true, 0, 0, 0, 0),
        (None, DedupMode::KeepFirst, true, 0, 0, 0, 0),
        (Some("10"), DedupMode::Upsert, false, 0, 1, 0, 0),
        (Some("10"), DedupMode::KeepFirst, false, 0, 1, 0, 0),
        (Some("11"), DedupMode::Upsert, true, 1, 0, 0, 1),
        (Some("11"), DedupMode::KeepFirst, false, 0, 0, 1, 0),
    ];
    for (live, mode, kept, deleted, identical, skipped, replaced) in cases {
        let incoming = row("10");
        let mut index = KeyIndex::new(0, 1 << 20);
        if let Some(body) = live {
            let file = index.add_file("data/live.parquet", partition.clone());
            index.insert(incoming.event.key, file, 7, row(body).event.content_hash);
        }
        let mut deletes = Deletes::new();
        let mut counts = QualityCounts::default();
        let got = upsert_against_index(
            &index,
            mode,
            incoming.event.key,
            incoming.event.content_hash,
            &mut deletes,
            &mut counts,
        );
        let case = format!("live {live:?}, {mode:?}");
        assert_eq!(got, kept, "{case}: kept");
        let want: Deletes = if deleted == 1 {
            BTreeMap::from([(
                partition.clone(),
                vec![("data/live.parquet".to_string(), 7)],
            )])
        } else {
            Deletes::new()
        };
        assert_eq!(deletes, want, "{case}: deletes");
        assert_eq!(
            (
                counts.duplicates_identical,
                counts.duplicates_skipped,
                counts.duplicates_replaced,
                counts.rows_deleted
            ),
            (identical, skipped, replaced, deleted as u64),
            "{case}: counts"
        );
    }
}

/// A data file this flush wrote: `keys` at positions 0, 1, ...
fn written(path: &str, partition: &Partition, keys: &[(u128, i64)]) -> Written {
    Written {
        file: iceberg::spec::DataFileBuilder::default()
            .content(iceberg::spec::DataContentType::Data)
            .file_format(iceberg::spec::DataFileFormat::Parquet)
            .file_path(path.to_string())
            .file_size_in_bytes(1)
            .record_count(keys.len() as u64)
            .build()
            .unwrap(),
        partition: partition.clone(),
        keys: keys.to_vec(),
    }
}

/// Every branch of the rebase's key rule, for a key this flush wrote
/// (at position 1 of its file) that another writer committed first (at
/// position 5 of theirs): which row is deleted, what is withdrawn or
/// superseded, and the counts after.
#[test]
fn the_rebase_key_rule_as_a_table() {
    const KEY: u128 = 7;
    const OURS: i64 = 100;
    const CHANGED: i64 = 200;
    let partition = Partition::events(20_423, "payment");
    #[derive(Debug, PartialEq)]
    enum Deleted {
        Nothing,
        Ours,
        Theirs,
    }
    // (their row's hash, mode, ours withdrawn before)
    //   -> (deleted, ours withdrawn after, theirs superseded,
    //       (rows written, identical, skipped, replaced, rows deleted))
    let cases = [
        (
            None,
            DedupMode::Upsert,
            false,
            Deleted::Nothing,
            false,
            false,
            (2, 0, 0, 0, 0),
        ),
        (
            Some(OURS),
            DedupMode::Upsert,
            false,
            Deleted::Ours,
            true,
            false,
            (1, 1, 0, 0, 0),
        ),
        (
            Some(OURS),
            DedupMode::KeepFirst,
            false,
            Deleted::Ours,
            true,
            false,
            (1, 1, 0, 0, 0),
        ),
        (
            Some(CHANGED),
            DedupMode::Upsert,
            false,
            Deleted::Theirs,
            false,
            true,
            (2, 0, 0, 1, 1),
        ),
        (
            Some(CHANGED),
            DedupMode::KeepFirst,
            false,
            Deleted::Ours,
            true,
            false,
            (1, 0, 1, 0, 0),
        ),
        // Withdrawn by an earlier rebase of the same commit: settled.
        (
            Some(OURS),
            DedupMode::Upsert,
            true,
            Deleted::Nothing,
            true,
            false,
            (2, 0, 0, 0, 0),
        ),
        (
            Some(CHANGED),
            DedupMode::Upsert,
            true,
            Deleted::Nothing,
            true,
            false,
            (2, 0, 0, 0, 0),
        ),
    ];
    for (their_hash, mode, withdrawn_before, deleted, withdrawn_after, superseded, counts) in cases
    {
        let case = format!("theirs {their_hash:?}, {mode:?}, withdrawn {withdrawn_before}");
        // Position 0 holds a key nobody else wrote.
        let ours = [written(
            "data/ours.parquet",
            &partition,
            &[(1, 1), (KEY, OURS)],
        )];
        let mut theirs = Map::default();
        if let Some(hash) = their_hash {
            theirs.insert(
                KEY,
                Theirs {
                    path: "data/theirs.parquet".into(),
                    partition: partition.clone(),
                    pos: 5,
                    hash,
                },
            );
        }
        let mut withdrawn = HashSet::new();
        if withdrawn_before {
            withdrawn.insert((0, 1));
        }
        let mut got = QualityCounts {
            rows_written: 2,
            ..Default::default()
        };
        let (deletes, superseded_keys) = settle(&ours, &theirs, mode, &mut withdrawn, &mut got);
        let want = match deleted {
            Deleted::Nothing => Deletes::new(),
            Deleted::Ours => {
                BTreeMap::from([(partition.clone(), vec![("data/ours.parquet".into(), 1)])])
            }
            Deleted::Theirs => {
                BTreeMap::from([(partition.clone(), vec![("data/theirs.parquet".into(), 5)])])
            }
        };
        assert_eq!(deletes, want, "{case}: deletes");
        assert_eq!(
            withdrawn.contains(&(0, 1)),
            withdrawn_after,
            "{case}: withdrawn"
        );
        assert_eq!(
            withdrawn.len(),
            usize::from(withdrawn_after),
            "{case}: only ours"
        );
        assert_eq!(
            superseded_keys,
            if superseded {
                HashSet::from([KEY])
            } else {
                HashSet::new()
            },
            "{case}: superseded"
        );
        assert_eq!(
            (
                got.rows_written,
                got.duplicates_identical,
                got.duplicates_skipped,
                got.duplicates_replaced,
                got.rows_deleted
            ),
            counts,
            "{case}: counts"
        );
    }
}

/// Deletes into data files another commit removed (a compaction) are
/// dropped and uncounted; the others stay.
#[test]
fn deletes_into_removed_files_are_dropped_by_a_rebase() {
    let payment = Partition::events(20_423, "payment");
    let refund = Partition::events(20_423, "refund");
    let mut deletes = BTreeMap::from([
        (
            payment.clone(),
            vec![
                ("data/kept.parquet".to_string(), 1),
                ("data/compacted.parquet".to_string(), 2),
                ("data/compacted.parquet".to_string(), 3),
            ],
        ),
        (refund, vec![("data/compacted.parquet".to_string(), 0)]),
    ]);
    let removed = HashSet::from(["data/compacted.parquet".to_string()]);
    let mut counts = QualityCounts {
        duplicates_replaced: 4,
        rows_deleted: 4,
        ..Default::default()
    };
    assert_eq!(drop_stale_deletes(&mut deletes, &removed, &mut counts), 3);
    assert_eq!(
        deletes,
        BTreeMap::from([(payment, vec![("data/kept.parquet".to_string(), 1)])])
    );
    assert_eq!((counts.duplicates_replaced, counts.rows_deleted), (1, 1));
    assert_eq!(
        drop_stale_deletes(&mut deletes, &HashSet::new(), &mut counts),
        0,
        "nothing removed, nothing dropped"
    );
}

/// A late row is decided the same way against what the table probe found.
#[test]
fn a_late_row_is_decided_like_an_indexed_one() {
    let partition = Partition::events(20_423, "payment");
    let incoming = row("10");
    let found = |body: &str| Found {
        path: "data/old.parquet".to_string(),
        partition: partition.clone(),
        pos: 3,
        hash: row(body).event.content_hash,
    };
    let mut deletes = Deletes::new();
    let mut counts = QualityCounts::default();
    assert!(upsert_against_table(
        None,
        DedupMode::Upsert,
        incoming.event.content_hash,
        &mut deletes,
        &mut counts
    ));
    assert!(!upsert_against_table(
        Some(found("10")),
        DedupMode::Upsert,
        incoming.event.content_hash,
        &mut deletes,
        &mut counts
    ));
    assert!(upsert_against_table(
        Some(found("12")),
        DedupMode::Upsert,
        incoming.event.content_hash,
        &mut deletes,
        &mut counts
    ));
    assert_eq!(
        deletes,
        BTreeMap::from([(partition, vec![("data/old.parquet".to_string(), 3)])])
    );
    assert_eq!(
        (counts.duplicates_identical, counts.duplicates_replaced),
        (1, 1)
    );
}
