//! Segment layout planning: which segment records a write rewrites, merges, creates or deletes.
//!
//! Pure functions over the segment directory (sizes only), so the plan is known before anything
//! is read; then [`build`] assembles the new segment records from the old ones it read.
//!
//! Rules, applied after every write until none applies (pairs of adjacent segments `a`, `b`,
//! `a` older, `cap` = segment capacity):
//! - **R1** (binary counter): merge if `a.n + b.n <= cap` and `a.n <= 2 * b.n`. Appends of small
//!   batches form a geometric tail, so each vector is rewritten O(log cap) times.
//! - **R2** (no small fragments): merge if `a.n + b.n <= cap` and `min(a.n, b.n) < cap / 4`,
//!   except inside the last `log2(cap) + 2` segments (the geometric tail).
//!
//! Together they keep the number of segments at most about `5.4 N / cap + log2(cap) + 2` for `N`
//! rows (tests assert it), so loading every vector costs a number of records proportional to the
//! bytes. A delete rewrites its segment without the row (its vector bytes are gone, not flagged);
//! a segment left empty is deleted and small leftovers are merged by R1/R2 (compaction).

use std::collections::{HashMap, HashSet};

use super::codec::{SegInfo, Segment, State};
use super::error::{Result, StoreError};

/// Where the rows of a planned segment come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// The rows of the old segment with this key (minus deleted ids, with updated vectors).
    Old(u64),
    /// New rows `start..end` of the write.
    New(usize, usize),
}

#[derive(Debug, Clone)]
struct Unit {
    lo: u64,
    hi: u64,
    n: usize,
    parts: Vec<Part>,
    dirty: bool,
}

/// A planned layout.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    /// The new directory.
    pub segs: Vec<SegInfo>,
    /// Segments to write: `(key, parts)`.
    pub builds: Vec<(u64, Vec<Part>)>,
    /// Old keys to delete (not rewritten under the same key).
    pub delete_keys: Vec<u64>,
    /// Old keys whose bytes [`build`] needs.
    pub reads: Vec<u64>,
}

fn tail_window(cap: usize) -> usize {
    (usize::BITS - cap.max(1).leading_zeros()) as usize + 2
}

/// Plan a write on the directory of `state`: `deleted` ids (must exist), ids whose vector is
/// `updated`, and `new_ids` (sorted, all above every stored id) appended as new rows.
pub(crate) fn plan(
    state: &State,
    cap: usize,
    deleted: &[u64],
    updated: &[u64],
    new_ids: &[u64],
) -> Result<Layout> {
    let cap = cap.max(1);
    let mut units: Vec<Unit> = state
        .segs
        .iter()
        .map(|s| Unit {
            lo: s.lo,
            hi: s.hi,
            n: s.n as usize,
            parts: vec![Part::Old(s.lo)],
            dirty: false,
        })
        .collect();
    for &id in deleted {
        let i = state.seg_of(id).ok_or_else(|| StoreError::NotFound {
            what: format!("episode {id}"),
        })?;
        if units[i].n == 0 {
            return Err(StoreError::NotFound {
                what: format!("episode {id}"),
            });
        }
        units[i].n -= 1;
        units[i].dirty = true;
    }
    for &id in updated {
        let i = state.seg_of(id).ok_or_else(|| StoreError::NotFound {
            what: format!("episode {id}"),
        })?;
        units[i].dirty = true;
    }
    let mut start = 0;
    while start < new_ids.len() {
        let end = (start + cap).min(new_ids.len());
        units.push(Unit {
            lo: new_ids[start],
            hi: new_ids[end - 1] + 1,
            n: end - start,
            parts: vec![Part::New(start, end)],
            dirty: true,
        });
        start = end;
    }
    let old_keys: Vec<u64> = state.segs.iter().map(|s| s.lo).collect();
    // Emptied segments are deleted without a rebuild, but still read: build() checks that every
    // deleted id really was in them.
    let emptied: Vec<u64> = units
        .iter()
        .filter(|u| u.n == 0)
        .flat_map(|u| u.parts.iter())
        .filter_map(|p| match p {
            Part::Old(k) => Some(*k),
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
            let fits = a.n + b.n <= cap;
            let r1 = fits && a.n <= 2 * b.n;
            let r2 = fits && a.n.min(b.n) < (cap / 4).max(1) && i + 1 < k.saturating_sub(window);
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
        a.parts.extend(b.parts);
        a.dirty = true;
    }

    let mut layout = Layout {
        reads: emptied,
        ..Default::default()
    };
    let mut kept: HashSet<u64> = HashSet::new();
    for u in &units {
        layout.segs.push(SegInfo {
            lo: u.lo,
            hi: u.hi,
            n: u.n as u32,
        });
        if u.dirty {
            for p in &u.parts {
                if let Part::Old(k) = p {
                    layout.reads.push(*k);
                }
            }
            layout.builds.push((u.lo, u.parts.clone()));
        }
        kept.insert(u.lo);
    }
    layout.reads.sort_unstable();
    layout.reads.dedup();
    layout.delete_keys = old_keys.into_iter().filter(|k| !kept.contains(k)).collect();
    Ok(layout)
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
                Part::Old(k) => {
                    let s = old.get(k).ok_or_else(|| {
                        StoreError::corrupt(format!("segment {k}"), "listed in the state, missing")
                    })?;
                    for i in 0..s.len() {
                        let id = s.ids[i];
                        if deleted.contains(&id) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(sizes: &[(u64, u64, u32)]) -> State {
        State {
            segs: sizes
                .iter()
                .map(|&(lo, hi, n)| SegInfo { lo, hi, n })
                .collect(),
            ..State::fresh()
        }
    }

    #[test]
    fn appends_form_a_geometric_tail_and_stay_bounded() {
        let cap = 64;
        let mut st = State::fresh();
        let mut next = 1u64;
        for step in 0..2000 {
            let n = if step % 97 == 0 { 150 } else { 1 };
            let ids: Vec<u64> = (next..next + n).collect();
            next += n;
            let l = plan(&st, cap, &[], &[], &ids).unwrap();
            st.segs = l.segs;
            let rows: u64 = st.segs.iter().map(|s| s.n as u64).sum();
            assert_eq!(rows, next - 1);
            let bound = (5.4 * rows as f64 / cap as f64) as usize + tail_window(cap) + 1;
            assert!(
                st.segs.len() <= bound,
                "step {step}: {} segments > {bound}",
                st.segs.len()
            );
            assert!(st.segs.iter().all(|s| s.n as usize <= cap));
            assert!(st.segs.windows(2).all(|w| w[0].hi <= w[1].lo));
        }
    }

    #[test]
    fn delete_of_unknown_range_is_not_found() {
        let st = state(&[(1, 5, 4)]);
        assert!(matches!(
            plan(&st, 8, &[9], &[], &[]),
            Err(StoreError::NotFound { .. })
        ));
        let l = plan(&st, 8, &[1, 2, 3, 4], &[], &[]).unwrap();
        assert!(l.segs.is_empty());
        assert_eq!(l.delete_keys, vec![1]);
    }
}
