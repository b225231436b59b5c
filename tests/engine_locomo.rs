//! The retrieval core on the LoCoMo dev data, when it is present (`$MNEMO_EVAL_DIR/locomo`,
//! default `../shared/eval/locomo` next to the crate). The data is not part of the repository:
//! without it this test says so and checks nothing (`make eval-native` is the full report).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use mnemo::engine::eval::{max_abs_diff, metrics, standard_subsets, Outcome};
use mnemo::engine::fusion::{FusionConfig, Weights};
use mnemo::engine::locomo::{parse_baselines, Locomo};

#[test]
fn reproduces_baselines_and_beats_rrf() {
    let Some(dir) = common::locomo_dir("engine_locomo", &["turns.jsonl", "baseline_results.json"])
    else {
        return;
    };
    let data = Locomo::load_dir(&dir).unwrap();
    let base =
        parse_baselines(&std::fs::read_to_string(dir.join("baseline_results.json")).unwrap())
            .unwrap();
    let idx = data.index(&data.turn_vectors, data.dims).unwrap();
    let run = |w: Weights| {
        data.outcomes(
            &idx,
            &data.question_vectors,
            FusionConfig {
                weights: w,
                ..FusionConfig::new(0.0)
            },
            None,
        )
        .unwrap()
    };
    let select = |o: &[Outcome], cats: &[u8]| {
        metrics(
            o.iter()
                .zip(&data.questions)
                .filter(|(_, q)| cats.contains(&q.category))
                .map(|(o, _)| o),
        )
    };
    for (w, name) in [(Weights::VECTOR, "cosine"), (Weights::LEXICAL, "bm25")] {
        let o = run(w);
        for s in standard_subsets() {
            let b = &base[&(s.name.clone(), name.to_string())];
            let d = max_abs_diff(&select(&o, &s.categories), b);
            assert!(d <= 0.01, "{name} {}: max |diff| {d}", s.name);
            eprintln!(
                "engine_locomo: {name:<6} {:<20} max |diff| vs baseline {d:.2e}",
                s.name
            );
        }
    }
    let fused = select(&run(Weights::DEFAULT), &[1, 2, 3, 4]);
    let rrf = base[&("cat 1-4".to_string(), "hybrid_rrf".to_string())];
    eprintln!(
        "engine_locomo: default fusion any@10 (cat 1-4) {:.3} vs hybrid RRF {:.3}",
        fused.any_at(10),
        rrf.any_at(10)
    );
    assert!(fused.any_at(10) > rrf.any_at(10));
}
