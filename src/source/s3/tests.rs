//! Unit tests of `s3.rs`: patterns, and the blocking body adapter.

use super::*;

#[test]
fn a_pattern_splits_into_bucket_listing_prefix_and_key_glob() {
    let cases = [
        ("s3://raw/p/**/*.json.gz", "raw", "p/"),
        ("s3://raw/p/2026-*.jsonl", "raw", "p/2026-"),
        ("s3://raw/p/a.json", "raw", "p/a.json"),
        ("s3://raw/*.json", "raw", ""),
        ("s3://raw/p/day=2?/x[0-9].json", "raw", "p/day=2"),
    ];
    for (uri, bucket, prefix) in cases {
        let input = S3Input::parse(uri).unwrap();
        assert_eq!(
            (input.bucket.as_str(), input.list_prefix.as_str()),
            (bucket, prefix),
            "{uri}"
        );
        assert_eq!(input.uri, uri);
    }
    let input = S3Input::parse("s3://raw/p/**/*.json.gz").unwrap();
    assert_eq!(
        input.object_uri("p/2026/a.json.gz"),
        "s3://raw/p/2026/a.json.gz"
    );
}

#[test]
fn keys_match_with_single_stars_inside_one_folder() {
    let input = S3Input::parse("s3://raw/p/**/*.json.gz").unwrap();
    for key in ["p/a.json.gz", "p/2026/05/28/a.json.gz"] {
        assert!(input.matches(key), "{key}");
    }
    for key in ["p/a.json.gz.tmp", "p/x.txt", "q/a.json.gz", "pa.json.gz"] {
        assert!(!input.matches(key), "{key}");
    }
    let flat = S3Input::parse("s3://raw/p/*.jsonl").unwrap();
    assert!(flat.matches("p/b.jsonl"));
    assert!(!flat.matches("p/2026/b.jsonl"), "* does not cross /");
    let exact = S3Input::parse("s3://raw/p/a.json").unwrap();
    assert!(exact.matches("p/a.json"));
    assert!(!exact.matches("p/a.json.gz"));
}

#[test]
fn bad_patterns_say_what_is_wrong() {
    let cases = [
        ("s3://raw", "give a key or a pattern after the bucket"),
        ("s3://raw/", "give a key or a pattern after the bucket"),
        ("s3:///p/*.json", "no bucket name"),
        ("s3://raw/p//a.json", "empty path segments"),
        ("s3://raw/p/[a.json", "input pattern s3://raw/p/[a.json: "),
    ];
    for (uri, part) in cases {
        let e = S3Input::parse(uri).unwrap_err().to_string();
        assert!(e.contains(part), "{uri}: {e}");
        assert!(e.contains(uri), "{uri}: {e}");
    }
    assert!(is_object_input("s3://raw/p"));
    assert!(!is_object_input("./s3:/raw"));
}

#[test]
fn an_object_chunk_carries_the_objects_positions() {
    let info = Arc::new(SourceInfo {
        key: "s3://raw/p/*".into(),
        display: Arc::from("s3://raw/p/a"),
        lease: None,
        checkpointed: true,
    });
    let at = |offset, line| FilePosition {
        offset,
        line,
        prefix: Some(1),
    };
    let chunk = ObjectChunk {
        chunk: Chunk {
            source: info,
            body: ChunkBody::Lines(Vec::new()),
            start: at(10, 1),
            end: at(30, 3),
        },
        object: Arc::new(ObjectRef {
            key: "p/a".into(),
            etag: "\"e\"".into(),
        }),
        done: true,
    };
    let position = |offset, line, done| {
        SourcePosition::Object(ObjectPosition {
            key: "p/a".into(),
            etag: "\"e\"".into(),
            offset,
            line,
            done,
        })
    };
    assert_eq!(
        chunk.positions(),
        (position(10, 1, false), position(30, 3, true))
    );
}

/// A body that hands out `parts` in order, counting into `progress`.
fn body_of(
    runtime: &tokio::runtime::Runtime,
    parts: Vec<Vec<u8>>,
    progress: &Arc<Progress>,
) -> BlockingRead<impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Unpin + use<>, Vec<u8>> {
    BlockingRead {
        handle: runtime.handle().clone(),
        stream: futures::stream::iter(parts.into_iter().map(Ok)),
        current: None,
        at: 0,
        progress: progress.clone(),
    }
}

#[test]
fn the_blocking_body_reads_every_part_in_order_and_counts_bytes() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let parts = vec![b"ab".to_vec(), Vec::new(), b"cde\n".to_vec()];
    let progress = Arc::new(Progress::default());
    let mut body = body_of(&runtime, parts, &progress);
    let mut out = Vec::new();
    let mut small = [0u8; 3];
    loop {
        let n = body.read(&mut small).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&small[..n]);
    }
    assert_eq!(out, b"abcde\n");
    assert_eq!(progress.object_bytes_done.load(Ordering::Relaxed), 6);

    let failing: Vec<std::io::Result<Vec<u8>>> =
        vec![Ok(b"a".to_vec()), Err(std::io::Error::other("gone"))];
    let mut body = BlockingRead {
        handle: runtime.handle().clone(),
        stream: futures::stream::iter(failing),
        current: None,
        at: 0,
        progress,
    };
    let mut all = Vec::new();
    let e = body.read_to_end(&mut all).unwrap_err();
    assert_eq!(e.to_string(), "gone");
}

/// Every stored byte a run reads of an object counts once in both bytes
/// listed and bytes done: the object a resume starts in counts its rest
/// when plain (a ranged read) and all of it when gzip (read again from its
/// start), and an object listed ahead is not counted twice.
#[test]
fn a_read_counts_in_bytes_listed_what_it_reads_as_done() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stored: Vec<u8> = (0..100).collect();
    let resumed_at = |offset| FilePosition {
        offset,
        line: 3,
        prefix: None,
    };
    let cases = [
        // (listed ahead, resumed at, gzip, start, bytes listed here)
        (false, 40, false, 40, 60),
        (false, 40, true, 0, 100),
        // Past the stored size: a gzip object's offset is decompressed.
        (false, 250, true, 0, 100),
        (false, 100, false, 100, 0),
        (true, 0, false, 0, 0),
    ];
    for (counted_ahead, offset, gzip, start, listed_here) in cases {
        let case = format!("listed ahead {counted_ahead}, at {offset}, gzip {gzip}");
        let progress = Arc::new(Progress::default());
        let listed = Listed {
            object: Arc::new(ObjectRef {
                key: "p/a".into(),
                etag: "\"e\"".into(),
            }),
            size: stored.len() as u64,
            counted_ahead,
        };
        // The lister ahead's count, when it listed the object.
        if counted_ahead {
            progress
                .object_bytes_listed
                .fetch_add(100, Ordering::Relaxed);
        }
        let before = progress.object_bytes_listed.load(Ordering::Relaxed);
        assert_eq!(
            listed.start(&resumed_at(offset), gzip, &progress),
            start,
            "{case}"
        );
        let after = progress.object_bytes_listed.load(Ordering::Relaxed);
        assert_eq!(after - before, listed_here, "{case}");
        // The body from `start`, in two parts, counted as it is read.
        let rest = stored[start as usize..].to_vec();
        let parts = vec![
            rest[..rest.len() / 2].to_vec(),
            rest[rest.len() / 2..].to_vec(),
        ];
        let mut body = body_of(&runtime, parts, &progress);
        let mut read = Vec::new();
        body.read_to_end(&mut read).unwrap();
        assert_eq!(read.len() as u64, 100 - start, "{case}");
        assert_eq!(
            progress.object_bytes_done.load(Ordering::Relaxed),
            after,
            "{case}: bytes done and listed"
        );
    }
}

#[test]
fn the_progress_line_shows_objects_and_bytes_of_those_listed() {
    let progress = Progress::default();
    assert_eq!(crate::telemetry::objects_progress(&progress), "");
    progress.objects_listed.store(5_310, Ordering::Relaxed);
    progress.objects_done.store(1_204, Ordering::Relaxed);
    progress.object_bytes_done.store(3 << 29, Ordering::Relaxed);
    progress
        .object_bytes_listed
        .store(9 << 29, Ordering::Relaxed);
    assert_eq!(
        crate::telemetry::objects_progress(&progress),
        ", objects 1,204/5,310 (listing...), 1.50/4.50 GiB"
    );
    progress.listing_done.store(true, Ordering::Relaxed);
    assert_eq!(
        crate::telemetry::objects_progress(&progress),
        ", objects 1,204/5,310, 1.50/4.50 GiB"
    );
}

#[test]
fn a_listing_must_come_in_ascending_key_order() {
    let input = S3Input::parse("s3://raw/p/*.jsonl").unwrap();
    assert!(in_key_order(&input, None, "p/a.jsonl").is_ok());
    assert!(in_key_order(&input, Some("p/a.jsonl"), "p/b.jsonl").is_ok());
    // Byte order, as S3 lists: upper case before lower case, `/` before `0`.
    assert!(in_key_order(&input, Some("p/B.jsonl"), "p/a.jsonl").is_ok());
    assert!(in_key_order(&input, Some("p/a/x"), "p/a0").is_ok());
    for (previous, key) in [("p/b.jsonl", "p/a.jsonl"), ("p/a.jsonl", "p/a.jsonl")] {
        let e = in_key_order(&input, Some(previous), key)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "the listing of s3://raw/p/*.jsonl is not in key order ({previous} came before {key}): \
                 only buckets that list keys in ascending order (S3 general purpose buckets) can be read"
            )
        );
    }
}
