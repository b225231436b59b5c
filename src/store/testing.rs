//! The store's contract suite and model-based test, written once and generic over a backend
//! [`Factory`]: `tests/store_contract.rs` runs them natively on [`MemoryBackend`], and
//! `tests/web_store.rs` runs them in Chromium on IndexedDB. Every case panics with a message on
//! failure.
//!
//! [`store_contract_cases!`](crate::store_contract_cases) lists the cases so each harness can
//! turn them into one named test each.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use super::backend::{Backend, Fault, JournalDir, SCHEMA_VERSION};
use super::episode::{Episode, Metadata, NewEpisode, Patch, MAX_TEXT_BYTES};
use super::error::Result;
use super::memory::MemoryBackend;
use super::{OpenOptions, ScanQuery, Store, VectorSet};
use crate::rng::Rng;

/// Makes connections to named stores for the suite.
#[allow(async_fn_in_trait)]
pub trait Factory {
    /// The backend.
    type B: Backend;
    /// A connection to a fresh, empty store called `name` (earlier data under it is gone).
    async fn fresh(&self, name: &str) -> Self::B;
    /// Another connection to the store `name` (a second tab, or a reopen).
    async fn connect(&self, name: &str) -> Result<Self::B>;
    /// Another tab upgrades `name` to schema `version`, closing every open connection.
    async fn upgrade_elsewhere(&self, name: &str, version: u32);
    /// Let cross-connection notices arrive.
    async fn settle(&self);
    /// Every raw byte string stored for `name` (keys and values), for "delete really deletes".
    async fn raw_bytes(&self, name: &str) -> Vec<Vec<u8>>;
    /// Replace the store `name` with `fixture`, written in the legacy (schema 1) layout; the
    /// next [`connect`](Factory::connect) opens it with this build's schema.
    async fn install_legacy(&self, name: &str, fixture: &LegacyFixture);
    /// Discard the database of `name` behind the store's back, keeping its journal (what
    /// Chromium does with a backing store it finds corrupt). Its connections are closed.
    async fn wipe_database(&self, name: &str);
}

/// A store in the legacy layout (schema 1, store format 1: one record per episode, index on the
/// records, state without a page directory), byte for byte as that build wrote it.
#[derive(Debug, Clone)]
pub struct LegacyFixture {
    /// The header record (format 1).
    pub header: Vec<u8>,
    /// The state record (version 1).
    pub state: Vec<u8>,
    /// Episode records: id, namespace, event time (the index fields) and the record bytes.
    pub episodes: Vec<(u64, String, f64, Vec<u8>)>,
    /// Segment records by key.
    pub segments: Vec<(u64, Vec<u8>)>,
    /// The live episodes the fixture holds.
    pub expected: Vec<Episode>,
}

/// Build a legacy-layout store of `dims` holding `eps` under ids `1..`, minus the ids in
/// `deleted` (so the id ranges have holes), with segments of `segment_capacity` rows.
pub fn legacy_fixture(
    dims: usize,
    segment_capacity: usize,
    eps: &[NewEpisode],
    deleted: &[u64],
) -> LegacyFixture {
    use super::codec::{encode_record, EpisodeRecord, Header, SegInfo, Segment, State};
    let header = Header {
        format: 1,
        dims,
        segment_capacity,
        created: 1.7e12,
        page_capacity: 0,
    };
    let mut expected = Vec::new();
    for (i, e) in eps.iter().enumerate() {
        let id = i as u64 + 1;
        if !deleted.contains(&id) {
            expected.push(stored(id, e, 1.7e12 + i as f64));
        }
    }
    let mut segments = Vec::new();
    let mut segs = Vec::new();
    for chunk in expected.chunks(segment_capacity) {
        let mut s = Segment::new(dims);
        for e in chunk {
            s.push(e.id, &e.namespace, e.event_time, &e.embedding);
        }
        let lo = chunk[0].id;
        let hi = chunk[chunk.len() - 1].id + 1;
        segs.push(SegInfo {
            lo,
            hi,
            n: chunk.len() as u32,
        });
        segments.push((lo, s.encode()));
    }
    let episodes = expected
        .iter()
        .map(|e| {
            let (rec, _) = EpisodeRecord::from_episode(e.clone());
            (e.id, e.namespace.clone(), e.event_time, encode_record(&rec))
        })
        .collect();
    let seq = 50;
    let state = State {
        seq,
        next_id: eps.len() as u64 + 1,
        live: expected.len() as u64,
        changes_floor: seq + 1,
        segs,
        ..State::fresh()
    };
    LegacyFixture {
        header: header.encode(),
        state: state.encode_v1(),
        episodes,
        segments,
        expected,
    }
}

/// The native factory: memory backends by name.
#[derive(Default)]
pub struct MemoryFactory {
    roots: RefCell<HashMap<String, MemoryBackend>>,
}

impl Factory for MemoryFactory {
    type B = MemoryBackend;
    async fn fresh(&self, name: &str) -> MemoryBackend {
        let b = MemoryBackend::new();
        self.roots.borrow_mut().insert(name.to_string(), b.clone());
        b
    }
    async fn connect(&self, name: &str) -> Result<MemoryBackend> {
        let root = self.roots.borrow().get(name).cloned();
        match root {
            Some(r) => r.connect(),
            None => Ok(self.fresh(name).await),
        }
    }
    async fn upgrade_elsewhere(&self, name: &str, version: u32) {
        if let Some(r) = self.roots.borrow().get(name) {
            r.upgrade_elsewhere(version);
        }
    }
    async fn settle(&self) {}
    async fn raw_bytes(&self, name: &str) -> Vec<Vec<u8>> {
        self.roots
            .borrow()
            .get(name)
            .map(|r| r.raw_dump())
            .unwrap_or_default()
    }
    async fn wipe_database(&self, name: &str) {
        if let Some(r) = self.roots.borrow().get(name) {
            r.wipe_database();
        }
    }
    async fn install_legacy(&self, name: &str, fx: &LegacyFixture) {
        let b = self.fresh(name).await;
        b.install_legacy(
            fx.header.clone(),
            fx.state.clone(),
            fx.episodes.iter().map(|e| (e.0, e.3.clone())).collect(),
            fx.segments.clone(),
        );
    }
}

/// Run two futures concurrently on one thread.
pub async fn join2<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut ra = None;
    let mut rb = None;
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (ra.expect("a"), rb.expect("b"))
}

const DIMS: usize = 8;

fn opts(dims: usize) -> OpenOptions {
    OpenOptions {
        dims: Some(dims),
        segment_capacity: Some(8),
        // A few records per page, so that pages split, merge and compact in the tests.
        page_capacity: Some(400),
        ..Default::default()
    }
}

async fn open<F: Factory>(f: &F, name: &str) -> Store<F::B> {
    let b = f.fresh(name).await;
    Store::open(b, opts(DIMS)).await.expect("open fresh store")
}

async fn reopen<F: Factory>(f: &F, name: &str) -> Store<F::B> {
    let b = f.connect(name).await.expect("connect");
    Store::open(b, OpenOptions::default())
        .await
        .expect("reopen store")
}

/// A valid episode with a seeded vector.
pub fn episode(rng: &mut Rng, ns: &str, text: &str, dims: usize) -> NewEpisode {
    NewEpisode {
        namespace: ns.to_string(),
        role: ["user", "assistant", ""][rng.below(3)].to_string(),
        text: text.to_string(),
        event_time: Some((rng.below(8) as f64 - 2.0) * 1000.0),
        embedding: rng.vec_f32(dims),
        metadata: Metadata::parse(&format!(r#"{{"k":{},"s":"v"}}"#, rng.below(100))).unwrap(),
        importance: Some(rng.below(11) as f32 / 10.0),
        tags: (0..rng.below(3)).map(|i| format!("t{i}")).collect(),
    }
}

/// Same content (everything but the insert time, which the store's clock sets).
pub fn same(a: &Episode, b: &Episode) -> bool {
    a.id == b.id
        && a.namespace == b.namespace
        && a.role == b.role
        && a.text == b.text
        && a.event_time.to_bits() == b.event_time.to_bits()
        && a.metadata == b.metadata
        && a.importance.to_bits() == b.importance.to_bits()
        && a.tags == b.tags
        && a.embedding.len() == b.embedding.len()
        && a.embedding
            .iter()
            .zip(&b.embedding)
            .all(|(x, y)| x.to_bits() == y.to_bits())
}

fn stored(id: u64, e: &NewEpisode, insert_time: f64) -> Episode {
    Episode {
        id,
        namespace: e.namespace.clone(),
        role: e.role.clone(),
        text: e.text.clone(),
        event_time: e.event_time.unwrap_or(insert_time),
        insert_time,
        embedding: e.embedding.clone(),
        metadata: e.metadata.clone(),
        importance: e.importance.unwrap_or(0.5),
        tags: e.tags.clone(),
    }
}

#[track_caller]
fn expect_err<T: std::fmt::Debug>(r: Result<T>, code: &str, field: Option<&str>, what: &str) {
    match r {
        Ok(v) => panic!("{what}: expected {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "{what}: {e}");
            if let Some(f) = field {
                assert_eq!(e.field(), Some(f), "{what}: {e}");
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Lists the contract cases; `$m!(case)` is invoked once per case (see the module docs).
#[macro_export]
macro_rules! store_contract_cases {
    ($m:ident) => {
        $m!(open_create_and_dims);
        $m!(put_get_roundtrip);
        $m!(validation_names_field_and_writes_nothing);
        $m!(ids_monotonic_never_reused);
        $m!(update_fields);
        $m!(delete_really_deletes);
        $m!(delete_namespace);
        $m!(scan_by_namespace_and_time);
        $m!(count_all_and_by_namespace);
        $m!(export_import_roundtrip);
        $m!(clear_empties_everything);
        $m!(load_vectors_and_segments_bounded);
        $m!(large_segments_roundtrip);
        $m!(change_feed_between_connections);
        $m!(change_log_pruning_resets);
        $m!(blobs_persist);
        $m!(aborted_commit_leaves_nothing);
        $m!(concurrent_connections_interleave);
        $m!(stale_directories_retry);
        $m!(concurrent_calls_queue);
        $m!(close_and_destroy);
        $m!(upgrade_elsewhere_closes_and_schema_too_new);
        $m!(legacy_layout_upgrades_on_open);
        $m!(journal_restores_a_discarded_database);
        $m!(relaxed_writes_are_journaled);
        $m!(deferred_merges_and_tidy);
    };
}

/// The contract cases.
pub mod contract {
    use super::*;

    /// Creating needs dims; reopening checks them.
    pub async fn open_create_and_dims<F: Factory>(f: &F) {
        let name = "c-open";
        let b = f.fresh(name).await;
        expect_err(
            Store::open(b, OpenOptions::default()).await.map(|_| ()),
            "INVALID_INPUT",
            Some("dims"),
            "create without dims",
        );
        let b = f.connect(name).await.unwrap();
        expect_err(
            Store::open(b, opts(0)).await.map(|_| ()),
            "INVALID_INPUT",
            Some("dims"),
            "dims 0",
        );
        let b = f.connect(name).await.unwrap();
        let s = Store::open(b, opts(DIMS)).await.unwrap();
        assert_eq!(s.dims(), DIMS);
        let b = f.connect(name).await.unwrap();
        expect_err(
            Store::open(b, opts(DIMS + 1)).await.map(|_| ()),
            "DIMENSION_MISMATCH",
            Some("dims"),
            "reopen with other dims",
        );
        let s2 = reopen(f, name).await;
        assert_eq!(s2.dims(), DIMS);
        assert_eq!(s2.segment_capacity(), 8);
        assert_eq!(s2.count(None).await.unwrap(), 0);
    }

    /// Every field survives a put and a get, bit for bit.
    pub async fn put_get_roundtrip<F: Factory>(f: &F) {
        let s = open(f, "c-roundtrip").await;
        let mut rng = Rng::new(1);
        let mut e = episode(&mut rng, "chat", "héllo wörld ✓", DIMS);
        e.tags = vec!["a".into(), "b c".into()];
        e.embedding[3] = -0.0;
        e.embedding[4] = f32::MIN_POSITIVE;
        let id = s.put(e.clone()).await.unwrap();
        assert_eq!(id, 1);
        let got = s.get(id).await.unwrap().expect("stored episode");
        assert!(got.insert_time.is_finite() && got.insert_time > 0.0);
        assert!(
            same(&got, &stored(id, &e, got.insert_time)),
            "{got:?} vs {e:?}"
        );
        // Defaults.
        let mut d = NewEpisode::new("chat", "defaults", rng.vec_f32(DIMS));
        d.event_time = None;
        let id2 = s.put(d).await.unwrap();
        let g2 = s.get(id2).await.unwrap().unwrap();
        assert_eq!(g2.event_time, g2.insert_time);
        assert_eq!(g2.importance, 0.5);
        assert_eq!(g2.metadata.as_str(), "{}");
        assert_eq!(g2.role, "");
        assert!(s.get(999).await.unwrap().is_none());
        let many = s.get_many(&[id2, 77, id]).await.unwrap();
        assert_eq!(many.len(), 3);
        assert_eq!(many[0].as_ref().unwrap().id, id2);
        assert!(many[1].is_none());
        assert_eq!(many[2].as_ref().unwrap().id, id);
        let recs = s.get_records(&[id2, 77, id]).await.unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].as_ref().unwrap().text, "defaults");
        assert!(recs[1].is_none());
        assert_eq!(recs[2].as_ref().unwrap().id, id);
        // The longest text accepted.
        let big = "x".repeat(MAX_TEXT_BYTES);
        let id3 = s
            .put(NewEpisode::new("chat", big.clone(), rng.vec_f32(DIMS)))
            .await
            .unwrap();
        assert_eq!(s.get(id3).await.unwrap().unwrap().text, big);
        // And after a reopen.
        let s2 = reopen(f, "c-roundtrip").await;
        let again = s2.get(id).await.unwrap().unwrap();
        assert!(same(&again, &got));
        assert_eq!(again.insert_time, got.insert_time);
    }

    /// Each invalid field gives its typed error naming it, for a single put and inside a batch;
    /// nothing of the batch is written.
    pub async fn validation_names_field_and_writes_nothing<F: Factory>(f: &F) {
        let s = open(f, "c-validate").await;
        let mut rng = Rng::new(2);
        s.put(episode(&mut rng, "a", "seed", DIMS)).await.unwrap();
        let seq0 = s.seq().await.unwrap();
        type Mutate = fn(&mut NewEpisode);
        let cases: Vec<(&str, &str, Mutate)> = vec![
            ("DIMENSION_MISMATCH", "embedding", |e| {
                e.embedding.pop().map(|_| ()).unwrap_or(())
            }),
            ("DIMENSION_MISMATCH", "embedding", |e| e.embedding.push(0.0)),
            ("NON_FINITE", "embedding", |e| e.embedding[2] = f32::NAN),
            ("NON_FINITE", "embedding", |e| {
                e.embedding[0] = f32::INFINITY
            }),
            ("INVALID_INPUT", "text", |e| e.text = String::new()),
            ("INVALID_INPUT", "text", |e| e.text = " \n\t".into()),
            ("INVALID_INPUT", "text", |e| {
                e.text = "x".repeat(MAX_TEXT_BYTES + 1)
            }),
            ("INVALID_INPUT", "namespace", |e| {
                e.namespace = String::new()
            }),
            ("INVALID_INPUT", "namespace", |e| {
                e.namespace = "n".repeat(257)
            }),
            ("INVALID_INPUT", "role", |e| e.role = "r".repeat(65)),
            ("INVALID_INPUT", "metadata", |e| {
                e.metadata = Metadata::wrap("[1,2]".into())
            }),
            ("INVALID_INPUT", "metadata", |e| {
                e.metadata = Metadata::wrap("{\"a\":".into())
            }),
            ("INVALID_INPUT", "metadata", |e| {
                e.metadata = Metadata::wrap(format!("{{\"a\":\"{}\"}}", "x".repeat(70_000)))
            }),
            ("INVALID_INPUT", "importance", |e| e.importance = Some(1.5)),
            ("INVALID_INPUT", "importance", |e| e.importance = Some(-0.1)),
            ("NON_FINITE", "importance", |e| {
                e.importance = Some(f32::NAN)
            }),
            ("NON_FINITE", "eventTime", |e| {
                e.event_time = Some(f64::INFINITY)
            }),
            ("INVALID_INPUT", "tags", |e| {
                e.tags = (0..65).map(|i| i.to_string()).collect()
            }),
            ("INVALID_INPUT", "tags[1]", |e| {
                e.tags = vec!["ok".into(), String::new()]
            }),
        ];
        for (code, field, mutate) in &cases {
            let mut bad = episode(&mut rng, "a", "bad", DIMS);
            mutate(&mut bad);
            expect_err(
                s.put(bad.clone()).await,
                code,
                Some(field),
                &format!("put {field}"),
            );
            let mut batch: Vec<NewEpisode> = (0..4)
                .map(|i| episode(&mut rng, "a", &format!("ok {i}"), DIMS))
                .collect();
            batch[2] = bad;
            expect_err(
                s.put_many(batch).await,
                code,
                Some(&format!("episodes[2].{field}")),
                &format!("put_many {field}"),
            );
        }
        // Patches are validated too.
        expect_err(
            s.update(
                1,
                Patch {
                    importance: Some(2.0),
                    ..Default::default()
                },
            )
            .await,
            "INVALID_INPUT",
            Some("importance"),
            "patch importance",
        );
        expect_err(
            s.update(
                1,
                Patch {
                    embedding: Some(vec![0.0; 3]),
                    ..Default::default()
                },
            )
            .await,
            "DIMENSION_MISMATCH",
            Some("embedding"),
            "patch embedding",
        );
        assert_eq!(
            s.count(None).await.unwrap(),
            1,
            "nothing of a bad batch is written"
        );
        assert_eq!(s.seq().await.unwrap(), seq0, "no commit happened");
        assert_eq!(
            s.put(episode(&mut rng, "a", "next", DIMS)).await.unwrap(),
            2
        );
    }

    /// Ids increase, batches get consecutive ids, and no id is ever reused (delete, clear,
    /// reopen).
    pub async fn ids_monotonic_never_reused<F: Factory>(f: &F) {
        let s = open(f, "c-ids").await;
        let mut rng = Rng::new(3);
        let batch: Vec<NewEpisode> = (0..5)
            .map(|i| episode(&mut rng, "a", &format!("b{i}"), DIMS))
            .collect();
        let ids = s.put_many(batch).await.unwrap();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        s.delete(5).await.unwrap();
        assert_eq!(s.put(episode(&mut rng, "a", "x", DIMS)).await.unwrap(), 6);
        s.clear().await.unwrap();
        assert_eq!(s.put(episode(&mut rng, "a", "y", DIMS)).await.unwrap(), 7);
        drop(s);
        let s2 = reopen(f, "c-ids").await;
        assert_eq!(s2.put(episode(&mut rng, "a", "z", DIMS)).await.unwrap(), 8);
        assert_eq!(s2.put_many(Vec::new()).await.unwrap(), Vec::<u64>::new());
    }

    /// Each updatable field changes alone; bad updates change nothing.
    pub async fn update_fields<F: Factory>(f: &F) {
        let s = open(f, "c-update").await;
        let mut rng = Rng::new(4);
        let ids = s
            .put_many(
                (0..12)
                    .map(|i| episode(&mut rng, "u", &format!("e{i}"), DIMS))
                    .collect(),
            )
            .await
            .unwrap();
        let id = ids[5];
        let before = s.get(id).await.unwrap().unwrap();
        let newv = rng.vec_f32(DIMS);
        s.update(
            id,
            Patch {
                text: Some("new text".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        s.update(
            id,
            Patch {
                importance: Some(0.9),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        s.update(
            id,
            Patch {
                metadata: Some(Metadata::parse(r#"{"z":[1,2]}"#).unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        s.update(
            id,
            Patch {
                tags: Some(vec!["q".into()]),
                role: Some("tool".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        s.update(
            id,
            Patch {
                embedding: Some(newv.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let after = s.get(id).await.unwrap().unwrap();
        assert_eq!(after.text, "new text");
        assert_eq!(after.importance, 0.9);
        assert_eq!(after.metadata.as_str(), r#"{"z":[1,2]}"#);
        assert_eq!(after.tags, vec!["q".to_string()]);
        assert_eq!(after.role, "tool");
        assert_eq!(after.embedding, newv);
        assert_eq!(after.namespace, before.namespace);
        assert_eq!(after.event_time, before.event_time);
        assert_eq!(after.insert_time, before.insert_time);
        let vs = s.load_vectors().await.unwrap();
        let row = vs.ids.iter().position(|&x| x == id).unwrap();
        assert_eq!(vs.row(row), newv.as_slice());
        // Neighbours untouched.
        for &other in &ids {
            if other != id {
                let g = s.get(other).await.unwrap().unwrap();
                assert_eq!(
                    g.embedding,
                    vs.row(vs.ids.iter().position(|&x| x == other).unwrap())
                );
            }
        }
        let seq = s.seq().await.unwrap();
        expect_err(
            s.update(
                999,
                Patch {
                    text: Some("x".into()),
                    ..Default::default()
                },
            )
            .await,
            "NOT_FOUND",
            None,
            "update missing",
        );
        expect_err(
            s.update(
                999,
                Patch {
                    embedding: Some(rng.vec_f32(DIMS)),
                    ..Default::default()
                },
            )
            .await,
            "NOT_FOUND",
            None,
            "update missing embedding",
        );
        s.delete(ids[0]).await.unwrap();
        expect_err(
            s.update(
                ids[0],
                Patch {
                    embedding: Some(rng.vec_f32(DIMS)),
                    ..Default::default()
                },
            )
            .await,
            "NOT_FOUND",
            None,
            "update deleted",
        );
        assert_eq!(s.seq().await.unwrap(), seq + 1, "only the delete committed");
        s.check_integrity().await.unwrap();
        // Updates that make records much longer split their page (pages stay within capacity).
        let pages_before = s.stats().pages;
        let long: Vec<u64> = ids[1..].to_vec();
        for (k, &id) in long.iter().enumerate() {
            s.update(
                id,
                Patch {
                    text: Some(format!("{k}: {}", "grown ".repeat(40))),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            s.check_integrity().await.unwrap();
        }
        assert!(s.stats().pages > pages_before, "pages split");
        for (k, &id) in long.iter().enumerate() {
            let e = s.get(id).await.unwrap().unwrap();
            assert!(e.text.starts_with(&format!("{k}: grown")), "{}", e.text);
        }
    }

    /// A deleted episode is never returned again, and its text and vector bytes are gone from
    /// the stored records.
    pub async fn delete_really_deletes<F: Factory>(f: &F) {
        let name = "c-delete";
        let s = open(f, name).await;
        let mut rng = Rng::new(5);
        let eps: Vec<NewEpisode> = (0..20)
            .map(|i| {
                let mut e = episode(&mut rng, "d", &format!("secret-marker-{i:03}"), DIMS);
                e.embedding = (0..DIMS)
                    .map(|k| 1000.0 + i as f32 + k as f32 / 8.0)
                    .collect();
                e
            })
            .collect();
        let ids = s.put_many(eps.clone()).await.unwrap();
        let victim = 7usize;
        let vid = ids[victim];
        s.delete(vid).await.unwrap();
        assert!(s.get(vid).await.unwrap().is_none());
        assert!(s.get_many(&[vid]).await.unwrap()[0].is_none());
        assert!(s
            .scan(&ScanQuery::namespace("d"))
            .await
            .unwrap()
            .iter()
            .all(|e| e.id != vid));
        assert!(!s.load_vectors().await.unwrap().ids.contains(&vid));
        assert!(!s.load_rows(&[vid]).await.unwrap().ids.contains(&vid));
        assert_eq!(s.count(None).await.unwrap(), 19);
        assert_eq!(s.count(Some("d")).await.unwrap(), 19);
        let export = s.export().await.unwrap();
        assert!(!contains(&export, b"secret-marker-007"));
        expect_err(s.delete(vid).await, "NOT_FOUND", None, "double delete");
        // A batch with one missing id deletes nothing.
        expect_err(
            s.delete_many(&[ids[1], vid]).await,
            "NOT_FOUND",
            None,
            "batch with missing",
        );
        assert!(s.get(ids[1]).await.unwrap().is_some());
        // Raw storage holds neither the text nor the vector bytes.
        let raw = f.raw_bytes(name).await;
        let text = b"secret-marker-007";
        let vbytes: Vec<u8> = bytemuck::cast_slice(&eps[victim].embedding).to_vec();
        assert!(
            raw.iter().any(|b| contains(b, b"secret-marker-008")),
            "raw dump sees live data"
        );
        assert!(
            !raw.iter().any(|b| contains(b, text)),
            "deleted text still stored"
        );
        assert!(
            !raw.iter().any(|b| contains(b, &vbytes)),
            "deleted vector bytes still stored"
        );
        // Delete most of the rest: segments are compacted, integrity holds.
        s.delete_many(&ids[8..19]).await.unwrap();
        let nseg = s.check_integrity().await.unwrap();
        assert!(nseg <= 3, "{nseg} segments for 8 rows");
        assert_eq!(s.count(None).await.unwrap(), 8);
    }

    /// Deleting a namespace removes exactly its episodes; an unknown one is `NOT_FOUND`.
    pub async fn delete_namespace<F: Factory>(f: &F) {
        let name = "c-delns";
        let s = open(f, name).await;
        let mut rng = Rng::new(6);
        let mut eps = Vec::new();
        for i in 0..30 {
            let ns = ["keep", "drop"][i % 2];
            eps.push(episode(&mut rng, ns, &format!("{ns}-text-{i}"), DIMS));
        }
        s.put_many(eps).await.unwrap();
        assert_eq!(s.delete_namespace("drop").await.unwrap(), 15);
        expect_err(s.delete_namespace("drop").await, "NOT_FOUND", None, "again");
        expect_err(
            s.delete_namespace("never").await,
            "NOT_FOUND",
            None,
            "unknown",
        );
        expect_err(
            s.delete_namespace("").await,
            "INVALID_INPUT",
            Some("namespace"),
            "empty",
        );
        assert_eq!(s.count(Some("drop")).await.unwrap(), 0);
        assert_eq!(s.count(Some("keep")).await.unwrap(), 15);
        let vs = s.load_vectors().await.unwrap();
        assert_eq!(vs.len(), 15);
        assert!(vs
            .namespace_of
            .iter()
            .all(|&k| vs.namespaces[k as usize] == "keep"));
        let raw = f.raw_bytes(name).await;
        assert!(
            !raw.iter().any(|b| contains(b, b"drop-text-")),
            "deleted texts remain"
        );
        s.check_integrity().await.unwrap();
    }

    /// The `[namespace, time]` index: ranges inclusive, limit, reverse, ties by id.
    pub async fn scan_by_namespace_and_time<F: Factory>(f: &F) {
        let s = open(f, "c-scan").await;
        let mut rng = Rng::new(7);
        let times = [5.0, 1.0, 3.0, 3.0, -2.0, 0.0, 9.0, 3.0];
        let mut want: Vec<(f64, u64)> = Vec::new();
        for (i, &t) in times.iter().enumerate() {
            let mut e = episode(&mut rng, "s", &format!("s{i}"), DIMS);
            e.event_time = Some(t);
            let id = s.put(e).await.unwrap();
            want.push((t, id));
            let mut o = episode(&mut rng, "other", "o", DIMS);
            o.event_time = Some(t);
            s.put(o).await.unwrap();
        }
        want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let ids = |v: Vec<Episode>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        let all = s.scan(&ScanQuery::namespace("s")).await.unwrap();
        assert_eq!(
            ids(all.clone()),
            want.iter().map(|w| w.1).collect::<Vec<_>>()
        );
        assert!(all
            .iter()
            .all(|e| e.namespace == "s" && e.embedding.len() == DIMS));
        let q = ScanQuery {
            from: Some(0.0),
            to: Some(3.0),
            ..ScanQuery::namespace("s")
        };
        let got = ids(s.scan(&q).await.unwrap());
        let exp: Vec<u64> = want
            .iter()
            .filter(|w| (0.0..=3.0).contains(&w.0))
            .map(|w| w.1)
            .collect();
        assert_eq!(got, exp, "inclusive range");
        let q = ScanQuery {
            limit: Some(3),
            reverse: true,
            ..ScanQuery::namespace("s")
        };
        let exp: Vec<u64> = want.iter().rev().take(3).map(|w| w.1).collect();
        assert_eq!(ids(s.scan(&q).await.unwrap()), exp, "newest 3");
        let q = ScanQuery {
            from: Some(3.0),
            to: Some(3.0),
            reverse: true,
            ..ScanQuery::namespace("s")
        };
        let exp: Vec<u64> = want
            .iter()
            .rev()
            .filter(|w| w.0 == 3.0)
            .map(|w| w.1)
            .collect();
        assert_eq!(ids(s.scan(&q).await.unwrap()), exp, "ties reversed by id");
        let q = ScanQuery {
            from: Some(4.0),
            to: Some(2.0),
            ..ScanQuery::namespace("s")
        };
        assert!(s.scan(&q).await.unwrap().is_empty());
        assert!(s
            .scan(&ScanQuery::namespace("nobody"))
            .await
            .unwrap()
            .is_empty());
        let q = ScanQuery {
            from: Some(f64::NAN),
            ..ScanQuery::namespace("s")
        };
        expect_err(s.scan(&q).await, "NON_FINITE", Some("from"), "NaN bound");
    }

    /// Counts, total and per namespace.
    pub async fn count_all_and_by_namespace<F: Factory>(f: &F) {
        let s = open(f, "c-count").await;
        let mut rng = Rng::new(8);
        let eps: Vec<NewEpisode> = (0..17)
            .map(|i| episode(&mut rng, ["x", "y", "z"][i % 3], "c", DIMS))
            .collect();
        s.put_many(eps).await.unwrap();
        assert_eq!(s.count(None).await.unwrap(), 17);
        assert_eq!(s.count(Some("x")).await.unwrap(), 6);
        assert_eq!(s.count(Some("y")).await.unwrap(), 6);
        assert_eq!(s.count(Some("z")).await.unwrap(), 5);
        assert_eq!(s.count(Some("w")).await.unwrap(), 0);
        let other = reopen(f, "c-count").await;
        assert_eq!(other.count(None).await.unwrap(), 17);
    }

    /// Export then import reproduces the store; bad files write nothing.
    pub async fn export_import_roundtrip<F: Factory>(f: &F) {
        let a = open(f, "c-export-a").await;
        let mut rng = Rng::new(9);
        let eps: Vec<NewEpisode> = (0..40)
            .map(|i| episode(&mut rng, ["p", "q"][i % 2], &format!("x{i}"), DIMS))
            .collect();
        let ids = a.put_many(eps).await.unwrap();
        a.delete_many(&ids[3..9]).await.unwrap();
        let bytes = a.export().await.unwrap();
        assert_eq!(&bytes[..8], b"MNEMOEXP");
        let b = open(f, "c-export-b").await;
        let rep = b.import(&bytes).await.unwrap();
        assert_eq!(rep.imported, 34);
        assert!(!rep.remapped, "a fresh store keeps the ids");
        let left: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| !ids[3..9].contains(id))
            .collect();
        assert_eq!(rep.ids, left);
        let ga = a.get_many(&left).await.unwrap();
        let gb = b.get_many(&left).await.unwrap();
        for (x, y) in ga.iter().zip(&gb) {
            let (x, y) = (x.as_ref().unwrap(), y.as_ref().unwrap());
            assert!(
                same(x, y) && x.insert_time == y.insert_time,
                "{x:?} vs {y:?}"
            );
        }
        assert_eq!(
            b.export().await.unwrap(),
            bytes,
            "export of the import is identical"
        );
        // Importing again must not reuse ids: remapped to fresh ones.
        let rep2 = b.import(&bytes).await.unwrap();
        assert!(rep2.remapped);
        assert!(rep2.ids.iter().all(|&id| id > *left.last().unwrap()));
        assert_eq!(b.count(None).await.unwrap(), 68);
        b.check_integrity().await.unwrap();
        // Bad files: nothing written.
        let seq = b.seq().await.unwrap();
        let mut flipped = bytes.clone();
        flipped[100] ^= 0x10;
        expect_err(b.import(&flipped).await, "CORRUPT_IMPORT", None, "bit flip");
        expect_err(
            b.import(&bytes[..bytes.len() - 9]).await,
            "CORRUPT_IMPORT",
            None,
            "truncated",
        );
        expect_err(
            b.import(b"not an export at all").await,
            "CORRUPT_IMPORT",
            None,
            "garbage",
        );
        let c = Store::open(f.fresh("c-export-c").await, opts(DIMS + 2))
            .await
            .unwrap();
        expect_err(c.import(&bytes).await, "DIMENSION_MISMATCH", None, "dims");
        assert_eq!(c.count(None).await.unwrap(), 0);
        assert_eq!(b.seq().await.unwrap(), seq);
        assert_eq!(b.count(None).await.unwrap(), 68);
    }

    /// `clear` removes everything, including blobs, and the store stays usable.
    pub async fn clear_empties_everything<F: Factory>(f: &F) {
        let name = "c-clear";
        let s = open(f, name).await;
        let mut rng = Rng::new(10);
        s.put_many(
            (0..25)
                .map(|i| episode(&mut rng, "c", &format!("clear-me-{i}"), DIMS))
                .collect(),
        )
        .await
        .unwrap();
        s.put_blob("bm25", 1, 3, b"blob-bytes").await.unwrap();
        s.clear().await.unwrap();
        assert_eq!(s.count(None).await.unwrap(), 0);
        assert!(s.load_vectors().await.unwrap().is_empty());
        assert!(s.scan(&ScanQuery::namespace("c")).await.unwrap().is_empty());
        assert!(s.get_blob("bm25").await.unwrap().is_none());
        let raw = f.raw_bytes(name).await;
        assert!(!raw.iter().any(|b| contains(b, b"clear-me-")));
        let id = s.put(episode(&mut rng, "c", "after", DIMS)).await.unwrap();
        assert_eq!(id, 26);
        s.check_integrity().await.unwrap();
    }

    /// `load_vectors` returns every live row packed; many small writes keep the segment count
    /// bounded by the bytes.
    pub async fn load_vectors_and_segments_bounded<F: Factory>(f: &F) {
        let s = open(f, "c-load").await;
        let mut rng = Rng::new(11);
        let mut want: BTreeMap<u64, NewEpisode> = BTreeMap::new();
        for i in 0..60 {
            let e = episode(&mut rng, ["a", "b", "c"][i % 3], "v", DIMS);
            let id = s.put(e.clone()).await.unwrap();
            want.insert(id, e);
        }
        let batch: Vec<NewEpisode> = (0..37).map(|_| episode(&mut rng, "d", "w", DIMS)).collect();
        for (id, e) in s
            .put_many(batch.clone())
            .await
            .unwrap()
            .into_iter()
            .zip(batch)
        {
            want.insert(id, e);
        }
        for id in [3u64, 4, 5, 40, 61, 62] {
            s.delete(id).await.unwrap();
            want.remove(&id);
        }
        let vs = s.load_vectors().await.unwrap();
        assert_eq!(vs.dims, DIMS);
        assert_eq!(vs.ids, want.keys().copied().collect::<Vec<_>>());
        assert_eq!(vs.vectors.len(), vs.ids.len() * DIMS);
        for (i, (id, e)) in want.iter().enumerate() {
            assert_eq!(vs.row(i), e.embedding.as_slice(), "row of {id}");
            assert_eq!(vs.namespaces[vs.namespace_of[i] as usize], e.namespace);
            assert_eq!(vs.event_time[i], e.event_time.unwrap());
        }
        assert_eq!(vs.seq, s.seq().await.unwrap());
        let segs = s.check_integrity().await.unwrap();
        assert!(
            segs < want.len() / 2,
            "{segs} segments for {} rows",
            want.len()
        );
        let rows = s.load_rows(&[1, 2, 3, 70, 500]).await.unwrap();
        assert_eq!(rows.ids, vec![1, 2, 70]);
        assert_eq!(rows.row(2), want[&70].embedding.as_slice());
    }

    /// Segments of real size (IndexedDB writes a new segment of 64 KiB or more as a `Blob`, a
    /// smaller one as an `ArrayBuffer`): a batch of 300 rows x 256 dims, a single put, an
    /// embedding update and a delete inside the large segment (a rewrite composed from slices
    /// of it), then every read path, before and after a reopen.
    pub async fn large_segments_roundtrip<F: Factory>(f: &F) {
        const D: usize = 256;
        let b = f.fresh("c-large").await;
        let s = Store::open(
            b,
            OpenOptions {
                dims: Some(D),
                ..Default::default()
            },
        )
        .await
        .expect("open fresh store");
        let mut rng = Rng::new(23);
        let batch: Vec<NewEpisode> = (0..300)
            .map(|i| episode(&mut rng, ["a", "b"][i % 2], &format!("t{i}"), D))
            .collect();
        let ids = s.put_many(batch.clone()).await.unwrap();
        let mut want: BTreeMap<u64, NewEpisode> = ids.iter().copied().zip(batch).collect();
        let one = episode(&mut rng, "c", "single", D);
        want.insert(s.put(one.clone()).await.unwrap(), one);
        let newv = rng.vec_f32(D);
        s.update(
            ids[10],
            Patch {
                embedding: Some(newv.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        want.get_mut(&ids[10]).unwrap().embedding = newv;
        s.delete(ids[20]).await.unwrap();
        want.remove(&ids[20]);
        let check = |vs: &VectorSet, ctx: &str| {
            assert_eq!(
                vs.ids,
                want.keys().copied().collect::<Vec<_>>(),
                "{ctx}: ids"
            );
            for (i, (id, e)) in want.iter().enumerate() {
                assert_eq!(vs.row(i), e.embedding.as_slice(), "{ctx}: row of {id}");
            }
        };
        check(&s.load_vectors().await.unwrap(), "load");
        s.check_integrity().await.unwrap();
        drop(s);
        let s = reopen(f, "c-large").await;
        check(&s.load_vectors().await.unwrap(), "load after reopen");
        let pick = [ids[0], ids[10], ids[20], ids[299]];
        let rows = s.load_rows(&pick).await.unwrap();
        assert_eq!(rows.ids, vec![ids[0], ids[10], ids[299]]);
        assert_eq!(rows.row(1), want[&ids[10]].embedding.as_slice());
        let got = s.get_many(&pick).await.unwrap();
        assert!(got[2].is_none(), "deleted row returned");
        for (g, id) in got.iter().zip(pick) {
            if let Some(g) = g {
                assert_eq!(g.embedding, want[&id].embedding, "get_many {id}");
                assert_eq!(g.text, want[&id].text);
            }
        }
        assert_eq!(s.count(None).await.unwrap(), want.len() as u64);
        s.check_integrity().await.unwrap();
    }

    /// Another connection's writes arrive as a notice and an incremental change set.
    pub async fn change_feed_between_connections<F: Factory>(f: &F) {
        let name = "c-feed";
        let a = open(f, name).await;
        let b = reopen(f, name).await;
        let mut rng = Rng::new(12);
        let ids = a
            .put_many((0..10).map(|_| episode(&mut rng, "f", "x", DIMS)).collect())
            .await
            .unwrap();
        let base = b.load_vectors().await.unwrap();
        assert_eq!(base.ids, ids);
        let notices: Rc<RefCell<Vec<u64>>> = Rc::default();
        let n2 = notices.clone();
        b.on_remote_change(Some(Rc::new(move |seq| n2.borrow_mut().push(seq))));
        let newid = a.put(episode(&mut rng, "f", "new", DIMS)).await.unwrap();
        let v2 = rng.vec_f32(DIMS);
        a.update(
            ids[2],
            Patch {
                embedding: Some(v2.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        a.delete(ids[4]).await.unwrap();
        let tmp = a.put(episode(&mut rng, "f", "tmp", DIMS)).await.unwrap();
        a.delete(tmp).await.unwrap();
        let mut waited = 0;
        while notices.borrow().last() != Some(&a.stats().seq) && waited < 100 {
            f.settle().await;
            waited += 1;
        }
        assert_eq!(
            notices.borrow().last(),
            Some(&a.stats().seq),
            "notices: {:?}",
            notices.borrow()
        );
        let ch = b.changes_since(base.seq).await.unwrap();
        assert!(!ch.reset);
        assert_eq!(ch.seq, a.stats().seq);
        assert_eq!(ch.upserted, vec![ids[2], newid]);
        assert_eq!(ch.deleted, vec![ids[4], tmp]);
        let rows = b.load_rows(&ch.upserted).await.unwrap();
        assert_eq!(rows.ids, vec![ids[2], newid]);
        assert_eq!(rows.row(0), v2.as_slice());
        let none = b.changes_since(ch.seq).await.unwrap();
        assert!(none.upserted.is_empty() && none.deleted.is_empty() && !none.reset);
        b.on_remote_change(None);
        a.clear().await.unwrap();
        assert!(b.changes_since(ch.seq).await.unwrap().reset, "clear resets");
    }

    /// A reader behind the retained change log is told to reload.
    pub async fn change_log_pruning_resets<F: Factory>(f: &F) {
        let name = "c-prune";
        let b = f.fresh(name).await;
        let s = Store::open(
            b,
            OpenOptions {
                change_retention: Some(4),
                ..opts(DIMS)
            },
        )
        .await
        .unwrap();
        let mut rng = Rng::new(13);
        let first = s.seq().await.unwrap();
        for _ in 0..75 {
            s.put(episode(&mut rng, "p", "x", DIMS)).await.unwrap();
        }
        let ch = s.changes_since(first).await.unwrap();
        assert!(ch.reset, "pruned log must reset: {ch:?}");
        let recent = s.changes_since(s.stats().seq - 2).await.unwrap();
        assert!(!recent.reset);
        assert_eq!(recent.upserted.len(), 2);
    }

    /// Engine blobs round-trip, survive a reopen, are replaced and deleted.
    pub async fn blobs_persist<F: Factory>(f: &F) {
        let s = open(f, "c-blobs").await;
        assert!(s.get_blob("bm25").await.unwrap().is_none());
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        s.put_blob("bm25", 3, 42, &payload).await.unwrap();
        s.put_blob("hnsw", 1, 41, b"x").await.unwrap();
        let s2 = reopen(f, "c-blobs").await;
        let b = s2.get_blob("bm25").await.unwrap().unwrap();
        assert_eq!((b.version, b.seq), (3, 42));
        assert_eq!(b.bytes, payload);
        s2.put_blob("bm25", 4, 50, b"v4").await.unwrap();
        assert_eq!(s.get_blob("bm25").await.unwrap().unwrap().bytes, b"v4");
        s.delete_blob("bm25").await.unwrap();
        assert!(s2.get_blob("bm25").await.unwrap().is_none());
        assert!(s2.get_blob("hnsw").await.unwrap().is_some());
        expect_err(
            s.put_blob("", 1, 1, b"").await,
            "INVALID_INPUT",
            Some("name"),
            "empty name",
        );
    }

    /// An aborted transaction leaves no partial batch, and the store stays usable.
    pub async fn aborted_commit_leaves_nothing<F: Factory>(f: &F) {
        let s = open(f, "c-abort").await;
        let mut rng = Rng::new(14);
        s.put_many(
            (0..5)
                .map(|_| episode(&mut rng, "a", "before", DIMS))
                .collect(),
        )
        .await
        .unwrap();
        let seq = s.seq().await.unwrap();
        s.backend().inject_fault(Fault::AbortAfter(4));
        let batch: Vec<NewEpisode> = (0..10)
            .map(|i| episode(&mut rng, "a", &format!("aborted-{i}"), DIMS))
            .collect();
        expect_err(
            s.put_many(batch).await,
            "TRANSACTION_ABORTED",
            None,
            "aborted batch",
        );
        assert_eq!(s.count(None).await.unwrap(), 5);
        assert_eq!(s.seq().await.unwrap(), seq);
        assert!(s
            .get_many(&(6..16).collect::<Vec<_>>())
            .await
            .unwrap()
            .iter()
            .all(Option::is_none));
        s.backend().inject_fault(Fault::AbortAfter(1));
        expect_err(
            s.delete_many(&[1, 2]).await,
            "TRANSACTION_ABORTED",
            None,
            "aborted delete",
        );
        assert_eq!(s.count(None).await.unwrap(), 5);
        let id = s.put(episode(&mut rng, "a", "after", DIMS)).await.unwrap();
        assert_eq!(id, 6, "the aborted batch's ids were never issued");
        s.check_integrity().await.unwrap();
    }

    /// Two connections writing at once: both batches land whole, ids disjoint.
    pub async fn concurrent_connections_interleave<F: Factory>(f: &F) {
        let name = "c-concurrent";
        let a = open(f, name).await;
        let b = reopen(f, name).await;
        let mut rng = Rng::new(15);
        let ba: Vec<NewEpisode> = (0..30)
            .map(|_| episode(&mut rng, "a", "from a", DIMS))
            .collect();
        let bb: Vec<NewEpisode> = (0..30)
            .map(|_| episode(&mut rng, "b", "from b", DIMS))
            .collect();
        for _ in 0..3 {
            let (ra, rb) = join2(a.put_many(ba.clone()), b.put_many(bb.clone())).await;
            let (ra, rb) = (ra.unwrap(), rb.unwrap());
            assert!(ra.iter().all(|x| !rb.contains(x)));
            assert!(ra.windows(2).all(|w| w[1] == w[0] + 1));
            assert!(rb.windows(2).all(|w| w[1] == w[0] + 1));
        }
        assert_eq!(a.count(Some("a")).await.unwrap(), 90);
        assert_eq!(b.count(Some("b")).await.unwrap(), 90);
        a.check_integrity().await.unwrap();
    }

    /// A connection whose segment directory is stale (the other connection rewrote segments
    /// since) retries its reads and writes instead of reporting corruption.
    pub async fn stale_directories_retry<F: Factory>(f: &F) {
        let name = "c-stale";
        let a = open(f, name).await;
        let b = reopen(f, name).await;
        let mut rng = Rng::new(23);
        let mut want: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
        for round in 0..40 {
            // Singles from `a`: the tail segments merge and are rewritten under the same keys.
            let e = episode(&mut rng, "s", &format!("a{round}"), DIMS);
            let id = a.put(e.clone()).await.unwrap();
            want.insert(id, e.embedding);
            // And deletes from `a`: segments are rewritten shorter under the same keys.
            if round % 2 == 1 {
                let keys: Vec<u64> = want.keys().copied().collect();
                let gone = keys[rng.below(keys.len())];
                a.delete(gone).await.unwrap();
                want.remove(&gone);
            }
            let ids: Vec<u64> = want.keys().copied().collect();
            let got = b
                .get_many(&ids)
                .await
                .unwrap_or_else(|e| panic!("round {round}: get_many on b: {e}"));
            for (g, id) in got.iter().zip(&ids) {
                let g = g
                    .as_ref()
                    .unwrap_or_else(|| panic!("round {round}: {id} missing on b"));
                assert_eq!(g.embedding, want[id], "round {round}: vector of {id} on b");
            }
            if round % 3 == 0 {
                let e = episode(&mut rng, "s", &format!("b{round}"), DIMS);
                let id = b
                    .put(e.clone())
                    .await
                    .unwrap_or_else(|e| panic!("round {round}: put on b: {e}"));
                want.insert(id, e.embedding);
            }
        }
        assert_eq!(a.count(None).await.unwrap(), want.len() as u64);
        a.check_integrity().await.unwrap();
        b.check_integrity().await.unwrap();
    }

    /// Concurrent calls on one connection queue and all land.
    pub async fn concurrent_calls_queue<F: Factory>(f: &F) {
        let s = open(f, "c-queue").await;
        let mut rng = Rng::new(16);
        let b1: Vec<NewEpisode> = (0..7).map(|_| episode(&mut rng, "q", "1", DIMS)).collect();
        let b2: Vec<NewEpisode> = (0..9).map(|_| episode(&mut rng, "q", "2", DIMS)).collect();
        let (r1, r2) = join2(s.put_many(b1), s.put_many(b2)).await;
        let (mut r1, r2) = (r1.unwrap(), r2.unwrap());
        r1.extend(r2);
        r1.sort_unstable();
        assert_eq!(r1, (1..=16).collect::<Vec<_>>());
    }

    /// `close` makes calls fail; `destroy` deletes the store and tells the other connections.
    pub async fn close_and_destroy<F: Factory>(f: &F) {
        let name = "c-destroy";
        let a = open(f, name).await;
        let mut rng = Rng::new(17);
        a.put(episode(&mut rng, "x", "x", DIMS)).await.unwrap();
        let b = reopen(f, name).await;
        let c = reopen(f, name).await;
        c.close();
        expect_err(c.count(None).await, "STORE_CLOSED", None, "after close");
        expect_err(
            c.put(episode(&mut rng, "x", "x", DIMS)).await,
            "STORE_CLOSED",
            None,
            "put after close",
        );
        a.destroy().await.unwrap();
        expect_err(a.count(None).await, "STORE_CLOSED", None, "after destroy");
        f.settle().await;
        expect_err(
            b.count(None).await,
            "STORE_DESTROYED_ELSEWHERE",
            None,
            "other tab",
        );
        let d = f.connect(name).await.unwrap();
        expect_err(
            Store::open(d, OpenOptions::default()).await.map(|_| ()),
            "INVALID_INPUT",
            Some("dims"),
            "destroyed store is empty",
        );
    }

    /// Deferred segment merges: writes only write their own rows (the tidy hook is called when
    /// merges are due), a second connection with a hook is told at once, a tidy merges without
    /// changing any episode (one new sequence, an empty change), and a tidy with nothing due (or
    /// on a stale connection) writes nothing.
    pub async fn deferred_merges_and_tidy<F: Factory>(f: &F) {
        use std::cell::Cell;
        use std::rc::Rc;
        let name = "c-tidy";
        let s = open(f, name).await;
        let calls = Rc::new(Cell::new(0usize));
        let c = calls.clone();
        s.set_tidy_hook(Some(Rc::new(move || c.set(c.get() + 1))));
        assert_eq!(calls.get(), 0, "hook called on an empty store");
        let mut rng = Rng::new(21);
        let mut want: BTreeMap<u64, NewEpisode> = BTreeMap::new();
        for b in 0..10 {
            // Two rows each, under 3/4 of the capacity of 8: the full policy merges four at a time.
            let batch: Vec<NewEpisode> = (0..2)
                .map(|i| episode(&mut rng, "t", &format!("batch {b} row {i}"), DIMS))
                .collect();
            let ids = s.put_many(batch.clone()).await.unwrap();
            want.extend(ids.into_iter().zip(batch));
        }
        assert_eq!(s.stats().segments, 10, "a deferring write merged segments");
        assert!(s.tidy_due());
        assert!(calls.get() >= 1, "the hook was never called");
        s.check_integrity().await.unwrap();
        let check = |vs: &crate::store::VectorSet, what: &str| {
            assert_eq!(vs.ids, want.keys().copied().collect::<Vec<_>>(), "{what}");
            for (i, e) in want.values().enumerate() {
                assert_eq!(vs.row(i), e.embedding.as_slice(), "{what}: row {i}");
            }
        };
        check(&s.load_vectors().await.unwrap(), "before the tidy");

        // Another connection with a hook hears at once that merges are due.
        let s2 = reopen(f, name).await;
        let calls2 = Rc::new(Cell::new(0usize));
        let c2 = calls2.clone();
        s2.set_tidy_hook(Some(Rc::new(move || c2.set(c2.get() + 1))));
        assert_eq!(
            calls2.get(),
            1,
            "a connection opened with merges due was not told"
        );

        let seq = s.seq().await.unwrap();
        s.tidy().await.unwrap();
        assert_eq!(s.seq().await.unwrap(), seq + 1, "a tidy is one write");
        assert!(!s.tidy_due());
        // 8 + 8 + 2 + 2 rows: what the full policy keeps.
        assert_eq!(s.stats().segments, 4, "segments after a tidy");
        s.check_integrity().await.unwrap();
        check(&s.load_vectors().await.unwrap(), "after the tidy");
        for (id, e) in &want {
            let got = s.get(*id).await.unwrap().expect("episode after a tidy");
            assert_eq!(got.text, e.text);
        }
        let ch = s2.changes_since(seq).await.unwrap();
        assert!(
            !ch.reset && ch.upserted.is_empty() && ch.deleted.is_empty(),
            "{ch:?}"
        );
        check(&s2.load_vectors().await.unwrap(), "the other connection");

        // Nothing due: no write, on this connection or on the stale other one.
        s.tidy().await.unwrap();
        s2.tidy().await.unwrap();
        assert_eq!(
            s.seq().await.unwrap(),
            seq + 1,
            "a tidy with nothing due wrote"
        );
        s2.close();
        s.close();
    }

    /// The journal restores a database discarded behind the store's back: every committed write
    /// (puts, updates of text and of vectors, deletes, a namespace delete, an import, across a
    /// compaction) comes back byte for byte, with its ids, the next id and a later sequence; the
    /// open reports it; compaction purges deleted text from the journal; destroy deletes it.
    pub async fn journal_restores_a_discarded_database<F: Factory>(f: &F) {
        let name = "c-journal";
        let s = open(f, name).await;
        assert!(s.journal_on(), "the journal is on");
        assert!(s.recovery().is_none());
        let mut rng = Rng::new(23);
        let mut ids = Vec::new();
        for k in 0..4 {
            let batch = (0..7)
                .map(|i| {
                    episode(
                        &mut rng,
                        ["n0", "n1"][k % 2],
                        &format!("batch {k} row {i}"),
                        DIMS,
                    )
                })
                .collect();
            ids.extend(s.put_many(batch).await.unwrap());
        }
        s.put(episode(&mut rng, "n2", "the secret that is deleted", DIMS))
            .await
            .map(|id| ids.push(id))
            .unwrap();
        s.update(
            ids[2],
            Patch {
                text: Some("updated text".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        s.update(
            ids[3],
            Patch {
                embedding: Some(rng.vec_f32(DIMS)),
                importance: Some(0.125),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        s.delete_many(&[ids[0], ids[9]]).await.unwrap();
        s.delete(*ids.last().unwrap()).await.unwrap();
        // Until compaction the deleted text lingers in the journal; a compaction purges it.
        s.compact().await.unwrap();
        let j = s.backend().journal().expect("journal");
        for n in j.list().await.unwrap() {
            let b = j.read(&n).await.unwrap().unwrap_or_default();
            assert!(
                !contains(&b, b"the secret that is deleted"),
                "deleted text in journal file {n} after compaction"
            );
        }
        // More writes after the snapshot: entries on top of it.
        s.delete_namespace("n1").await.unwrap();
        let exported = s.export().await.unwrap();
        let other = open(f, "c-journal-src").await;
        other
            .put_many(
                (0..3)
                    .map(|i| episode(&mut rng, "imp", &format!("imported {i}"), DIMS))
                    .collect(),
            )
            .await
            .unwrap();
        s.import(&other.export().await.unwrap()).await.unwrap();
        other.destroy().await.unwrap();
        s.put(episode(&mut rng, "n0", "last one", DIMS))
            .await
            .unwrap();
        let want = s.export().await.unwrap();
        assert_ne!(want, exported);
        let st = s.stats();
        s.close();

        f.wipe_database(name).await;
        // No dims needed: the header comes from the journal.
        let r = reopen(f, name).await;
        let rec = r.recovery().expect("the open restored from the journal");
        assert_eq!(rec.episodes as u64, st.live, "{rec:?}");
        assert_eq!(rec.seq, st.seq, "{rec:?}");
        assert_eq!(rec.gaps, 0);
        assert_eq!(r.export().await.unwrap(), want, "restored content");
        assert_eq!(r.count(None).await.unwrap(), st.live);
        assert!(r.stats().seq > st.seq);
        assert_eq!(r.stats().next_id, st.next_id);
        r.check_integrity().await.unwrap();
        let id = r.put(episode(&mut rng, "n0", "after", DIMS)).await.unwrap();
        assert_eq!(id, st.next_id, "ids continue, never reused");
        r.close();
        // A plain reopen restores nothing; the journal kept up.
        let r2 = reopen(f, name).await;
        assert!(r2.recovery().is_none());
        assert_eq!(r2.count(None).await.unwrap(), st.live + 1);
        // A second wipe restores the write made after the first restore too.
        r2.close();
        f.wipe_database(name).await;
        let r3 = reopen(f, name).await;
        assert!(r3.recovery().is_some());
        assert_eq!(r3.count(None).await.unwrap(), st.live + 1);
        assert_eq!(
            r3.get(id).await.unwrap().map(|e| e.text),
            Some("after".into())
        );
        // clear: its journal file is an empty snapshot, every older file goes.
        r3.clear().await.unwrap();
        let j = r3.backend().journal().expect("journal");
        for n in j.list().await.unwrap() {
            let b = j.read(&n).await.unwrap().unwrap_or_default();
            assert!(
                !contains(&b, b"last one"),
                "cleared text in journal file {n}"
            );
        }
        r3.destroy().await.unwrap();
        let d = f.connect(name).await.unwrap();
        expect_err(
            Store::open(d, OpenOptions::default()).await.map(|_| ()),
            "INVALID_INPUT",
            Some("dims"),
            "destroy deletes the journal too",
        );
    }

    /// A `relaxed` store journals its writes too (its entries are not flushed to the device
    /// before the acknowledgement, like its commits): a discarded database comes back whole.
    pub async fn relaxed_writes_are_journaled<F: Factory>(f: &F) {
        let name = "c-relaxed";
        let o = OpenOptions {
            durability: super::super::backend::Durability::Relaxed,
            ..opts(DIMS)
        };
        let s = Store::open(f.fresh(name).await, o).await.expect("open");
        let mut rng = Rng::new(29);
        for k in 0..3 {
            let batch = (0..5)
                .map(|i| episode(&mut rng, "r", &format!("relaxed {k} {i}"), DIMS))
                .collect();
            s.put_many(batch).await.unwrap();
        }
        s.put(episode(&mut rng, "r", "one more", DIMS))
            .await
            .unwrap();
        let want = s.export().await.unwrap();
        let live = s.stats().live;
        s.close();
        f.wipe_database(name).await;
        let r = reopen(f, name).await;
        let rec = r.recovery().expect("the open restored from the journal");
        assert_eq!(rec.episodes as u64, live, "{rec:?}");
        assert_eq!(r.export().await.unwrap(), want, "restored content");
        r.destroy().await.unwrap();
    }

    /// A newer schema opened elsewhere closes this connection (with a typed error), and this
    /// build then refuses the newer database.
    pub async fn upgrade_elsewhere_closes_and_schema_too_new<F: Factory>(f: &F) {
        let name = "c-upgrade";
        let a = open(f, name).await;
        let mut rng = Rng::new(18);
        a.put(episode(&mut rng, "x", "x", DIMS)).await.unwrap();
        f.upgrade_elsewhere(name, SCHEMA_VERSION + 1).await;
        f.settle().await;
        expect_err(
            a.count(None).await,
            "STORE_UPGRADED_ELSEWHERE",
            None,
            "after upgrade",
        );
        expect_err(
            a.put(episode(&mut rng, "x", "x", DIMS)).await,
            "STORE_UPGRADED_ELSEWHERE",
            None,
            "write after upgrade",
        );
        match f.connect(name).await {
            Err(e) => assert_eq!(e.code(), "SCHEMA_TOO_NEW", "{e}"),
            Ok(b) => expect_err(
                Store::open(b, OpenOptions::default()).await.map(|_| ()),
                "SCHEMA_TOO_NEW",
                None,
                "open newer schema",
            ),
        }
    }

    /// A store written in the legacy layout (schema 1: one record per episode) opens with this
    /// build: it is upgraded on open (records packed into pages, the legacy records deleted) and
    /// reads exactly as before; it then takes writes, and a reopen sees the same.
    pub async fn legacy_layout_upgrades_on_open<F: Factory>(f: &F) {
        let name = "c-legacy";
        let mut rng = Rng::new(19);
        let eps: Vec<NewEpisode> = (0..45)
            .map(|i| {
                episode(
                    &mut rng,
                    ["old-a", "old-b", "old-c"][i % 3],
                    &format!("legacy-text-{i:03}"),
                    DIMS,
                )
            })
            .collect();
        let fx = legacy_fixture(DIMS, 8, &eps, &[4, 5, 17, 30]);
        f.install_legacy(name, &fx).await;
        let mut want: BTreeMap<u64, Episode> =
            fx.expected.iter().map(|e| (e.id, e.clone())).collect();
        let s = reopen(f, name).await;
        assert_eq!(s.dims(), DIMS);
        assert_eq!(s.segment_capacity(), 8);
        assert!(
            s.stats().pages > 0 && s.stats().seq == 51,
            "{:?}",
            s.stats()
        );
        check_legacy_store(&s, &want, "after the upgrade").await;
        // The legacy records are gone: each text is stored once (in its page).
        let raw = f.raw_bytes(name).await;
        let copies = raw
            .iter()
            .filter(|b| contains(b, b"legacy-text-010"))
            .count();
        assert_eq!(copies, 1, "legacy record left behind");
        // Writes after the upgrade.
        let id = s
            .put(episode(&mut rng, "old-b", "new after upgrade", DIMS))
            .await
            .unwrap();
        assert_eq!(id, 46, "ids continue after the legacy next id");
        let e = s.get(id).await.unwrap().unwrap();
        want.insert(id, e);
        s.delete_many(&[1, 2, 44]).await.unwrap();
        for k in [1, 2, 44] {
            want.remove(&k);
        }
        s.update(
            9,
            Patch {
                text: Some("patched after upgrade".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        want.get_mut(&9).unwrap().text = "patched after upgrade".into();
        check_legacy_store(&s, &want, "after writes").await;
        let s2 = reopen(f, name).await;
        assert_eq!(
            s2.stats().seq,
            s.stats().seq,
            "a reopen does not upgrade again"
        );
        check_legacy_store(&s2, &want, "after a reopen").await;
        let export = s2.export().await.unwrap();
        let sum = crate::store::export::validate(&export, true).unwrap();
        assert_eq!(sum.count, want.len());
    }
}

/// The layout-upgrade path, as a contract case (see [`contract::legacy_layout_upgrades_on_open`]).
pub async fn check_legacy_store<B: Backend>(
    s: &Store<B>,
    want: &BTreeMap<u64, Episode>,
    what: &str,
) {
    let ids: Vec<u64> = want.keys().copied().collect();
    let got = s.get_many(&ids).await.unwrap();
    for (g, w) in got.iter().zip(want.values()) {
        let g = g
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: {} missing", w.id));
        assert!(
            same(g, w) && g.insert_time == w.insert_time,
            "{what}: {g:?} != {w:?}"
        );
    }
    let mut namespaces: Vec<&str> = want.values().map(|e| e.namespace.as_str()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    for ns in namespaces {
        let mut exp: Vec<&Episode> = want.values().filter(|e| e.namespace == ns).collect();
        exp.sort_by(|x, y| x.event_time.total_cmp(&y.event_time).then(x.id.cmp(&y.id)));
        let scan = s.scan(&ScanQuery::namespace(ns)).await.unwrap();
        assert_eq!(
            scan.iter().map(|e| e.id).collect::<Vec<_>>(),
            exp.iter().map(|e| e.id).collect::<Vec<_>>(),
            "{what}: scan {ns}"
        );
        assert_eq!(
            s.count(Some(ns)).await.unwrap(),
            exp.len() as u64,
            "{what}: count {ns}"
        );
    }
    assert_eq!(s.count(None).await.unwrap(), want.len() as u64, "{what}");
    let vs = s.load_vectors().await.unwrap();
    assert_eq!(vs.ids, ids, "{what}: load_vectors");
    for (i, e) in want.values().enumerate() {
        assert_eq!(
            vs.row(i),
            e.embedding.as_slice(),
            "{what}: vector of {}",
            e.id
        );
    }
    s.check_integrity()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

// ---------------------------------------------------------------------------------------------
// Model-based test

/// Parameters of [`model_run`].
#[derive(Debug, Clone, Copy)]
pub struct ModelConfig {
    /// Seed.
    pub seed: u64,
    /// Steps.
    pub steps: usize,
    /// Reopen (a new connection and `Store`) every this many steps (0: never).
    pub reopen_every: usize,
    /// Full comparison (every episode, every vector, integrity) every this many steps.
    pub full_check_every: usize,
    /// Defer segment merges ([`Store::set_tidy_hook`]) and run [`Store::tidy`] at random steps.
    pub tidy: bool,
}

struct Model {
    eps: BTreeMap<u64, Episode>,
    next_id: u64,
}

const NAMESPACES: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
const MDIMS: usize = 4;

fn model_episode(rng: &mut Rng, step: usize) -> NewEpisode {
    let ns = NAMESPACES[rng.below(4)];
    let text = format!("step {step} w{}", rng.below(50));
    let mut e = episode(rng, ns, &text, MDIMS);
    if rng.below(5) == 0 {
        e.event_time = None;
    }
    if rng.below(4) == 0 {
        e.importance = None;
    }
    e
}

fn invalid_episode(rng: &mut Rng) -> NewEpisode {
    let mut e = model_episode(rng, 0);
    match rng.below(5) {
        0 => e.embedding.push(1.0),
        1 => e.text = " ".into(),
        2 => e.importance = Some(7.0),
        3 => e.metadata = Metadata::wrap("3".into()),
        _ => e.embedding[0] = f32::NAN,
    }
    e
}

async fn full_check<B: Backend>(s: &Store<B>, m: &Model, step: usize) {
    let vs = s.load_vectors().await.unwrap();
    let ids: Vec<u64> = m.eps.keys().copied().collect();
    assert_eq!(vs.ids, ids, "step {step}: load_vectors ids");
    for (i, e) in m.eps.values().enumerate() {
        assert_eq!(
            vs.row(i),
            e.embedding.as_slice(),
            "step {step}: vector of {}",
            e.id
        );
        assert_eq!(
            vs.namespaces[vs.namespace_of[i] as usize], e.namespace,
            "step {step}"
        );
    }
    let got = s.get_many(&ids).await.unwrap();
    for (g, e) in got.iter().zip(m.eps.values()) {
        let g = g
            .as_ref()
            .unwrap_or_else(|| panic!("step {step}: episode {} missing", e.id));
        assert!(same(g, e), "step {step}: {g:?} != {e:?}");
    }
    let recs = s.get_records(&ids).await.unwrap();
    for (r, g) in recs.iter().zip(&got) {
        let (r, g) = (r.as_ref().unwrap(), g.as_ref().unwrap());
        assert_eq!(
            (r.id, &r.text, &r.metadata),
            (g.id, &g.text, &g.metadata),
            "step {step}"
        );
    }
    s.check_integrity()
        .await
        .unwrap_or_else(|e| panic!("step {step}: {e}"));
}

/// Seeded random sequences of put / batch / update / delete / delete-namespace / scan / get /
/// count / clear / export-import, checked against a plain map after every step.
pub async fn model_run<F: Factory>(f: &F, name: &str, cfg: ModelConfig) {
    let mut rng = Rng::new(cfg.seed);
    let b = f.fresh(name).await;
    let o = OpenOptions {
        dims: Some(MDIMS),
        segment_capacity: Some(4),
        page_capacity: Some(300),
        ..Default::default()
    };
    let mut s = Store::open(b, o).await.unwrap();
    let defer = |s: &Store<F::B>| {
        if cfg.tidy {
            s.set_tidy_hook(Some(std::rc::Rc::new(|| {})));
        }
    };
    defer(&s);
    let mut m = Model {
        eps: BTreeMap::new(),
        next_id: 1,
    };
    for step in 0..cfg.steps {
        if cfg.tidy && rng.below(8) == 0 {
            let before = s.stats();
            s.tidy()
                .await
                .unwrap_or_else(|e| panic!("step {step}: tidy: {e}"));
            assert!(!s.tidy_due(), "step {step}: still due after a tidy");
            assert!(
                s.stats().segments <= before.segments,
                "step {step}: tidy grew"
            );
        }
        if cfg.reopen_every > 0 && step > 0 && step % cfg.reopen_every == 0 {
            s.close();
            let b = f.connect(name).await.unwrap();
            s = Store::open(
                b,
                OpenOptions {
                    dims: Some(MDIMS),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            defer(&s);
        }
        let live: Vec<u64> = m.eps.keys().copied().collect();
        let pick = |rng: &mut Rng| -> u64 {
            if live.is_empty() || rng.below(6) == 0 {
                // Any id up to two past the last issued: live, deleted or never issued.
                1 + rng.below(m.next_id as usize + 2) as u64
            } else {
                live[rng.below(live.len())]
            }
        };
        let op = rng.below(100);
        let ctx = format!("step {step} (op {op})");
        match op {
            0..=19 => {
                let e = model_episode(&mut rng, step);
                let id = s.put(e.clone()).await.unwrap();
                assert_eq!(id, m.next_id, "{ctx}: put id");
                let got = s.get(id).await.unwrap().unwrap();
                m.eps.insert(id, stored(id, &e, got.insert_time));
                m.next_id += 1;
            }
            20..=39 => {
                let n = rng.below(12);
                let mut batch: Vec<NewEpisode> =
                    (0..n).map(|_| model_episode(&mut rng, step)).collect();
                if n > 0 && rng.below(8) == 0 {
                    let k = rng.below(n);
                    batch[k] = invalid_episode(&mut rng);
                    assert!(
                        s.put_many(batch).await.is_err(),
                        "{ctx}: invalid batch accepted"
                    );
                } else {
                    let ids = s.put_many(batch.clone()).await.unwrap();
                    assert_eq!(
                        ids,
                        (m.next_id..m.next_id + n as u64).collect::<Vec<_>>(),
                        "{ctx}"
                    );
                    if n > 0 {
                        let t = s.get(ids[0]).await.unwrap().unwrap().insert_time;
                        for (id, e) in ids.iter().zip(&batch) {
                            m.eps.insert(*id, stored(*id, e, t));
                        }
                    }
                    m.next_id += n as u64;
                }
            }
            40..=54 => {
                let id = pick(&mut rng);
                let mut p = Patch::default();
                match rng.below(4) {
                    0 => p.text = Some(format!("updated {step}")),
                    1 => p.importance = Some(rng.below(11) as f32 / 10.0),
                    2 => p.embedding = Some(rng.vec_f32(MDIMS)),
                    _ => {
                        p.tags = Some(vec![format!("u{step}")]);
                        p.metadata =
                            Some(Metadata::parse(&format!(r#"{{"step":{step}}}"#)).unwrap());
                    }
                }
                let r = s.update(id, p.clone()).await;
                match m.eps.get_mut(&id) {
                    None => expect_err(r, "NOT_FOUND", None, &ctx),
                    Some(e) => {
                        r.unwrap();
                        if let Some(v) = p.text {
                            e.text = v;
                        }
                        if let Some(v) = p.importance {
                            e.importance = v;
                        }
                        if let Some(v) = p.embedding {
                            e.embedding = v;
                        }
                        if let Some(v) = p.tags {
                            e.tags = v;
                        }
                        if let Some(v) = p.metadata {
                            e.metadata = v;
                        }
                    }
                }
            }
            55..=66 => {
                let k = 1 + rng.below(4);
                let mut ids: Vec<u64> = (0..k).map(|_| pick(&mut rng)).collect();
                ids.sort_unstable();
                ids.dedup();
                let r = s.delete_many(&ids).await;
                if ids.iter().all(|id| m.eps.contains_key(id)) {
                    r.unwrap_or_else(|e| panic!("{ctx}: delete {ids:?}: {e}"));
                    for id in ids {
                        m.eps.remove(&id);
                    }
                } else {
                    expect_err(r, "NOT_FOUND", None, &ctx);
                }
            }
            67..=70 => {
                let ns = NAMESPACES[rng.below(4)];
                let n = m.eps.values().filter(|e| e.namespace == ns).count();
                let r = s.delete_namespace(ns).await;
                if n == 0 {
                    expect_err(r, "NOT_FOUND", None, &ctx);
                } else {
                    assert_eq!(r.unwrap(), n, "{ctx}");
                    m.eps.retain(|_, e| e.namespace != ns);
                }
            }
            71..=82 => {
                let ns = NAMESPACES[rng.below(4)];
                let t = |rng: &mut Rng| (rng.below(8) as f64 - 2.0) * 1000.0;
                let (mut a, mut b) = (t(&mut rng), t(&mut rng));
                if a > b {
                    std::mem::swap(&mut a, &mut b);
                }
                let from = (rng.below(3) > 0).then_some(a);
                let to = (rng.below(3) > 0).then_some(b);
                let limit = (rng.below(2) == 0).then(|| rng.below(6));
                let reverse = rng.below(2) == 0;
                let q = ScanQuery {
                    namespace: ns.into(),
                    from,
                    to,
                    limit,
                    reverse,
                };
                let mut want: Vec<&Episode> = m
                    .eps
                    .values()
                    .filter(|e| {
                        e.namespace == ns
                            && from.is_none_or(|f| e.event_time >= f)
                            && to.is_none_or(|t| e.event_time <= t)
                    })
                    .collect();
                want.sort_by(|x, y| x.event_time.total_cmp(&y.event_time).then(x.id.cmp(&y.id)));
                if reverse {
                    want.reverse();
                }
                if let Some(l) = limit {
                    want.truncate(l);
                }
                let got = s.scan(&q).await.unwrap();
                let gi: Vec<u64> = got.iter().map(|e| e.id).collect();
                let wi: Vec<u64> = want.iter().map(|e| e.id).collect();
                assert_eq!(gi, wi, "{ctx}: scan {q:?}");
                for (g, w) in got.iter().zip(want) {
                    assert!(same(g, w), "{ctx}: {g:?} != {w:?}");
                }
            }
            83..=90 => {
                let ids: Vec<u64> = (0..1 + rng.below(5)).map(|_| pick(&mut rng)).collect();
                let got = s.get_many(&ids).await.unwrap();
                for (id, g) in ids.iter().zip(got) {
                    match (m.eps.get(id), g) {
                        (None, None) => {}
                        (Some(w), Some(g)) => assert!(same(&g, w), "{ctx}: {g:?} != {w:?}"),
                        (w, g) => panic!("{ctx}: get {id}: model {w:?}, store {g:?}"),
                    }
                }
            }
            91..=95 => {
                let ns = NAMESPACES[rng.below(4)];
                let n = m.eps.values().filter(|e| e.namespace == ns).count() as u64;
                assert_eq!(s.count(Some(ns)).await.unwrap(), n, "{ctx}");
            }
            96 => {
                s.clear().await.unwrap();
                m.eps.clear();
            }
            _ if m.eps.len() > 60 => {
                let bytes = s.export().await.unwrap();
                let sum = crate::store::export::validate(&bytes, true).unwrap();
                assert_eq!(sum.count, m.eps.len(), "{ctx}");
            }
            _ => {
                // Export, then import into the same store: every id is remapped to fresh ones.
                let bytes = s.export().await.unwrap();
                let rep = s.import(&bytes).await.unwrap();
                assert_eq!(rep.imported, m.eps.len(), "{ctx}");
                assert!(rep.remapped || rep.imported == 0, "{ctx}");
                let copies: Vec<Episode> = m.eps.values().cloned().collect();
                for (e, id) in copies.into_iter().zip(rep.ids) {
                    assert_eq!(id, m.next_id, "{ctx}");
                    m.eps.insert(id, Episode { id, ..e });
                    m.next_id += 1;
                }
            }
        }
        assert_eq!(
            s.count(None).await.unwrap(),
            m.eps.len() as u64,
            "{ctx}: count"
        );
        if cfg.full_check_every > 0 && (step + 1) % cfg.full_check_every == 0 {
            full_check(&s, &m, step).await;
        }
    }
    full_check(&s, &m, cfg.steps).await;
    let st = s.stats();
    crate::store::testing::log(&format!(
        "model seed {}: {} steps on {}, final {} episodes in {} segments and {} pages, seq {}, next id {}",
        cfg.seed,
        cfg.steps,
        s.backend().kind(),
        m.eps.len(),
        st.segments,
        st.pages,
        st.seq,
        st.next_id
    ));
}

/// Print a line (stderr natively, the console in a browser).
pub fn log(line: &str) {
    #[cfg(target_arch = "wasm32")]
    web_sys::console::log_1(&line.into());
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{line}");
}

/// The IndexedDB [`Factory`] of the browser suites (`tests/web_store.rs`, `tests/web_engine.rs`);
/// its field is how long [`Factory::settle`] waits, in milliseconds, for cross-tab notices.
#[cfg(target_arch = "wasm32")]
pub struct IdbFactory(pub i32);

#[cfg(target_arch = "wasm32")]
impl Factory for IdbFactory {
    type B = super::idb::IdbBackend;
    async fn fresh(&self, name: &str) -> Self::B {
        super::idb::IdbBackend::delete_database(name)
            .await
            .expect("delete database");
        super::idb::IdbBackend::open(name)
            .await
            .expect("open database")
    }
    async fn connect(&self, name: &str) -> Result<Self::B> {
        super::idb::IdbBackend::open(name).await
    }
    async fn upgrade_elsewhere(&self, name: &str, version: u32) {
        super::idb::simulate_upgrade(name, version)
            .await
            .expect("upgrade elsewhere");
    }
    async fn settle(&self) {
        let ms = self.0;
        let p = js_sys::Promise::new(&mut |resolve, _| {
            let f: js_sys::Function = js_sys::Reflect::get(
                &js_sys::global(),
                &wasm_bindgen::JsValue::from_str("setTimeout"),
            )
            .expect("setTimeout")
            .into();
            f.call2(
                &wasm_bindgen::JsValue::NULL,
                &resolve,
                &wasm_bindgen::JsValue::from(ms),
            )
            .expect("setTimeout call");
        });
        wasm_bindgen_futures::JsFuture::from(p)
            .await
            .expect("timer");
    }
    async fn raw_bytes(&self, name: &str) -> Vec<Vec<u8>> {
        let b = super::idb::IdbBackend::open(name)
            .await
            .expect("open for dump");
        let out = b.raw_dump().await.expect("raw dump");
        Backend::close(&b);
        out
    }
    async fn wipe_database(&self, name: &str) {
        super::idb::discard_database(name)
            .await
            .expect("discard the database");
    }
    async fn install_legacy(&self, name: &str, fx: &LegacyFixture) {
        super::idb::write_legacy(name, &fx.header, &fx.state, &fx.episodes, &fx.segments)
            .await
            .expect("write the legacy fixture");
    }
}
