//! Unit tests of `keeper.rs`.

use super::*;

fn item(counter: u64, handoff_to: Option<&str>) -> Item {
    Item {
        key: "kinesis:s:floe:shardId-000000000000".into(),
        kind: ItemKind::Shard("shardId-000000000000".into()),
        counter,
        owner: Some("w1".into()),
        handoff_to: handoff_to.map(str::to_string),
    }
}

#[test]
fn a_counter_expires_after_standing_still_on_the_observers_clock() {
    let mut seen = Observations::default();
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    // First seen: it has stood still for no time at all, whatever its value.
    assert_eq!(seen.observe(&item(7, None), t0).0, Duration::ZERO);
    assert_eq!(seen.observe(&item(7, None), t0 + 3 * s).0, 3 * s);
    // It moved: the wait starts again.
    assert_eq!(seen.observe(&item(8, None), t0 + 4 * s).0, Duration::ZERO);
    assert_eq!(seen.observe(&item(8, None), t0 + 14 * s).0, 10 * s);
    // A request is timed from when it was first seen, per asker.
    assert_eq!(
        seen.observe(&item(9, Some("w2")), t0 + 15 * s).1,
        Duration::ZERO
    );
    assert_eq!(seen.observe(&item(10, Some("w2")), t0 + 20 * s).1, 5 * s);
    assert_eq!(
        seen.observe(&item(11, Some("w3")), t0 + 21 * s).1,
        Duration::ZERO
    );
    assert_eq!(seen.observe(&item(11, None), t0 + 22 * s).1, Duration::ZERO);
    seen.retain(&BTreeSet::new());
    assert_eq!(seen.observe(&item(11, None), t0 + 30 * s).0, Duration::ZERO);
}

#[test]
fn a_finished_shards_lease_is_deleted_by_whoever_can_tell_nobody_reads_it() {
    let free = Item {
        owner: None,
        ..item(1, None)
    };
    // (item, this task, expired on this task's clock) -> delete?
    type Case<'a> = (&'a Item, &'a str, bool, Option<Option<&'a str>>);
    let cases: [Case<'_>; 6] = [
        (&free, "w0", false, Some(None)),
        (&free, "w0", true, Some(None)),
        // Ours in the table: held here (taken again after its end was
        // noted) or not (lost to a stall, or the deletion at the end
        // failed). Nobody else would ever delete it while it is renewed.
        (&item(1, None), "w1", false, Some(Some("w1"))),
        (&item(1, None), "w1", true, Some(Some("w1"))),
        // Another's, still renewed: its holder deletes it.
        (&item(1, None), "w0", false, None),
        // Another's, no longer renewed: that task died or stalled.
        (&item(1, None), "w0", true, Some(Some("w1"))),
    ];
    for (i, (item, me, expired, expected)) in cases.into_iter().enumerate() {
        assert_eq!(
            finished_lease_to_delete(item, me, expired),
            expected,
            "case {i}"
        );
    }
}
