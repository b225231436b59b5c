//! The store's contract suite on the in-memory backend (the same cases run in Chromium on
//! IndexedDB in `tests/web_store.rs`).
#![cfg(not(target_arch = "wasm32"))]

use mnemo::store::testing::{contract, MemoryFactory};

macro_rules! native_case {
    ($name:ident) => {
        #[test]
        fn $name() {
            pollster::block_on(contract::$name(&MemoryFactory::default()));
        }
    };
}

mnemo::store_contract_cases!(native_case);

// The journal on the memory backend: what needs its test hooks (quota, no journal, a lost entry).
mod journal {
    use mnemo::rng::Rng;
    use mnemo::store::testing::episode;
    use mnemo::store::{JournalDir, MemoryBackend, MemoryJournal, NewEpisode, OpenOptions, Store};

    const DIMS: usize = 8;

    fn batch(rng: &mut Rng, n: usize) -> Vec<NewEpisode> {
        (0..n)
            .map(|i| episode(rng, "ns", &format!("row {i}"), DIMS))
            .collect()
    }

    /// A journaled store holding two batches of 4: its backend, the store, its journal and the
    /// name of the newest journal entry.
    async fn two_batches(
        seed: u64,
    ) -> (MemoryBackend, Store<MemoryBackend>, MemoryJournal, String) {
        let mut rng = Rng::new(seed);
        let b = MemoryBackend::new();
        let s = Store::open(b.clone(), opts()).await.unwrap();
        s.put_many(batch(&mut rng, 4)).await.unwrap();
        s.put_many(batch(&mut rng, 4)).await.unwrap();
        let j = b.journal_dir().expect("journal");
        let last = j
            .names()
            .into_iter()
            .filter(|n| n.starts_with("e-"))
            .max()
            .unwrap();
        (b, s, j, last)
    }

    fn opts() -> OpenOptions {
        OpenOptions {
            dims: Some(DIMS),
            ..Default::default()
        }
    }

    /// A journal write over the quota does not fail a write whose database commit succeeded (the
    /// entry is written beside the commit): the write resolves and stands, no journal file is left
    /// behind, and the next write first writes a snapshot covering it, so a later wipe of the
    /// database restores every acknowledged write.
    #[test]
    fn a_journal_write_over_quota_leaves_the_commit_and_a_snapshot_follows() {
        pollster::block_on(async {
            let mut rng = Rng::new(1);
            let b = MemoryBackend::new();
            let s = Store::open(b.clone(), opts()).await.unwrap();
            s.put_many(batch(&mut rng, 5)).await.unwrap();
            let j = b.journal_dir().expect("journal");
            let (seq, names) = (s.seq().await.unwrap(), j.names());
            j.set_quota(Some(j.bytes() + 100));
            s.put_many(batch(&mut rng, 50)).await.unwrap();
            assert_eq!(s.seq().await.unwrap(), seq + 1);
            assert_eq!(s.count(None).await.unwrap(), 55);
            assert_eq!(j.names(), names, "no entry, no pending file left behind");
            j.set_quota(None);
            s.put_many(batch(&mut rng, 2)).await.unwrap();
            assert!(
                j.names()
                    .iter()
                    .any(|n| n.starts_with(&format!("s-{:020}-", seq + 1))),
                "a snapshot at the write without its entry: {:?}",
                j.names()
            );
            let want = s.export().await.unwrap();
            s.close();
            b.wipe_database();
            let r = Store::open(b.connect().unwrap(), OpenOptions::default())
                .await
                .unwrap();
            let rec = r.recovery().expect("restored");
            assert_eq!((rec.episodes, rec.gaps), (57, 0), "{rec:?}");
            assert_eq!(r.export().await.unwrap(), want);
        });
    }

    /// The database lost right after a write whose entry could not be written (before any
    /// snapshot covered it): the replay gives the store as of the last entry, consistently.
    #[test]
    fn a_wipe_before_the_snapshot_restores_up_to_the_last_entry() {
        pollster::block_on(async {
            let mut rng = Rng::new(11);
            let b = MemoryBackend::new();
            let s = Store::open(b.clone(), opts()).await.unwrap();
            s.put_many(batch(&mut rng, 5)).await.unwrap();
            let want = s.export().await.unwrap();
            let j = b.journal_dir().expect("journal");
            j.set_quota(Some(j.bytes() + 100));
            s.put_many(batch(&mut rng, 50)).await.unwrap();
            s.close();
            j.set_quota(None);
            b.wipe_database();
            let r = Store::open(b.connect().unwrap(), OpenOptions::default())
                .await
                .unwrap();
            assert_eq!(r.recovery().map(|r| r.episodes), Some(5));
            assert_eq!(r.export().await.unwrap(), want);
            r.check_integrity().await.unwrap();
        });
    }

    /// A failed database commit fails the call with its typed error although the entry's write
    /// (beside it) succeeded: the pending file is removed, nothing is written anywhere.
    #[test]
    fn a_failed_commit_removes_the_pending_entry() {
        pollster::block_on(async {
            use mnemo::store::{Backend, Fault};
            let mut rng = Rng::new(12);
            let b = MemoryBackend::new();
            let s = Store::open(b.clone(), opts()).await.unwrap();
            s.put_many(batch(&mut rng, 5)).await.unwrap();
            let j = b.journal_dir().expect("journal");
            let (seq, names, stored) = (s.seq().await.unwrap(), j.names(), b.stored_bytes());
            s.backend().inject_fault(Fault::AbortAfter(2));
            let e = s.put_many(batch(&mut rng, 20)).await.unwrap_err();
            assert_eq!(e.code(), "TRANSACTION_ABORTED", "{e}");
            assert_eq!(s.seq().await.unwrap(), seq);
            assert_eq!(j.names(), names, "no journal file left behind");
            assert_eq!(b.stored_bytes(), stored, "nothing committed");
            s.put_many(batch(&mut rng, 2)).await.unwrap();
            assert_eq!(s.count(None).await.unwrap(), 7);
        });
    }

    /// An entry missing between others (a tab stopped between its commit and its rename while
    /// another kept writing): a replay never goes past the gap (a later update of a row the
    /// missing entry created must not be applied without it), and an open with the database
    /// intact writes a snapshot that heals the gap.
    #[test]
    fn a_replay_stops_at_a_gap_and_an_open_heals_it() {
        pollster::block_on(async {
            use mnemo::store::Patch;
            let mut rng = Rng::new(13);
            let b = MemoryBackend::new();
            let s = Store::open(b.clone(), opts()).await.unwrap();
            s.put_many(batch(&mut rng, 3)).await.unwrap();
            let before = s.export().await.unwrap();
            let ids = s.put_many(batch(&mut rng, 2)).await.unwrap();
            let gap = b
                .journal_dir()
                .unwrap()
                .names()
                .into_iter()
                .filter(|n| n.starts_with("e-"))
                .max()
                .unwrap();
            s.update(
                ids[0],
                Patch {
                    text: Some("rewritten".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            s.put_many(batch(&mut rng, 4)).await.unwrap();
            s.close();
            b.journal_dir().unwrap().poke(&gap, None);
            // The database lost: the replay stops before the missing entry.
            b.wipe_database();
            let r = Store::open(b.connect().unwrap(), OpenOptions::default())
                .await
                .unwrap();
            let rec = r.recovery().expect("restored");
            assert_eq!((rec.episodes, rec.gaps), (3, 2), "{rec:?}");
            assert_eq!(r.export().await.unwrap(), before);
            r.check_integrity().await.unwrap();
            r.close();
            // Same journal, database intact: the open writes a snapshot over the gap.
            let b = MemoryBackend::new();
            let s = Store::open(b.clone(), opts()).await.unwrap();
            let mut rng = Rng::new(13);
            s.put_many(batch(&mut rng, 3)).await.unwrap();
            let ids = s.put_many(batch(&mut rng, 2)).await.unwrap();
            let j = b.journal_dir().unwrap();
            let gap = j
                .names()
                .into_iter()
                .filter(|n| n.starts_with("e-"))
                .max()
                .unwrap();
            s.update(
                ids[0],
                Patch {
                    text: Some("rewritten".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            s.put_many(batch(&mut rng, 4)).await.unwrap();
            s.close();
            j.poke(&gap, None);
            let s = Store::open(b.connect().unwrap(), opts()).await.unwrap();
            assert!(s.recovery().is_none());
            let want = s.export().await.unwrap();
            s.close();
            b.wipe_database();
            let r = Store::open(b.connect().unwrap(), OpenOptions::default())
                .await
                .unwrap();
            let rec = r.recovery().expect("restored");
            assert_eq!((rec.episodes, rec.gaps), (9, 0), "{rec:?}");
            assert_eq!(r.export().await.unwrap(), want);
        });
    }

    /// Without a journal the store works as before and says so; a wiped database is then lost.
    #[test]
    fn without_a_journal_the_store_works_and_says_so() {
        pollster::block_on(async {
            let mut rng = Rng::new(2);
            let b = MemoryBackend::without_journal();
            let s = Store::open(b.clone(), opts()).await.unwrap();
            assert!(!s.journal_on());
            s.put_many(batch(&mut rng, 3)).await.unwrap();
            b.wipe_database();
            let s = Store::open(b.connect().unwrap(), opts()).await.unwrap();
            assert!(s.recovery().is_none());
            assert_eq!(s.count(None).await.unwrap(), 0);
        });
    }

    /// A write committed without its journal entry (the tab stopped between the commit and the
    /// rename): the next open sees the journal behind the database and writes a snapshot, so a
    /// later wipe still restores that write.
    #[test]
    fn an_entry_lost_between_commit_and_rename_is_covered_on_open() {
        pollster::block_on(async {
            let (b, s, j, last) = two_batches(3).await;
            j.poke(&last, None);
            s.close();
            let s = Store::open(b.connect().unwrap(), opts()).await.unwrap();
            assert!(s.recovery().is_none());
            let want = s.export().await.unwrap();
            s.close();
            b.wipe_database();
            let r = Store::open(b.connect().unwrap(), OpenOptions::default())
                .await
                .unwrap();
            assert_eq!(r.recovery().map(|r| r.episodes), Some(8));
            assert_eq!(r.export().await.unwrap(), want);
        });
    }

    /// A damaged journal file is skipped, not trusted (checksums), and never panics the open.
    #[test]
    fn a_damaged_entry_is_skipped() {
        pollster::block_on(async {
            let (b, s, j, last) = two_batches(4).await;
            let mut bytes = JournalDir::read(&j, &last).await.unwrap().unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 1;
            j.poke(&last, Some(bytes));
            s.close();
            b.wipe_database();
            let r = Store::open(b.connect().unwrap(), OpenOptions::default())
                .await
                .unwrap();
            let rec = r.recovery().expect("restored");
            assert_eq!((rec.episodes, rec.skipped), (4, 1), "{rec:?}");
            r.check_integrity().await.unwrap();
        });
    }
}
