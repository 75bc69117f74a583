//! The run loop as a component: a fake source, a temporary warehouse with a
//! SQLite catalog, and paused time (the flush interval passes at once when
//! nothing else is to be done). No server, no sleep.
//!
//! Each test reads its results back from the warehouse through a store of
//! its own, with a table scan, and checks exact values.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use futures::TryStreamExt;
use tokio::sync::{oneshot, watch};

use super::{Input, RunError, RunReport, run_input};
use crate::catalog::TableName;
use crate::checkpoint::{Checkpoint, FilePosition, SourcePosition};
use crate::config::{RunConfig, RunSettings, Tuning};
use crate::source::file::{Chunk, ChunkBody};
use crate::source::{ChunkSender, Reading, Source, SourceChunk, SourceInfo};
use crate::supervise::StageFailure;
use crate::telemetry::Progress;

/// The fake's checkpoint key.
const KEY: &str = "file:fake#0";

/// What the fake does once its chunks are sent.
#[derive(Clone, Copy, Debug)]
enum Then {
    /// Returns: the input ends.
    End,
    /// Waits until the channel's receiver is gone (a stream with nothing new).
    StayOpen,
    /// Panics (a bug in a source).
    Panic,
    /// Closes the channel, then panics a second later: the run loop sees
    /// the input end before the task's end, whatever the scheduler does.
    CloseThenPanic,
}

/// A source that hands out `lines` (JSON Lines) in chunks of `per_chunk`
/// lines, then does what `then` says; on a thread (as files are read) or as
/// a task (as the Kinesis consumer runs).
struct Fake {
    lines: Vec<String>,
    per_chunk: usize,
    then: Then,
    on_task: bool,
    /// Gets the committed checkpoint's receiver, so that a test can wait for
    /// a commit.
    committed: Option<oneshot::Sender<watch::Receiver<Checkpoint>>>,
}

impl Fake {
    fn new(lines: &[String], per_chunk: usize, then: Then) -> Self {
        Fake {
            lines: lines.to_vec(),
            per_chunk,
            then,
            on_task: false,
            committed: None,
        }
    }

    /// The chunks, with their file positions (the last one's end is
    /// [`end_of`] the lines).
    fn chunks(&self) -> Vec<Chunk> {
        let source = Arc::new(SourceInfo {
            key: KEY.into(),
            display: Arc::from("fake"),
            lease: None,
            checkpointed: true,
        });
        let mut at = FilePosition::default();
        self.lines
            .chunks(self.per_chunk)
            .map(|lines| {
                let body: Vec<u8> = lines
                    .iter()
                    .flat_map(|l| format!("{l}\n").into_bytes())
                    .collect();
                let start = at;
                at.offset += body.len() as u64;
                at.line += lines.len() as u64;
                Chunk {
                    source: source.clone(),
                    body: ChunkBody::Lines(body),
                    start,
                    end: at,
                }
            })
            .collect()
    }
}

/// Where a source of `lines` ends.
fn end_of(lines: &[String]) -> SourcePosition {
    SourcePosition::File(FilePosition {
        offset: lines.iter().map(|l| l.len() as u64 + 1).sum(),
        line: lines.len() as u64,
        prefix: None,
    })
}

impl Source for Fake {
    fn start(
        mut self: Box<Self>,
        tx: ChunkSender,
        committed: watch::Receiver<Checkpoint>,
    ) -> Result<Reading, StageFailure> {
        if let Some(out) = self.committed.take() {
            let _ = out.send(committed);
        }
        let chunks = self.chunks();
        let then = self.then;
        if self.on_task && matches!(then, Then::Panic) {
            // As the Kinesis consumer's shard readers do, another task
            // keeps the channel open: the panic shows only as the task's end.
            let reader = tx.clone();
            tokio::spawn(async move { reader.closed().await });
        }
        let send_all = async move {
            for chunk in chunks {
                if tx.send(Ok(SourceChunk::File(chunk))).await.is_err() {
                    return;
                }
            }
            match then {
                Then::End => {}
                Then::StayOpen => tx.closed().await,
                Then::Panic => panic!("the fake source broke"),
                Then::CloseThenPanic => {
                    drop(tx);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    panic!("the fake source broke");
                }
            }
        };
        if self.on_task {
            Ok(Reading::task("fake consumer", tokio::spawn(send_all)))
        } else {
            let thread = std::thread::spawn(move || futures::executor::block_on(send_all));
            if !matches!(then, Then::StayOpen) {
                // Done before the run loop waits for it (its chunks fit the
                // channel): paused time never jumps to a flush deadline
                // while the thread is still at work.
                while !thread.is_finished() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Ok(Reading::thread("fake reader", thread))
        }
    }
}

/// An event line created an hour ago.
fn event(uuid: u32, amount: u32) -> String {
    let created = chrono::Utc::now().timestamp() - 3600;
    format!(
        r#"{{"event_uuid":"00000000-0000-4000-8000-{uuid:012}","event_name":"payment:card","created_at":{created},"amount":{amount}}}"#
    )
}

fn config(warehouse: &std::path::Path, flush_interval: &str) -> RunConfig {
    RunSettings {
        input: Some(vec!["(the fake)".into()]),
        warehouse: Some(warehouse.to_path_buf()),
        tuning: Tuning {
            flush_interval: Some(flush_interval.into()),
            decode_threads: Some(2),
            expire_every: Some("off".into()),
            ..Default::default()
        },
        ..Default::default()
    }
    .validate()
    .unwrap()
}

/// Runs the pipeline on `fake` until it ends; `shutdown` asks it to stop.
async fn run_fake(
    config: &RunConfig,
    fake: Fake,
    shutdown: watch::Receiver<bool>,
) -> Result<RunReport, RunError> {
    let (supervisor, failures) = crate::supervise::supervisor();
    let progress = Arc::new(Progress::default());
    let input = Input::Given(Box::new(fake));
    run_input(config, input, progress, shutdown, supervisor, failures).await
}

/// What a reader of the warehouse finds: the values of `column` in `table`
/// (deletes applied), sorted, and the table's checkpoint.
async fn read_back(
    config: &RunConfig,
    table: &TableName,
    column: &str,
) -> (Vec<String>, Checkpoint) {
    let store = super::open_store(&config.store).await.unwrap();
    let table = store.reload(table).await.unwrap();
    let mut values = Vec::new();
    if table.metadata.current_snapshot().is_some() {
        let scan = table
            .to_iceberg(store.file_io())
            .unwrap()
            .scan()
            .select([column])
            .build()
            .unwrap();
        let mut batches = scan.to_arrow().await.unwrap();
        while let Some(batch) = batches.try_next().await.unwrap() {
            let strings = batch.column(0).as_string::<i32>();
            values.extend(strings.iter().map(|v| v.unwrap().to_string()));
        }
    }
    values.sort();
    (values, table.checkpoint().unwrap())
}

fn uuids(ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|id| format!("00000000-0000-4000-8000-{id:012}"))
        .collect()
}

/// Five records, one an identical duplicate and one not JSON, in three
/// chunks: four rows and one reject, each stored once, and the checkpoint at
/// the source's end.
#[tokio::test(start_paused = true)]
async fn a_source_read_to_its_end_is_committed_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "60s");
    let lines = vec![
        event(1, 10),
        event(2, 20),
        event(1, 10),
        "{not json".to_string(),
        event(3, 30),
        event(4, 40),
    ];
    let mut fake = Fake::new(&lines, 2, Then::End);
    // A task, not a thread: paused time then never jumps while the fake
    // has chunks to send, so the end of the input is what flushes.
    fake.on_task = true;
    let (_stop, shutdown) = watch::channel(false);
    let report = run_fake(&config, fake, shutdown).await.unwrap();

    let (events, checkpoint) = read_back(&config, &config.table, "event_uuid").await;
    assert_eq!(events, uuids(&[1, 2, 3, 4]));
    assert_eq!(checkpoint.get(KEY), Some(&end_of(&lines)));
    let (reasons, rejected_checkpoint) = read_back(&config, &config.rejected_table, "reason").await;
    assert_eq!(reasons, ["invalid_json"]);
    assert_eq!(rejected_checkpoint.get(KEY), Some(&end_of(&lines)));

    let counts = &report.counts;
    assert_eq!(
        (
            counts.records_read,
            counts.rows_written,
            counts.duplicates_identical,
            counts.rejected_total()
        ),
        (6, 4, 1, 1)
    );
    assert!(!report.interrupted);
    assert_eq!((report.event_snapshots, report.rejected_snapshots), (1, 1));
}

/// A partition of more rows than one record batch takes is encoded into
/// one file slice by slice: every row once, in the table's sort order
/// (created_datetime), whatever order the rows came in.
#[tokio::test(start_paused = true)]
async fn a_file_larger_than_a_slice_holds_every_row_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "60s");
    let rows = 2 * super::flush::SLICE_ROWS as u32 + 123;
    let start = chrono::Utc::now().timestamp() - 86_400;
    // Newest first: the file's order is the sort, not the arrival.
    let lines: Vec<String> = (1..=rows)
        .rev()
        .map(|id| {
            format!(
                r#"{{"event_uuid":"00000000-0000-4000-8000-{id:012}","event_name":"payment:card","created_at":{}}}"#,
                start + i64::from(id)
            )
        })
        .collect();
    let mut fake = Fake::new(&lines, 1000, Then::End);
    fake.on_task = true;
    let (_stop, shutdown) = watch::channel(false);
    let report = run_fake(&config, fake, shutdown).await.unwrap();
    assert_eq!(
        (report.counts.rows_written, report.event_snapshots),
        (u64::from(rows), 1)
    );

    let store = super::open_store(&config.store).await.unwrap();
    let table = store.reload(&config.table).await.unwrap();
    let files: Vec<_> = store.live_entries(&table).await.unwrap();
    assert_eq!(files.len(), 1, "one partition, one file");
    let scan = table
        .to_iceberg(store.file_io())
        .unwrap()
        .scan()
        .select(["event_uuid"])
        .build()
        .unwrap();
    let mut in_file = Vec::new();
    let mut batches = scan.to_arrow().await.unwrap();
    while let Some(batch) = batches.try_next().await.unwrap() {
        let strings = batch.column(0).as_string::<i32>();
        in_file.extend(strings.iter().map(|v| v.unwrap().to_string()));
    }
    let expected: Vec<u32> = (1..=rows).collect();
    assert_eq!(in_file, uuids(&expected));
}

/// Batches far larger than `flush_size`, many flushes: while one is
/// written the next fills only into the memory it frees, and every record
/// still lands once, with the checkpoint at the end.
#[tokio::test(start_paused = true)]
async fn batches_over_the_flush_size_fill_as_flushes_free_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = RunSettings {
        input: Some(vec!["(the fake)".into()]),
        warehouse: Some(dir.path().to_path_buf()),
        tuning: Tuning {
            flush_interval: Some("60s".into()),
            flush_size: Some("4KiB".into()),
            decode_threads: Some(2),
            expire_every: Some("off".into()),
            ..Default::default()
        },
        ..Default::default()
    }
    .validate()
    .unwrap();
    // 120 events, every fifth one sent again identical, three per chunk.
    let mut lines = Vec::new();
    for id in 1..=120 {
        lines.push(event(id, id * 10));
        if id % 5 == 0 {
            lines.push(event(id, id * 10));
        }
    }
    let mut fake = Fake::new(&lines, 3, Then::End);
    fake.on_task = true;
    let (_stop, shutdown) = watch::channel(false);
    let report = run_fake(&config, fake, shutdown).await.unwrap();

    let (events, checkpoint) = read_back(&config, &config.table, "event_uuid").await;
    assert_eq!(events, uuids(&(1..=120).collect::<Vec<_>>()));
    assert_eq!(checkpoint.get(KEY), Some(&end_of(&lines)));
    let counts = &report.counts;
    assert_eq!(
        (
            counts.records_read,
            counts.rows_written,
            counts.duplicates_identical
        ),
        (144, 120, 24)
    );
    assert!(
        report.event_snapshots >= 10,
        "a flush for every few chunks, not {}",
        report.event_snapshots
    );
}

/// A source that sends three records and then nothing: the flush interval
/// commits them without more input; a shutdown then ends the run.
#[tokio::test(start_paused = true)]
async fn the_flush_interval_commits_a_quiet_source() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "60s");
    let lines = vec![event(1, 10), event(2, 20), event(3, 30)];
    let (committed_tx, committed_rx) = oneshot::channel();
    let mut fake = Fake::new(&lines, 1, Then::StayOpen);
    fake.on_task = true;
    fake.committed = Some(committed_tx);
    let (stop, shutdown) = watch::channel(false);
    let started = tokio::time::Instant::now();
    let check = async {
        let mut committed = committed_rx.await.unwrap();
        // Paused time jumps to the next timer when all is idle: a missing
        // flush deadline shows as this hour passing instead.
        tokio::time::timeout(
            Duration::from_secs(3600),
            committed.wait_for(|c| c.get(KEY) == Some(&end_of(&lines))),
        )
        .await
        .expect("the records are committed once the flush interval has passed")
        .unwrap();
        let waited = started.elapsed();
        assert!(
            (Duration::from_secs(60)..Duration::from_secs(120)).contains(&waited),
            "committed after {waited:?}, not one flush interval (60 s)"
        );
        let (events, checkpoint) = read_back(&config, &config.table, "event_uuid").await;
        assert_eq!(events, uuids(&[1, 2, 3]));
        assert_eq!(checkpoint.get(KEY), Some(&end_of(&lines)));
        stop.send(true).unwrap();
    };
    let (report, ()) = tokio::join!(run_fake(&config, fake, shutdown), check);

    let report = report.unwrap();
    assert!(report.interrupted);
    assert_eq!(
        (report.counts.records_read, report.counts.rows_written),
        (3, 3)
    );
    assert_eq!(
        report.event_snapshots, 1,
        "nothing more to commit at the shutdown"
    );
}

/// A reader thread that panics after handing chunks over: the run commits
/// them (in its last flush), then fails naming the stage.
#[tokio::test(start_paused = true)]
async fn a_source_thread_that_panics_fails_the_run_after_committing() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "60s");
    let lines = vec![event(1, 10), event(2, 20), event(3, 30)];
    let (_stop, shutdown) = watch::channel(false);
    let result = run_fake(&config, Fake::new(&lines, 1, Then::Panic), shutdown).await;

    match result {
        Err(RunError::Stage { stage, message }) => {
            assert_eq!(stage, "fake reader");
            assert_eq!(message, "it panicked: the fake source broke");
        }
        other => panic!("expected the reader's failure, got {other:?}"),
    }
    let (events, checkpoint) = read_back(&config, &config.table, "event_uuid").await;
    assert_eq!(events, uuids(&[1, 2, 3]));
    assert_eq!(checkpoint.get(KEY), Some(&end_of(&lines)));
}

/// A source task that panics fails the run at once, naming the stage.
#[tokio::test(start_paused = true)]
async fn a_source_task_that_panics_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "60s");
    let mut fake = Fake::new(&[event(1, 10)], 1, Then::Panic);
    fake.on_task = true;
    let (_stop, shutdown) = watch::channel(false);
    // The channel stays open: only the task's end can stop the run (else
    // paused time jumps to this timeout).
    let ran = tokio::time::timeout(Duration::from_secs(3600), run_fake(&config, fake, shutdown));
    match ran.await.expect("the panic ends the run") {
        Err(RunError::Stage { stage, message }) => {
            assert_eq!(stage, "fake consumer");
            assert_eq!(message, "it panicked: the fake source broke");
        }
        other => panic!("expected the consumer's failure, got {other:?}"),
    }
}

/// A source task whose channel closes before its panic shows: the run loop
/// sees the input end first, and must still fail, not pass a partial read
/// off as complete.
#[tokio::test(start_paused = true)]
async fn a_source_task_that_panics_and_closes_its_channel_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "60s");
    let lines = vec![event(1, 10), event(2, 20)];
    let mut fake = Fake::new(&lines, 1, Then::CloseThenPanic);
    fake.on_task = true;
    let (_stop, shutdown) = watch::channel(false);
    match run_fake(&config, fake, shutdown).await {
        Err(RunError::Stage { stage, message }) => {
            assert_eq!(stage, "fake consumer");
            assert_eq!(message, "it panicked: the fake source broke");
        }
        other => panic!("expected the consumer's failure, got {other:?}"),
    }
    let (events, checkpoint) = read_back(&config, &config.table, "event_uuid").await;
    assert_eq!(events, uuids(&[1, 2]));
    assert_eq!(checkpoint.get(KEY), Some(&end_of(&lines)));
}
