//! Binary encodings of what the store keeps: episode records, packed vector segments, the state
//! record, change records and engine blobs. All little-endian; every decoder checks each length
//! against the bytes that remain before using it and never panics.
//!
//! Both backends store exactly these bytes, so the memory backend exercises the same encodings
//! the IndexedDB backend writes.

#[cfg(target_endian = "big")]
compile_error!("mnemo's store encodings assume a little-endian target (x86, ARM, wasm32)");

use super::episode::{Episode, Metadata};
use super::error::StoreError;

/// Format version of the episode records written by this build.
pub const RECORD_VERSION: u8 = 1;
/// Layout version of a store written by this build (the header's `format`): 2 = episode records
/// in pages, segments as `Blob`s. Version 1 (one record per episode) is migrated on open.
pub const STORE_FORMAT: u32 = 2;
/// Magic of a page record ("PAG1").
pub const PAGE_MAGIC: u32 = u32::from_le_bytes(*b"PAG1");
/// Bytes of a page record besides its rows (magic, row count).
pub const PAGE_HEADER_BYTES: usize = 8;
/// Bytes a row costs in a page besides its record (its id and end offset).
pub const PAGE_ROW_OVERHEAD: usize = 12;
/// Magic of a segment record ("SEG1").
pub const SEGMENT_MAGIC: u32 = u32::from_le_bytes(*b"SEG1");
/// Magic of the header record.
pub const HEADER_MAGIC: &[u8; 8] = b"MNEMOSTO";
/// Byte offset of the packed vectors inside a segment record (4-aligned, so a `Float32Array`
/// view or a plain copy works).
pub const SEGMENT_VECTORS_OFFSET: usize = 16;

/// A decoding failure: where and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    /// Byte offset in the decoded buffer.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

impl DecodeError {
    /// As a [`StoreError::Corrupt`] for the record `what`.
    pub fn corrupt(self, what: impl Into<String>) -> StoreError {
        StoreError::corrupt(what, format!("at byte {}: {}", self.offset, self.reason))
    }
}

/// A bounds-checked little-endian reader over a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Current offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// An error at the current offset.
    pub fn err(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "needs {n} bytes, only {} remain (truncated?)",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    /// A u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// A u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// A u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// An f32.
    pub fn f32(&mut self) -> Result<f32, DecodeError> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    /// An f64.
    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A count of items of at least `min_item_bytes` each, checked against the remaining bytes
    /// (so a huge declared count fails here instead of driving an allocation or a long loop).
    pub fn count(&mut self, min_item_bytes: usize, what: &str) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item_bytes.max(1)) > self.remaining() {
            return Err(DecodeError {
                offset: at,
                reason: format!(
                    "declared {n} {what} need at least {} bytes, only {} remain",
                    n.saturating_mul(min_item_bytes.max(1)),
                    self.remaining()
                ),
            });
        }
        Ok(n)
    }

    /// A `u32`-length-prefixed UTF-8 string, borrowed.
    pub fn str(&mut self, what: &str) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let n = self.u32()? as usize;
        if n > self.remaining() {
            return Err(DecodeError {
                offset: at,
                reason: format!(
                    "{what}: declared length {n} exceeds the {} bytes that remain",
                    self.remaining()
                ),
            });
        }
        let b = self.take(n)?;
        std::str::from_utf8(b).map_err(|e| DecodeError {
            offset: at + 4 + e.valid_up_to(),
            reason: format!("{what}: invalid UTF-8"),
        })
    }

    /// Fail unless every byte was consumed.
    pub fn finish(&self, what: &str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(self.err(format!("{} trailing bytes after {what}", self.remaining())));
        }
        Ok(())
    }
}

/// A little-endian writer.
#[derive(Debug, Default)]
pub struct Writer {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// An empty writer with `cap` bytes reserved.
    pub fn with_capacity(cap: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(cap),
        }
    }
    /// A byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// A u16.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// An f32.
    pub fn f32(&mut self, v: f32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// An f64.
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A length-prefixed string.
    pub fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
    }
    /// f32 values, packed.
    pub fn f32s(&mut self, v: &[f32]) {
        self.buf.extend_from_slice(bytemuck::cast_slice(v));
    }
}

/// Copy little-endian f32 bytes into `dst` (a plain memcpy; `src` needs no alignment).
pub fn copy_f32s(src: &[u8], dst: &mut [f32]) {
    bytemuck::cast_slice_mut::<f32, u8>(dst).copy_from_slice(src);
}

// ---------------------------------------------------------------------------------------------
// Episode records (everything but the embedding, which lives in the segments).

/// The stored part of an episode: everything but the embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRecord {
    /// Id.
    pub id: u64,
    /// Namespace.
    pub namespace: String,
    /// Role.
    pub role: String,
    /// Text.
    pub text: String,
    /// Event time (ms).
    pub event_time: f64,
    /// Insert time (ms).
    pub insert_time: f64,
    /// Metadata JSON object.
    pub metadata: Metadata,
    /// Importance.
    pub importance: f32,
    /// Tags.
    pub tags: Vec<String>,
}

impl EpisodeRecord {
    /// The episode, with its embedding.
    pub fn into_episode(self, embedding: Vec<f32>) -> Episode {
        Episode {
            id: self.id,
            namespace: self.namespace,
            role: self.role,
            text: self.text,
            event_time: self.event_time,
            insert_time: self.insert_time,
            embedding,
            metadata: self.metadata,
            importance: self.importance,
            tags: self.tags,
        }
    }

    /// Split an episode into its record and its embedding.
    pub fn from_episode(ep: Episode) -> (Self, Vec<f32>) {
        (
            EpisodeRecord {
                id: ep.id,
                namespace: ep.namespace,
                role: ep.role,
                text: ep.text,
                event_time: ep.event_time,
                insert_time: ep.insert_time,
                metadata: ep.metadata,
                importance: ep.importance,
                tags: ep.tags,
            },
            ep.embedding,
        )
    }
}

/// Encode an episode record.
pub fn encode_record(r: &EpisodeRecord) -> Vec<u8> {
    let mut w = Writer::with_capacity(
        64 + r.namespace.len() + r.role.len() + r.text.len() + r.metadata.as_str().len(),
    );
    w.u8(RECORD_VERSION);
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
    w.buf
}

/// Decode an episode record.
pub fn decode_record(b: &[u8]) -> Result<EpisodeRecord, DecodeError> {
    let mut r = Reader::new(b);
    let v = r.u8()?;
    if v != RECORD_VERSION {
        return Err(r.err(format!("record version {v}, expected {RECORD_VERSION}")));
    }
    let id = r.u64()?;
    let event_time = r.f64()?;
    let insert_time = r.f64()?;
    let importance = r.f32()?;
    let namespace = r.str("namespace")?.to_string();
    let role = r.str("role")?.to_string();
    let text = r.str("text")?.to_string();
    let metadata = Metadata::from_trusted(r.str("metadata")?);
    let n = r.count(4, "tags")?;
    let mut tags = Vec::with_capacity(n);
    for _ in 0..n {
        tags.push(r.str("tag")?.to_string());
    }
    r.finish("episode record")?;
    Ok(EpisodeRecord {
        id,
        namespace,
        role,
        text,
        event_time,
        insert_time,
        metadata,
        importance,
        tags,
    })
}

/// The namespace and event time of an encoded record, borrowed (without decoding the rest).
pub fn record_ns_time(b: &[u8]) -> Result<(&str, f64), DecodeError> {
    let mut r = Reader::new(b);
    let v = r.u8()?;
    if v != RECORD_VERSION {
        return Err(r.err(format!("record version {v}, expected {RECORD_VERSION}")));
    }
    let _id = r.u64()?;
    let t = r.f64()?;
    let _insert = r.f64()?;
    let _importance = r.f32()?;
    Ok((r.str("namespace")?, t))
}

impl Metadata {
    /// Wrap JSON text that was validated when it was written.
    pub(crate) fn from_trusted(s: &str) -> Self {
        Metadata::wrap(s.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Segments: many vectors per record.

/// One packed segment: rows sorted by id, each with its namespace, event time and vector.
/// Layout: `magic u32, dims u32, n u32, n_ns u32`, then `n * dims` f32 (at
/// [`SEGMENT_VECTORS_OFFSET`]), `n` u64 ids, `n` f64 event times, `n` u32 namespace indexes,
/// then the `n_ns` namespace strings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Segment {
    /// Vector dimension.
    pub dims: usize,
    /// Ids, strictly increasing.
    pub ids: Vec<u64>,
    /// Event times.
    pub times: Vec<f64>,
    /// Index into `namespaces` per row.
    pub ns_idx: Vec<u32>,
    /// Distinct namespaces of the rows.
    pub namespaces: Vec<String>,
    /// `ids.len() * dims` values.
    pub vectors: Vec<f32>,
}

impl Segment {
    /// An empty segment of `dims`.
    pub fn new(dims: usize) -> Self {
        Segment {
            dims,
            ..Default::default()
        }
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Row of `id`, if present.
    pub fn find(&self, id: u64) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// The vector of row `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dims..(i + 1) * self.dims]
    }

    /// The namespace of row `i`.
    pub fn namespace(&self, i: usize) -> &str {
        &self.namespaces[self.ns_idx[i] as usize]
    }

    /// Append a row (ids must arrive in increasing order).
    pub fn push(&mut self, id: u64, ns: &str, time: f64, vector: &[f32]) {
        debug_assert!(self.ids.last().is_none_or(|&l| l < id));
        let k = match self.namespaces.iter().position(|n| n == ns) {
            Some(k) => k,
            None => {
                self.namespaces.push(ns.to_string());
                self.namespaces.len() - 1
            }
        };
        self.ids.push(id);
        self.times.push(time);
        self.ns_idx.push(k as u32);
        self.vectors.extend_from_slice(vector);
    }

    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let rows: Vec<(u64, &str, f64)> = (0..self.len())
            .map(|i| (self.ids[i], self.namespace(i), self.times[i]))
            .collect();
        let (head, tail) = encode_segment_meta(self.dims, &rows);
        let mut out = Vec::with_capacity(head.len() + self.vectors.len() * 4 + tail.len());
        out.extend_from_slice(&head);
        out.extend_from_slice(bytemuck::cast_slice(&self.vectors));
        out.extend_from_slice(&tail);
        out
    }

    /// Decode.
    pub fn decode(b: &[u8]) -> Result<Segment, DecodeError> {
        let v = SegmentView::parse(b)?;
        let mut s = Segment::new(v.dims);
        s.vectors = vec![0.0; v.n * v.dims];
        copy_f32s(v.vector_bytes, &mut s.vectors);
        s.ids = v.ids().collect();
        s.times = v.times().collect();
        s.ns_idx = v.ns_idx().collect();
        s.namespaces = v.namespaces.iter().map(|s| s.to_string()).collect();
        Ok(s)
    }
}

/// The parts of an encoded segment around its vectors: the fixed header (the first
/// [`SEGMENT_VECTORS_OFFSET`] bytes) and the tail (ids, times, namespace indexes and table) of
/// `rows` (`(id, namespace, event time)`, ids increasing) of `dims`.
pub fn encode_segment_meta(dims: usize, rows: &[(u64, &str, f64)]) -> ([u8; 16], Vec<u8>) {
    let mut namespaces: Vec<&str> = Vec::new();
    let mut idx: Vec<u32> = Vec::with_capacity(rows.len());
    for &(_, ns, _) in rows {
        // Few namespaces per segment: a linear search beats hashing (and keeps first-seen order).
        let k = match namespaces.iter().rposition(|n| *n == ns) {
            Some(k) => k,
            None => {
                namespaces.push(ns);
                namespaces.len() - 1
            }
        };
        idx.push(k as u32);
    }
    let mut head = [0u8; 16];
    head[0..4].copy_from_slice(&SEGMENT_MAGIC.to_le_bytes());
    head[4..8].copy_from_slice(&(dims as u32).to_le_bytes());
    head[8..12].copy_from_slice(&(rows.len() as u32).to_le_bytes());
    head[12..16].copy_from_slice(&(namespaces.len() as u32).to_le_bytes());
    let ns_bytes: usize = namespaces.iter().map(|s| 4 + s.len()).sum();
    let mut w = Writer::with_capacity(rows.len() * 20 + ns_bytes);
    for &(id, _, _) in rows {
        w.u64(id);
    }
    for &(_, _, t) in rows {
        w.f64(t);
    }
    for &k in &idx {
        w.u32(k);
    }
    for s in namespaces {
        w.str(s);
    }
    (head, w.buf)
}

/// The fixed header of an encoded segment (its first [`SEGMENT_VECTORS_OFFSET`] bytes):
/// `(dims, rows, namespaces, vector bytes)`.
pub fn segment_header(b: &[u8]) -> Result<(usize, usize, usize, usize), DecodeError> {
    let mut r = Reader::new(b);
    if r.u32()? != SEGMENT_MAGIC {
        return Err(DecodeError {
            offset: 0,
            reason: "not a segment (bad magic)".into(),
        });
    }
    let dims = r.u32()? as usize;
    let n = r.u32()? as usize;
    let n_ns = r.u32()? as usize;
    let vbytes = n
        .checked_mul(dims)
        .and_then(|x| x.checked_mul(4))
        .ok_or_else(|| r.err("segment size overflows"))?;
    Ok((dims, n, n_ns, vbytes))
}

/// A parsed, borrowed view of an encoded segment (no copies of the vectors).
#[derive(Debug)]
pub struct SegmentView<'a> {
    /// Dimension.
    pub dims: usize,
    /// Rows.
    pub n: usize,
    /// `n * dims * 4` bytes of packed f32.
    pub vector_bytes: &'a [u8],
    ids: &'a [u8],
    times: &'a [u8],
    idx: &'a [u8],
    /// Distinct namespaces.
    pub namespaces: Vec<&'a str>,
}

impl<'a> SegmentView<'a> {
    /// Parse and check an encoded segment.
    pub fn parse(b: &'a [u8]) -> Result<Self, DecodeError> {
        let (dims, n, n_ns, vbytes) = segment_header(b)?;
        if SEGMENT_VECTORS_OFFSET + vbytes > b.len() {
            return Err(DecodeError {
                offset: SEGMENT_VECTORS_OFFSET,
                reason: "vectors longer than the record".into(),
            });
        }
        let vector_bytes = &b[SEGMENT_VECTORS_OFFSET..SEGMENT_VECTORS_OFFSET + vbytes];
        Self::from_parts(
            dims,
            n,
            n_ns,
            vector_bytes,
            &b[SEGMENT_VECTORS_OFFSET + vbytes..],
        )
    }

    /// A view from the header fields, the vector bytes (may be empty when the caller copies the
    /// vectors itself) and the tail after the vectors (ids, times, namespace indexes and table).
    pub fn from_parts(
        dims: usize,
        n: usize,
        n_ns: usize,
        vector_bytes: &'a [u8],
        tail: &'a [u8],
    ) -> Result<Self, DecodeError> {
        let mut r = Reader::new(tail);
        let ids = r.take(n * 8)?;
        let times = r.take(n * 8)?;
        let idx = r.take(n * 4)?;
        if n_ns.saturating_mul(4) > r.remaining() {
            return Err(r.err("namespace table longer than the record"));
        }
        let mut namespaces = Vec::with_capacity(n_ns);
        for _ in 0..n_ns {
            namespaces.push(r.str("namespace")?);
        }
        r.finish("segment")?;
        let v = SegmentView {
            dims,
            n,
            vector_bytes,
            ids,
            times,
            idx,
            namespaces,
        };
        if let Some(bad) = v.ns_idx().find(|&k| k as usize >= n_ns) {
            return Err(DecodeError {
                offset: 0,
                reason: format!("namespace index {bad} out of range {n_ns}"),
            });
        }
        Ok(v)
    }

    /// Ids.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.ids
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
    }
    /// Event times.
    pub fn times(&self) -> impl Iterator<Item = f64> + '_ {
        self.times
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()))
    }
    /// Namespace indexes.
    pub fn ns_idx(&self) -> impl Iterator<Item = u32> + '_ {
        self.idx
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default()))
    }
}

// ---------------------------------------------------------------------------------------------
// Pages: many episode records per record.

/// One `[namespace, first time, last time, rows]` entry of a page's summary: the page's rows of
/// that namespace span `tmin..=tmax`. The summaries are the keys of the `[namespace, time]` index
/// (one entry per namespace per page, not per episode).
#[derive(Debug, Clone, PartialEq)]
pub struct PageKey {
    /// Namespace.
    pub namespace: String,
    /// Earliest event time of the namespace's rows in the page.
    pub tmin: f64,
    /// Latest event time of the namespace's rows in the page.
    pub tmax: f64,
    /// Rows of the namespace in the page.
    pub n: u32,
}

/// A page of the `[namespace, time]` index, as a namespace query returns it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NsPage {
    /// The page's key.
    pub lo: u64,
    /// Earliest event time of the namespace's rows in the page.
    pub tmin: f64,
    /// Latest event time.
    pub tmax: f64,
    /// Rows of the namespace in the page.
    pub n: u32,
}

/// An encoded page: `magic u32, n u32`, `n` u64 ids (increasing), `n` u32 end offsets of the
/// records (relative to the records area), then the records ([`encode_record`]) back to back.
#[derive(Debug, Default)]
pub struct PageBuilder {
    ids: Vec<u64>,
    ends: Vec<u32>,
    records: Vec<u8>,
    keys: Vec<PageKey>,
}

impl PageBuilder {
    /// An empty page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Append a row (ids must arrive in increasing order): its encoded record and the namespace
    /// and event time it holds (for the page's summary).
    pub fn push(&mut self, id: u64, namespace: &str, time: f64, record: &[u8]) {
        debug_assert!(self.ids.last().is_none_or(|&l| l < id));
        self.ids.push(id);
        self.records.extend_from_slice(record);
        self.ends.push(self.records.len() as u32);
        match self.keys.iter_mut().find(|k| k.namespace == namespace) {
            Some(k) => {
                k.tmin = k.tmin.min(time);
                k.tmax = k.tmax.max(time);
                k.n += 1;
            }
            None => self.keys.push(PageKey {
                namespace: namespace.to_string(),
                tmin: time,
                tmax: time,
                n: 1,
            }),
        }
    }

    /// The encoded page and its summary (one [`PageKey`] per namespace, in first-seen order).
    pub fn finish(self) -> (Vec<u8>, Vec<PageKey>) {
        let n = self.ids.len();
        let mut w =
            Writer::with_capacity(PAGE_HEADER_BYTES + n * PAGE_ROW_OVERHEAD + self.records.len());
        w.u32(PAGE_MAGIC);
        w.u32(n as u32);
        for &id in &self.ids {
            w.u64(id);
        }
        for &e in &self.ends {
            w.u32(e);
        }
        w.buf.extend_from_slice(&self.records);
        (w.buf, self.keys)
    }
}

/// A parsed, borrowed view of an encoded page.
#[derive(Debug, Clone, Copy)]
pub struct PageView<'a> {
    ids: &'a [u8],
    ends: &'a [u8],
    records: &'a [u8],
    n: usize,
}

impl<'a> PageView<'a> {
    /// Parse and check an encoded page (the records themselves are decoded on access).
    pub fn parse(b: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        if r.u32()? != PAGE_MAGIC {
            return Err(DecodeError {
                offset: 0,
                reason: "not a page (bad magic)".into(),
            });
        }
        let n = r.count(PAGE_ROW_OVERHEAD, "page rows")?;
        let ids = r.take(n * 8)?;
        let ends = r.take(n * 4)?;
        let records = r.take(r.remaining())?;
        let v = PageView {
            ids,
            ends,
            records,
            n,
        };
        let mut prev_end = 0usize;
        let mut prev_id = None;
        for i in 0..n {
            let e = v.end(i);
            if e < prev_end || e > records.len() {
                return Err(DecodeError {
                    offset: PAGE_HEADER_BYTES + n * 8 + i * 4,
                    reason: format!("record end {e} out of order or past the page"),
                });
            }
            prev_end = e;
            let id = v.id(i);
            if prev_id.is_some_and(|p| p >= id) {
                return Err(DecodeError {
                    offset: PAGE_HEADER_BYTES + i * 8,
                    reason: "page ids not increasing".into(),
                });
            }
            prev_id = Some(id);
        }
        if prev_end != records.len() {
            return Err(DecodeError {
                offset: b.len(),
                reason: "trailing bytes after the last record".into(),
            });
        }
        Ok(v)
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.n
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn end(&self, i: usize) -> usize {
        u32::from_le_bytes(self.ends[i * 4..i * 4 + 4].try_into().unwrap_or_default()) as usize
    }

    /// Id of row `i`.
    pub fn id(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.ids[i * 8..i * 8 + 8].try_into().unwrap_or_default())
    }

    /// The encoded record of row `i`.
    pub fn record(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        &self.records[start..self.end(i)]
    }

    /// Row of `id`, if present.
    pub fn find(&self, id: u64) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.id(mid).cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }
}

/// The page-planning weight of a record: its bytes plus the row overhead.
pub fn page_weight(record_bytes: usize) -> u32 {
    (record_bytes + PAGE_ROW_OVERHEAD) as u32
}

/// The encoded length of `r` (without encoding it).
pub fn record_len(r: &EpisodeRecord) -> usize {
    1 + 8
        + 8
        + 8
        + 4
        + 4 * 4
        + r.namespace.len()
        + r.role.len()
        + r.text.len()
        + r.metadata.as_str().len()
        + 4
        + r.tags.iter().map(|t| 4 + t.len()).sum::<usize>()
}

// ---------------------------------------------------------------------------------------------
// Header and state.

/// The immutable header of a store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Header {
    /// Store layout version ([`STORE_FORMAT`]; 1 = the legacy layout, migrated on open).
    pub format: u32,
    /// Embedding dimension.
    pub dims: usize,
    /// Most rows per segment.
    pub segment_capacity: usize,
    /// Creation time (ms).
    pub created: f64,
    /// Most bytes (record bytes plus row overhead) per page of episode records.
    pub page_capacity: usize,
}

/// Default bytes per page of episode records: 256 KiB (any single record fits: the limits cap
/// one at about 140 KiB).
pub const DEFAULT_PAGE_CAPACITY: usize = 256 << 10;

impl Header {
    /// Encode (the layout of [`STORE_FORMAT`]; a format-1 header is written without the page
    /// capacity).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(36);
        w.buf.extend_from_slice(HEADER_MAGIC);
        w.u32(self.format);
        w.u32(self.dims as u32);
        w.u32(self.segment_capacity as u32);
        w.f64(self.created);
        if self.format >= 2 {
            w.u32(self.page_capacity as u32);
        }
        w.buf
    }

    /// Decode.
    pub fn decode(b: &[u8]) -> Result<Header, DecodeError> {
        let mut r = Reader::new(b);
        if r.take(8)? != HEADER_MAGIC {
            return Err(DecodeError {
                offset: 0,
                reason: "not a mnemo store header".into(),
            });
        }
        let format = r.u32()?;
        let dims = r.u32()? as usize;
        let segment_capacity = r.u32()? as usize;
        let created = r.f64()?;
        let page_capacity = if format >= 2 && r.remaining() >= 4 {
            r.u32()? as usize
        } else {
            DEFAULT_PAGE_CAPACITY
        };
        if format <= STORE_FORMAT {
            r.finish("header")?;
        }
        if segment_capacity == 0 || dims == 0 || page_capacity == 0 {
            return Err(r.err("zero dims, segment or page capacity"));
        }
        Ok(Header {
            format,
            dims,
            segment_capacity,
            created,
            page_capacity,
        })
    }
}

/// Where a segment sits: its key `lo`, the id range `[lo, hi)` it covers and its row count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegInfo {
    /// Key and first id of the range.
    pub lo: u64,
    /// One past the last id of the range.
    pub hi: u64,
    /// Rows stored (every row is live: a delete rewrites the segment without it).
    pub n: u32,
}

/// Where a page of episode records sits: its key `lo`, the id range `[lo, hi)` it covers, its row
/// count and its planning weight (the encoded records plus [`PAGE_ROW_OVERHEAD`] per row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageInfo {
    /// Key and first id of the range.
    pub lo: u64,
    /// One past the last id of the range.
    pub hi: u64,
    /// Rows stored.
    pub n: u32,
    /// Weight (bytes) of the rows.
    pub bytes: u32,
}

/// The mutable state record, read and rewritten by every write.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    /// Change sequence: +1 per committed write. First field of the encoding (backends compare
    /// it without decoding the rest, see [`state_seq`]).
    pub seq: u64,
    /// Next id to assign (ids are never reused).
    pub next_id: u64,
    /// Live episodes.
    pub live: u64,
    /// Oldest change sequence still in the change log (older ones were pruned).
    pub changes_floor: u64,
    /// The segment directory, sorted by `lo`, disjoint ranges.
    pub segs: Vec<SegInfo>,
    /// The page directory, sorted by `lo`, disjoint ranges.
    pub pages: Vec<PageInfo>,
    /// Decoded from a version-1 state (legacy layout: one record per episode, no pages yet).
    pub legacy: bool,
}

impl State {
    /// The state of a fresh store.
    pub fn fresh() -> Self {
        State {
            seq: 0,
            next_id: 1,
            live: 0,
            changes_floor: 1,
            segs: Vec::new(),
            pages: Vec::new(),
            legacy: false,
        }
    }

    /// Encode (version 2).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(48 + self.segs.len() * 20 + self.pages.len() * 24);
        w.u64(self.seq);
        w.u32(2);
        w.u64(self.next_id);
        w.u64(self.live);
        w.u64(self.changes_floor);
        w.u32(self.segs.len() as u32);
        for s in &self.segs {
            w.u64(s.lo);
            w.u64(s.hi);
            w.u32(s.n);
        }
        w.u32(self.pages.len() as u32);
        for p in &self.pages {
            w.u64(p.lo);
            w.u64(p.hi);
            w.u32(p.n);
            w.u32(p.bytes);
        }
        w.buf
    }

    /// Encode as a version-1 state (the legacy layout; only to write test fixtures of it).
    #[doc(hidden)]
    pub fn encode_v1(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(40 + self.segs.len() * 20);
        w.u64(self.seq);
        w.u32(1);
        w.u64(self.next_id);
        w.u64(self.live);
        w.u64(self.changes_floor);
        w.u32(self.segs.len() as u32);
        for s in &self.segs {
            w.u64(s.lo);
            w.u64(s.hi);
            w.u32(s.n);
        }
        w.buf
    }

    /// Decode (version 2, or version 1 with `legacy` set).
    pub fn decode(b: &[u8]) -> Result<State, DecodeError> {
        let mut r = Reader::new(b);
        let seq = r.u64()?;
        let v = r.u32()?;
        if v != 1 && v != 2 {
            return Err(r.err(format!("state version {v}")));
        }
        let next_id = r.u64()?;
        let live = r.u64()?;
        let changes_floor = r.u64()?;
        let n = r.count(20, "segments")?;
        let mut segs = Vec::with_capacity(n);
        for _ in 0..n {
            segs.push(SegInfo {
                lo: r.u64()?,
                hi: r.u64()?,
                n: r.u32()?,
            });
        }
        let mut pages = Vec::new();
        if v == 2 {
            let n = r.count(24, "pages")?;
            pages.reserve(n);
            for _ in 0..n {
                pages.push(PageInfo {
                    lo: r.u64()?,
                    hi: r.u64()?,
                    n: r.u32()?,
                    bytes: r.u32()?,
                });
            }
        }
        r.finish("state")?;
        Ok(State {
            seq,
            next_id,
            live,
            changes_floor,
            segs,
            pages,
            legacy: v == 1,
        })
    }

    /// Index of the segment whose range holds `id`.
    pub fn seg_of(&self, id: u64) -> Option<usize> {
        let i = self.segs.partition_point(|s| s.lo <= id);
        if i == 0 {
            return None;
        }
        (id < self.segs[i - 1].hi).then_some(i - 1)
    }

    /// Index of the page whose range holds `id`.
    pub fn page_of(&self, id: u64) -> Option<usize> {
        let i = self.pages.partition_point(|s| s.lo <= id);
        if i == 0 {
            return None;
        }
        (id < self.pages[i - 1].hi).then_some(i - 1)
    }
}

/// The change sequence of an encoded state record (0 when absent or too short).
pub fn state_seq(b: Option<&[u8]>) -> u64 {
    match b {
        Some(b) if b.len() >= 8 => u64::from_le_bytes(b[..8].try_into().unwrap_or_default()),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Change records.

/// What a committed write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// New episodes.
    Put = 1,
    /// Changed episodes.
    Update = 2,
    /// Deleted episodes.
    Delete = 3,
    /// Everything deleted.
    Clear = 4,
}

/// One change-log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The ids, as sorted disjoint `[lo, hi)` ranges.
    pub ranges: Vec<(u64, u64)>,
}

impl Change {
    /// A change over `ids` (any order).
    pub fn new(kind: ChangeKind, ids: impl IntoIterator<Item = u64>) -> Self {
        let mut v: Vec<u64> = ids.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for id in v {
            match ranges.last_mut() {
                Some(r) if r.1 == id => r.1 = id + 1,
                _ => ranges.push((id, id + 1)),
            }
        }
        Change { kind, ranges }
    }

    /// The ids.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| a..b)
    }

    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(5 + 16 * self.ranges.len());
        w.u8(self.kind as u8);
        w.u32(self.ranges.len() as u32);
        for &(a, b) in &self.ranges {
            w.u64(a);
            w.u64(b);
        }
        w.buf
    }

    /// Decode.
    pub fn decode(b: &[u8]) -> Result<Change, DecodeError> {
        let mut r = Reader::new(b);
        let kind = match r.u8()? {
            1 => ChangeKind::Put,
            2 => ChangeKind::Update,
            3 => ChangeKind::Delete,
            4 => ChangeKind::Clear,
            k => return Err(r.err(format!("unknown change kind {k}"))),
        };
        let n = r.count(16, "ranges")?;
        let mut ranges = Vec::with_capacity(n);
        for _ in 0..n {
            let a = r.u64()?;
            let b = r.u64()?;
            if b < a || b - a > super::episode::MAX_ID {
                return Err(r.err("bad id range"));
            }
            ranges.push((a, b));
        }
        r.finish("change")?;
        Ok(Change { kind, ranges })
    }
}

// ---------------------------------------------------------------------------------------------
// Engine blobs.

/// An opaque, versioned blob the engine persists (e.g. its BM25 index), with the change
/// sequence it reflects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The engine's format version of `bytes`.
    pub version: u32,
    /// The store's change sequence the blob reflects.
    pub seq: u64,
    /// The payload.
    pub bytes: Vec<u8>,
}

impl Blob {
    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(12 + self.bytes.len());
        w.u32(self.version);
        w.u64(self.seq);
        w.buf.extend_from_slice(&self.bytes);
        w.buf
    }

    /// Decode.
    pub fn decode(b: &[u8]) -> Result<Blob, DecodeError> {
        let mut r = Reader::new(b);
        let version = r.u32()?;
        let seq = r.u64()?;
        let bytes = r.take(r.remaining())?.to_vec();
        Ok(Blob {
            version,
            seq,
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips() {
        let rec = EpisodeRecord {
            id: 7,
            namespace: "ns".into(),
            role: "user".into(),
            text: "héllo".into(),
            event_time: 1.5,
            insert_time: 2.5,
            metadata: Metadata::parse(r#"{"a":1}"#).unwrap(),
            importance: 0.25,
            tags: vec!["x".into(), "y".into()],
        };
        assert_eq!(decode_record(&encode_record(&rec)).unwrap(), rec);
        let mut s = Segment::new(3);
        s.push(1, "a", 1.0, &[1.0, 2.0, 3.0]);
        s.push(5, "b", 2.0, &[4.0, 5.0, 6.0]);
        s.push(9, "a", 3.0, &[7.0, 8.0, 9.0]);
        let d = Segment::decode(&s.encode()).unwrap();
        assert_eq!(d, s);
        assert_eq!(d.namespace(2), "a");
        let st = State {
            seq: 9,
            next_id: 10,
            live: 3,
            changes_floor: 2,
            segs: vec![SegInfo {
                lo: 1,
                hi: 10,
                n: 3,
            }],
            pages: vec![PageInfo {
                lo: 1,
                hi: 10,
                n: 3,
                bytes: 300,
            }],
            legacy: false,
        };
        let e = st.encode();
        assert_eq!(state_seq(Some(&e)), 9);
        assert_eq!(State::decode(&e).unwrap(), st);
        let v1 = State::decode(&st.encode_v1()).unwrap();
        assert!(v1.legacy && v1.pages.is_empty() && v1.segs == st.segs && v1.seq == 9);
        assert_eq!(st.page_of(9), Some(0));
        assert_eq!(st.page_of(10), None);
        // Pages.
        let mut pb = PageBuilder::new();
        let r1 = encode_record(&rec);
        let rec2 = EpisodeRecord {
            id: 9,
            namespace: "other".into(),
            event_time: -4.0,
            ..rec.clone()
        };
        let r2 = encode_record(&rec2);
        assert_eq!(record_len(&rec), r1.len());
        pb.push(7, "ns", 1.5, &r1);
        pb.push(9, "other", -4.0, &r2);
        let (page, keys) = pb.finish();
        assert_eq!(
            page.len(),
            PAGE_HEADER_BYTES + 2 * PAGE_ROW_OVERHEAD + r1.len() + r2.len()
        );
        assert_eq!(keys.len(), 2);
        assert_eq!((keys[1].tmin, keys[1].tmax, keys[1].n), (-4.0, -4.0, 1));
        let pv = PageView::parse(&page).unwrap();
        assert_eq!(pv.len(), 2);
        assert_eq!(pv.find(9), Some(1));
        assert_eq!(pv.find(8), None);
        assert_eq!(decode_record(pv.record(1)).unwrap(), rec2);
        assert_eq!(decode_record(pv.record(0)).unwrap(), rec);
        for i in 0..page.len() {
            assert!(
                PageView::parse(&page[..i]).is_err(),
                "truncated page at {i}"
            );
        }
        assert_eq!(st.seg_of(0), None);
        assert_eq!(st.seg_of(1), Some(0));
        assert_eq!(st.seg_of(9), Some(0));
        assert_eq!(st.seg_of(10), None);
        let c = Change::new(ChangeKind::Delete, [5, 3, 4, 9]);
        assert_eq!(c.ranges, vec![(3, 6), (9, 10)]);
        assert_eq!(Change::decode(&c.encode()).unwrap(), c);
        // Truncations never panic.
        let enc = s.encode();
        for i in 0..enc.len() {
            assert!(Segment::decode(&enc[..i]).is_err());
        }
    }
}
