//! Unit tests of `summary.rs`.

use super::*;

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn data_derived_event_types_are_capped_with_exact_totals() {
    let counts = |pairs: &[(&str, &str, u64)]| -> MissingCounts {
        pairs
            .iter()
            .map(|(t, f, n)| ((t.to_string(), f.to_string()), *n))
            .collect()
    };
    let missing = counts(&[
        ("a", "event_subtype", 5),
        ("b", "event_subtype", 9),
        ("b", "price", 1),
        ("c", "event_subtype", 2),
        ("d", "price", 2),
    ]);
    // The two largest types (b: 10, a: 5) keep theirs; c and d (tie at 2) are summed.
    assert_eq!(
        top_event_types(&missing, 2),
        counts(&[
            ("_other", "event_subtype", 2),
            ("_other", "price", 2),
            ("a", "event_subtype", 5),
            ("b", "event_subtype", 9),
            ("b", "price", 1),
        ])
    );
    assert_eq!(top_event_types(&missing, 4), missing);

    // A long accumulation: the first two types seen keep their labels
    // for good, whatever comes later.
    let mut into = MissingCounts::new();
    add_missing_capped(&mut into, &counts(&[("z", "event_subtype", 1)]), 2);
    add_missing_capped(&mut into, &counts(&[("y", "event_subtype", 1)]), 2);
    add_missing_capped(
        &mut into,
        &counts(&[("a", "event_subtype", 100), ("z", "event_subtype", 1)]),
        2,
    );
    add_missing_capped(&mut into, &counts(&[("b", "event_subtype", 3)]), 2);
    assert_eq!(
        into,
        counts(&[
            ("_other", "event_subtype", 103),
            ("y", "event_subtype", 1),
            ("z", "event_subtype", 2),
        ])
    );

    // Thousands of invented types: a summary stays within the cap.
    let mut many = QualityCounts::default();
    for i in 0..5_000 {
        many.missing
            .insert((format!("t{i}"), "event_subtype".into()), 1);
    }
    let summary = many.to_summary();
    let keys = summary
        .keys()
        .filter(|k| k.starts_with(MISSING_PREFIX))
        .count();
    assert_eq!(keys, DEFAULT_EVENT_TYPE_LIMIT + 1);
    let total: u64 = summary
        .iter()
        .filter(|(k, _)| k.starts_with(MISSING_PREFIX))
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 5_000);
    let mut run = QualityCounts::default();
    run.add_capped(&many);
    run.add_capped(&many);
    assert_eq!(run.missing.len(), DEFAULT_EVENT_TYPE_LIMIT + 1);
    assert_eq!(run.missing.values().sum::<u64>(), 10_000);
}

#[test]
fn totals_add_to_the_parent() {
    let delta = FileDelta {
        added_data_files: 3,
        added_records: 100,
        added_files_size: 4096,
        changed_partitions: 2,
        ..Default::default()
    };
    assert_eq!(delta.operation(), Operation::Append);
    let first = standard_summary(None, &delta);
    assert_eq!(first["total-records"], "100");
    assert_eq!(first["total-data-files"], "3");
    assert_eq!(first["total-delete-files"], "0");
    assert_eq!(first["changed-partition-count"], "2");

    let parent: HashMap<_, _> = first.into_iter().collect();
    let second = standard_summary(Some(&parent), &delta);
    assert_eq!(second["total-records"], "200");
    assert_eq!(second["total-files-size"], "8192");
    assert_eq!(second["total-data-files"], "6");
    assert_eq!(second["added-records"], "100");

    // Deletes count in the delete totals; `total-records` counts rows in
    // data files (as the spec and Java do), deleted or not.
    let upsert = FileDelta {
        added_position_delete_files: 2,
        added_position_deletes: 7,
        added_delete_files_size: 1000,
        ..delta
    };
    assert_eq!(upsert.operation(), Operation::Overwrite);
    let third = standard_summary(Some(&second.clone().into_iter().collect()), &upsert);
    assert_eq!(third["added-position-deletes"], "7");
    assert_eq!(third["added-delete-files"], "2");
    assert_eq!(third["total-delete-files"], "2");
    assert_eq!(third["total-position-deletes"], "7");
    assert_eq!(third["total-records"], "300");
    assert_eq!(third["total-files-size"], "13288");
    let deletes_only = FileDelta {
        added_data_files: 0,
        ..upsert
    };
    assert_eq!(deletes_only.operation(), Operation::Delete);

    // A compaction: all 9 files, 300 rows (7 of them deleted), become one
    // file of 293 rows; the delete files go with the rows they deleted.
    let compaction = FileDelta {
        added_data_files: 1,
        added_records: 293,
        added_files_size: 9000,
        changed_partitions: 2,
        removed_data_files: 9,
        removed_records: 300,
        removed_files_size: 12288,
        removed_position_delete_files: 2,
        removed_position_deletes: 7,
        removed_delete_files_size: 1000,
        ..Default::default()
    };
    assert_eq!(compaction.operation(), Operation::Replace);
    let fourth = standard_summary(Some(&third.clone().into_iter().collect()), &compaction);
    assert_eq!(fourth["total-records"], "293");
    assert_eq!(fourth["total-data-files"], "1");
    assert_eq!(fourth["total-delete-files"], "0");
    assert_eq!(fourth["total-position-deletes"], "0");
    assert_eq!(fourth["total-files-size"], "9000");
    assert_eq!(fourth["deleted-data-files"], "9");
    assert_eq!(fourth["deleted-records"], "300");
    assert_eq!(fourth["removed-position-deletes"], "7");
    assert_eq!(fourth["removed-files-size"], "13288");

    // A parent without totals: totals are left out, not guessed.
    let bare = standard_summary(Some(&map(&[("operation", "append")])), &delta);
    assert!(!bare.contains_key("total-records"));
    assert_eq!(bare["added-records"], "100");
}

#[test]
fn quality_counts_round_trip_and_add() {
    let mut a = QualityCounts {
        records_read: 10,
        rows_written: 7,
        duplicates_identical: 1,
        duplicates_replaced: 2,
        rows_deleted: 2,
        blank_lines: 1,
        ..Default::default()
    };
    a.reject(RejectReason::InvalidJson);
    a.reject(RejectReason::TooLarge);
    let summary = a.to_summary();
    assert_eq!(summary["floe.rejected"], "2");
    assert_eq!(summary["floe.duplicates-dropped"], "1");
    assert_eq!(
        a.records_read,
        a.rows_written + a.rejected_total() + a.duplicates_dropped()
    );
    assert_eq!(summary["floe.rejected.too_large"], "1");
    let back = QualityCounts::from_summary(&summary.into_iter().collect());
    assert_eq!(back, a);
    let rejected: Vec<_> = a.rejected_summary().into_keys().collect();
    assert_eq!(
        rejected,
        [
            "floe.rejected",
            "floe.rejected.invalid_json",
            "floe.rejected.too_large"
        ]
    );

    let mut total = QualityCounts::default();
    total.add(&a);
    total.add(&a);
    assert_eq!(total.records_read, 20);
    assert_eq!(total.rejected[&RejectReason::InvalidJson], 2);
    assert_eq!(total.rejected_total(), 4);
}
