//! Versioned bytes of a [`HierIndex`], and the flattened (level-order) form the GPU mirror uses.
//!
//! Layout of format version 1 (all little-endian):
//!
//! | field | type |
//! |---|---|
//! | magic `MNHI` | 4 bytes |
//! | version (= 1) | u32 |
//! | flags (bit 0: row vectors included) | u32 |
//! | dims | u32 |
//! | branching, depth, max_leaf, iterations, train_per_centroid | 5 × u32 |
//! | seed | u64 |
//! | height (levels of internal nodes) | u32 |
//! | rows | u64 |
//! | per level `l` in `0..height`: entry count `C`, `C` × (first child, child count), `C × dims` centroids | u32, 2C × u32, f32 |
//! | row ids, in leaf order | rows × u32 |
//! | row vectors (flag bit 0), in leaf order | rows × dims × f32 |
//! | checksum of everything before | u64 |
//!
//! Level `l`'s entries are the children of the internal nodes at depth `l`, in order; each
//! points at a contiguous range of level `l + 1`'s entries, or (last level: leaves) of the rows.
//! Ranges tile their target exactly. Without vectors the bytes hold only the structure and
//! [`HierIndex::from_bytes`] takes the vectors from the caller's bank (row id = bank row).

use super::kmeans::set_bias;
use super::tree::{IdMap, Internal, Leaf, Node, NO_NODE};
use super::{invalid, HierConfig, HierError, HierIndex};
use crate::compute::Backend;
use crate::kernels::KernelError;

/// The format version written and read by this build.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 4] = b"MNHI";
const FLAG_VECTORS: u32 = 1;

/// One level of the flattened tree.
#[derive(Debug, Clone, Default)]
pub(crate) struct FlatLevel {
    /// Arena ids of the entries (used as routing tie-breakers).
    pub nodes: Vec<u32>,
    /// Per entry: first child (next level entry, or row) and count.
    pub ranges: Vec<[u32; 2]>,
    /// Centroids, stride `d + 1` (bias last).
    pub cents: Vec<f32>,
}

/// The tree in level order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flat {
    pub levels: Vec<FlatLevel>,
    pub row_ids: Vec<u32>,
    /// Row vectors in leaf order (empty when not requested).
    pub rows: Vec<f32>,
}

impl HierIndex {
    /// The tree in level order (see the module docs); with the row vectors when `with_rows`.
    pub(crate) fn flatten(&self, with_rows: bool) -> Flat {
        let d = self.d;
        let mut flat = Flat::default();
        let mut parents = vec![self.root];
        for l in 0..self.height {
            let last = l + 1 == self.height;
            let mut level = FlatLevel::default();
            for &p in &parents {
                if let Node::Internal(i) = &self.nodes[p as usize] {
                    level.nodes.extend_from_slice(&i.children);
                    level.cents.extend_from_slice(&i.cents);
                }
            }
            let mut next = 0u32;
            for &n in &level.nodes {
                match &self.nodes[n as usize] {
                    Node::Internal(i) if !last => {
                        level.ranges.push([next, i.children.len() as u32]);
                        next += i.children.len() as u32;
                    }
                    Node::Leaf(leaf) if last => {
                        level.ranges.push([next, leaf.ids.len() as u32]);
                        next += leaf.ids.len() as u32;
                        flat.row_ids.extend_from_slice(&leaf.ids);
                        if with_rows {
                            flat.rows.extend_from_slice(&leaf.vecs);
                        }
                    }
                    _ => unreachable!("the tree is balanced"),
                }
            }
            parents = level.nodes.clone();
            flat.levels.push(level);
        }
        let _ = d;
        flat
    }

    /// Serialise (see the module docs). With `with_vectors = false` only the structure is written
    /// and loading needs the bank.
    pub fn to_bytes(&self, with_vectors: bool) -> Vec<u8> {
        let d = self.d;
        let flat = self.flatten(with_vectors);
        let mut out = Vec::with_capacity(
            64 + flat.row_ids.len() * 4 + flat.rows.len() * 4 + self.stats().bytes,
        );
        out.extend_from_slice(MAGIC);
        let put32 = |o: &mut Vec<u8>, v: u32| o.extend_from_slice(&v.to_le_bytes());
        put32(&mut out, FORMAT_VERSION);
        put32(&mut out, if with_vectors { FLAG_VECTORS } else { 0 });
        put32(&mut out, d as u32);
        let c = &self.cfg;
        for v in [
            c.branching,
            c.depth,
            c.max_leaf,
            c.iterations,
            c.train_per_centroid,
        ] {
            put32(&mut out, v as u32);
        }
        out.extend_from_slice(&c.seed.to_le_bytes());
        put32(&mut out, self.height as u32);
        out.extend_from_slice(&(flat.row_ids.len() as u64).to_le_bytes());
        for level in &flat.levels {
            put32(&mut out, level.nodes.len() as u32);
            for r in &level.ranges {
                put32(&mut out, r[0]);
                put32(&mut out, r[1]);
            }
            for row in level.cents.chunks_exact(d + 1) {
                for v in &row[..d] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        for id in &flat.row_ids {
            put32(&mut out, *id);
        }
        for v in &flat.rows {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Load bytes written by [`HierIndex::to_bytes`]. `bank` (`[N, dims]`, row id = bank row)
    /// supplies the vectors when the bytes hold none; it is ignored otherwise. Malformed bytes
    /// give [`HierError::Corrupt`] (or [`HierError::Version`]), never a panic.
    pub fn from_bytes(bytes: &[u8], bank: Option<&[f32]>) -> Result<HierIndex, HierError> {
        let mut r = Reader { bytes, pos: 0 };
        let magic = r.take(4)?;
        if magic != MAGIC {
            return Err(corrupt(0, "not a mnemo hierarchical index (bad magic)"));
        }
        let version = r.u32()?;
        if version != FORMAT_VERSION {
            return Err(HierError::Version {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if bytes.len() < 8 + r.pos {
            return Err(corrupt(bytes.len(), "truncated before the checksum"));
        }
        let body = bytes.len() - 8;
        let stored = u64::from_le_bytes(bytes[body..].try_into().expect("8 bytes"));
        if checksum(&bytes[..body]) != stored {
            return Err(corrupt(body, "checksum mismatch"));
        }
        let mut r = Reader {
            bytes: &bytes[..body],
            pos: r.pos,
        };
        let flags = r.u32()?;
        if flags & !FLAG_VECTORS != 0 {
            return Err(corrupt(r.pos - 4, format!("unknown flags {flags:#x}")));
        }
        let has_vectors = flags & FLAG_VECTORS != 0;
        let d = r.u32()? as usize;
        if d == 0 || d > 1 << 16 {
            return Err(corrupt(r.pos - 4, format!("dims {d} out of range")));
        }
        let cfg_at = r.pos;
        let mut cfg_fields = [0usize; 5];
        for f in cfg_fields.iter_mut() {
            *f = r.u32()? as usize;
        }
        let cfg = HierConfig {
            branching: cfg_fields[0],
            depth: cfg_fields[1],
            max_leaf: cfg_fields[2],
            iterations: cfg_fields[3],
            train_per_centroid: cfg_fields[4],
            seed: r.u64()?,
        };
        cfg.validate()
            .map_err(|e| corrupt(cfg_at, format!("configuration: {e}")))?;
        let height_at = r.pos;
        let height = r.u32()? as usize;
        if !(1..=64).contains(&height) {
            return Err(corrupt(height_at, format!("height {height} out of range")));
        }
        let rows_at = r.pos;
        let rows = r.u64()?;
        // Every row needs at least its id: bound the count by the bytes left.
        if rows > (r.remaining() / 4) as u64 {
            return Err(corrupt(rows_at, format!("{rows} rows cannot fit")));
        }
        let rows = rows as usize;
        let mut index = HierIndex::empty(d, cfg)?;
        index.height = height;
        let mut parents: Vec<u32> = vec![index.root];
        // Per parent (in order) how many children it expects.
        let mut expect: Vec<u32> = Vec::new();
        let mut leaf_ranges: Vec<(u32, [u32; 2])> = Vec::new();
        for l in 0..height {
            let last = l + 1 == height;
            let count_at = r.pos;
            let count = r.u32()? as usize;
            let need = (count as u64) * (8 + 4 * d as u64);
            if need > r.remaining() as u64 {
                return Err(corrupt(
                    count_at,
                    format!("level {l}: {count} entries cannot fit"),
                ));
            }
            if l == 0 {
                if count == 0 && rows != 0 {
                    return Err(corrupt(count_at, "root without children holds rows"));
                }
                expect = vec![count as u32];
            } else if expect.iter().map(|&c| c as u64).sum::<u64>() != count as u64 {
                return Err(corrupt(
                    count_at,
                    format!("level {l}: entry count {count} does not match the ranges above"),
                ));
            }
            if count > 0 && height > 1 && l == 0 && count > cfg.max_fanout() {
                return Err(corrupt(count_at, "root fan-out over the limit"));
            }
            let mut ranges = Vec::with_capacity(count);
            let mut next = 0u64;
            let target = if last { rows as u64 } else { u64::MAX };
            for e in 0..count {
                let at = r.pos;
                let start = r.u32()?;
                let n = r.u32()?;
                if start as u64 != next {
                    return Err(corrupt(
                        at,
                        format!("level {l} entry {e}: range starts at {start}, expected {next}"),
                    ));
                }
                if !last && (n == 0 || n as usize > cfg.max_fanout()) {
                    return Err(corrupt(at, format!("level {l} entry {e}: {n} children")));
                }
                if last && n as usize > cfg.max_leaf {
                    return Err(corrupt(at, format!("leaf {e}: {n} rows over max_leaf")));
                }
                next += n as u64;
                if next > target || next > u32::MAX as u64 {
                    return Err(corrupt(at, "ranges overflow their target"));
                }
                ranges.push([start, n]);
            }
            if last && next != rows as u64 {
                return Err(corrupt(
                    r.pos,
                    format!("leaves hold {next} rows, header says {rows}"),
                ));
            }
            let cent_at = r.pos;
            let raw = r.take(count * d * 4)?;
            let mut cents = Vec::with_capacity(count * (d + 1));
            for (i, c) in raw.chunks_exact(4).enumerate() {
                let v = f32::from_le_bytes(c.try_into().expect("4 bytes"));
                if !v.is_finite() {
                    return Err(corrupt(cent_at + i * 4, "non-finite centroid"));
                }
                cents.push(v);
                if (i + 1) % d == 0 {
                    cents.push(0.0);
                    let at = cents.len() - (d + 1);
                    set_bias(&mut cents[at..]);
                }
            }
            // Create the entries under their parents, in order.
            let mut e = 0usize;
            let mut created = Vec::with_capacity(count);
            for (pi, &p) in parents.iter().enumerate() {
                let want = expect[pi] as usize;
                for _ in 0..want {
                    let node = if last {
                        Node::Leaf(Leaf {
                            parent: p,
                            ids: Vec::new(),
                            vecs: Vec::new(),
                        })
                    } else {
                        Node::Internal(Internal {
                            parent: p,
                            children: Vec::new(),
                            cents: Vec::new(),
                            rows: 0,
                        })
                    };
                    let id = index.alloc(node);
                    if let Node::Internal(pn) = &mut index.nodes[p as usize] {
                        pn.children.push(id);
                        pn.cents
                            .extend_from_slice(&cents[e * (d + 1)..(e + 1) * (d + 1)]);
                    }
                    if last {
                        leaf_ranges.push((id, ranges[e]));
                    }
                    created.push(id);
                    e += 1;
                }
            }
            expect = ranges.iter().map(|r| r[1]).collect();
            parents = created;
        }
        let ids_at = r.pos;
        let raw_ids = r.take(rows * 4)?;
        let ids: Vec<u32> = raw_ids
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let vec_at = r.pos;
        let vectors: Option<&[u8]> = if has_vectors {
            Some(
                r.take(
                    rows.checked_mul(d * 4)
                        .ok_or_else(|| corrupt(vec_at, "size overflow"))?,
                )?,
            )
        } else {
            None
        };
        if r.remaining() != 0 {
            return Err(corrupt(
                r.pos,
                format!("{} unexpected trailing bytes", r.remaining()),
            ));
        }
        let bank_rows = match (has_vectors, bank) {
            (true, _) => 0,
            (false, None) => {
                return Err(invalid(
                    "bank",
                    "required: these index bytes hold no vectors",
                ))
            }
            (false, Some(b)) => {
                if b.len() % d != 0 {
                    return Err(HierError::Kernel(KernelError::Shape {
                        name: "bank",
                        expected: format!("a multiple of dims = {d}"),
                        got: b.len(),
                    }));
                }
                b.len() / d
            }
        };
        let mut loc = IdMap::default();
        loc.reserve(rows);
        for (leaf, [start, n]) in leaf_ranges {
            let mut l_ids = Vec::with_capacity(n as usize);
            let mut l_vecs = Vec::with_capacity(n as usize * d);
            for p in start as usize..(start + n) as usize {
                let id = ids[p];
                if id == u32::MAX {
                    return Err(corrupt(ids_at + p * 4, "reserved row id"));
                }
                if loc.insert(id, (leaf, l_ids.len() as u32)).is_some() {
                    return Err(corrupt(
                        ids_at + p * 4,
                        format!("row id {id} appears twice"),
                    ));
                }
                match vectors {
                    Some(raw) => {
                        for (j, c) in raw[p * d * 4..(p + 1) * d * 4].chunks_exact(4).enumerate() {
                            let v = f32::from_le_bytes(c.try_into().expect("4 bytes"));
                            if !v.is_finite() {
                                return Err(corrupt(
                                    vec_at + (p * d + j) * 4,
                                    "non-finite vector value",
                                ));
                            }
                            l_vecs.push(v);
                        }
                    }
                    None => {
                        let bank = bank.expect("checked above");
                        if id as usize >= bank_rows {
                            return Err(invalid(
                                "bank",
                                format!("row id {id} is past the bank's {bank_rows} rows"),
                            ));
                        }
                        let row = &bank[id as usize * d..(id as usize + 1) * d];
                        if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                            return Err(HierError::Kernel(KernelError::NonFinite {
                                name: "bank",
                                index: id as usize * d + j,
                            }));
                        }
                        l_vecs.extend_from_slice(row);
                    }
                }
                l_ids.push(id);
            }
            if let Node::Leaf(l) = &mut index.nodes[leaf as usize] {
                l.ids = l_ids;
                l.vecs = l_vecs;
            }
        }
        index.loc = loc;
        // Subtree row counts, bottom-up.
        let order: Vec<u32> = (0..index.nodes.len() as u32).rev().collect();
        for n in order {
            let rows = match &index.nodes[n as usize] {
                Node::Internal(i) => i
                    .children
                    .iter()
                    .map(|&c| match &index.nodes[c as usize] {
                        Node::Internal(x) => x.rows,
                        Node::Leaf(x) => x.ids.len() as u64,
                        Node::Free => 0,
                    })
                    .sum(),
                _ => continue,
            };
            if let Node::Internal(i) = &mut index.nodes[n as usize] {
                i.rows = rows;
            }
        }
        let _ = NO_NODE;
        index.generation = super::tree::next_generation();
        index.built_on = Backend::Cpu;
        Ok(index)
    }
}

fn corrupt(offset: usize, reason: impl Into<String>) -> HierError {
    HierError::Corrupt {
        offset,
        reason: reason.into(),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], HierError> {
        if n > self.remaining() {
            return Err(corrupt(
                self.pos,
                format!("truncated: {n} bytes needed, {} left", self.remaining()),
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, HierError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, HierError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

/// A fast 64-bit checksum (corruption detection, not security).
pub fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = 0x6D6E_656D_6F5F_6869u64 ^ (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h.rotate_left(23) ^ w).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    let rest = chunks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    h = (h.rotate_left(23) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^ (h >> 29)
}
