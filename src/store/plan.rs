//! Layout planning for the two kinds of packed records: vector segments (weight = rows, capacity
//! = rows per segment) and episode pages (weight = record bytes, capacity = bytes per page). Which
//! records a write rewrites, merges, creates or deletes.
//!
//! Pure functions over a directory (ranges, row counts and weights), so the plan is known before
//! anything is read; then [`build`] / [`build_pages`] assemble the new records from the old ones
//! read. (A delete shrinks a page by the weight of the records it removes, which is known only
//! once the page was read: the store plans pages again with the exact weights, reading any further
//! page that plan needs.)
//!
//! Rules, applied after every write until none applies (pairs of adjacent units `a`, `b`, `a`
//! older, weights `w`, `cap` = capacity):
//! - **R1** (binary counter): merge if `a.w + b.w <= cap` and `a.w <= 2 * b.w`. Appends of small
//!   batches form a geometric tail, so each row is rewritten O(log cap) times.
//! - **R2** (no small fragments): merge if `a.w + b.w <= cap` and `min(a.w, b.w) < cap / 4`,
//!   except inside the last `log2(cap) + 2` units (the geometric tail).
//!
//! Together they keep the number of units at most about `5.4 W / cap + log2(cap) + 2` for a total
//! weight `W` (tests assert it), so loading every vector costs a number of records proportional to
//! the bytes, and a batch costs O(1) records. A delete rewrites its segment and its page without
//! the row (its bytes are gone, not flagged); a unit left empty is deleted and small leftovers are
//! merged by R1/R2 (compaction).

use std::collections::{HashMap, HashSet};

use super::codec::{PageBuilder, PageKey, PageView, SegInfo, Segment};
use super::error::{Result, StoreError};

/// Where the rows of a planned unit come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// The rows with ids in `lo..hi` of the old unit with key `key` (minus deleted ids, with
    /// updated contents): the whole unit, or one piece of a unit split because an update made it
    /// heavier than the capacity.
    Old {
        /// The old unit's key.
        key: u64,
        /// First id of the piece.
        lo: u64,
        /// One past the last id of the piece.
        hi: u64,
    },
    /// New rows `start..end` of the write.
    New(usize, usize),
}

/// An existing unit as the planner sees it (after the write's deletions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnitIn {
    /// Key and first id of the range.
    pub lo: u64,
    /// One past the last id of the range.
    pub hi: u64,
    /// Rows left after the write's deletions.
    pub n: usize,
    /// Weight left after the write's deletions and updates.
    pub w: usize,
    /// Rows are deleted or changed: the unit must be rewritten.
    pub dirty: bool,
}

/// Rows `(id, weight)` of dirty units that an update made heavier than the capacity, by key: the
/// planner splits them (only pages need this: a segment row's weight never changes).
pub(crate) type SplitRows = HashMap<u64, Vec<(u64, usize)>>;

#[derive(Debug, Clone)]
struct Unit {
    lo: u64,
    hi: u64,
    n: usize,
    w: usize,
    parts: Vec<Part>,
    dirty: bool,
}

/// A planned unit of the new directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnitOut {
    /// Key and first id.
    pub lo: u64,
    /// One past the last id.
    pub hi: u64,
    /// Rows.
    pub n: usize,
    /// Weight.
    pub w: usize,
}

/// A planned layout.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    /// The new directory.
    pub units: Vec<UnitOut>,
    /// Units to write: `(key, parts)`.
    pub builds: Vec<(u64, Vec<Part>)>,
    /// Old keys to delete (not rewritten under the same key).
    pub delete_keys: Vec<u64>,
    /// Old keys whose records the builds need.
    pub reads: Vec<u64>,
}

impl Layout {
    /// The new segment directory (weight = rows).
    pub fn seg_infos(&self) -> Vec<SegInfo> {
        self.units
            .iter()
            .map(|u| SegInfo {
                lo: u.lo,
                hi: u.hi,
                n: u.n as u32,
            })
            .collect()
    }
}

fn tail_window(cap: usize) -> usize {
    (usize::BITS - cap.max(1).leading_zeros()) as usize + 2
}

/// Plan a write on a directory: `old` units (in key order, after the write's deletions) and new
/// rows `new` (`(id, weight)`, ids increasing and above every stored id), appended as new units
/// of at most `cap` weight each (at least one row each).
pub(crate) fn plan_units(
    old: &[UnitIn],
    cap: usize,
    new: &[(u64, usize)],
    split: &SplitRows,
) -> Layout {
    let cap = cap.max(1);
    let mut units: Vec<Unit> = Vec::with_capacity(old.len() + 1);
    for u in old {
        match split.get(&u.lo) {
            Some(rows) if u.w > cap && rows.len() > 1 => {
                // Greedy pieces of at most `cap` (at least one row each); the first keeps the key.
                let mut start = 0;
                while start < rows.len() {
                    let mut end = start + 1;
                    let mut w = rows[start].1;
                    while end < rows.len() && w + rows[end].1 <= cap {
                        w += rows[end].1;
                        end += 1;
                    }
                    let lo = if start == 0 { u.lo } else { rows[start].0 };
                    let hi = if end == rows.len() { u.hi } else { rows[end].0 };
                    units.push(Unit {
                        lo,
                        hi,
                        n: end - start,
                        w,
                        parts: vec![Part::Old { key: u.lo, lo, hi }],
                        dirty: true,
                    });
                    start = end;
                }
            }
            _ => units.push(Unit {
                lo: u.lo,
                hi: u.hi,
                n: u.n,
                w: u.w,
                parts: vec![Part::Old {
                    key: u.lo,
                    lo: u.lo,
                    hi: u.hi,
                }],
                dirty: u.dirty,
            }),
        }
    }
    let mut start = 0;
    while start < new.len() {
        let mut end = start + 1;
        let mut w = new[start].1;
        while end < new.len() && w + new[end].1 <= cap {
            w += new[end].1;
            end += 1;
        }
        units.push(Unit {
            lo: new[start].0,
            hi: new[end - 1].0 + 1,
            n: end - start,
            w,
            parts: vec![Part::New(start, end)],
            dirty: true,
        });
        start = end;
    }
    let old_keys: Vec<u64> = old.iter().map(|u| u.lo).collect();
    // Emptied units are deleted without a rebuild, but still read: the builds check that every
    // deleted id really was in them.
    let emptied: Vec<u64> = units
        .iter()
        .filter(|u| u.n == 0)
        .flat_map(|u| u.parts.iter())
        .filter_map(|p| match p {
            Part::Old { key, .. } => Some(*key),
            Part::New(..) => None,
        })
        .collect();
    units.retain(|u| u.n > 0);

    // Merge until no rule applies.
    let window = tail_window(cap);
    loop {
        let k = units.len();
        let mut hit = None;
        for i in 0..k.saturating_sub(1) {
            let (a, b) = (&units[i], &units[i + 1]);
            let fits = a.w + b.w <= cap;
            let r1 = fits && a.w <= 2 * b.w;
            let r2 = fits && a.w.min(b.w) < (cap / 4).max(1) && i + 1 < k.saturating_sub(window);
            if r1 || r2 {
                hit = Some(i);
                break;
            }
        }
        let Some(i) = hit else { break };
        let b = units.remove(i + 1);
        let a = &mut units[i];
        a.hi = b.hi;
        a.n += b.n;
        a.w += b.w;
        a.parts.extend(b.parts);
        a.dirty = true;
    }

    let mut layout = Layout {
        reads: emptied,
        ..Default::default()
    };
    let mut kept: HashSet<u64> = HashSet::new();
    for u in &units {
        layout.units.push(UnitOut {
            lo: u.lo,
            hi: u.hi,
            n: u.n,
            w: u.w,
        });
        if u.dirty {
            for p in &u.parts {
                if let Part::Old { key, .. } = p {
                    layout.reads.push(*key);
                }
            }
            layout.builds.push((u.lo, u.parts.clone()));
        }
        kept.insert(u.lo);
    }
    layout.reads.sort_unstable();
    layout.reads.dedup();
    layout.delete_keys = old_keys.into_iter().filter(|k| !kept.contains(k)).collect();
    layout
}

/// Plan a write on the segment directory: `deleted` ids (must exist), ids whose vector is
/// `updated`, and `new_ids` (sorted, all above every stored id) appended as new rows.
pub(crate) fn plan(
    segs: &[SegInfo],
    cap: usize,
    deleted: &[u64],
    updated: &[u64],
    new_ids: &[u64],
) -> Result<Layout> {
    let mut units: Vec<UnitIn> = segs
        .iter()
        .map(|s| UnitIn {
            lo: s.lo,
            hi: s.hi,
            n: s.n as usize,
            w: s.n as usize,
            dirty: false,
        })
        .collect();
    let find = |id: u64| -> Result<usize> {
        let i = segs.partition_point(|s| s.lo <= id);
        if i == 0 || id >= segs[i - 1].hi {
            return Err(StoreError::NotFound {
                what: format!("episode {id}"),
            });
        }
        Ok(i - 1)
    };
    for &id in deleted {
        let i = find(id)?;
        if units[i].n == 0 {
            return Err(StoreError::NotFound {
                what: format!("episode {id}"),
            });
        }
        units[i].n -= 1;
        units[i].w -= 1;
        units[i].dirty = true;
    }
    for &id in updated {
        let i = find(id)?;
        units[i].dirty = true;
    }
    let new: Vec<(u64, usize)> = new_ids.iter().map(|&id| (id, 1)).collect();
    Ok(plan_units(&units, cap, &new, &SplitRows::new()))
}

/// The new rows of a write, in id order.
#[derive(Debug, Default)]
pub(crate) struct NewRows<'a> {
    /// Ids, increasing.
    pub ids: Vec<u64>,
    /// Namespaces.
    pub namespaces: Vec<&'a str>,
    /// Event times.
    pub times: Vec<f64>,
    /// Vectors, `ids.len() * dims`.
    pub vectors: Vec<&'a [f32]>,
}

/// Assemble the planned segments from the `old` ones read, dropping `deleted` ids and replacing
/// `updated` vectors. Fails with `NOT_FOUND` for a deleted / updated id that no segment holds.
pub(crate) fn build(
    layout: &Layout,
    dims: usize,
    old: &HashMap<u64, Segment>,
    new: &NewRows<'_>,
    deleted: &HashSet<u64>,
    updated: &HashMap<u64, &[f32]>,
) -> Result<Vec<(u64, Segment)>> {
    // Every deleted / updated id must be a row of a segment that was read.
    let mut seen = 0usize;
    for s in old.values() {
        seen += s
            .ids
            .iter()
            .filter(|id| deleted.contains(id) || updated.contains_key(id))
            .count();
    }
    if seen != deleted.len() + updated.len() {
        let present: HashSet<u64> = old.values().flat_map(|s| s.ids.iter().copied()).collect();
        let missing = deleted
            .iter()
            .chain(updated.keys())
            .copied()
            .filter(|id| !present.contains(id))
            .min()
            .unwrap_or(0);
        return Err(StoreError::NotFound {
            what: format!("episode {missing}"),
        });
    }
    let mut out = Vec::with_capacity(layout.builds.len());
    for (key, parts) in &layout.builds {
        let mut seg = Segment::new(dims);
        for p in parts {
            match p {
                Part::Old { key: k, lo, hi } => {
                    let s = old.get(k).ok_or_else(|| {
                        StoreError::corrupt(format!("segment {k}"), "listed in the state, missing")
                    })?;
                    for i in 0..s.len() {
                        let id = s.ids[i];
                        if deleted.contains(&id) || id < *lo || id >= *hi {
                            continue;
                        }
                        let v = match updated.get(&id) {
                            Some(v) => v,
                            None => s.vector(i),
                        };
                        seg.push(id, s.namespace(i), s.times[i], v);
                    }
                }
                Part::New(a, b) => {
                    for i in *a..*b {
                        seg.push(new.ids[i], new.namespaces[i], new.times[i], new.vectors[i]);
                    }
                }
            }
        }
        out.push((*key, seg));
    }
    Ok(out)
}

/// A row of a page to build: id, namespace, event time and the encoded record.
pub(crate) type PageRow<'a> = (u64, &'a str, f64, &'a [u8]);

/// A built page: key, encoded bytes, index entries.
pub(crate) type BuiltPage = (u64, Vec<u8>, Vec<PageKey>);

/// Assemble the planned pages from the `old` ones read (decoded views), dropping `deleted` ids
/// and replacing the `patched` records (id -> encoded record; namespace and time never change).
/// Returns `(key, bytes, summary)` per page. Fails with `NOT_FOUND` for a deleted / patched id
/// that no page read holds.
pub(crate) fn build_pages(
    layout: &Layout,
    old: &HashMap<u64, PageView<'_>>,
    new: &[PageRow<'_>],
    deleted: &HashSet<u64>,
    patched: &HashMap<u64, Vec<u8>>,
) -> Result<Vec<BuiltPage>> {
    let seen = old
        .values()
        .map(|p| {
            (0..p.len())
                .filter(|&i| {
                    let id = p.id(i);
                    deleted.contains(&id) || patched.contains_key(&id)
                })
                .count()
        })
        .sum::<usize>();
    if seen != deleted.len() + patched.len() {
        let present: HashSet<u64> = old
            .values()
            .flat_map(|p| (0..p.len()).map(|i| p.id(i)))
            .collect();
        let missing = deleted
            .iter()
            .chain(patched.keys())
            .copied()
            .filter(|id| !present.contains(id))
            .min()
            .unwrap_or(0);
        return Err(StoreError::NotFound {
            what: format!("episode {missing}"),
        });
    }
    let mut out = Vec::with_capacity(layout.builds.len());
    for (key, parts) in &layout.builds {
        let mut pb = PageBuilder::new();
        for p in parts {
            match p {
                Part::Old { key: k, lo, hi } => {
                    let page = old.get(k).ok_or_else(|| {
                        StoreError::corrupt(format!("page {k}"), "listed in the state, missing")
                    })?;
                    for i in 0..page.len() {
                        let id = page.id(i);
                        if deleted.contains(&id) || id < *lo || id >= *hi {
                            continue;
                        }
                        let rec = page.record(i);
                        let (ns, t) = super::codec::record_ns_time(rec)
                            .map_err(|e| e.corrupt(format!("episode {id}")))?;
                        let rec = patched.get(&id).map_or(rec, Vec::as_slice);
                        pb.push(id, ns, t, rec);
                    }
                }
                Part::New(a, b) => {
                    for &(id, ns, t, rec) in &new[*a..*b] {
                        pb.push(id, ns, t, rec);
                    }
                }
            }
        }
        let (bytes, keys) = pb.finish();
        out.push((*key, bytes, keys));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(sizes: &[(u64, u64, u32)]) -> Vec<SegInfo> {
        sizes
            .iter()
            .map(|&(lo, hi, n)| SegInfo { lo, hi, n })
            .collect()
    }

    #[test]
    fn appends_form_a_geometric_tail_and_stay_bounded() {
        let cap = 64;
        let mut st: Vec<SegInfo> = Vec::new();
        let mut next = 1u64;
        for step in 0..2000 {
            let n = if step % 97 == 0 { 150 } else { 1 };
            let ids: Vec<u64> = (next..next + n).collect();
            next += n;
            let l = plan(&st, cap, &[], &[], &ids).unwrap();
            st = l.seg_infos();
            let rows: u64 = st.iter().map(|s| s.n as u64).sum();
            assert_eq!(rows, next - 1);
            let bound = (5.4 * rows as f64 / cap as f64) as usize + tail_window(cap) + 1;
            assert!(
                st.len() <= bound,
                "step {step}: {} segments > {bound}",
                st.len()
            );
            assert!(st.iter().all(|s| s.n as usize <= cap));
            assert!(st.windows(2).all(|w| w[0].hi <= w[1].lo));
        }
    }

    #[test]
    fn weighted_units_respect_the_capacity_and_stay_bounded() {
        let cap = 1000;
        let mut rng = crate::rng::Rng::new(3);
        let mut dir: Vec<UnitOut> = Vec::new();
        let mut next = 1u64;
        let mut total = 0usize;
        for step in 0..3000 {
            let k = if step % 50 == 0 { 40 } else { 1 };
            let new: Vec<(u64, usize)> = (0..k)
                .map(|i| (next + i as u64, 20 + rng.below(300)))
                .collect();
            next += k as u64;
            total += new.iter().map(|r| r.1).sum::<usize>();
            let old: Vec<UnitIn> = dir
                .iter()
                .map(|u| UnitIn {
                    lo: u.lo,
                    hi: u.hi,
                    n: u.n,
                    w: u.w,
                    dirty: false,
                })
                .collect();
            let l = plan_units(&old, cap, &new, &SplitRows::new());
            dir = l.units;
            assert_eq!(dir.iter().map(|u| u.w).sum::<usize>(), total);
            assert!(dir.iter().all(|u| u.w <= cap), "step {step}: over capacity");
            let bound = (5.4 * total as f64 / cap as f64) as usize + tail_window(cap) + 1;
            assert!(
                dir.len() <= bound,
                "step {step}: {} units > {bound}",
                dir.len()
            );
        }
    }

    #[test]
    fn delete_of_unknown_range_is_not_found() {
        let st = dir(&[(1, 5, 4)]);
        assert!(matches!(
            plan(&st, 8, &[9], &[], &[]),
            Err(StoreError::NotFound { .. })
        ));
        let l = plan(&st, 8, &[1, 2, 3, 4], &[], &[]).unwrap();
        assert!(l.units.is_empty());
        assert_eq!(l.delete_keys, vec![1]);
    }
}
