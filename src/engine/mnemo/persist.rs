//! The engine blob: the derived state the store's records alone cannot give quickly at open —
//! the BM25 index, every episode's importance, tags and record size, and the engine's *row
//! order* (which bank row holds which episode, so row numbers — and any index over rows — stay
//! valid across a reopen) — as one versioned, checksummed byte string stored with the store
//! sequence it reflects ([`crate::store::Store::put_blob`]). Vectors, namespaces and event times
//! are not in it: they come from the store's packed segments
//! ([`crate::store::Store::load_vectors`]).
//!
//! Layout of the payload (varints unless noted): `dims`; the tag dictionary (count, strings);
//! the rows in row order (count; per row the episode id, 0 for a hole, then for a live row its
//! importance as f32, record bytes, tag count and tag indexes); the lexical index's own bytes
//! (length, bytes); an optional vector-index section (length, 0 = none, then its bytes).

use crate::engine::codec::{self, Writer};
use crate::engine::lexical::LexicalIndex;
use crate::engine::{DocId, EngineError};

use super::rows::Attrs;

/// The blob's name in the store.
pub(crate) const BLOB_NAME: &str = "mnemo-engine";
/// Version of the blob format (also the store blob's `version`).
pub(crate) const BLOB_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"MNMOENGN";
const WHAT: &str = "engine blob";

/// The decoded blob.
#[derive(Debug, Clone)]
pub(crate) struct EngineBlob {
    pub dims: usize,
    /// Episode id per row (0: a hole).
    pub rows: Vec<DocId>,
    /// The rows' attributes by id, sorted by id (distinct ids); `Option` so that open can take
    /// each one out. (Sorted `Vec`s rather than `BTreeMap`s here: fewer tree instances in wasm.)
    pub attrs: Vec<(DocId, Option<Attrs>)>,
    pub lexical: LexicalIndex,
    /// The persisted vector index over the rows, if any.
    pub index: Option<Vec<u8>>,
}

/// Encode the rows (`(id, attrs)` in row order, `None` for a hole), `lexical` and an optional
/// vector index.
pub(crate) fn encode(
    dims: usize,
    rows: impl Iterator<Item = Option<(DocId, Attrs)>>,
    lexical: &LexicalIndex,
    index: Option<&[u8]>,
) -> Vec<u8> {
    let rows: Vec<Option<(DocId, Attrs)>> = rows.collect();
    // The tag dictionary: distinct tags, sorted; a tag's index is its position.
    let mut dict: Vec<&str> = rows
        .iter()
        .flatten()
        .flat_map(|(_, a)| a.tags.iter().map(|t| t.as_str()))
        .collect();
    crate::sort::sort(&mut dict);
    dict.dedup();
    let mut w = Writer::new();
    w.varint(dims as u64);
    w.varint(dict.len() as u64);
    for t in &dict {
        w.str(t);
    }
    w.varint(rows.len() as u64);
    for r in &rows {
        match r {
            None => w.varint(0),
            Some((id, a)) => {
                w.varint(*id);
                w.f32(a.importance);
                w.varint(a.bytes as u64);
                w.varint(a.tags.len() as u64);
                for t in &a.tags {
                    let i = dict
                        .binary_search(&t.as_str())
                        .expect("tag in the dictionary");
                    w.varint(i as u64);
                }
            }
        }
    }
    let lex = lexical.to_bytes();
    w.varint(lex.len() as u64);
    w.bytes(&lex);
    let index = index.unwrap_or(&[]);
    w.varint(index.len() as u64);
    w.bytes(index);
    w.finish(MAGIC, BLOB_VERSION)
}

/// Decode a blob; malformed bytes are a typed error (`CORRUPT_DATA`), never a panic.
pub(crate) fn decode(bytes: &[u8]) -> Result<EngineBlob, EngineError> {
    let mut r = codec::open(WHAT, bytes, MAGIC, BLOB_VERSION)?;
    let dims = r.u32_max(1 << 20, "dims")? as usize;
    let n_tags = r.count(1, "tags")?;
    let mut dict = Vec::with_capacity(n_tags);
    for _ in 0..n_tags {
        dict.push(r.str()?.to_string());
    }
    let n = r.count(1, "rows")?;
    let mut rows = Vec::with_capacity(n);
    let mut attrs = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.varint()?;
        rows.push(id);
        if id == 0 {
            continue;
        }
        let importance = r.f32()?;
        if !(0.0..=1.0).contains(&importance) {
            return Err(r.error(format!(
                "importance {} outside [0, 1]",
                crate::num_fmt::Num(importance.into())
            )));
        }
        let bytes = r.u32_max(u32::MAX as u64, "record bytes")?;
        let nt = r.count(1, "row tags")?;
        let mut tags = Vec::with_capacity(nt);
        for _ in 0..nt {
            let t = r.u32_max(n_tags.saturating_sub(1) as u64, "tag index")? as usize;
            if t >= dict.len() {
                return Err(r.error("tag index out of range"));
            }
            tags.push(dict[t].clone());
        }
        let a = Attrs {
            importance,
            tags,
            bytes,
        };
        attrs.push((id, Some(a)));
    }
    crate::sort::sort_by(&mut attrs, |a, b| a.0.cmp(&b.0));
    if let Some(w) = attrs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(r.error(format!("episode {} in two rows", w[0].0)));
    }
    let len = r.count(1, "lexical bytes")?;
    let lex = r.take(len)?;
    let ilen = r.count(1, "index bytes")?;
    let index = r.take(ilen)?;
    r.finish()?;
    let lexical = LexicalIndex::from_bytes(lex)?;
    Ok(EngineBlob {
        dims,
        rows,
        attrs,
        lexical,
        index: (!index.is_empty()).then(|| index.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let mut lex = LexicalIndex::new();
        lex.add(3, "a", "hello world").unwrap();
        lex.add(9, "b", "other words").unwrap();
        let attrs = vec![
            Some((
                9,
                Attrs {
                    importance: 0.25,
                    tags: vec!["x".into()],
                    bytes: 40,
                },
            )),
            None,
            Some((
                3,
                Attrs {
                    importance: 1.0,
                    tags: vec!["y".into(), "x".into()],
                    bytes: 100,
                },
            )),
        ];
        let b = encode(8, attrs.clone().into_iter(), &lex, Some(&[1, 2, 3]));
        let d = decode(&b).unwrap();
        assert_eq!(d.dims, 8);
        assert_eq!(d.rows, vec![9, 0, 3]);
        assert_eq!(d.attrs.len(), 2);
        assert_eq!(d.attrs[0].0, 3);
        assert_eq!(d.attrs[0].1.as_ref(), Some(&attrs[2].as_ref().unwrap().1));
        assert_eq!(d.index.as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(d.lexical.to_bytes(), lex.to_bytes());
        for cut in [0, 10, 24, b.len() - 1] {
            assert!(decode(&b[..cut]).is_err(), "truncated at {cut}");
        }
        let mut flipped = b.clone();
        flipped[30] ^= 0x10;
        assert_eq!(decode(&flipped).unwrap_err().code(), "CORRUPT_DATA");
    }
}
