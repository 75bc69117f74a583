//! Unit tests of `file.rs`.

use super::*;

fn info() -> Arc<SourceInfo> {
    Arc::new(SourceInfo {
        key: "k".into(),
        display: Arc::from("t"),
        lease: None,
        checkpointed: true,
    })
}

fn split(input: &[u8], block: usize, max: usize) -> Vec<Chunk> {
    let mut s = LineSplitter::new(info(), max);
    let mut out = Vec::new();
    for piece in input.chunks(block) {
        out.extend(s.push(piece));
    }
    out.extend(s.finish(true));
    out
}

/// Every chunk of `path` read from `from`, or the error.
fn read(path: &std::path::Path, from: FilePosition) -> Result<Vec<Chunk>, SourceError> {
    let input = FileInput {
        display: path.display().to_string(),
        path: Some(path.to_path_buf()),
    };
    let mut got = Vec::new();
    OpenInput::open(&input)?.read_chunks(from, 1000, |c| {
        got.push(c);
        true
    })?;
    Ok(got)
}

fn lines_of(chunks: &[Chunk]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        if let ChunkBody::Lines(l) = &c.body {
            out.extend_from_slice(l);
        }
    }
    out
}

#[test]
fn a_resume_checks_that_the_committed_bytes_are_still_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.jsonl");
    std::fs::write(&path, "h0\na1\na2\na3\n").unwrap();
    let first = read(&path, FilePosition::default()).unwrap();
    let end = first.last().unwrap().end;
    assert_eq!((end.offset, end.line), (12, 4));
    // The same file, grown: resumes where it stopped.
    std::fs::write(&path, "h0\na1\na2\na3\na4\n").unwrap();
    let grown = read(&path, end).unwrap();
    assert_eq!(lines_of(&grown), b"a4\n");
    assert_eq!(grown[0].start.line, 4);
    // Rewritten in place with the same first line (same identity): refused.
    std::fs::write(&path, "h0\nb1\nb2\nb3\nb4\nb5\n").unwrap();
    let e = read(&path, end).unwrap_err().to_string();
    assert!(
        e.contains("changed since its first 12 bytes (line 4) were committed"),
        "{e}"
    );
}

#[test]
fn an_unended_last_line_waits_for_its_writer_unless_it_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.jsonl");
    // A writer mid-line: the half line is left unread.
    std::fs::write(&path, "{\"a\":1}\n{\"b\":").unwrap();
    let first = read(&path, FilePosition::default()).unwrap();
    assert_eq!(lines_of(&first), b"{\"a\":1}\n");
    let end = first.last().unwrap().end;
    assert_eq!((end.offset, end.line), (8, 1));
    // The writer ends the line: it is read whole, as line 2.
    std::fs::write(&path, "{\"a\":1}\n{\"b\":2}").unwrap();
    let second = read(&path, end).unwrap();
    assert_eq!(lines_of(&second), b"{\"b\":2}", "a complete value is taken");
    let end = second.last().unwrap().end;
    assert_eq!((second[0].start.line, end.offset, end.line), (1, 15, 2));
    // Its newline comes later, then line 3: no phantom blank line between.
    std::fs::write(&path, "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n").unwrap();
    let third = read(&path, end).unwrap();
    assert_eq!(lines_of(&third), b"{\"c\":3}\n");
    assert_eq!((third[0].start.offset, third[0].start.line), (16, 2));
    assert_eq!(third.last().unwrap().end.line, 3);
    // A gzip stream's end is the input's end: its last line is taken.
    use std::io::Write;
    let gz = dir.path().join("e.jsonl.gz");
    let mut enc =
        flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(b"{\"a\":1}\n{\"b\":").unwrap();
    enc.finish().unwrap();
    assert_eq!(
        lines_of(&read(&gz, FilePosition::default()).unwrap()),
        b"{\"a\":1}\n{\"b\":"
    );
}

#[test]
fn a_file_named_twice_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    std::fs::write(&a, "x\n").unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let dotted = format!("{}/./a.jsonl", dir.path().display());
    let got =
        expand_inputs(&[a.display().to_string(), link.display().to_string(), dotted]).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].display, a.display().to_string());
}

#[test]
fn chunks_are_whole_lines_with_exact_positions() {
    let input = b"aa\nbbb\ncccc\nd";
    for block in [1, 2, 3, 5, 100] {
        let chunks = split(input, block, 100);
        let mut joined = Vec::new();
        let mut pos = FilePosition::default();
        for c in &chunks {
            assert_eq!(c.start, pos, "block {block}");
            let ChunkBody::Lines(lines) = &c.body else {
                panic!()
            };
            joined.extend_from_slice(lines);
            pos = c.end;
        }
        assert_eq!(joined, input, "block {block}");
        assert_eq!(
            pos,
            FilePosition {
                offset: 13,
                line: 4,
                prefix: Some(xxhash_rust::xxh3::xxh3_64(input)),
            },
            "block {block}: the hash of every byte before the position"
        );
    }
}

#[test]
fn oversized_lines_are_set_apart_or_left_whole() {
    // Depending on how reads fall, an oversized line is either set apart
    // (never buffered whole) or arrives whole inside a chunk of lines, where
    // the decoder rejects it; either way its number, offset and length are exact.
    let long = "x".repeat(50);
    let input = format!("a\n{long}\nb\n{long}");
    for block in [1, 7, 1000] {
        let chunks = split(input.as_bytes(), block, 10);
        let mut short = Vec::new();
        let mut long_lines = Vec::new();
        for c in &chunks {
            match &c.body {
                ChunkBody::Oversized { len, head } => {
                    assert_eq!(head.len(), 50, "block {block}");
                    long_lines.push((c.start.line + 1, c.start.offset, *len));
                }
                ChunkBody::Lines(data) => {
                    let mut offset = c.start.offset;
                    for (i, l) in data
                        .strip_suffix(b"\n")
                        .unwrap_or(data)
                        .split(|b| *b == b'\n')
                        .enumerate()
                    {
                        let line = c.start.line + 1 + i as u64;
                        if l.len() > 10 {
                            long_lines.push((line, offset, l.len() as u64));
                        } else {
                            short.push((line, offset, l.to_vec()));
                        }
                        offset += l.len() as u64 + 1;
                    }
                }
            }
        }
        assert_eq!(long_lines, vec![(2, 2, 50), (4, 55, 50)], "block {block}");
        let end = chunks.last().unwrap().end;
        assert_eq!(
            (end.offset, end.prefix),
            (
                input.len() as u64,
                Some(xxhash_rust::xxh3::xxh3_64(input.as_bytes()))
            ),
            "block {block}: an unended last line adds no newline"
        );
        assert_eq!(
            short,
            vec![(1, 0, b"a".to_vec()), (3, 53, b"b".to_vec())],
            "block {block}"
        );
    }
}

#[test]
fn identity_depends_on_path_and_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    std::fs::write(&a, "one\ntwo\n").unwrap();
    let input = FileInput {
        display: a.display().to_string(),
        path: Some(a.clone()),
    };
    let k1 = OpenInput::open(&input).unwrap().info.key.clone();
    std::fs::write(&a, "one\ntwo\nthree\n").unwrap();
    assert_eq!(
        OpenInput::open(&input).unwrap().info.key,
        k1,
        "a file that grew is the same"
    );
    std::fs::write(&a, "uno\n").unwrap();
    assert_ne!(
        OpenInput::open(&input).unwrap().info.key,
        k1,
        "new content is a new source"
    );
}

#[test]
fn reads_plain_and_gzip_from_an_offset() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("e.jsonl");
    let gz = dir.path().join("e.jsonl.gz");
    let text = b"l1\nl2\nl3\n";
    std::fs::write(&plain, text).unwrap();
    let mut enc =
        flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(text).unwrap();
    enc.finish().unwrap();
    for path in [plain, gz] {
        let input = FileInput {
            display: path.display().to_string(),
            path: Some(path.clone()),
        };
        let mut got = Vec::new();
        OpenInput::open(&input)
            .unwrap()
            .read_chunks(
                FilePosition {
                    offset: 3,
                    line: 1,
                    prefix: None,
                },
                100,
                |c| {
                    got.push(c);
                    true
                },
            )
            .unwrap();
        assert_eq!(got.len(), 1, "{path:?}");
        assert_eq!(
            got[0].body,
            ChunkBody::Lines(b"l2\nl3\n".to_vec()),
            "{path:?}"
        );
        assert_eq!((got[0].end.offset, got[0].end.line), (9, 3), "{path:?}");
    }
}

#[test]
fn patterns_expand_or_say_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["b.jsonl", "a.jsonl"] {
        std::fs::write(dir.path().join(name), "x\n").unwrap();
    }
    let pattern = format!("{}/*.jsonl", dir.path().display());
    let got = expand_inputs(&[pattern.clone(), "-".into(), pattern]).unwrap();
    let names: Vec<_> = got
        .iter()
        .map(|i| i.display.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a.jsonl", "b.jsonl", "-"]);
    let missing = format!("{}/none*.jsonl", dir.path().display());
    let e = expand_inputs(&[missing]).unwrap_err().to_string();
    assert!(e.contains("matches no file"), "{e}");
    let e = expand_inputs(&["/no/such/file.jsonl".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such file"), "{e}");
}
