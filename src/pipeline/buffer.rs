//! The batch being built between two flushes: rows per partition, one row per
//! `event_uuid` (an identical duplicate keeps the first row; a changed one
//! replaces it in `upsert` mode and is skipped in `keep-first` mode), rejected
//! records, counts, and the source positions the batch covers.
//!
//! Rows are held as columns ([`EventColumns`]), and [`Buffer::memory`]
//! counts what the buffer holds (capacity, not length), so `--flush-size`
//! bounds memory, not input.

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Instant;

use super::decode::Decoded;

/// Hash maps keyed by event ids and types: foldhash is several times faster
/// than the default SipHash on these short keys.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use crate::checkpoint::SourcePosition;
use crate::config::DedupMode;
use crate::event::{EventColumns, RejectedRecord};
use crate::source::SourceInfo;
use crate::table::summary::{QualityCounts, add_counts};
use crate::table::writer::Partition;

/// Rows of one partition, in arrival order; a row replaced by a later
/// duplicate stays in the columns, marked dead.
#[derive(Debug, Default)]
pub struct PartitionRows {
    /// The rows, live and dead, by slot.
    pub columns: EventColumns,
    /// One bit per slot: set for a replaced row.
    dead: Vec<u64>,
    /// Live rows.
    pub live: usize,
}

impl PartitionRows {
    /// Whether the row at `slot` was replaced.
    pub fn is_dead(&self, slot: usize) -> bool {
        self.dead
            .get(slot / 64)
            .is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }

    /// Marks the row at `slot` replaced; returns the bytes this grew by.
    fn kill(&mut self, slot: usize) -> usize {
        let before = self.memory();
        if self.dead.len() <= slot / 64 {
            self.dead.resize(slot / 64 + 1, 0);
        }
        self.dead[slot / 64] |= 1 << (slot % 64);
        self.live -= 1;
        self.memory() - before
    }

    /// Appends row `slot` of `rows` as the next slot; returns the bytes
    /// this grew by.
    fn push(&mut self, rows: &EventColumns, slot: usize) -> usize {
        let before = self.memory();
        self.columns.push_row(rows, slot);
        self.live += 1;
        self.memory() - before
    }

    /// Slots of the live rows, in arrival order.
    pub fn live_slots(&self) -> Vec<u32> {
        (0..self.columns.len() as u32)
            .filter(|&s| !self.is_dead(s as usize))
            .collect()
    }

    /// Bytes held, capacity counted; constant time.
    pub fn memory(&self) -> usize {
        self.columns.memory() + self.dead.capacity() * 8
    }
}

/// Source positions covered by a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The source.
    pub source: Arc<SourceInfo>,
    /// Position before the batch's first record of this source.
    pub from: SourcePosition,
    /// Position after its last record.
    pub to: SourcePosition,
}

/// Everything buffered for the next flush.
#[derive(Debug)]
pub struct Buffer {
    /// What a duplicate key does.
    mode: DedupMode,
    /// Partitions in first-seen order.
    partitions: Vec<(Partition, PartitionRows)>,
    /// Bytes the partitions hold (their memory summed), kept as rows are
    /// appended and replaced: [`memory`](Self::memory) is asked after
    /// every chunk, and a backfill's batch may hold thousands of
    /// partitions.
    rows_memory: usize,
    /// Partition index by day, then event type (lookups without allocating).
    partition_index: HashMap<i32, HashMap<String, usize>>,
    /// Where the live row of each key ([`crate::event::Event::key`]) is:
    /// (partition, slot).
    keys: HashMap<u128, (u32, u32)>,
    /// Rejected records in arrival order, with their source (whose key
    /// finds the rejected table's checkpoint of them).
    rejects: Vec<(Arc<SourceInfo>, RejectedRecord)>,
    /// Heap bytes of the rejects added (their raw text and message), kept
    /// as they arrive so [`memory`](Self::memory) does not walk them all
    /// for every chunk.
    reject_heap: usize,
    /// Counts of the records behind this batch.
    pub counts: QualityCounts,
    /// Positions per source key.
    pub spans: BTreeMap<String, Span>,
    /// Input bytes covered.
    pub bytes: usize,
    /// When the first record arrived (for age-based flushes).
    pub since: Option<Instant>,
}

impl Buffer {
    /// An empty buffer.
    pub fn new(mode: DedupMode) -> Self {
        Self {
            mode,
            partitions: Vec::new(),
            rows_memory: 0,
            partition_index: HashMap::default(),
            keys: HashMap::default(),
            rejects: Vec::new(),
            reject_heap: 0,
            counts: QualityCounts::default(),
            spans: BTreeMap::new(),
            bytes: 0,
            since: None,
        }
    }

    /// Whether nothing at all is buffered (not even positions to commit).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Whether any rejected record is buffered.
    pub fn has_rejects(&self) -> bool {
        !self.rejects.is_empty()
    }

    /// Takes the rejected records, with their sources, out of the buffer.
    pub fn take_rejects(&mut self) -> Vec<(Arc<SourceInfo>, RejectedRecord)> {
        self.reject_heap = 0;
        std::mem::take(&mut self.rejects)
    }

    /// Adds a decoded chunk: rows (last per key wins), rejects, counts, positions.
    pub fn add(&mut self, decoded: Decoded) {
        self.since.get_or_insert_with(Instant::now);
        self.bytes += decoded.bytes as usize;
        self.counts.records_read += decoded.records;
        self.counts.blank_lines += decoded.blank_lines;
        add_counts(&mut self.counts.type_mismatches, &decoded.type_mismatches);
        add_counts(&mut self.counts.missing, &decoded.missing);
        for reject in &decoded.rejects {
            self.counts.reject(reject.reason);
            self.reject_heap += reject.raw.capacity() + reject.message.capacity();
        }
        let source = &decoded.source;
        self.rejects
            .extend(decoded.rejects.into_iter().map(|r| (source.clone(), r)));
        match self.spans.get_mut(&decoded.source.key) {
            Some(span) => span.to = decoded.end,
            None => {
                self.spans.insert(
                    decoded.source.key.clone(),
                    Span {
                        source: decoded.source.clone(),
                        from: decoded.start,
                        to: decoded.end,
                    },
                );
            }
        }
        for slot in 0..decoded.rows.len() {
            self.add_row(&decoded.rows, slot);
        }
    }

    /// Adds row `slot` of a decoded chunk's `rows`.
    fn add_row(&mut self, rows: &EventColumns, slot: usize) {
        // One probe of the key map: the entry found (or made) is where the
        // row goes.
        let place = match self.keys.entry(rows.key(slot)) {
            Entry::Occupied(live) => {
                let (old_part, old_slot) = *live.get();
                let old_rows = &mut self.partitions[old_part as usize].1;
                let old_slot = old_slot as usize;
                // Checked before the append: an identical or skipped
                // duplicate never takes memory.
                if old_rows.columns.content_hash(old_slot) == rows.content_hash(slot) {
                    self.counts.duplicates_identical += 1;
                    return;
                }
                if self.mode == DedupMode::KeepFirst {
                    self.counts.duplicates_skipped += 1;
                    return;
                }
                self.rows_memory += old_rows.kill(old_slot);
                self.counts.duplicates_replaced += 1;
                live.into_mut()
            }
            Entry::Vacant(free) => free.insert((0, 0)),
        };
        let part = partition_of(
            &mut self.partitions,
            &mut self.partition_index,
            rows.day(slot),
            rows.event_type(slot),
        );
        let partition = &mut self.partitions[part].1;
        *place = (part as u32, partition.columns.len() as u32);
        self.rows_memory += partition.push(rows, slot);
    }

    /// Takes the partitions, with their rows, out of the buffer (the key
    /// map, which points into them, is to be forgotten first).
    pub fn take_partitions(&mut self) -> Vec<(Partition, PartitionRows)> {
        // Once per flush: a walk of the partitions costs little here.
        debug_assert_eq!(self.rows_memory, self.rows_recounted());
        self.rows_memory = 0;
        std::mem::take(&mut self.partitions)
    }

    /// The partitions' memory summed, as `rows_memory` keeps it.
    fn rows_recounted(&self) -> usize {
        self.partitions.iter().map(|(_, p)| p.memory()).sum()
    }

    /// Bytes the buffer holds: rows, the key map, rejected records
    /// (capacity counted, so allocation slack is counted too).
    pub fn memory(&self) -> usize {
        let rows = self.rows_memory;
        // A hashbrown slot plus its control byte.
        let keys = self.keys.capacity() * (std::mem::size_of::<(u128, (u32, u32))>() + 1);
        let rejects = self.rejects.len() * std::mem::size_of::<(Arc<SourceInfo>, RejectedRecord)>()
            + self.reject_heap;
        rows + keys + rejects
    }

    /// The buffer to fill after this one: empty, but with this one's key
    /// map, cleared, so a long run does not grow a map of a batch's keys
    /// again, doubling by doubling, at every flush. [`memory`](Self::memory)
    /// counts the map's room, so the next batch flushes at the same size.
    /// A map four times larger than its batch needed is not kept: after a
    /// burst, a slow stream does not hold its room.
    pub fn successor(&mut self) -> Buffer {
        let mut next = Buffer::new(self.mode);
        let mut keys = std::mem::take(&mut self.keys);
        if keys.len() * 4 >= keys.capacity() {
            keys.clear();
            next.keys = keys;
        }
        next
    }

    /// Frees the key and partition maps (the flush needs only the rows).
    pub fn forget_keys(&mut self) {
        self.keys = HashMap::default();
        self.partition_index = HashMap::default();
    }

    /// Live rows buffered.
    #[cfg(test)]
    pub fn live_rows(&self) -> usize {
        self.partitions.iter().map(|(_, p)| p.live).sum()
    }
}

/// The index in `partitions` of the partition of `day` and `event_type`,
/// added (and indexed) when new.
fn partition_of(
    partitions: &mut Vec<(Partition, PartitionRows)>,
    index: &mut HashMap<i32, HashMap<String, usize>>,
    day: i32,
    event_type: &str,
) -> usize {
    if let Some(&i) = index.get(&day).and_then(|m| m.get(event_type)) {
        return i;
    }
    let i = partitions.len();
    partitions.push((Partition::events(day, event_type), PartitionRows::default()));
    index
        .entry(day)
        .or_default()
        .insert(event_type.to_string(), i);
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::FilePosition;
    use crate::event::{Origin, RecordPosition, Row};

    fn row(uuid: &str, name: &str, created: f64, extra: &str, line: u64) -> Row {
        Row {
            event: crate::event::test_event(uuid, name, created, extra),
            origin: Origin {
                source: Arc::from("t"),
                position: RecordPosition::Line {
                    line,
                    offset: line * 100,
                },
                ingested_micros: 0,
            },
        }
    }

    fn decoded(rows: Vec<Row>) -> Decoded {
        let mut columns = EventColumns::default();
        for row in &rows {
            columns.push(&row.event, &row.origin);
        }
        Decoded {
            source: Arc::new(SourceInfo {
                key: "k".into(),
                display: Arc::from("t"),
                lease: None,
                checkpointed: true,
            }),
            start: SourcePosition::File(FilePosition::default()),
            end: SourcePosition::File(FilePosition {
                offset: 10,
                line: rows.len() as u64,
                ..Default::default()
            }),
            commit_soon: false,
            records: rows.len() as u64,
            rows: columns,
            rejects: vec![],
            blank_lines: 0,
            type_mismatches: Default::default(),
            missing: Default::default(),
            missing_by_type: Default::default(),
            bytes: 10,
        }
    }

    #[test]
    fn duplicates_keep_one_row_per_key() {
        let input = || {
            decoded(vec![
                row("u1", "a:x", 1_780_000_000.0, "", 1),
                row("u2", "a:x", 1_780_000_000.0, "", 2),
                row("u1", "a:x", 1_780_000_000.0, r#","v":2"#, 3),
                // A corrected duplicate may even move to another partition.
                row("u2", "b", 1_780_100_000.0, "", 4),
                // Identical to the live row of u1: the first stays.
                row("u1", "a:x", 1_780_000_000.0, r#","v":2"#, 5),
            ])
        };
        let live = |b: &Buffer| -> Vec<(String, u64)> {
            b.partitions
                .iter()
                .flat_map(|(p, rows)| {
                    rows.live_slots().into_iter().map(move |s| {
                        (p.path(), rows.columns.position(s as usize).parse().unwrap())
                    })
                })
                .collect()
        };
        let mut upsert = Buffer::new(DedupMode::Upsert);
        upsert.add(input());
        let c = &upsert.counts;
        assert_eq!(
            (
                c.duplicates_replaced,
                c.duplicates_identical,
                c.duplicates_skipped
            ),
            (2, 1, 0)
        );
        assert_eq!(
            live(&upsert),
            [
                (
                    "created_datetime_day=2026-05-28/event_type=a".to_string(),
                    3
                ),
                (
                    "created_datetime_day=2026-05-30/event_type=b".to_string(),
                    4
                ),
            ]
        );
        assert_eq!(upsert.live_rows(), 2);
        assert_eq!(
            upsert.spans["k"].to,
            SourcePosition::File(FilePosition {
                offset: 10,
                line: 5,
                ..Default::default()
            })
        );

        let mut first = Buffer::new(DedupMode::KeepFirst);
        first.add(input());
        let c = &first.counts;
        assert_eq!(
            (
                c.duplicates_replaced,
                c.duplicates_identical,
                c.duplicates_skipped
            ),
            (0, 0, 3)
        );
        assert_eq!(
            live(&first),
            [
                (
                    "created_datetime_day=2026-05-28/event_type=a".to_string(),
                    1
                ),
                (
                    "created_datetime_day=2026-05-28/event_type=a".to_string(),
                    2
                ),
            ]
        );
    }

    #[test]
    fn memory_counts_rejects_until_they_are_taken() {
        let reject = |i: u64| crate::event::RejectedRecord {
            reason: crate::event::RejectReason::InvalidJson,
            message: "x".repeat(50),
            raw: vec![b'{'; 1000],
            origin: Origin {
                source: Arc::from("t"),
                position: RecordPosition::Line { line: i, offset: i },
                ingested_micros: 0,
            },
        };
        let mut buffer = Buffer::new(DedupMode::Upsert);
        let mut chunk = decoded(Vec::new());
        chunk.rejects = (0..10).map(reject).collect();
        buffer.add(chunk);
        let each = std::mem::size_of::<(Arc<SourceInfo>, crate::event::RejectedRecord)>();
        assert_eq!(buffer.memory(), 10 * (each + 1000 + 50));
        assert!(buffer.has_rejects());
        assert_eq!(buffer.take_rejects().len(), 10);
        assert!(!buffer.has_rejects());
        assert_eq!(buffer.memory(), 0);
    }

    /// The next buffer starts with the full one's key map, its room
    /// counted, unless the map was far larger than its batch.
    #[test]
    fn the_next_buffer_reuses_the_key_map_of_a_full_one() {
        let rows = |from: u64| {
            (from..from + 1000)
                .map(|i| row(&format!("u{i}"), "a:b", 1_700_000_000.0, "", i))
                .collect()
        };
        let mut first = Buffer::new(DedupMode::Upsert);
        first.add(decoded(rows(0)));
        let room = first.keys.capacity();
        let mut second = first.successor();
        assert!(first.keys.is_empty() && first.keys.capacity() == 0);
        assert_eq!(second.keys.capacity(), room);
        assert!(second.keys.is_empty() && second.is_empty());
        assert_eq!(
            second.memory(),
            room * (std::mem::size_of::<(u128, (u32, u32))>() + 1),
            "the map's room is counted"
        );
        second.add(decoded(rows(1000)));
        assert_eq!((second.keys.len(), second.keys.capacity()), (1000, room));
        // A batch of a tenth of the keys: the next buffer starts afresh.
        let mut third = second.successor();
        third.add(decoded(rows(5000).into_iter().take(100).collect()));
        assert_eq!(third.successor().keys.capacity(), 0);
    }

    /// The memory a buffer reports covers its rows' text, and a duplicate
    /// that is not kept adds nothing.
    #[test]
    fn memory_counts_rows_and_skips_dropped_duplicates() {
        let payload = format!(r#","p":"{}""#, "z".repeat(300));
        let rows = |from: u64| -> Vec<Row> {
            (from..from + 100)
                .map(|i| row(&format!("u{i}"), "a", 1_780_000_000.0, &payload, i))
                .collect()
        };
        let mut buffer = Buffer::new(DedupMode::Upsert);
        assert_eq!(buffer.memory(), 0);
        buffer.add(decoded(rows(0)));
        let after_100 = buffer.memory();
        assert!(after_100 >= 100 * 300, "{after_100}");
        // The same rows again: identical duplicates, nothing appended.
        buffer.add(decoded(rows(0)));
        assert_eq!(buffer.memory(), after_100);
        assert_eq!(buffer.counts.duplicates_identical, 100);
        buffer.add(decoded(rows(100)));
        assert!(buffer.memory() >= 200 * 300);
        assert_eq!(buffer.live_rows(), 200);
    }

    /// What [`Buffer::memory`] counted by walking everything before it was
    /// kept as a running total: every partition's columns (every block),
    /// dead bits, the key map and the rejects.
    fn recounted(b: &Buffer) -> usize {
        let rows: usize = b
            .partitions
            .iter()
            .map(|(_, p)| p.columns.memory_recounted() + p.dead.capacity() * 8)
            .sum();
        let keys = b.keys.capacity() * (std::mem::size_of::<(u128, (u32, u32))>() + 1);
        let rejects: usize = b
            .rejects
            .iter()
            .map(|(_, r)| {
                std::mem::size_of::<(Arc<SourceInfo>, RejectedRecord)>()
                    + r.raw.capacity()
                    + r.message.capacity()
            })
            .sum();
        rows + keys + rejects
    }

    /// The running total of the rows' memory is what a walk of every
    /// partition counts, after each way a row comes in or goes: appended,
    /// replaced (a dead bit), an identical or skipped duplicate, and the
    /// partitions taken by a flush while rejects stay, across 2,000
    /// partitions.
    #[test]
    fn memory_kept_as_rows_come_and_go_is_a_full_recount() {
        const TYPES: u64 = 100;
        const DAYS: u64 = 20;
        let partitions = (TYPES * DAYS) as usize;
        // Partition `p`: event type `t{p % TYPES}` on day `p / TYPES`.
        let at = |p: u64, uuid: String, extra: &str, line: u64| {
            let created = 1_780_000_000.0 + (p / TYPES) as f64 * 86_400.0;
            row(&uuid, &format!("t{}", p % TYPES), created, extra, line)
        };
        let all = 0..TYPES * DAYS;
        let payload = |p: u64| format!(r#","p":"{}""#, "z".repeat((p % 7 * 40) as usize));
        for mode in [DedupMode::Upsert, DedupMode::KeepFirst] {
            let mut buffer = Buffer::new(mode);
            let check = |b: &Buffer, when: &str| {
                assert_eq!(b.memory(), recounted(b), "{mode:?}, {when}");
            };
            buffer.add(decoded(
                all.clone()
                    .flat_map(|p| {
                        let a = at(p, format!("a{p}"), &payload(p), p);
                        [a, at(p, format!("b{p}"), "", p)]
                    })
                    .collect(),
            ));
            check(&buffer, "after the first rows of each partition");
            assert_eq!(buffer.partitions.len(), partitions);
            buffer.add(decoded(
                all.clone()
                    .map(|p| at(p, format!("c{p}"), &payload(p + 3), p))
                    .collect(),
            ));
            check(&buffer, "after more rows");
            // Duplicates: a changed body of `a` (replaced or skipped), the
            // same body of `b` (identical), and one in ten `c` changed and
            // moved to the next partition.
            buffer.add(decoded(
                all.clone()
                    .flat_map(|p| {
                        let mut rows = vec![
                            at(p, format!("a{p}"), r#","v":2"#, p),
                            at(p, format!("b{p}"), "", p),
                        ];
                        if p % 10 == 3 {
                            rows.push(at(p + 1, format!("c{p}"), r#","v":3"#, p));
                        }
                        rows
                    })
                    .collect(),
            ));
            check(&buffer, "after the duplicates");
            let c = &buffer.counts;
            let changed = (TYPES * DAYS + TYPES * DAYS / 10) as usize;
            let kept = match mode {
                DedupMode::Upsert => {
                    assert_eq!(
                        (c.duplicates_replaced, c.duplicates_skipped),
                        (changed as u64, 0)
                    );
                    changed
                }
                DedupMode::KeepFirst => {
                    assert_eq!(
                        (c.duplicates_replaced, c.duplicates_skipped),
                        (0, changed as u64)
                    );
                    0
                }
            };
            assert_eq!(c.duplicates_identical, TYPES * DAYS);
            assert_eq!(buffer.live_rows(), 3 * partitions);
            let slots: usize = buffer.partitions.iter().map(|(_, p)| p.columns.len()).sum();
            assert_eq!(slots, 3 * partitions + kept);

            let mut rejects = decoded(Vec::new());
            rejects.rejects = (0..50)
                .map(|i| RejectedRecord {
                    reason: crate::event::RejectReason::InvalidJson,
                    message: "broken".into(),
                    raw: vec![b'{'; 100 + i],
                    origin: Origin {
                        source: Arc::from("t"),
                        position: RecordPosition::Line {
                            line: i as u64,
                            offset: 0,
                        },
                        ingested_micros: 0,
                    },
                })
                .collect();
            buffer.add(rejects);
            check(&buffer, "after rejects");

            // A flush takes the partitions; the rejects are still held.
            buffer.forget_keys();
            assert_eq!(buffer.take_partitions().len(), partitions);
            check(&buffer, "after the partitions were taken");
            assert!(buffer.has_rejects() && buffer.memory() > 0);
            buffer.add(decoded(
                (0..TYPES)
                    .map(|p| at(p, format!("d{p}"), &payload(p), p))
                    .collect(),
            ));
            check(&buffer, "after rows added since");
            assert_eq!(buffer.partitions.len(), TYPES as usize);
            buffer.take_rejects();
            buffer.forget_keys();
            buffer.take_partitions();
            assert_eq!(buffer.memory(), 0);
        }
    }
}
