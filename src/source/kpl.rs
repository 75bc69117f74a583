//! KPL aggregated records: the Kinesis Producer Library packs many user
//! records into one Kinesis record as
//!
//! ```text
//! F3 89 9A C2 | protobuf AggregatedRecord | MD5(protobuf) (16 bytes)
//! ```
//!
//! where `AggregatedRecord` is `{ repeated string partition_key_table = 1;
//! repeated string explicit_hash_key_table = 2; repeated Record records = 3 }`
//! and `Record` is `{ uint64 partition_key_index = 1; uint64
//! explicit_hash_key_index = 2; bytes data = 3; repeated Tag tags = 4 }`.
//! The `i`th user record has sub-sequence number `i`.
//!
//! Only what Floe needs is decoded (the data of each user record, with the
//! indexes checked); unknown fields are skipped as protobuf requires.

use md5::{Digest, Md5};

/// The first bytes of every aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// The user records of `data`: `Ok(None)` for a plain (not aggregated)
/// record, the data of each user record in order, or why the aggregate is
/// corrupt.
pub fn deaggregate(data: &[u8]) -> Result<Option<Vec<&[u8]>>, String> {
    let Some(rest) = data.strip_prefix(&MAGIC) else {
        return Ok(None);
    };
    if rest.len() < DIGEST_LEN {
        return Err(format!(
            "aggregated record of {} bytes is shorter than its magic and checksum",
            data.len()
        ));
    }
    let (body, digest) = rest.split_at(rest.len() - DIGEST_LEN);
    if Md5::digest(body).as_slice() != digest {
        return Err("aggregated record fails its MD5 check".into());
    }
    let mut partition_keys = 0u64;
    let mut hash_keys = 0u64;
    let mut records = Vec::new();
    let mut reader = Reader { buf: body, pos: 0 };
    while let Some((field, wire)) = reader.key()? {
        match (field, wire) {
            (1, 2) => {
                reader.bytes()?;
                partition_keys += 1;
            }
            (2, 2) => {
                reader.bytes()?;
                hash_keys += 1;
            }
            (3, 2) => records.push(reader.bytes()?),
            _ => reader.skip(wire)?,
        }
    }
    let mut out = Vec::with_capacity(records.len());
    for (i, record) in records.into_iter().enumerate() {
        let mut reader = Reader {
            buf: record,
            pos: 0,
        };
        let mut data = None;
        let mut partition_key = None;
        while let Some((field, wire)) = reader.key()? {
            match (field, wire) {
                (1, 0) => partition_key = Some(reader.varint()?),
                (2, 0) => {
                    let index = reader.varint()?;
                    if index >= hash_keys {
                        return Err(format!(
                            "user record {i}: explicit hash key index {index} is outside the table of {hash_keys}"
                        ));
                    }
                }
                (3, 2) => data = Some(reader.bytes()?),
                _ => reader.skip(wire)?,
            }
        }
        match partition_key {
            Some(index) if index < partition_keys => {}
            Some(index) => {
                return Err(format!(
                    "user record {i}: partition key index {index} is outside the table of {partition_keys}"
                ));
            }
            None => return Err(format!("user record {i} has no partition key index")),
        }
        out.push(data.ok_or_else(|| format!("user record {i} has no data"))?);
    }
    Ok(Some(out))
}

/// A protobuf reader over a byte slice.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// The next field number and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u64, u8)>, String> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        Ok(Some((key >> 3, (key & 7) as u8)))
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or("protobuf varint runs past the end")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("protobuf varint is longer than 10 bytes".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "protobuf length overflows")?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.buf.len())
            .ok_or("protobuf field runs past the end")?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
        let fixed = |n: usize, r: &mut Self| {
            r.pos = r
                .pos
                .checked_add(n)
                .filter(|end| *end <= r.buf.len())
                .ok_or("protobuf field runs past the end")?;
            Ok(())
        };
        match wire {
            0 => self.varint().map(|_| ()),
            1 => fixed(8, self),
            2 => self.bytes().map(|_| ()),
            5 => fixed(4, self),
            other => Err(format!("unsupported protobuf wire type {other}")),
        }
    }
}
