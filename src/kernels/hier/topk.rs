//! CPU top-k selection with the tie rule every mnemo fetch uses: higher score first, equal
//! scores by the lower id. Also an exact (flat-scan) top-k, the oracle of the recall tests.

use super::dot::dot;

/// Sentinel id of an empty result slot (fewer than `k` rows were eligible).
pub const NO_ID: u32 = u32::MAX;

/// `true` when `(sa, ia)` ranks before `(sb, ib)`: higher score, or equal score and lower id.
#[inline]
pub fn better(sa: f32, ia: u32, sb: f32, ib: u32) -> bool {
    sa > sb || (sa == sb && ia < ib)
}

/// The best `k` of a stream of `(score, id)` pairs, kept sorted best first.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    items: Vec<(f32, u32)>,
    /// Score of the worst kept item once full (`-inf` before): anything strictly below is out.
    floor: f32,
}

impl TopK {
    /// An empty selection of at most `k` items.
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            items: Vec::with_capacity(k + 1),
            floor: f32::NEG_INFINITY,
        }
    }

    /// Forget everything (keeps the allocation).
    pub fn clear(&mut self) {
        self.items.clear();
        self.floor = f32::NEG_INFINITY;
    }

    /// A score strictly below this cannot enter (cheap pre-check for hot loops).
    #[inline]
    pub fn floor(&self) -> f32 {
        self.floor
    }

    /// Offer one item.
    #[inline]
    pub fn push(&mut self, score: f32, id: u32) {
        if score < self.floor || self.k == 0 {
            return;
        }
        if self.items.len() == self.k {
            let (ws, wi) = self.items[self.k - 1];
            if !better(score, id, ws, wi) {
                return;
            }
            self.items.pop();
        }
        let at = self
            .items
            .partition_point(|&(s, i)| better(s, i, score, id));
        self.items.insert(at, (score, id));
        if self.items.len() == self.k {
            self.floor = self.items[self.k - 1].0;
        }
    }

    /// The kept items, best first.
    pub fn items(&self) -> &[(f32, u32)] {
        &self.items
    }

    /// Append the kept items to `ids`/`scores`, padded to `k` with ([`NO_ID`], `-inf`).
    pub fn write_padded(&self, ids: &mut Vec<u32>, scores: &mut Vec<f32>) {
        for &(s, i) in &self.items {
            ids.push(i);
            scores.push(s);
        }
        for _ in self.items.len()..self.k {
            ids.push(NO_ID);
            scores.push(f32::NEG_INFINITY);
        }
    }
}

/// `true` when bit `id` of the allow-mask is set (ids past the mask's end are excluded).
#[inline]
pub fn mask_allows(mask: &[u32], id: u32) -> bool {
    let w = (id / 32) as usize;
    w < mask.len() && (mask[w] >> (id % 32)) & 1 == 1
}

/// Exact top-k by dot product of each query against every row of `bank` (`[N, d]`, row `i` has id
/// `ids[i]`, or `i` when `ids` is `None`), optionally restricted by `mask`. Row-major `[B, k]`
/// ids and scores, padded with ([`NO_ID`], `-inf`). The oracle of the recall tests.
pub fn exact_topk(
    bank: &[f32],
    d: usize,
    ids: Option<&[u32]>,
    queries: &[f32],
    k: usize,
    mask: Option<&[u32]>,
) -> (Vec<u32>, Vec<f32>) {
    let b = queries.len().checked_div(d).unwrap_or(0);
    let mut out_ids = Vec::with_capacity(b * k);
    let mut out_scores = Vec::with_capacity(b * k);
    let mut top = TopK::new(k);
    for q in queries.chunks_exact(d.max(1)).take(b) {
        top.clear();
        for (i, row) in bank.chunks_exact(d.max(1)).enumerate() {
            let id = ids.map_or(i as u32, |v| v[i]);
            if let Some(m) = mask {
                if !mask_allows(m, id) {
                    continue;
                }
            }
            top.push(dot(q, row), id);
        }
        top.write_padded(&mut out_ids, &mut out_scores);
    }
    (out_ids, out_scores)
}

/// Recall@k of `got` against `want` (both row-major `[B, k]`, padded with [`NO_ID`]): the
/// fraction of the true top-k ids (ignoring padding) that `got` also returns.
pub fn recall(got: &[u32], want: &[u32], k: usize) -> f64 {
    let mut hit = 0usize;
    let mut total = 0usize;
    for (g, w) in got.chunks(k.max(1)).zip(want.chunks(k.max(1))) {
        for &id in w.iter().filter(|&&id| id != NO_ID) {
            total += 1;
            if g.contains(&id) {
                hit += 1;
            }
        }
    }
    if total == 0 {
        1.0
    } else {
        hit as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_break_by_lower_id_and_pad() {
        let mut t = TopK::new(3);
        for (s, i) in [(1.0, 5), (2.0, 9), (2.0, 3), (1.0, 2), (0.5, 0)] {
            t.push(s, i);
        }
        assert_eq!(t.items(), &[(2.0, 3), (2.0, 9), (1.0, 2)]);
        let mut t = TopK::new(4);
        t.push(1.0, 1);
        let (mut ids, mut sc) = (vec![], vec![]);
        t.write_padded(&mut ids, &mut sc);
        assert_eq!(ids, vec![1, NO_ID, NO_ID, NO_ID]);
        assert_eq!(sc[1], f32::NEG_INFINITY);
    }

    #[test]
    fn mask_bits() {
        let m = [0b101u32, 1];
        assert!(mask_allows(&m, 0));
        assert!(!mask_allows(&m, 1));
        assert!(mask_allows(&m, 2));
        assert!(mask_allows(&m, 32));
        assert!(!mask_allows(&m, 33));
        assert!(!mask_allows(&m, 64));
    }
}
