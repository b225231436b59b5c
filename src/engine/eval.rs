//! Retrieval metrics and evaluation helpers (pure functions, reusable from wasm):
//! any@k / all@k / MRR for k = 1, 5, 10, 20 over question subsets, ranking by scores with ties
//! by lower id, reciprocal rank fusion (the baseline), markdown tables, and
//! leave-one-group-out cross-validation for choosing settings that generalise.
//!
//! Definitions (as in the LoCoMo baseline): per question, `first` is the 1-based rank of its
//! first evidence document and `last` that of its last one; **any@k** = `first ≤ k`, **all@k**
//! = `last ≤ k`, **MRR** = mean of `1/first`. A ranking that does not contain an evidence
//! document (a truncated ranking) counts it as not retrieved (reciprocal rank 0).

use std::collections::HashMap;

use super::locomo::CATEGORY_NAMES;
use super::DocId;

/// The cut-offs reported.
pub const KS: [usize; 4] = [1, 5, 10, 20];

/// Where a question's evidence landed in a ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// 1-based rank of the best-ranked evidence document (`None`: none in the ranking).
    pub first: Option<usize>,
    /// 1-based rank of the worst-ranked evidence document (`None`: some not in the ranking).
    pub last: Option<usize>,
}

/// The [`Outcome`] of `evidence` in `ranking`.
pub fn outcome(ranking: &[DocId], evidence: &[DocId]) -> Outcome {
    let mut first: Option<usize> = None;
    let mut last: Option<usize> = Some(0);
    for e in evidence {
        match ranking.iter().position(|d| d == e) {
            Some(p) => {
                first = Some(first.map_or(p + 1, |f| f.min(p + 1)));
                last = last.map(|l| l.max(p + 1));
            }
            None => last = None,
        }
    }
    if evidence.is_empty() {
        last = None;
    }
    Outcome { first, last }
}

/// Aggregate metrics over a set of questions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Questions.
    pub n: usize,
    /// any@k for k in [`KS`].
    pub any: [f64; 4],
    /// all@k for k in [`KS`].
    pub all: [f64; 4],
    /// Mean reciprocal rank of the first evidence document.
    pub mrr: f64,
}

impl Metrics {
    /// any@`k` (`k` one of [`KS`]).
    pub fn any_at(&self, k: usize) -> f64 {
        KS.iter()
            .position(|&x| x == k)
            .map_or(f64::NAN, |i| self.any[i])
    }

    /// all@`k` (`k` one of [`KS`]).
    pub fn all_at(&self, k: usize) -> f64 {
        KS.iter()
            .position(|&x| x == k)
            .map_or(f64::NAN, |i| self.all[i])
    }

    /// The nine values in table order: any@1..20, all@1..20, mrr.
    pub fn values(&self) -> [f64; 9] {
        let mut v = [0.0; 9];
        v[..4].copy_from_slice(&self.any);
        v[4..8].copy_from_slice(&self.all);
        v[8] = self.mrr;
        v
    }
}

/// Metrics of `outcomes` (all zeros with `n = 0` when empty).
pub fn metrics<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Metrics {
    let mut n = 0usize;
    let mut any = [0usize; 4];
    let mut all = [0usize; 4];
    let mut rr = 0.0;
    for o in outcomes {
        n += 1;
        for (i, &k) in KS.iter().enumerate() {
            if o.first.is_some_and(|f| f <= k) {
                any[i] += 1;
            }
            if o.last.is_some_and(|l| l <= k) {
                all[i] += 1;
            }
        }
        if let Some(f) = o.first {
            rr += 1.0 / f as f64;
        }
    }
    let d = n.max(1) as f64;
    Metrics {
        n,
        any: any.map(|c| c as f64 / d),
        all: all.map(|c| c as f64 / d),
        mrr: rr / d,
    }
}

/// Ids ordered by score descending, ties by lower id.
pub fn rank_scores(scores: &[(DocId, f64)]) -> Vec<DocId> {
    let mut v = scores.to_vec();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter().map(|(id, _)| id).collect()
}

/// Reciprocal rank fusion of full rankings: `Σ 1/(k + rank)`, ties by lower id.
pub fn rrf(rankings: &[&[DocId]], k: f64) -> Vec<DocId> {
    let mut score: HashMap<DocId, f64> = HashMap::new();
    for r in rankings {
        for (i, &id) in r.iter().enumerate() {
            *score.entry(id).or_insert(0.0) += 1.0 / (k + (i + 1) as f64);
        }
    }
    let v: Vec<(DocId, f64)> = score.into_iter().collect();
    rank_scores(&v)
}

/// A subset of questions by category, named as in the LoCoMo README's tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Subset {
    /// Table label, e.g. `cat 1-4` or `cat 2 temporal`.
    pub name: String,
    /// Categories included.
    pub categories: Vec<u8>,
}

impl Subset {
    /// Whether a question of `category` belongs to the subset.
    pub fn contains(&self, category: u8) -> bool {
        self.categories.contains(&category)
    }
}

/// `cat 1-4`, `cat 1-5`, then one subset per category.
pub fn standard_subsets() -> Vec<Subset> {
    let mut v = vec![
        Subset {
            name: "cat 1-4".into(),
            categories: vec![1, 2, 3, 4],
        },
        Subset {
            name: "cat 1-5".into(),
            categories: vec![1, 2, 3, 4, 5],
        },
    ];
    for (c, name) in CATEGORY_NAMES {
        v.push(Subset {
            name: format!("cat {c} {name}"),
            categories: vec![c],
        });
    }
    v
}

/// A row of a results table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Subset label.
    pub subset: String,
    /// Method label.
    pub method: String,
    /// The numbers.
    pub metrics: Metrics,
}

/// A markdown table in the README's layout.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| subset | method | n | any@1 | any@5 | any@10 | any@20 | all@1 | all@5 | all@10 | all@20 | mrr |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} |",
            r.subset, r.method, r.metrics.n
        ));
        for v in r.metrics.values() {
            s.push_str(&format!(" {v:.3} |"));
        }
        s.push('\n');
    }
    s
}

/// Largest absolute difference over the nine values of two metrics.
pub fn max_abs_diff(a: &Metrics, b: &Metrics) -> f64 {
    a.values()
        .iter()
        .zip(b.values())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// One fold of leave-one-group-out cross-validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Fold {
    /// The held-out group (e.g. conversation).
    pub held_out: u32,
    /// Index of the configuration chosen on the other groups.
    pub chosen: usize,
    /// Its objective on the other groups.
    pub train_objective: f64,
    /// Its metrics on the held-out group.
    pub test: Metrics,
}

/// Leave-one-group-out cross-validation: for every group, choose the configuration with the
/// best `objective` on the questions of the other groups (ties: the lowest index, so order
/// configurations from simplest), and measure it on the held-out group.
/// `outcomes[c][q]` is configuration `c` on question `q`; `group[q]` its group; only
/// questions with `include[q]` count.
pub fn leave_one_group_out(
    outcomes: &[Vec<Outcome>],
    group: &[u32],
    include: &[bool],
    objective: impl Fn(&Metrics) -> f64,
) -> Vec<Fold> {
    let mut groups: Vec<u32> = group.to_vec();
    groups.sort_unstable();
    groups.dedup();
    groups
        .iter()
        .map(|&g| {
            let pick = |test: bool| {
                move |(q, _): &(usize, &Outcome)| include[*q] && ((group[*q] == g) == test)
            };
            let mut best = (0usize, f64::NEG_INFINITY);
            for (c, oc) in outcomes.iter().enumerate() {
                let m = metrics(oc.iter().enumerate().filter(pick(false)).map(|(_, o)| o));
                let v = objective(&m);
                if v > best.1 {
                    best = (c, v);
                }
            }
            let test = metrics(
                outcomes[best.0]
                    .iter()
                    .enumerate()
                    .filter(pick(true))
                    .map(|(_, o)| o),
            );
            Fold {
                held_out: g,
                chosen: best.0,
                train_objective: best.1,
                test,
            }
        })
        .collect()
}

/// Synthetic short texts for benchmarks: `n` documents of 5..=45 tokens (mean about 25, like
/// LoCoMo turns) drawn from a Zipf(1) distribution over `vocab` pseudo-words, seeded.
pub fn synthetic_texts(seed: u64, n: usize, vocab: usize) -> Vec<String> {
    let mut rng = crate::rng::Rng::new(seed);
    let words: Vec<String> = (0..vocab.max(1)).map(pseudo_word).collect();
    let mut cdf = Vec::with_capacity(words.len());
    let mut acc = 0.0f64;
    for r in 0..words.len() {
        acc += 1.0 / (r + 1) as f64;
        cdf.push(acc);
    }
    (0..n)
        .map(|_| {
            let len = 5 + rng.below(41);
            let mut s = String::new();
            for i in 0..len {
                let u = rng.f32() as f64 * acc;
                let r = cdf.partition_point(|&c| c < u).min(words.len() - 1);
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(&words[r]);
            }
            s
        })
        .collect()
}

fn pseudo_word(mut r: usize) -> String {
    const SYL: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fu", "gi", "ho", "ju", "pe",
        "zo",
    ];
    let mut s = String::new();
    loop {
        s.push_str(SYL[r % 16]);
        r /= 16;
        if r == 0 {
            return s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_and_metrics() {
        let ranking = [5, 3, 9, 1, 7];
        assert_eq!(
            outcome(&ranking, &[9, 3]),
            Outcome {
                first: Some(2),
                last: Some(3)
            }
        );
        assert_eq!(
            outcome(&ranking, &[9, 42]),
            Outcome {
                first: Some(3),
                last: None
            }
        );
        assert_eq!(
            outcome(&ranking, &[42]),
            Outcome {
                first: None,
                last: None
            }
        );
        let os = [
            Outcome {
                first: Some(1),
                last: Some(1),
            },
            Outcome {
                first: Some(4),
                last: Some(12),
            },
            Outcome {
                first: None,
                last: None,
            },
            Outcome {
                first: Some(20),
                last: Some(30),
            },
        ];
        let m = metrics(&os);
        assert_eq!(m.n, 4);
        assert_eq!(m.any, [0.25, 0.5, 0.5, 0.75]);
        assert_eq!(m.all, [0.25, 0.25, 0.25, 0.5]);
        assert!((m.mrr - (1.0 + 0.25 + 0.05) / 4.0).abs() < 1e-12);
    }

    #[test]
    fn ranking_and_rrf_ties_by_lower_id() {
        assert_eq!(
            rank_scores(&[(3, 1.0), (1, 2.0), (2, 1.0), (0, 0.5)]),
            vec![1, 2, 3, 0]
        );
        // a: 1,2,3  b: 3,2,1 → 2 has 2/(62); 1 and 3 have 1/61 + 1/63 → tie → 1 first.
        let r = rrf(&[&[1, 2, 3], &[3, 2, 1]], 60.0);
        assert_eq!(r, vec![1, 3, 2]);
    }

    #[test]
    fn cross_validation_picks_on_other_groups() {
        let good = Outcome {
            first: Some(1),
            last: Some(1),
        };
        let bad = Outcome {
            first: None,
            last: None,
        };
        // config 0 is good on group 0, config 1 good on group 1 (2 questions each).
        let outcomes = vec![vec![good, good, bad, bad], vec![bad, bad, good, good]];
        let folds = leave_one_group_out(&outcomes, &[0, 0, 1, 1], &[true; 4], |m| m.mrr);
        assert_eq!(folds[0].chosen, 1);
        assert_eq!(folds[0].test.mrr, 0.0);
        assert_eq!(folds[1].chosen, 0);
    }
}
