//! Recall of the hierarchical index on real sentence embeddings: the LoCoMo turns
//! (`$MNEMO_EVAL_DIR/locomo/turns.f32`, 2,760 × 384, all-MiniLM-L6-v2, L2-normalised) searched
//! with the LoCoMo questions (`questions.f32`, 996) against exact search — unfiltered, and with an
//! allow-mask restricting each question to its own conversation's turns (the engine filters by
//! namespace). Prints recall@10 and bytes read per beam; asserts recall@10 ≥ 0.99 at the
//! configuration documented in the README.
//!
//! The data is not part of the repository: without it this test prints where it looked and
//! passes (CI's clone may not have `../shared/eval`).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use mnemo::kernels::hier::topk::{exact_topk, recall};
use mnemo::kernels::hier::{HierIndex, SearchOptions};

const D: usize = 384;

#[test]
fn locomo_recall_against_exact() {
    let Some(dir) = common::locomo_dir(
        "locomo_recall_against_exact",
        &[
            "turns.f32",
            "questions.f32",
            "turns.jsonl",
            "questions.jsonl",
        ],
    ) else {
        return;
    };
    let bank = common::read_f32(&dir.join("turns.f32"));
    let qs = common::read_f32(&dir.join("questions.f32"));
    let tconv = common::conv_of(&dir.join("turns.jsonl"));
    let qconv = common::conv_of(&dir.join("questions.jsonl"));
    let (n, nq) = (bank.len() / D, qs.len() / D);
    assert_eq!((n, nq), (tconv.len(), qconv.len()));
    let idx = HierIndex::build(&bank, D, None, None).unwrap();
    let st = idx.stats();
    println!(
        "LoCoMo: {n} turns, {nq} questions; auto config: branching {}, depth {}, {} leaves, \
         default beam {}",
        idx.config().branching,
        idx.config().depth,
        st.leaves,
        st.default_beam
    );
    let convs = tconv.iter().max().map_or(0, |&c| c as usize + 1);
    let mut masks = vec![vec![0u32; n.div_ceil(32)]; convs];
    for (i, &c) in tconv.iter().enumerate() {
        masks[c as usize][i / 32] |= 1 << (i % 32);
    }
    let (truth, _) = exact_topk(&bank, D, None, &qs, 10, None);
    let mut truth_m = Vec::with_capacity(nq * 10);
    let mut flat_m_bytes = 0u64;
    for qi in 0..nq {
        let m = &masks[qconv[qi] as usize];
        truth_m.extend(exact_topk(&bank, D, None, &qs[qi * D..(qi + 1) * D], 10, Some(m)).0);
        let allowed: u64 = m.iter().map(|w| w.count_ones() as u64).sum();
        flat_m_bytes += allowed * (D as u64 * 4 + 4) + (n - allowed as usize) as u64 * 4;
    }
    let flat = (n * D * 4) as f64;
    println!(
        "flat scan: {flat:.0} bytes/query; flat scan of the conversation's rows: {:.0} bytes/query",
        flat_m_bytes as f64 / nq as f64
    );
    println!("beam | recall@10 | bytes/query | masked beam (widened) | masked recall@10 | masked bytes/query");
    let mut at = std::collections::BTreeMap::new();
    for beam in [1usize, 2, 4, 8, 12, 16, 24, 32, 48] {
        let o = SearchOptions {
            k: 10,
            beam: Some(beam),
            mask: None,
        };
        let r = idx.search(&qs, &o).unwrap();
        let rc = recall(&r.ids, &truth, 10);
        let mut got_m = Vec::with_capacity(nq * 10);
        let mut bytes_m = 0u64;
        let mut widened = 0;
        for qi in 0..nq {
            let q = &qs[qi * D..(qi + 1) * D];
            let om = SearchOptions {
                mask: Some(&masks[qconv[qi] as usize]),
                ..o
            };
            widened = idx.check_search(q, &om).unwrap().1;
            let r = idx.search(q, &om).unwrap();
            bytes_m += r.stats.bytes_read;
            got_m.extend(r.ids);
        }
        let rcm = recall(&got_m, &truth_m, 10);
        println!(
            "{beam:4} | {rc:.4} | {:.0} ({:.1}x fewer) | {widened} | {rcm:.4} | {:.0}",
            r.stats.bytes_read as f64 / nq as f64,
            flat / (r.stats.bytes_read as f64 / nq as f64),
            bytes_m as f64 / nq as f64
        );
        at.insert(beam, (rc, rcm));
    }
    // The configuration the README documents for the engine: unfiltered beam 24 (of 56 leaves),
    // filtered by conversation beam 4 (widened by rows / allowed rows).
    assert!(
        at[&24].0 >= 0.99,
        "unfiltered recall at beam 24: {}",
        at[&24].0
    );
    assert!(at[&4].1 >= 0.99, "filtered recall at beam 4: {}", at[&4].1);
}
