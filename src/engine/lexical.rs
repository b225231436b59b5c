//! A BM25 inverted index kept in the core, with statistics **per namespace**.
//!
//! - Tokens: [`super::tokenize`] (lowercase `[a-z0-9]+` runs, as the LoCoMo baseline).
//! - Scoring: Okapi BM25 with the `rank_bm25` `BM25Okapi` formula: for every query token
//!   (repeats count again) present in the namespace,
//!   `idf · tf · (k1 + 1) / (tf + k1 · (1 − b + b · dl / avgdl))` with
//!   `idf = ln(N − df + 0.5) − ln(df + 0.5)`, and a negative idf replaced by
//!   `epsilon · (mean idf over the namespace's vocabulary)`. `N`, `df`, `avgdl` and the mean idf
//!   are the namespace's own, so a query scores exactly as if its namespace were indexed alone.
//!   The floating-point operations are ordered as in the baseline (numpy, float64), so scores
//!   agree with it to the last bits.
//! - Incremental: [`LexicalIndex::add`] and [`LexicalIndex::remove`] update postings, document
//!   lengths and a histogram of document frequencies (from which the mean idf is computed in
//!   O(distinct df values)); nothing is rebuilt.
//! - Persistence: [`LexicalIndex::to_bytes`] writes a canonical, versioned, checksummed form
//!   (sorted vocabulary, namespaces and ids; postings lists as stored), so an index built
//!   incrementally and one rebuilt from the same documents serialise to identical bytes;
//!   [`LexicalIndex::from_bytes`] loads it without tokenizing or hashing per posting and turns
//!   every malformed input into a typed error.
//! - Search: [`LexicalQuery::top_k`] with an optional allow-set ([`Allow`]); ties by lower id.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::codec::{self, Writer};
use super::error::EngineError;
use super::tokenize::{for_each_token, is_token};
use super::DocId;
use crate::num_fmt::Num;

const MAGIC: &[u8; 8] = b"MNMOBM25";
/// Version of the serialised form written by [`LexicalIndex::to_bytes`].
pub const FORMAT_VERSION: u32 = 1;
const WHAT: &str = "lexical index";

/// BM25 parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25Params {
    /// Term-frequency saturation (default 1.5).
    pub k1: f64,
    /// Length normalisation in `[0, 1]` (default 0.75).
    pub b: f64,
    /// Floor for negative idf, as a fraction of the mean idf (default 0.25).
    pub epsilon: f64,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Bm25Params {
            k1: 1.5,
            b: 0.75,
            epsilon: 0.25,
        }
    }
}

impl Bm25Params {
    /// `Ok` if every parameter is finite and in range (`k1 ≥ 0`, `0 ≤ b ≤ 1`, `epsilon ≥ 0`).
    pub fn validate(&self) -> Result<(), EngineError> {
        let ok = self.k1.is_finite()
            && self.k1 >= 0.0
            && self.b.is_finite()
            && (0.0..=1.0).contains(&self.b)
            && self.epsilon.is_finite()
            && self.epsilon >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(EngineError::invalid(
                "bm25 params",
                format!(
                    "need finite k1 >= 0, 0 <= b <= 1, epsilon >= 0; got k1 = {}, b = {}, epsilon = {}",
                    Num(self.k1),
                    Num(self.b),
                    Num(self.epsilon)
                ),
            ))
        }
    }
}

/// Which documents a search may return.
#[derive(Clone, Copy)]
pub enum Allow<'a> {
    /// Every document of the namespace.
    All,
    /// Only these ids (any order, duplicates and ids of other namespaces ignored). Scored
    /// document by document, so a small allow-set over a large namespace is cheap.
    Only(&'a [DocId]),
    /// Documents for which the predicate is true (checked on matching documents only).
    Predicate(&'a dyn Fn(DocId) -> bool),
}

impl std::fmt::Debug for Allow<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Allow::All => write!(f, "All"),
            Allow::Only(ids) => write!(f, "Only({} ids)", ids.len()),
            Allow::Predicate(_) => write!(f, "Predicate"),
        }
    }
}

/// A lexical search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LexHit {
    /// The document.
    pub id: DocId,
    /// Its BM25 score (may be ≤ 0 in tiny namespaces, where every idf is floored).
    pub score: f64,
}

/// Counters describing an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LexicalStats {
    /// Documents indexed.
    pub docs: usize,
    /// Non-empty namespaces.
    pub namespaces: usize,
    /// Distinct terms in use.
    pub terms: usize,
    /// (namespace, term, document) postings.
    pub postings: usize,
    /// Total tokens over all documents.
    pub tokens: u64,
    /// Approximate heap bytes held by the index.
    pub heap_bytes: usize,
}

/// A fast hasher for internal integer keys (term and document ids; not attacker-chosen
/// strings): one multiply-rotate step per word, as FxHash.
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl IdHasher {
    #[inline]
    fn mix(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.mix(b as u64);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.mix(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[derive(Debug, Default, Clone)]
struct Vocab {
    ids: HashMap<Box<str>, u32>,
    strings: Vec<Box<str>>,
    /// Number of namespaces in which the term has df > 0; 0 = free slot.
    refs: Vec<u32>,
    free: Vec<u32>,
}

impl Vocab {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.strings[id as usize] = s.into();
                id
            }
            None => {
                self.strings.push(s.into());
                self.refs.push(0);
                (self.strings.len() - 1) as u32
            }
        };
        self.ids.insert(s.into(), id);
        id
    }

    fn retain(&mut self, id: u32) {
        self.refs[id as usize] += 1;
    }

    fn release(&mut self, id: u32) {
        let r = &mut self.refs[id as usize];
        *r -= 1;
        if *r == 0 {
            let s = std::mem::take(&mut self.strings[id as usize]);
            self.ids.remove(&s);
            self.free.push(id);
        }
    }

    /// Drop interned strings that no namespace uses (left by a failed or token-less add).
    fn collect_unused(&mut self, candidates: &[u32]) {
        for &id in candidates {
            if self.refs[id as usize] == 0 && !self.strings[id as usize].is_empty() {
                let s = std::mem::take(&mut self.strings[id as usize]);
                self.ids.remove(&s);
                self.free.push(id);
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Slot {
    id: DocId,
    live: bool,
    len: u32,
    /// (term, tf), sorted by term.
    terms: Box<[(u32, u32)]>,
}

/// A term's postings in one namespace: `(slot, tf)` sorted by slot, possibly holding entries
/// of removed documents (tombstoned slots) until the list is compacted.
#[derive(Debug, Clone, Default)]
struct Postings {
    list: Vec<(u32, u32)>,
    /// Live entries = the term's document frequency.
    live: u32,
}

/// Slots of removed documents are compacted away once they outnumber the live ones (and this).
const MIN_COMPACT_SLOTS: usize = 64;

#[derive(Debug, Clone, Default)]
struct Namespace {
    name: String,
    /// Append-only between compactions; removed documents leave a dead slot.
    slots: Vec<Slot>,
    dead_slots: usize,
    /// term → postings.
    postings: IdMap<u32, Postings>,
    /// (df, number of terms with that df), by df, counts > 0. (A sorted `Vec` rather than a
    /// `BTreeMap`: a few hundred distinct dfs, and one fewer tree instance in wasm.)
    df_hist: Vec<(u32, u32)>,
    docs: u32,
    total_len: u64,
}

impl Namespace {
    fn hist_dec(&mut self, df: u32) {
        if df == 0 {
            return;
        }
        if let Ok(i) = self.df_hist.binary_search_by_key(&df, |e| e.0) {
            self.df_hist[i].1 -= 1;
            if self.df_hist[i].1 == 0 {
                self.df_hist.remove(i);
            }
        }
    }

    fn hist_inc(&mut self, df: u32) {
        if df > 0 {
            match self.df_hist.binary_search_by_key(&df, |e| e.0) {
                Ok(i) => self.df_hist[i].1 += 1,
                Err(i) => self.df_hist.insert(i, (df, 1)),
            }
        }
    }

    fn avgdl(&self) -> f64 {
        self.total_len as f64 / self.docs as f64
    }

    /// Mean raw idf over the namespace's vocabulary (the epsilon floor's base).
    fn mean_idf(&self) -> f64 {
        let n = self.docs as f64;
        let mut sum = 0.0;
        let mut terms = 0u64;
        for &(df, count) in &self.df_hist {
            sum += count as f64 * raw_idf(n, df);
            terms += count as u64;
        }
        if terms == 0 {
            0.0
        } else {
            sum / terms as f64
        }
    }
}

fn raw_idf(n: f64, df: u32) -> f64 {
    // Python: math.log(n - c + 0.5) - math.log(c + 0.5) with ints n, c.
    ((n - df as f64) + 0.5).ln() - (df as f64 + 0.5).ln()
}

/// The BM25 index. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct LexicalIndex {
    params: Bm25Params,
    vocab: Vocab,
    namespaces: Vec<Namespace>,
    ns_ids: HashMap<String, u32>,
    ns_free: Vec<u32>,
    /// id → (namespace, slot)
    docs: IdMap<DocId, (u32, u32)>,
}

impl LexicalIndex {
    /// An empty index with the default parameters (k1 = 1.5, b = 0.75, epsilon = 0.25).
    pub fn new() -> Self {
        LexicalIndex::default()
    }

    /// An empty index with `params`.
    pub fn with_params(params: Bm25Params) -> Result<Self, EngineError> {
        params.validate()?;
        Ok(LexicalIndex {
            params,
            ..LexicalIndex::default()
        })
    }

    /// The BM25 parameters.
    pub fn params(&self) -> Bm25Params {
        self.params
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether the index holds no document.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Whether `id` is indexed.
    pub fn contains(&self, id: DocId) -> bool {
        self.docs.contains_key(&id)
    }

    /// The namespace of `id`.
    pub fn namespace_of(&self, id: DocId) -> Option<&str> {
        self.docs
            .get(&id)
            .map(|&(ns, _)| self.namespaces[ns as usize].name.as_str())
    }

    /// Documents in `namespace` (0 if unknown).
    pub fn namespace_len(&self, namespace: &str) -> usize {
        self.ns(namespace).map_or(0, |n| n.docs as usize)
    }

    /// The non-empty namespaces, sorted.
    pub fn namespaces(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.ns_ids.keys().map(|s| s.as_str()).collect();
        crate::sort::sort(&mut v);
        v
    }

    /// Ids of `namespace`, ascending.
    pub fn ids(&self, namespace: &str) -> Vec<DocId> {
        let mut v: Vec<DocId> = self.ns(namespace).map_or_else(Vec::new, |n| {
            n.slots.iter().filter(|s| s.live).map(|s| s.id).collect()
        });
        v.sort_unstable();
        v
    }

    fn ns(&self, namespace: &str) -> Option<&Namespace> {
        self.ns_ids
            .get(namespace)
            .map(|&i| &self.namespaces[i as usize])
    }

    /// Index `text` as document `id` of `namespace`. A duplicate id is an error and changes
    /// nothing. A text without tokens is still a document (it counts in N and avgdl, as in
    /// the baseline).
    pub fn add(&mut self, id: DocId, namespace: &str, text: &str) -> Result<(), EngineError> {
        if self.docs.contains_key(&id) {
            return Err(EngineError::DuplicateId { id });
        }
        let mut ids: Vec<u32> = Vec::new();
        for_each_token(text, |t| ids.push(self.vocab.intern(t)));
        if ids.len() > u32::MAX as usize {
            self.vocab.collect_unused(&ids);
            return Err(EngineError::invalid(
                "text",
                "more than 4294967295 tokens in one document",
            ));
        }
        ids.sort_unstable();
        let mut terms: Vec<(u32, u32)> = Vec::new();
        for t in ids {
            match terms.last_mut() {
                Some((last, tf)) if *last == t => *tf += 1,
                _ => terms.push((t, 1)),
            }
        }
        self.insert_terms(id, namespace, terms.into_boxed_slice());
        Ok(())
    }

    /// Insert a document whose (sorted, distinct) term ids are interned; `id` is new.
    fn insert_terms(&mut self, id: DocId, namespace: &str, terms: Box<[(u32, u32)]>) {
        let ns_idx = match self.ns_ids.get(namespace) {
            Some(&i) => i,
            None => {
                let i = match self.ns_free.pop() {
                    Some(i) => i,
                    None => {
                        self.namespaces.push(Namespace::default());
                        (self.namespaces.len() - 1) as u32
                    }
                };
                self.namespaces[i as usize].name = namespace.to_string();
                self.ns_ids.insert(namespace.to_string(), i);
                i
            }
        };
        let ns = &mut self.namespaces[ns_idx as usize];
        let len: u64 = terms.iter().map(|&(_, tf)| tf as u64).sum();
        // Slots are appended, so every postings list stays sorted by slot.
        let slot = ns.slots.len() as u32;
        ns.slots.push(Slot::default());
        for &(t, tf) in terms.iter() {
            let p = ns.postings.entry(t).or_default();
            p.list.push((slot, tf));
            p.live += 1;
            let df = p.live;
            ns.hist_dec(df - 1);
            ns.hist_inc(df);
            if df == 1 {
                self.vocab.retain(t);
            }
        }
        ns.docs += 1;
        ns.total_len += len;
        ns.slots[slot as usize] = Slot {
            id,
            live: true,
            len: len as u32,
            terms,
        };
        self.docs.insert(id, (ns_idx, slot));
    }

    /// Remove document `id`; `false` if it was not indexed.
    pub fn remove(&mut self, id: DocId) -> bool {
        let Some((ns_idx, slot)) = self.docs.remove(&id) else {
            return false;
        };
        let ns = &mut self.namespaces[ns_idx as usize];
        let doc = &mut ns.slots[slot as usize];
        doc.live = false;
        let terms = std::mem::take(&mut doc.terms);
        let len = doc.len;
        ns.dead_slots += 1;
        let Namespace {
            slots, postings, ..
        } = ns;
        let mut hist: Vec<u32> = Vec::with_capacity(terms.len());
        for &(t, _) in terms.iter() {
            let Some(p) = postings.get_mut(&t) else {
                continue;
            };
            p.live -= 1;
            hist.push(p.live);
            if p.live == 0 {
                postings.remove(&t);
                self.vocab.release(t);
            } else if (p.list.len() - p.live as usize) * 2 > p.list.len() {
                p.list.retain(|&(s, _)| slots[s as usize].live);
            }
        }
        for df in hist {
            ns.hist_dec(df + 1);
            ns.hist_inc(df);
        }
        ns.docs -= 1;
        ns.total_len -= len as u64;
        if ns.docs == 0 {
            self.drop_namespace(ns_idx);
        } else if ns.dead_slots > MIN_COMPACT_SLOTS.max(ns.docs as usize) {
            self.compact(ns_idx);
        }
        true
    }

    /// Drop the dead slots of a namespace: renumber the live ones (keeping their order, so
    /// postings stay sorted) and drop tombstoned postings. Amortised O(1) per removal.
    fn compact(&mut self, ns_idx: u32) {
        let ns = &mut self.namespaces[ns_idx as usize];
        let mut remap = vec![u32::MAX; ns.slots.len()];
        let mut next = 0u32;
        for (i, s) in ns.slots.iter().enumerate() {
            if s.live {
                remap[i] = next;
                next += 1;
            }
        }
        ns.slots.retain(|s| s.live);
        ns.slots.shrink_to_fit();
        ns.dead_slots = 0;
        for p in ns.postings.values_mut() {
            p.list.retain(|&(s, _)| remap[s as usize] != u32::MAX);
            for e in p.list.iter_mut() {
                e.0 = remap[e.0 as usize];
            }
        }
        for (i, s) in ns.slots.iter().enumerate() {
            self.docs.insert(s.id, (ns_idx, i as u32));
        }
    }

    fn drop_namespace(&mut self, ns_idx: u32) {
        let ns = std::mem::take(&mut self.namespaces[ns_idx as usize]);
        for &t in ns.postings.keys() {
            self.vocab.release(t);
        }
        self.ns_ids.remove(&ns.name);
        self.ns_free.push(ns_idx);
    }

    /// Remove every document of `namespace`; returns how many were removed.
    pub fn remove_namespace(&mut self, namespace: &str) -> usize {
        let Some(&ns_idx) = self.ns_ids.get(namespace) else {
            return 0;
        };
        let ns = &self.namespaces[ns_idx as usize];
        let n = ns.docs as usize;
        for s in ns.slots.iter().filter(|s| s.live) {
            self.docs.remove(&s.id);
        }
        self.drop_namespace(ns_idx);
        n
    }

    /// Counters and an approximate heap size.
    pub fn stats(&self) -> LexicalStats {
        let mut st = LexicalStats {
            docs: self.docs.len(),
            namespaces: self.ns_ids.len(),
            terms: self.vocab.ids.len(),
            ..Default::default()
        };
        let mut heap = self.docs.capacity() * 24
            + self
                .vocab
                .strings
                .iter()
                .map(|s| s.len() * 2 + 40)
                .sum::<usize>();
        for ns in &self.namespaces {
            st.tokens += ns.total_len;
            heap += ns.slots.capacity() * std::mem::size_of::<Slot>();
            heap += ns.postings.capacity() * 48;
            for p in ns.postings.values() {
                st.postings += p.live as usize;
                heap += p.list.capacity() * 8;
            }
            heap += ns.slots.iter().map(|s| s.terms.len() * 8).sum::<usize>();
        }
        st.heap_bytes = heap;
        st
    }

    /// Prepare `text` as a query against `namespace` (an unknown namespace gives a query that
    /// matches nothing).
    pub fn query<'a>(&'a self, namespace: &str, text: &str) -> LexicalQuery<'a> {
        let Some(ns) = self.ns(namespace) else {
            return LexicalQuery {
                index: self,
                ns: None,
                terms: Vec::new(),
            };
        };
        let n = ns.docs as f64;
        let mut mean: Option<f64> = None;
        let mut terms = Vec::new();
        for_each_token(text, |t| {
            let Some(&tid) = self.vocab.ids.get(t) else {
                return;
            };
            let Some(p) = ns.postings.get(&tid) else {
                return;
            };
            let mut idf = raw_idf(n, p.live);
            if idf < 0.0 {
                idf = self.params.epsilon * *mean.get_or_insert_with(|| ns.mean_idf());
            }
            terms.push(QueryTerm {
                term: tid,
                idf,
                postings: p.list.as_slice(),
            });
        });
        LexicalQuery {
            index: self,
            ns: Some(ns),
            terms,
        }
    }

    /// Serialise to the canonical versioned form (see the module documentation).
    ///
    /// Layout of the payload (varints unless noted): `k1, b, epsilon` (f64); the vocabulary
    /// (count, then strings sorted ascending); then per namespace, sorted by name: the name, its
    /// document ids ascending (count, first, gaps) — a document's position in that list is its
    /// *slot* —, and its postings lists in vocabulary order (count; per list the term index as a
    /// gap from the previous list's, the list length, then `(slot gap, tf)` pairs by ascending
    /// slot). Document lengths are the sums of their tfs. Loading copies the lists without
    /// hashing any posting.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Canonical term numbering: live terms sorted by string.
        // (The sorts below use a few element types only — `&str` and `(u64, u64)` — so that the
        // wasm build carries few instances of the sort code.)
        let mut strings: Vec<&str> = self.vocab.ids.keys().map(|s| s.as_ref()).collect();
        crate::sort::sort(&mut strings);
        let live: Vec<(&str, u32)> = strings
            .into_iter()
            .map(|s| (s, self.vocab.ids[s]))
            .collect();
        let mut canon = vec![u32::MAX; self.vocab.strings.len()];
        for (i, &(_, id)) in live.iter().enumerate() {
            canon[id as usize] = i as u32;
        }
        let mut w = Writer::new();
        w.f64(self.params.k1);
        w.f64(self.params.b);
        w.f64(self.params.epsilon);
        w.varint(live.len() as u64);
        for (s, _) in &live {
            w.str(s);
        }
        let names = self.namespaces();
        w.varint(names.len() as u64);
        for name in names {
            let ns = &self.namespaces[self.ns_ids[name] as usize];
            w.str(name);
            // Canonical slots: live documents by ascending id.
            let mut order: Vec<(DocId, u64)> = ns
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.live)
                .map(|(i, s)| (s.id, i as u64))
                .collect();
            crate::sort::sort(&mut order);
            let mut slot_of = vec![u32::MAX; ns.slots.len()];
            for (new, &(_, old)) in order.iter().enumerate() {
                slot_of[old as usize] = new as u32;
            }
            w.varint(order.len() as u64);
            let mut prev = 0u64;
            for (i, &(id, _)) in order.iter().enumerate() {
                w.varint(if i == 0 { id } else { id - prev });
                prev = id;
            }
            let by_term: Vec<&Postings> = ns.postings.values().collect();
            let mut lists: Vec<(u64, u64)> = ns
                .postings
                .keys()
                .enumerate()
                .map(|(i, &t)| (canon[t as usize] as u64, i as u64))
                .collect();
            crate::sort::sort(&mut lists);
            w.varint(lists.len() as u64);
            let mut prev_t = 0u64;
            let mut entries: Vec<(u64, u64)> = Vec::new();
            for (i, (t, pi)) in lists.into_iter().enumerate() {
                let p = by_term[pi as usize];
                entries.clear();
                entries.extend(
                    p.list
                        .iter()
                        .filter(|&&(s, _)| ns.slots[s as usize].live)
                        .map(|&(s, tf)| (slot_of[s as usize] as u64, tf as u64)),
                );
                crate::sort::sort(&mut entries);
                w.varint(if i == 0 { t } else { t - prev_t });
                prev_t = t;
                w.varint(entries.len() as u64);
                let mut prev_s = 0u64;
                for (j, &(slot, tf)) in entries.iter().enumerate() {
                    w.varint(if j == 0 { slot } else { slot - prev_s });
                    w.varint(tf);
                    prev_s = slot;
                }
            }
        }
        w.finish(MAGIC, FORMAT_VERSION)
    }

    /// Load bytes written by [`LexicalIndex::to_bytes`]. Truncated, corrupted, non-canonical
    /// or inconsistent input gives [`EngineError::Corrupt`] (or `UnsupportedVersion`), never a
    /// panic; allocations are bounded by the input's size.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EngineError> {
        let mut r = codec::open(WHAT, bytes, MAGIC, FORMAT_VERSION)?;
        let params = Bm25Params {
            k1: r.f64()?,
            b: r.f64()?,
            epsilon: r.f64()?,
        };
        params.validate().map_err(|e| r.error(e.to_string()))?;
        let mut idx = LexicalIndex::with_params(params).map_err(|e| r.error(e.to_string()))?;
        let n_terms = r.count(2, "term count")?;
        let mut prev: Option<&str> = None;
        for _ in 0..n_terms {
            let s = r.str()?;
            if !is_token(s) {
                return Err(r.error(format!("{s:?} is not a token")));
            }
            if prev.is_some_and(|p| p >= s) {
                return Err(r.error("vocabulary not strictly sorted"));
            }
            prev = Some(s);
            idx.vocab.intern(s);
        }
        let n_ns = r.count(2, "namespace count")?;
        let mut prev_name: Option<&str> = None;
        for _ in 0..n_ns {
            let name = r.str()?;
            if prev_name.is_some_and(|p| p >= name) {
                return Err(r.error("namespaces not strictly sorted"));
            }
            prev_name = Some(name);
            let n_docs = r.count(1, "document count")?;
            if n_docs == 0 {
                return Err(r.error("a namespace holds no document"));
            }
            let ns_idx = idx.namespaces.len() as u32;
            let mut ns = Namespace {
                name: name.to_string(),
                slots: Vec::with_capacity(n_docs),
                ..Namespace::default()
            };
            let mut prev_id = 0u64;
            for i in 0..n_docs {
                let v = r.varint()?;
                let id = if i == 0 {
                    v
                } else {
                    if v == 0 {
                        return Err(r.error("document ids not strictly ascending"));
                    }
                    prev_id
                        .checked_add(v)
                        .ok_or_else(|| r.error("document id overflows 64 bits"))?
                };
                prev_id = id;
                if idx.docs.insert(id, (ns_idx, i as u32)).is_some() {
                    return Err(r.error(format!("document {id} appears twice")));
                }
                ns.slots.push(Slot {
                    id,
                    live: true,
                    len: 0,
                    terms: Box::default(),
                });
            }
            let n_lists = r.count(3, "postings list count")?;
            let mut lens = vec![0u64; n_docs];
            let mut counts = vec![0u32; n_docs];
            let mut order: Vec<u32> = Vec::with_capacity(n_lists);
            let mut prev_t = 0u64;
            for i in 0..n_lists {
                let v = r.varint()?;
                let t = if i == 0 {
                    v
                } else {
                    if v == 0 {
                        return Err(r.error("postings lists not in vocabulary order"));
                    }
                    prev_t.saturating_add(v)
                };
                if t >= n_terms as u64 {
                    return Err(r.error(format!("term index {t} out of range")));
                }
                prev_t = t;
                let len = r.count(2, "postings list length")?;
                if len == 0 || len > n_docs {
                    return Err(r.error(format!("postings list length {len} out of range")));
                }
                let mut list = Vec::with_capacity(len);
                let mut prev_s = 0u64;
                for j in 0..len {
                    let v = r.varint()?;
                    let slot = if j == 0 {
                        v
                    } else {
                        if v == 0 {
                            return Err(r.error("postings not strictly ascending"));
                        }
                        prev_s.saturating_add(v)
                    };
                    if slot >= n_docs as u64 {
                        return Err(r.error(format!("slot {slot} out of range")));
                    }
                    prev_s = slot;
                    let tf = r.varint()?;
                    if tf == 0 || tf > u32::MAX as u64 {
                        return Err(r.error(format!("term frequency {tf} out of range")));
                    }
                    lens[slot as usize] += tf;
                    counts[slot as usize] += 1;
                    list.push((slot as u32, tf as u32));
                }
                idx.vocab.retain(t as u32);
                ns.hist_inc(len as u32);
                order.push(t as u32);
                ns.postings.insert(
                    t as u32,
                    Postings {
                        list,
                        live: len as u32,
                    },
                );
            }
            // Per-document term lists (sorted by term: lists come in term order).
            let mut terms: Vec<Vec<(u32, u32)>> = counts
                .iter()
                .map(|&c| Vec::with_capacity(c as usize))
                .collect();
            for &t in &order {
                for &(slot, tf) in &ns.postings[&t].list {
                    terms[slot as usize].push((t, tf));
                }
            }
            for ((slot, t), len) in ns.slots.iter_mut().zip(terms).zip(lens) {
                if len > u32::MAX as u64 {
                    return Err(r.error("document longer than 4294967295 tokens"));
                }
                slot.len = len as u32;
                slot.terms = t.into_boxed_slice();
                ns.total_len += len;
            }
            ns.docs = n_docs as u32;
            idx.ns_ids.insert(ns.name.clone(), ns_idx);
            idx.namespaces.push(ns);
        }
        r.finish()?;
        if idx.vocab.refs.contains(&0) {
            return Err(r.error("vocabulary holds a term no document uses"));
        }
        Ok(idx)
    }
}

/// One query token's BM25 contribution, with the baseline's (numpy's) operation order:
/// `idf · tf · (k1 + 1) / (tf + k1 · ((1 − b) + b · dl / avgdl))`.
#[inline]
fn term_score(k1: f64, b: f64, avgdl: f64, idf: f64, tf: u32, dl: u32) -> f64 {
    let norm = k1 * (1.0 - b + b * dl as f64 / avgdl);
    let f = tf as f64;
    idf * f * (k1 + 1.0) / (f + norm)
}

#[derive(Debug, Clone, Copy)]
struct QueryTerm<'a> {
    term: u32,
    idf: f64,
    postings: &'a [(u32, u32)],
}

/// A query prepared against one namespace (borrows the index: it cannot change meanwhile).
#[derive(Debug, Clone)]
pub struct LexicalQuery<'a> {
    index: &'a LexicalIndex,
    ns: Option<&'a Namespace>,
    /// One entry per query token present in the namespace, in query order.
    terms: Vec<QueryTerm<'a>>,
}

impl LexicalQuery<'_> {
    /// Whether no query token occurs in the namespace (every score is 0).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The (possibly floored) idf of every query token present in the namespace, in order.
    pub fn idfs(&self) -> Vec<f64> {
        self.terms.iter().map(|t| t.idf).collect()
    }

    #[inline]
    fn contribution(&self, ns: &Namespace, idf: f64, tf: u32, dl: u32) -> f64 {
        let Bm25Params { k1, b, .. } = self.index.params;
        term_score(k1, b, ns.avgdl(), idf, tf, dl)
    }

    /// Score of the document in `slot` and whether it contains a query token.
    fn score_slot(&self, ns: &Namespace, slot: &Slot) -> (f64, bool) {
        let mut s = 0.0;
        let mut matched = false;
        for qt in &self.terms {
            if let Ok(i) = slot.terms.binary_search_by_key(&qt.term, |&(t, _)| t) {
                s += self.contribution(ns, qt.idf, slot.terms[i].1, slot.len);
                matched = true;
            }
        }
        (s, matched)
    }

    /// BM25 score of document `id`; `None` if it is not in this query's namespace or holds
    /// no query token.
    pub fn score(&self, id: DocId) -> Option<f64> {
        let ns = self.ns?;
        let &(ns_idx, slot) = self.index.docs.get(&id)?;
        if !std::ptr::eq(&self.index.namespaces[ns_idx as usize], ns) {
            return None;
        }
        let (s, matched) = self.score_slot(ns, &ns.slots[slot as usize]);
        matched.then_some(s)
    }

    /// Scores of the documents containing at least one query token (term-at-a-time over the
    /// postings), unordered.
    fn matched(&self) -> Vec<LexHit> {
        let Some(ns) = self.ns else {
            return Vec::new();
        };
        if self.terms.is_empty() {
            return Vec::new();
        }
        let mut acc = vec![0.0f64; ns.slots.len()];
        let mut hit = vec![false; ns.slots.len()];
        let mut touched: Vec<u32> = Vec::new();
        let Bm25Params { k1, b, .. } = self.index.params;
        let avgdl = ns.avgdl();
        for qt in &self.terms {
            for &(slot, tf) in qt.postings {
                let s = slot as usize;
                let doc = &ns.slots[s];
                if doc.live {
                    acc[s] += term_score(k1, b, avgdl, qt.idf, tf, doc.len);
                    if !hit[s] {
                        hit[s] = true;
                        touched.push(slot);
                    }
                }
            }
        }
        touched
            .into_iter()
            .map(|s| LexHit {
                id: ns.slots[s as usize].id,
                score: acc[s as usize],
            })
            .collect()
    }

    /// The `k` best documents that contain at least one query token and pass `allow`,
    /// by score descending, ties by lower id.
    pub fn top_k(&self, k: usize, allow: Allow<'_>) -> Vec<LexHit> {
        let Some(ns) = self.ns else {
            return Vec::new();
        };
        if k == 0 || self.terms.is_empty() {
            return Vec::new();
        }
        let mut hits = match allow {
            Allow::All => self.matched(),
            Allow::Predicate(p) => {
                let mut h = self.matched();
                h.retain(|x| p(x.id));
                h
            }
            Allow::Only(ids) => {
                let mut ids = ids.to_vec();
                ids.sort_unstable();
                ids.dedup();
                ids.iter()
                    .filter_map(|id| {
                        let &(ns_idx, slot) = self.index.docs.get(id)?;
                        if !std::ptr::eq(&self.index.namespaces[ns_idx as usize], ns) {
                            return None;
                        }
                        let (score, matched) = self.score_slot(ns, &ns.slots[slot as usize]);
                        matched.then_some(LexHit { id: *id, score })
                    })
                    .collect()
            }
        };
        select_top(&mut hits, k);
        hits
    }

    /// Every document of the namespace with its score (0 for documents without a query
    /// token), by ascending id. Used to rank whole namespaces, as the baseline does.
    pub fn scores_all(&self) -> Vec<(DocId, f64)> {
        let Some(ns) = self.ns else {
            return Vec::new();
        };
        let mut out: Vec<(DocId, f64)> = ns
            .slots
            .iter()
            .filter(|s| s.live)
            .map(|s| (s.id, 0.0))
            .collect();
        crate::sort::sort_by(&mut out, |a, b| a.0.cmp(&b.0));
        for h in self.matched() {
            if let Ok(i) = out.binary_search_by_key(&h.id, |&(id, _)| id) {
                out[i].1 = h.score;
            }
        }
        out
    }
}

/// Order by score descending, then id ascending.
pub fn by_score_then_id(a: &LexHit, b: &LexHit) -> Ordering {
    b.score.total_cmp(&a.score).then(a.id.cmp(&b.id))
}

/// Keep the best `k` of `hits` (score descending, ties by lower id), sorted.
fn select_top(hits: &mut Vec<LexHit>, k: usize) {
    if hits.len() > k {
        crate::sort::select_nth_by(hits, k - 1, by_score_then_id);
        hits.truncate(k);
    }
    crate::sort::sort_by(hits, by_score_then_id);
}
