//! The journal: a second durable copy of every committed write, outside the database, from which
//! the store restores itself when the browser discards its IndexedDB database (Chromium deletes an
//! origin's whole IndexedDB backing store when it finds a damaged record after a crash; README
//! "Known bugs").
//!
//! It lives in a [`JournalDir`] (the Origin Private File System in the browser), one flat
//! directory per store, as whole files that are each written once, atomically:
//! - `e-<seq>-<bytes>[-<dead>]`: the **entry** of the write that committed sequence `seq`: the
//!   rows it wrote (episode record bytes, with their vector when it changed), the ids it deleted,
//!   whether it cleared the store, the next id and the store header; `<dead>` (when not 0)
//!   estimates the bytes of older files it made obsolete (the rows it deleted or rewrote);
//! - `s-<seq>-<bytes>`: a **snapshot**: an entry that clears and writes every live row, as of
//!   sequence `seq` (written by compaction, from one read-only snapshot of the database);
//! - `p-<random>`: a **pending** entry, written beside its database commit and renamed to
//!   `e-<seq>-<bytes>` once both completed (removed when the commit conflicted or failed).
//!
//! `<seq>` is zero-padded to 20 digits, so the names sort by sequence; `<bytes>` is the file's
//! size, so a listing alone tells how much the entries weigh. Each file ends with a CRC-32.
//!
//! State = the newest valid snapshot, then every entry after it in sequence order, up to the
//! first missing (or damaged) sequence: never past a gap ([`load`]).
//! The ordering rules, the compaction policy and the recovery on open are in the store core
//! ([`super::Store`]) and ARCHITECTURE.md ("Journal").

use std::collections::BTreeMap;

use super::backend::JournalDir;
use super::codec::{decode_record, DecodeError, EpisodeRecord, Reader, Writer};
use super::episode::Episode;
use super::error::{Result, StoreError};
use super::export::crc32;

/// First bytes of every journal file.
pub const JOURNAL_MAGIC: &[u8; 4] = b"MNJ1";

/// Compaction: entries since the last snapshot before one is written whatever their size.
pub const COMPACT_ENTRIES: usize = 1024;

/// Compaction: entry bytes below which no snapshot is written for size alone.
pub const COMPACT_MIN_BYTES: u64 = 1 << 20;

/// One row an entry (re)writes: its encoded episode record (which holds the id), and its vector
/// when the write set it (a put, or an update of the embedding).
#[derive(Debug, Clone, PartialEq)]
pub struct Upsert {
    /// The episode record ([`super::codec::encode_record`]).
    pub record: Vec<u8>,
    /// The vector, unless the row keeps the one it had.
    pub vector: Option<Vec<f32>>,
}

/// The content of one journal file (an entry or a snapshot).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    /// The sequence the write committed (snapshot: the sequence it reflects).
    pub seq: u64,
    /// The store's next id after it.
    pub next_id: u64,
    /// The store header record (dims, capacities, creation time).
    pub header: Vec<u8>,
    /// Every row was deleted first (`clear`, and every snapshot).
    pub clear: bool,
    /// Ids deleted.
    pub deleted: Vec<u64>,
    /// Rows written.
    pub upserts: Vec<Upsert>,
}

impl Entry {
    /// The file bytes.
    pub fn encode(&self) -> Vec<u8> {
        let payload: usize = self
            .upserts
            .iter()
            .map(|u| 9 + u.record.len() + u.vector.as_ref().map_or(0, |v| 4 * v.len()))
            .sum();
        let mut w =
            Writer::with_capacity(40 + self.header.len() + 8 * self.deleted.len() + payload);
        w.buf.extend_from_slice(JOURNAL_MAGIC);
        w.u64(self.seq);
        w.u64(self.next_id);
        w.u8(self.clear as u8);
        w.u32(self.header.len() as u32);
        w.buf.extend_from_slice(&self.header);
        w.u32(self.deleted.len() as u32);
        for &id in &self.deleted {
            w.u64(id);
        }
        w.u32(self.upserts.len() as u32);
        for u in &self.upserts {
            w.u32(u.record.len() as u32);
            w.buf.extend_from_slice(&u.record);
            match &u.vector {
                Some(v) => {
                    w.u8(1);
                    w.u32(v.len() as u32);
                    w.f32s(v);
                }
                None => w.u8(0),
            }
        }
        let c = crc32(&w.buf);
        w.u32(c);
        w.buf
    }

    /// Parse file bytes (checksum first; never panics on any input).
    pub fn decode(b: &[u8]) -> Result<Entry, DecodeError> {
        if b.len() < 8 {
            return Err(DecodeError {
                offset: 0,
                reason: "shorter than a journal file".into(),
            });
        }
        let (body, tail) = b.split_at(b.len() - 4);
        let want = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        if crc32(body) != want {
            return Err(DecodeError {
                offset: body.len(),
                reason: "checksum mismatch".into(),
            });
        }
        let mut r = Reader::new(body);
        if r.take(4)? != JOURNAL_MAGIC {
            return Err(DecodeError {
                offset: 0,
                reason: "not a journal file".into(),
            });
        }
        let seq = r.u64()?;
        let next_id = r.u64()?;
        let clear = r.u8()? != 0;
        let hn = r.count(1, "header bytes")?;
        let header = r.take(hn)?.to_vec();
        let nd = r.count(8, "deleted ids")?;
        let mut deleted = Vec::with_capacity(nd);
        for _ in 0..nd {
            deleted.push(r.u64()?);
        }
        let nu = r.count(5, "rows")?;
        let mut upserts = Vec::with_capacity(nu);
        for _ in 0..nu {
            let n = r.count(1, "record bytes")?;
            let record = r.take(n)?.to_vec();
            let vector = match r.u8()? {
                0 => None,
                1 => {
                    let n = r.count(4, "vector values")?;
                    let mut v = vec![0f32; n];
                    super::codec::copy_f32s(r.take(4 * n)?, &mut v);
                    Some(v)
                }
                _ => return Err(r.err("bad vector flag")),
            };
            upserts.push(Upsert { record, vector });
        }
        r.finish("journal file")?;
        Ok(Entry {
            seq,
            next_id,
            header,
            clear,
            deleted,
            upserts,
        })
    }
}

/// Encodes a snapshot row by row, straight into the file bytes (the same encoding as
/// [`Entry::encode`] with `clear` set, without holding the rows a second time).
#[derive(Debug)]
pub struct SnapshotWriter {
    w: Writer,
    count_at: usize,
    rows: u32,
}

impl SnapshotWriter {
    /// Start a snapshot with the store header `header`.
    pub fn new(header: &[u8]) -> Self {
        let mut w = Writer::with_capacity(1 << 16);
        w.buf.extend_from_slice(JOURNAL_MAGIC);
        w.u64(0); // the sequence, set by `finish`
        w.u64(0); // the next id, set by `finish`
        w.u8(1);
        w.u32(header.len() as u32);
        w.buf.extend_from_slice(header);
        w.u32(0); // no deleted ids
        let count_at = w.buf.len();
        w.u32(0); // the row count, set by `finish`
        SnapshotWriter {
            w,
            count_at,
            rows: 0,
        }
    }

    /// Add a row (its record, its vector).
    pub fn row(&mut self, record: &[u8], vector: &[f32]) {
        self.w.u32(record.len() as u32);
        self.w.buf.extend_from_slice(record);
        self.w.u8(1);
        self.w.u32(vector.len() as u32);
        self.w.f32s(vector);
        self.rows += 1;
    }

    /// The file bytes, with the sequence and next id set now (they are known once the rows were
    /// read).
    pub fn finish(mut self, seq: u64, next_id: u64) -> Vec<u8> {
        self.w.buf[4..12].copy_from_slice(&seq.to_le_bytes());
        self.w.buf[12..20].copy_from_slice(&next_id.to_le_bytes());
        self.w.buf[self.count_at..self.count_at + 4].copy_from_slice(&self.rows.to_le_bytes());
        let c = crc32(&self.w.buf);
        self.w.u32(c);
        self.w.buf
    }
}

/// What a journal file's name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    /// A snapshot.
    Snapshot,
    /// An entry.
    Entry,
}

/// A parsed `s-` / `e-` file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    /// Snapshot or entry.
    pub kind: FileKind,
    /// Its sequence.
    pub seq: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Estimated bytes of older files this entry made obsolete (0 for snapshots).
    pub dead: u64,
    /// The name itself.
    pub name: String,
}

/// The name of a snapshot or entry file.
pub fn file_name(kind: FileKind, seq: u64, bytes: usize, dead: u64) -> String {
    let k = match kind {
        FileKind::Snapshot => 's',
        FileKind::Entry => 'e',
    };
    if dead == 0 || kind == FileKind::Snapshot {
        format!("{k}-{seq:020}-{bytes}")
    } else {
        format!("{k}-{seq:020}-{bytes}-{dead}")
    }
}

/// Parse a snapshot or entry name (`None`: a pending file or a foreign one).
pub fn parse_name(name: &str) -> Option<FileName> {
    let (k, rest) = name.split_at_checked(2)?;
    let kind = match k {
        "s-" => FileKind::Snapshot,
        "e-" => FileKind::Entry,
        _ => return None,
    };
    let (seq, sizes) = rest.split_once('-')?;
    if seq.len() != 20 {
        return None;
    }
    let (bytes, dead) = match sizes.split_once('-') {
        Some((b, d)) => (b, d.parse().ok()?),
        None => (sizes, 0),
    };
    Some(FileName {
        kind,
        seq: seq.parse().ok()?,
        bytes: bytes.parse().ok()?,
        dead,
        name: name.to_string(),
    })
}

/// The name of pending entry `n` (a number from [`JournalDir::unique`]).
pub fn pending_name(n: u64) -> String {
    format!("p-{n:016x}")
}

/// Is `name` a pending entry?
pub fn is_pending(name: &str) -> bool {
    name.starts_with("p-")
}

/// A listing, parsed: snapshots and entries by sequence, and the pending files.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Snapshots, increasing sequence.
    pub snapshots: Vec<FileName>,
    /// Entries, increasing sequence.
    pub entries: Vec<FileName>,
    /// Pending files.
    pub pending: Vec<String>,
}

impl Listing {
    /// Parse the names of a directory.
    pub fn parse(names: Vec<String>) -> Listing {
        let mut l = Listing::default();
        for n in names {
            match parse_name(&n) {
                Some(f) if f.kind == FileKind::Snapshot => l.snapshots.push(f),
                Some(f) => l.entries.push(f),
                None if is_pending(&n) => l.pending.push(n),
                None => {}
            }
        }
        // By sequence, then name: a total order, so the unstable `crate::sort` (which keeps
        // core's stable sort out of the size-tuned engine module) is deterministic.
        let order =
            |a: &FileName, b: &FileName| a.seq.cmp(&b.seq).then_with(|| a.name.cmp(&b.name));
        crate::sort::sort_by(&mut l.snapshots, order);
        crate::sort::sort_by(&mut l.entries, order);
        l
    }

    /// The highest sequence any snapshot or entry holds (0: none).
    pub fn tip(&self) -> u64 {
        let s = self.snapshots.last().map_or(0, |f| f.seq);
        let e = self.entries.last().map_or(0, |f| f.seq);
        s.max(e)
    }

    /// Nothing but pending files (or nothing at all).
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty() && self.entries.is_empty()
    }

    /// The journal since its newest snapshot: the entries after it, up to the first missing
    /// sequence (what [`load`] would replay), and whether a gap or a missing base cuts it short.
    pub fn since_snapshot(&self) -> Since {
        let base = self.snapshots.last().map_or(FIRST_SEQ, |f| f.seq);
        let mut out = Since {
            snap_bytes: self.snapshots.last().map_or(0, |f| f.bytes),
            ..Since::default()
        };
        let mut last = base;
        for f in self.entries.iter().filter(|f| f.seq > base) {
            if f.seq != last + 1 {
                out.gap = true;
                break;
            }
            last = f.seq;
            out.entries += 1;
            out.entry_bytes += f.bytes;
            out.dead += f.dead;
        }
        out
    }
}

/// What a listing holds after its newest snapshot ([`Listing::since_snapshot`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Since {
    /// Contiguous entries after the snapshot, their bytes and their obsolete bytes.
    pub entries: usize,
    pub entry_bytes: u64,
    pub dead: u64,
    /// The snapshot's bytes.
    pub snap_bytes: u64,
    /// A sequence is missing after the snapshot (later entries would not be replayed).
    pub gap: bool,
}

/// The sequence of a new store's first commit (its header, no rows): the first entry of a
/// journal without a snapshot must follow it.
pub const FIRST_SEQ: u64 = 1;

/// Should a snapshot be written, given the entries since the last one (count, bytes, obsolete
/// bytes) and the last snapshot's bytes? When the obsolete bytes (rows deleted or rewritten since)
/// reach the live ones and 1 MiB (so the journal stays within about twice the store's bytes, and a
/// compaction is paid for by at least as many bytes of deletes and rewrites), or when there are
/// many entries (the listing on open, and a replay, stay short). Appends alone never snapshot for
/// size: their entries are the store, and a snapshot would only copy them.
pub fn should_compact(entries: usize, entry_bytes: u64, dead: u64, snap_bytes: u64) -> bool {
    let live = (snap_bytes + entry_bytes).saturating_sub(dead);
    entries >= COMPACT_ENTRIES || (dead >= COMPACT_MIN_BYTES && dead >= live)
}

/// The state the journal holds: what replaying its newest snapshot and the entries after it gives.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    /// The last sequence applied.
    pub seq: u64,
    /// The next id.
    pub next_id: u64,
    /// The store header record (of the last file applied).
    pub header: Vec<u8>,
    /// Live rows by id: record and vector.
    pub rows: BTreeMap<u64, (EpisodeRecord, Vec<f32>)>,
    /// Files applied.
    pub files: usize,
    /// Files that did not parse or were skipped (gaps are not counted here).
    pub skipped: usize,
    /// Entries not replayed because a sequence before them is missing or damaged (an entry never
    /// written: a tab that stopped between its database commit and its rename, or a journal
    /// write that failed after its commit). Replaying past a gap could apply a write without
    /// one it depends on, so the replay stops there: what it gives is the store as of one
    /// committed sequence.
    pub gaps: u64,
}

impl Replayed {
    /// Apply one entry.
    fn apply(&mut self, e: Entry) -> std::result::Result<(), DecodeError> {
        let mut rows = if e.clear {
            BTreeMap::new()
        } else {
            std::mem::take(&mut self.rows)
        };
        for id in &e.deleted {
            rows.remove(id);
        }
        for u in e.upserts {
            let rec = decode_record(&u.record)?;
            match u.vector {
                Some(v) => {
                    rows.insert(rec.id, (rec, v));
                }
                None => {
                    // An update that kept the vector: the row must exist (after a gap it may not).
                    if let Some(old) = rows.get_mut(&rec.id) {
                        old.0 = rec;
                    }
                }
            }
        }
        self.rows = rows;
        self.seq = e.seq;
        self.next_id = self.next_id.max(e.next_id);
        self.header = e.header;
        self.files += 1;
        Ok(())
    }

    /// The rows as episodes, in id order.
    pub fn into_episodes(self) -> Vec<Episode> {
        self.rows
            .into_values()
            .map(|(rec, v)| rec.into_episode(v))
            .collect()
    }
}

/// Replay the journal of `dir` (listed as `l`): the newest snapshot that parses, then the entries
/// after it in sequence order, up to the first one missing or damaged (without a snapshot, from
/// the new store's first commit, [`FIRST_SEQ`]). `None` when it holds no snapshot and no entry.
pub async fn load<D: JournalDir>(dir: &D, l: &Listing) -> Result<Option<Replayed>> {
    if l.is_empty() {
        return Ok(None);
    }
    let mut out = Replayed::default();
    let mut base = None;
    for f in l.snapshots.iter().rev() {
        let Some(b) = dir.read(&f.name).await? else {
            out.skipped += 1;
            continue;
        };
        match Entry::decode(&b) {
            Ok(e) if e.seq == f.seq => {
                out.apply(e).map_err(|e| e.corrupt(f.name.clone()))?;
                base = Some(f.seq);
                break;
            }
            _ => out.skipped += 1,
        }
    }
    let mut last = base.unwrap_or(FIRST_SEQ);
    let later: Vec<&FileName> = l.entries.iter().filter(|f| f.seq > last).collect();
    for (i, f) in later.iter().enumerate() {
        if f.seq != last + 1 {
            out.gaps = (later.len() - i) as u64;
            break;
        }
        let e = match dir.read(&f.name).await? {
            Some(b) => match Entry::decode(&b) {
                Ok(e) if e.seq == f.seq => Some(e),
                _ => None,
            },
            None => None,
        };
        let Some(e) = e else {
            out.skipped += 1;
            out.gaps = (later.len() - i - 1) as u64;
            break;
        };
        last = f.seq;
        if let Err(err) = out.apply(e) {
            return Err(StoreError::corrupt(f.name.clone(), err.reason));
        }
    }
    if out.files == 0 {
        return Ok(None);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort() {
        let n = file_name(FileKind::Entry, 42, 1234, 0);
        assert_eq!(n, "e-00000000000000000042-1234");
        let f = parse_name(&n).unwrap();
        assert_eq!(
            (f.kind, f.seq, f.bytes, f.dead),
            (FileKind::Entry, 42, 1234, 0)
        );
        let n = file_name(FileKind::Entry, 42, 1234, 99);
        assert_eq!(n, "e-00000000000000000042-1234-99");
        let f = parse_name(&n).unwrap();
        assert_eq!(
            (f.kind, f.seq, f.bytes, f.dead),
            (FileKind::Entry, 42, 1234, 99)
        );
        assert!(parse_name("e-00000000000000000042-1234-x").is_none());
        assert!(parse_name("p-abc").is_none() && is_pending("p-abc"));
        assert!(parse_name("e-42-1").is_none());
        let l = Listing::parse(vec![
            file_name(FileKind::Entry, 9, 5, 3),
            file_name(FileKind::Snapshot, 7, 100, 0),
            file_name(FileKind::Entry, 8, 5, 0),
            "p-x".into(),
            "junk".into(),
        ]);
        assert_eq!(l.tip(), 9);
        let want = Since {
            entries: 2,
            entry_bytes: 10,
            dead: 3,
            snap_bytes: 100,
            gap: false,
        };
        assert_eq!(l.since_snapshot(), want);
        assert_eq!(l.pending, vec!["p-x".to_string()]);
        // A missing sequence: what follows it is not counted (nor replayed).
        let l = Listing::parse(vec![
            file_name(FileKind::Snapshot, 7, 100, 0),
            file_name(FileKind::Entry, 8, 5, 0),
            file_name(FileKind::Entry, 10, 5, 0),
        ]);
        let s = l.since_snapshot();
        assert_eq!((s.entries, s.entry_bytes, s.gap), (1, 5, true));
        // No snapshot: entries must start right after a new store's first commit.
        let l = Listing::parse(vec![file_name(FileKind::Entry, 5, 5, 0)]);
        assert!(l.since_snapshot().gap);
    }

    #[test]
    fn entries_round_trip_and_reject_damage() {
        let e = Entry {
            seq: 9,
            next_id: 12,
            header: vec![1, 2, 3],
            clear: false,
            deleted: vec![4, 5],
            upserts: vec![
                Upsert {
                    record: vec![7; 20],
                    vector: Some(vec![0.5, -1.0]),
                },
                Upsert {
                    record: vec![8; 3],
                    vector: None,
                },
            ],
        };
        let b = e.encode();
        assert_eq!(Entry::decode(&b).unwrap(), e);
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            assert!(Entry::decode(&c).is_err(), "flip at {i}");
            assert!(Entry::decode(&b[..i]).is_err(), "truncated at {i}");
        }
    }

    #[test]
    fn snapshot_writer_matches_entry_encoding() {
        let e = Entry {
            seq: 3,
            next_id: 9,
            header: vec![5; 7],
            clear: true,
            deleted: Vec::new(),
            upserts: vec![Upsert {
                record: vec![1, 2, 3],
                vector: Some(vec![1.5, 2.5]),
            }],
        };
        let mut w = SnapshotWriter::new(&[5; 7]);
        w.row(&[1, 2, 3], &[1.5, 2.5]);
        assert_eq!(w.finish(3, 9), e.encode());
    }

    #[test]
    fn compaction_policy() {
        assert!(!should_compact(10, 1000, 0, 0));
        assert!(should_compact(COMPACT_ENTRIES, 0, 0, u64::MAX));
        // Appends never compact for size, however much they outweigh the snapshot.
        assert!(!should_compact(3, 1 << 30, 0, 1 << 20));
        // Obsolete bytes reaching the live ones (and 1 MiB) do.
        assert!(should_compact(3, 2 << 20, 1 << 20, 0));
        assert!(!should_compact(3, 2 << 20, (1 << 20) - 1, 0));
        assert!(!should_compact(3, 4 << 20, 1 << 20, 0));
        assert!(!should_compact(3, 1 << 19, 1 << 19, 0));
    }
}
