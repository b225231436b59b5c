//! The portable export format and its parser, which must survive arbitrary bytes.
//!
//! Layout (little-endian), version 1:
//!
//! ```text
//! 0   magic "MNEMOEXP"                 8 bytes
//! 8   format version (1)               u32
//! 12  dims                             u32
//! 16  count                            u64
//! 24  flags (0)                        u32
//! 28  reserved (0)                     u32
//! 32  count records, in increasing id order:
//!       id u64, eventTime f64, insertTime f64, importance f32,
//!       namespace, role, text, metadata (JSON object): u32 length + UTF-8 bytes each,
//!       tags: u32 count, then u32 length + UTF-8 bytes each
//!     count * dims f32: the embeddings, packed, in record order
//! end-4  CRC-32 (IEEE) of every byte before it   u32
//! ```
//!
//! The parser never panics, never loops without consuming input, and never allocates by a
//! declared length: every count and length is checked against the bytes that remain before it
//! is used, and validation ([`validate`]) walks the records as borrowed slices, allocating
//! nothing that grows with the input except a bounded scratch for one JSON string.

use super::codec::{EpisodeRecord, Reader, Writer};
use super::episode::{
    check_importance, check_metadata_json, check_namespace, check_role, check_tags, check_text,
    check_time, Episode, Metadata, MAX_DIMS, MAX_ID, MAX_TAGS,
};
use super::error::{Result, StoreError};

/// The export magic.
pub const EXPORT_MAGIC: &[u8; 8] = b"MNEMOEXP";
/// The export format version written by this build.
pub const EXPORT_VERSION: u32 = 1;
const HEADER_LEN: usize = 32;
/// Smallest possible record: fixed fields + four empty strings + a zero tag count.
const MIN_RECORD_BYTES: usize = 8 + 8 + 8 + 4 + 4 * 4 + 4;

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}
/// Slicing-by-8 tables: `t[k][b]` is the CRC of byte `b` followed by `k` zero bytes.
const fn crc_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    t[0] = crc_table();
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let p = t[k - 1][i];
            t[k][i] = (p >> 8) ^ t[0][(p & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}
static CRC_TABLES: [[u32; 256]; 8] = crc_tables();

/// CRC-32 (IEEE 802.3) of `bytes` (slicing by 8: eight table lookups per 8 bytes; the journal
/// checksums every entry and snapshot it writes).
pub fn crc32(bytes: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut c = 0xFFFF_FFFFu32;
    let mut chunks = bytes.chunks_exact(8);
    for b in &mut chunks {
        let lo = c ^ u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        c = t[7][(lo & 0xFF) as usize]
            ^ t[6][((lo >> 8) & 0xFF) as usize]
            ^ t[5][((lo >> 16) & 0xFF) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][b[4] as usize]
            ^ t[2][b[5] as usize]
            ^ t[1][b[6] as usize]
            ^ t[0][b[7] as usize];
    }
    for &b in chunks.remainder() {
        c = t[0][((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

/// Writes an export: `begin`, then `record` per episode (increasing ids), then `finish`.
#[derive(Debug)]
pub struct ExportWriter {
    dims: usize,
    count: u64,
    head: Writer,
    vectors: Vec<u8>,
}

impl ExportWriter {
    /// A writer for a store of `dims`.
    pub fn new(dims: usize) -> Self {
        let mut head = Writer::with_capacity(1024);
        head.buf.extend_from_slice(EXPORT_MAGIC);
        head.u32(EXPORT_VERSION);
        head.u32(dims as u32);
        head.u64(0); // count, patched in finish
        head.u32(0);
        head.u32(0);
        ExportWriter {
            dims,
            count: 0,
            head,
            vectors: Vec::new(),
        }
    }

    /// Append one episode (its embedding must have `dims` values).
    pub fn record(&mut self, r: &EpisodeRecord, embedding: &[f32]) {
        debug_assert_eq!(embedding.len(), self.dims);
        let w = &mut self.head;
        w.u64(r.id);
        w.f64(r.event_time);
        w.f64(r.insert_time);
        w.f32(r.importance);
        w.str(&r.namespace);
        w.str(&r.role);
        w.str(&r.text);
        w.str(r.metadata.as_str());
        w.u32(r.tags.len() as u32);
        for t in &r.tags {
            w.str(t);
        }
        self.vectors
            .extend_from_slice(bytemuck::cast_slice(embedding));
        self.count += 1;
    }

    /// The finished file.
    pub fn finish(self) -> Vec<u8> {
        let mut out = self.head.buf;
        out[16..24].copy_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.vectors);
        let c = crc32(&out);
        out.extend_from_slice(&c.to_le_bytes());
        out
    }
}

/// A parsed export: header fields and the two sections, borrowed.
#[derive(Debug, Clone)]
pub struct ExportFile<'a> {
    /// Embedding dimension.
    pub dims: usize,
    /// Records declared (checked against the bytes present).
    pub count: usize,
    bytes: &'a [u8],
    records_end: usize,
}

/// One record, borrowed from the file.
#[derive(Debug, Clone)]
pub struct RecordRef<'a> {
    /// Byte offset of the record.
    pub offset: usize,
    /// Id.
    pub id: u64,
    /// Event time.
    pub event_time: f64,
    /// Insert time.
    pub insert_time: f64,
    /// Importance.
    pub importance: f32,
    /// Namespace.
    pub namespace: &'a str,
    /// Role.
    pub role: &'a str,
    /// Text.
    pub text: &'a str,
    /// Metadata JSON.
    pub metadata: &'a str,
    /// Tags (at most [`MAX_TAGS`], checked before they are collected).
    pub tags: Vec<&'a str>,
    /// The embedding's bytes (`dims * 4`).
    pub vector: &'a [u8],
}

impl RecordRef<'_> {
    /// The embedding.
    pub fn embedding(&self) -> Vec<f32> {
        self.vector
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// As an owned episode.
    pub fn to_episode(&self) -> Episode {
        Episode {
            id: self.id,
            namespace: self.namespace.to_string(),
            role: self.role.to_string(),
            text: self.text.to_string(),
            event_time: self.event_time,
            insert_time: self.insert_time,
            embedding: self.embedding(),
            metadata: Metadata::wrap(self.metadata.to_string()),
            importance: self.importance,
            tags: self.tags.iter().map(|s| s.to_string()).collect(),
        }
    }
}

fn corrupt(offset: usize, reason: impl Into<String>) -> StoreError {
    StoreError::CorruptImport {
        offset,
        reason: reason.into(),
    }
}

impl<'a> ExportFile<'a> {
    /// Check the header, the sizes and (if `verify_checksum`) the CRC. Does not walk the records;
    /// [`validate`] does.
    pub fn parse(bytes: &'a [u8], verify_checksum: bool) -> Result<Self> {
        if bytes.len() < HEADER_LEN + 4 {
            return Err(corrupt(
                bytes.len(),
                format!(
                    "{} bytes is shorter than an export header (truncated or not an export)",
                    bytes.len()
                ),
            ));
        }
        if &bytes[..8] != EXPORT_MAGIC {
            return Err(corrupt(0, "not a mnemo export (bad magic)"));
        }
        let mut r = Reader::new(bytes);
        let d = |e: super::codec::DecodeError| corrupt(e.offset, e.reason);
        r.take(8).map_err(d)?;
        let version = r.u32().map_err(d)?;
        if version > EXPORT_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: EXPORT_VERSION,
            });
        }
        if version == 0 {
            return Err(corrupt(8, "export version 0"));
        }
        let dims = r.u32().map_err(d)? as usize;
        let count = r.u64().map_err(d)?;
        let flags = r.u32().map_err(d)?;
        let reserved = r.u32().map_err(d)?;
        if dims == 0 || dims > MAX_DIMS {
            return Err(corrupt(12, format!("dims {dims} outside 1..={MAX_DIMS}")));
        }
        if flags != 0 || reserved != 0 {
            return Err(corrupt(24, "unknown flags"));
        }
        if verify_checksum {
            let n = bytes.len() - 4;
            let want = u32::from_le_bytes([bytes[n], bytes[n + 1], bytes[n + 2], bytes[n + 3]]);
            let got = crc32(&bytes[..n]);
            if want != got {
                return Err(corrupt(
                    n,
                    format!("checksum mismatch (stored {want:08x}, computed {got:08x}): the file is damaged"),
                ));
            }
        }
        let body = bytes.len() - HEADER_LEN - 4;
        let per = (MIN_RECORD_BYTES as u64).saturating_add(dims as u64 * 4);
        if count.saturating_mul(per) > body as u64 {
            return Err(corrupt(
                16,
                format!("declared {count} records need more than the {body} bytes present"),
            ));
        }
        let count = count as usize;
        let vbytes = count * dims * 4; // fits: checked against body above
        Ok(ExportFile {
            dims,
            count,
            bytes,
            records_end: bytes.len() - 4 - vbytes,
        })
    }

    /// Walk every record in order: `f` gets each, borrowed. Stops at the first error.
    pub fn for_each(&self, mut f: impl FnMut(RecordRef<'a>) -> Result<()>) -> Result<()> {
        let bytes: &'a [u8] = self.bytes;
        let mut r = Reader::new(&bytes[..self.records_end]);
        r.take(HEADER_LEN)
            .map_err(|e| corrupt(e.offset, e.reason))?;
        let vstart = self.records_end;
        let vlen = self.dims * 4;
        for i in 0..self.count {
            let offset = r.pos();
            let rec = Self::record(&mut r, i)?;
            let (id, et, it, imp, ns, role, text, meta, tags) = rec;
            let v0 = vstart + i * vlen;
            f(RecordRef {
                offset,
                id,
                event_time: et,
                insert_time: it,
                importance: imp,
                namespace: ns,
                role,
                text,
                metadata: meta,
                tags,
                vector: &bytes[v0..v0 + vlen],
            })?;
        }
        if r.remaining() != 0 {
            return Err(corrupt(
                r.pos(),
                format!(
                    "{} unexpected bytes between the records and the vectors",
                    r.remaining()
                ),
            ));
        }
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn record(
        r: &mut Reader<'a>,
        i: usize,
    ) -> Result<(
        u64,
        f64,
        f64,
        f32,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        Vec<&'a str>,
    )> {
        let d =
            |e: super::codec::DecodeError| corrupt(e.offset, format!("record {i}: {}", e.reason));
        let id = r.u64().map_err(d)?;
        let et = r.f64().map_err(d)?;
        let it = r.f64().map_err(d)?;
        let imp = r.f32().map_err(d)?;
        let ns = r.str("namespace").map_err(d)?;
        let role = r.str("role").map_err(d)?;
        let text = r.str("text").map_err(d)?;
        let meta = r.str("metadata").map_err(d)?;
        let at = r.pos();
        let n = r.count(4, "tags").map_err(d)?;
        if n > MAX_TAGS {
            return Err(corrupt(
                at,
                format!("record {i}: {n} tags, the limit is {MAX_TAGS}"),
            ));
        }
        let mut tags = Vec::with_capacity(n);
        for _ in 0..n {
            tags.push(r.str("tag").map_err(d)?);
        }
        Ok((id, et, it, imp, ns, role, text, meta, tags))
    }
}

fn check_record(rec: &RecordRef<'_>, i: usize, prev_id: u64) -> Result<()> {
    let wrap = |e: StoreError| corrupt(rec.offset, format!("record {i} (id {}): {e}", rec.id));
    if rec.id == 0 || rec.id > MAX_ID {
        return Err(corrupt(
            rec.offset,
            format!("record {i}: id {} outside 1..={MAX_ID}", rec.id),
        ));
    }
    if rec.id <= prev_id {
        return Err(corrupt(
            rec.offset,
            format!(
                "record {i}: id {} not above the previous id {prev_id}",
                rec.id
            ),
        ));
    }
    check_namespace(rec.namespace, "namespace").map_err(wrap)?;
    check_role(rec.role, "role").map_err(wrap)?;
    check_text(rec.text, "text").map_err(wrap)?;
    check_time(rec.event_time, "eventTime").map_err(wrap)?;
    check_time(rec.insert_time, "insertTime").map_err(wrap)?;
    check_importance(rec.importance, "importance").map_err(wrap)?;
    check_metadata_json(rec.metadata, "metadata").map_err(wrap)?;
    check_tags(&rec.tags, "tags").map_err(wrap)?;
    if let Some(k) = rec
        .vector
        .chunks_exact(4)
        .position(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
    {
        return Err(wrap(StoreError::NonFinite {
            field: "embedding".into(),
            index: k,
        }));
    }
    Ok(())
}

/// A summary of a valid export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    /// Embedding dimension.
    pub dims: usize,
    /// Records.
    pub count: usize,
    /// Smallest id (0 when empty).
    pub min_id: u64,
    /// Largest id (0 when empty).
    pub max_id: u64,
}

/// Parse and validate a whole export without keeping anything: header, sizes, checksum (when
/// `verify_checksum`) and every record (ids increasing, every field within the store's limits,
/// finite vectors). `Ok` means an import of these bytes cannot fail on their content.
pub fn validate(bytes: &[u8], verify_checksum: bool) -> Result<ExportSummary> {
    let f = ExportFile::parse(bytes, verify_checksum)?;
    let mut prev = 0u64;
    let mut min_id = 0u64;
    let mut i = 0usize;
    f.for_each(|rec| {
        check_record(&rec, i, prev)?;
        if i == 0 {
            min_id = rec.id;
        }
        prev = rec.id;
        i += 1;
        Ok(())
    })?;
    Ok(ExportSummary {
        dims: f.dims,
        count: f.count,
        min_id,
        max_id: prev,
    })
}

/// Validate, then decode every episode (for import).
pub fn decode_all(bytes: &[u8]) -> Result<(ExportSummary, Vec<Episode>)> {
    let summary = validate(bytes, true)?;
    let f = ExportFile::parse(bytes, false)?;
    let mut out = Vec::with_capacity(summary.count);
    f.for_each(|rec| {
        out.push(rec.to_episode());
        Ok(())
    })?;
    Ok((summary, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        // Slicing by 8 = the bytewise definition, at every length and alignment.
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7919 % 251) as u8).collect();
        for n in 0..data.len() {
            let mut c = 0xFFFF_FFFFu32;
            for &b in &data[3..3 + n.min(data.len() - 3)] {
                c = CRC_TABLES[0][((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
            }
            assert_eq!(crc32(&data[3..3 + n.min(data.len() - 3)]), c ^ 0xFFFF_FFFF);
        }
    }

    #[test]
    fn roundtrip_and_truncations() {
        let mut w = ExportWriter::new(2);
        let rec = EpisodeRecord {
            id: 3,
            namespace: "n".into(),
            role: "r".into(),
            text: "t".into(),
            event_time: 1.0,
            insert_time: 2.0,
            metadata: Metadata::parse("{}").unwrap(),
            importance: 0.5,
            tags: vec!["a".into()],
        };
        w.record(&rec, &[1.0, -1.0]);
        let b = w.finish();
        let (s, eps) = decode_all(&b).unwrap();
        assert_eq!(s.count, 1);
        assert_eq!(eps[0].embedding, vec![1.0, -1.0]);
        assert_eq!(eps[0].tags, vec!["a".to_string()]);
        for i in 0..b.len() {
            assert!(validate(&b[..i], true).is_err());
            assert!(validate(&b[..i], false).is_err());
        }
    }
}
