//! The row table: what the engine keeps in memory about every live episode besides its vector
//! and its lexical postings — id, namespace, event time, importance, tags, record size — by
//! *row* (the episode's position in the vector bank), and the filters of a recall turned into
//! an allow-set of rows (a bitset for the kernels plus, when small, the explicit row list).

use std::collections::HashMap;

use crate::engine::DocId;

/// A row of the vector bank (the memory-fetch kernels address rows by `u32`).
pub(crate) type Row = u32;

/// Strings interned to small integers (namespaces, tags).
#[derive(Debug, Clone, Default)]
pub(crate) struct Interner {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Interner {
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
    pub(crate) fn get(&self, s: &str) -> Option<u32> {
        self.index.get(s).copied()
    }
    pub(crate) fn name(&self, i: u32) -> &str {
        &self.names[i as usize]
    }
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// Per-episode attributes that only the episode records hold (not the vector segments): kept in
/// memory for filters and fusion, persisted in the engine blob.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Attrs {
    /// Importance in `[0, 1]`.
    pub importance: f32,
    /// Tags.
    pub tags: Vec<String>,
    /// Estimated bytes of the stored record (text, role, metadata, tags, vector).
    pub bytes: u32,
}

/// The filters of a recall.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only these namespaces (`None`: every namespace).
    pub namespaces: Option<Vec<String>>,
    /// Lowest event time, inclusive.
    pub since: Option<f64>,
    /// Highest event time, inclusive.
    pub until: Option<f64>,
    /// Only episodes carrying at least one of these tags (`None`: no tag filter).
    pub tags: Option<Vec<String>>,
}

/// The rows a recall may return.
#[derive(Debug, Clone)]
pub(crate) struct Allowed {
    /// Bitset over every row of the bank: bit `r % 32` of word `r / 32` (the kernels' mask).
    pub mask: Vec<u32>,
    /// The allowed rows, ascending.
    pub rows: Vec<Row>,
    /// The namespaces the allowed rows belong to (interned), ascending.
    pub namespaces: Vec<u32>,
}

impl Allowed {
    pub(crate) fn contains(&self, r: Row) -> bool {
        self.mask
            .get(r as usize / 32)
            .is_some_and(|w| w & (1 << (r % 32)) != 0)
    }
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }
}

/// The row table. Rows are appended; a removed row stays as a hole until the bank is compacted
/// (then the table is rebuilt with the bank).
#[derive(Debug, Clone, Default)]
pub(crate) struct RowTable {
    ids: Vec<DocId>,
    live: Vec<bool>,
    ns: Vec<u32>,
    time: Vec<f64>,
    importance: Vec<f32>,
    tags: Vec<Box<[u32]>>,
    bytes: Vec<u32>,
    row_of: HashMap<DocId, Row>,
    namespaces: Interner,
    ns_rows: Vec<Vec<Row>>,
    ns_live: Vec<usize>,
    tag_names: Interner,
    live_count: usize,
    live_bytes: u64,
}

impl RowTable {
    /// Rows, holes included.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
    /// Live rows.
    pub(crate) fn live_count(&self) -> usize {
        self.live_count
    }
    /// Sum of the live records' estimated bytes.
    pub(crate) fn live_bytes(&self) -> u64 {
        self.live_bytes
    }
    pub(crate) fn row_of(&self, id: DocId) -> Option<Row> {
        self.row_of.get(&id).copied()
    }
    pub(crate) fn is_live(&self, r: Row) -> bool {
        self.live.get(r as usize).copied().unwrap_or(false)
    }
    pub(crate) fn id(&self, r: Row) -> DocId {
        self.ids[r as usize]
    }
    pub(crate) fn ns_index(&self, r: Row) -> u32 {
        self.ns[r as usize]
    }
    pub(crate) fn namespace(&self, r: Row) -> &str {
        self.namespaces.name(self.ns[r as usize])
    }
    pub(crate) fn namespace_name(&self, ns: u32) -> &str {
        self.namespaces.name(ns)
    }
    pub(crate) fn namespace_id(&self, ns: &str) -> Option<u32> {
        self.namespaces.get(ns)
    }
    pub(crate) fn namespace_len(&self, ns: u32) -> usize {
        self.ns_live.get(ns as usize).copied().unwrap_or(0)
    }
    /// Live rows of namespace `ns`, ascending.
    pub(crate) fn namespace_rows(&self, ns: u32) -> Vec<Row> {
        self.ns_rows.get(ns as usize).map_or_else(Vec::new, |v| {
            v.iter().copied().filter(|&r| self.is_live(r)).collect()
        })
    }
    /// How many namespaces have live rows.
    pub(crate) fn live_namespace_count(&self) -> usize {
        self.ns_live.iter().filter(|&&n| n > 0).count()
    }
    pub(crate) fn time(&self, r: Row) -> f64 {
        self.time[r as usize]
    }
    pub(crate) fn importance(&self, r: Row) -> f32 {
        self.importance[r as usize]
    }
    pub(crate) fn attrs(&self, r: Row) -> Attrs {
        Attrs {
            importance: self.importance[r as usize],
            tags: self.tags[r as usize]
                .iter()
                .map(|&t| self.tag_names.name(t).to_string())
                .collect(),
            bytes: self.bytes[r as usize],
        }
    }
    /// Live rows, ascending.
    pub(crate) fn live_rows(&self) -> impl Iterator<Item = Row> + '_ {
        (0..self.ids.len() as Row).filter(|&r| self.live[r as usize])
    }

    /// Append a live row for a new id.
    pub(crate) fn push(&mut self, id: DocId, namespace: &str, time: f64, attrs: &Attrs) -> Row {
        let r = self.ids.len() as Row;
        let ns = self.namespaces.intern(namespace);
        if self.ns_rows.len() <= ns as usize {
            self.ns_rows.resize_with(ns as usize + 1, Vec::new);
            self.ns_live.resize(ns as usize + 1, 0);
        }
        self.ids.push(id);
        self.live.push(true);
        self.ns.push(ns);
        self.time.push(time);
        self.importance.push(0.0);
        self.tags.push(Box::new([]));
        self.bytes.push(0);
        self.ns_rows[ns as usize].push(r);
        self.ns_live[ns as usize] += 1;
        self.row_of.insert(id, r);
        self.live_count += 1;
        self.set_attrs(r, attrs);
        r
    }

    /// Append a hole (a slot that holds no episode; keeps row numbers as persisted).
    pub(crate) fn push_hole(&mut self) -> Row {
        let r = self.ids.len() as Row;
        self.ids.push(0);
        self.live.push(false);
        self.ns.push(0);
        self.time.push(0.0);
        self.importance.push(0.0);
        self.tags.push(Box::new([]));
        self.bytes.push(0);
        r
    }

    /// The episode of every row in row order (`None` for holes), with its attributes.
    pub(crate) fn row_order(&self) -> impl Iterator<Item = Option<(DocId, Attrs)>> + '_ {
        (0..self.ids.len() as Row).map(|r| self.is_live(r).then(|| (self.id(r), self.attrs(r))))
    }

    /// Replace the attributes of a live row.
    pub(crate) fn set_attrs(&mut self, r: Row, a: &Attrs) {
        let i = r as usize;
        self.live_bytes -= self.bytes[i] as u64;
        self.importance[i] = a.importance;
        let mut t: Vec<u32> = a.tags.iter().map(|s| self.tag_names.intern(s)).collect();
        crate::sort::sort(&mut t);
        t.dedup();
        self.tags[i] = t.into_boxed_slice();
        self.bytes[i] = a.bytes;
        self.live_bytes += a.bytes as u64;
    }

    /// Remove a live row (its slot stays as a hole). Returns whether it was live.
    pub(crate) fn remove(&mut self, r: Row) -> bool {
        let i = r as usize;
        if !self.live.get(i).copied().unwrap_or(false) {
            return false;
        }
        self.live[i] = false;
        self.live_count -= 1;
        self.live_bytes -= self.bytes[i] as u64;
        self.bytes[i] = 0;
        self.tags[i] = Box::new([]);
        let ns = self.ns[i] as usize;
        self.ns_live[ns] -= 1;
        let list = &mut self.ns_rows[ns];
        if list.len() > 2 * self.ns_live[ns] + 16 {
            let live = &self.live;
            list.retain(|&x| live[x as usize]);
        }
        self.row_of.remove(&self.ids[i]);
        true
    }

    /// The rows a recall with `filter` may return.
    pub(crate) fn allowed(&self, f: &Filter) -> Allowed {
        let words = self.ids.len().div_ceil(32);
        let mut mask = vec![0u32; words];
        let tag_set: Option<Vec<u32>> = f.tags.as_ref().map(|ts| {
            let mut v: Vec<u32> = ts.iter().filter_map(|t| self.tag_names.get(t)).collect();
            crate::sort::sort(&mut v);
            v.dedup();
            v
        });
        let keep = |r: Row| -> bool {
            let i = r as usize;
            if !self.live[i] {
                return false;
            }
            let t = self.time[i];
            if f.since.is_some_and(|s| t < s) || f.until.is_some_and(|u| t > u) {
                return false;
            }
            if let Some(ts) = &tag_set {
                if !self.tags[i].iter().any(|x| ts.binary_search(x).is_ok()) {
                    return false;
                }
            }
            true
        };
        let mut rows: Vec<Row> = Vec::new();
        match &f.namespaces {
            Some(list) => {
                let mut ns: Vec<u32> = list.iter().filter_map(|n| self.namespaces.get(n)).collect();
                crate::sort::sort(&mut ns);
                ns.dedup();
                for n in ns {
                    rows.extend(
                        self.ns_rows[n as usize]
                            .iter()
                            .copied()
                            .filter(|&r| keep(r)),
                    );
                }
                crate::sort::sort(&mut rows);
            }
            None => rows.extend((0..self.ids.len() as Row).filter(|&r| keep(r))),
        }
        let mut namespaces: Vec<u32> = Vec::new();
        let mut seen = vec![false; self.namespaces.len()];
        for &r in &rows {
            mask[r as usize / 32] |= 1 << (r % 32);
            let n = self.ns[r as usize];
            if !seen[n as usize] {
                seen[n as usize] = true;
                namespaces.push(n);
            }
        }
        crate::sort::sort(&mut namespaces);
        Allowed {
            mask,
            rows,
            namespaces,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(tags: &[&str]) -> Attrs {
        Attrs {
            importance: 0.5,
            tags: tags.iter().map(|s| s.to_string()).collect(),
            bytes: 10,
        }
    }

    #[test]
    fn filters_and_holes() {
        let mut t = RowTable::default();
        t.push(1, "a", 10.0, &attrs(&["x"]));
        t.push(2, "b", 20.0, &attrs(&["y"]));
        t.push(3, "a", 30.0, &attrs(&["x", "y"]));
        t.push(4, "a", 40.0, &attrs(&[]));
        assert_eq!(t.live_bytes(), 40);
        let all = t.allowed(&Filter::default());
        assert_eq!(all.rows, vec![0, 1, 2, 3]);
        assert_eq!(all.namespaces.len(), 2);
        let a = t.allowed(&Filter {
            namespaces: Some(vec!["a".into(), "zz".into()]),
            since: Some(15.0),
            ..Default::default()
        });
        assert_eq!(a.rows, vec![2, 3]);
        let tagged = t.allowed(&Filter {
            tags: Some(vec!["y".into(), "nope".into()]),
            ..Default::default()
        });
        assert_eq!(tagged.rows, vec![1, 2]);
        assert!(tagged.contains(1) && !tagged.contains(0));
        let none = t.allowed(&Filter {
            tags: Some(vec!["nope".into()]),
            ..Default::default()
        });
        assert!(none.rows.is_empty());
        assert!(t.remove(2));
        assert!(!t.remove(2));
        assert_eq!(t.row_of(3), None);
        assert_eq!(t.namespace_rows(t.namespace_id("a").unwrap()), vec![0, 3]);
        assert_eq!(t.allowed(&Filter::default()).rows, vec![0, 1, 3]);
        assert_eq!(t.live_count(), 3);
        assert_eq!(t.len() - t.live_count(), 1);
        assert_eq!(t.live_bytes(), 30);
    }
}
