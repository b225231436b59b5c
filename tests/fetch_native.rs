//! Native tests of the flat top-k (memory fetch): the WGSL kernels on Vulkan (Mesa lavapipe in CI)
//! against the CPU path, over seeded shapes, quantised formats, masks, chunked banks, folded
//! dispatches, incremental updates and gather. A missing adapter fails, never skips.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::OnceLock;
use std::time::Instant;

use mnemo::kernels::fetch::{
    agreement, recall, topk, topk_cpu, topk_naive, BankFormat, FetchPath, FlatBank,
    FlatBankOptions, GatherIds, Layout, TopkOptions, TopkResult, Tuning, NO_ID,
};
use mnemo::rng::Rng;
use mnemo::testing::assert_close;
use mnemo::{Compute, GpuError, KernelError, Prefer};

const FORMATS: [BankFormat; 3] = [BankFormat::F32, BankFormat::F16, BankFormat::Int8];

fn gpu() -> &'static Compute {
    static GPU: OnceLock<Compute> = OnceLock::new();
    GPU.get_or_init(|| pollster::block_on(mnemo::testing::require_gpu()))
}

fn bank(format: BankFormat, d: usize, opts: FlatBankOptions) -> FlatBank {
    FlatBank::new(gpu(), d, FlatBankOptions { format, ..opts }).unwrap()
}

/// Score tolerance between the paths for values in [-1, 1].
fn eps(d: usize) -> f32 {
    2e-6 * d as f32
}

fn allowed_fn<'a>(fb: &'a FlatBank, mask: Option<&'a [u32]>) -> impl Fn(u32) -> bool + 'a {
    move |i: u32| {
        let i = i as usize;
        fb.is_live(i) && mask.is_none_or(|m| (m[i / 32] >> (i % 32)) & 1 == 1)
    }
}

fn both_paths(
    fb: &FlatBank,
    q: &[f32],
    k: usize,
    mask: Option<&[u32]>,
) -> (TopkResult, TopkResult) {
    let g = pollster::block_on(fb.topk(q, k, mask, FetchPath::Gpu)).unwrap();
    let c = pollster::block_on(fb.topk(q, k, mask, FetchPath::Cpu)).unwrap();
    (g, c)
}

#[test]
fn gpu_matches_cpu_on_seeded_shapes() {
    let t0 = Instant::now();
    let mut rng = Rng::new(0xF37C4);
    let ns = [0usize, 1, 31, 63, 64, 65, 255, 256, 257, 1000, 4097, 20_000];
    let ds = [1usize, 3, 5, 33, 384, 385];
    let ks = [1usize, 3, 10, 16, 100, 256];
    let bs = [1usize, 3, 16, 64];
    for case in 0..48 {
        let n = *rng.pick(&ns);
        let d = *rng.pick(&ds);
        let k = *rng.pick(&ks);
        let b = *rng.pick(&bs);
        let format = FORMATS[case % 3];
        // Keep the case cheap: big banks only with small d.
        let n = if n * d > 2_000_000 { n / 8 } else { n };
        // Odd cases force the multi-query `scan` (software adapters default to one query per
        // workgroup, the two-phase `score1` + `pick`).
        let opts = FlatBankOptions {
            tuning: Tuning {
                queries_per_group: (case % 2 == 1).then_some(16),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut fb = bank(format, d, opts);
        let rows = rng.vec_f32(n * d);
        // Append in one or two pieces.
        let cut = if n > 1 { rng.below(n) } else { n };
        pollster::block_on(fb.append(&rows[..cut * d])).unwrap();
        pollster::block_on(fb.append(&rows[cut * d..])).unwrap();
        for _ in 0..(n / 20) {
            fb.remove(rng.below(n)).unwrap();
        }
        let mask_mode = rng.below(4);
        let mask: Vec<u32> = (0..n.div_ceil(32))
            .map(|_| match mask_mode {
                1 => rng.next_u64() as u32,
                2 => 0,
                _ => (rng.next_u64() & rng.next_u64() & rng.next_u64()) as u32,
            })
            .collect();
        let mask = (mask_mode != 0).then_some(&mask[..]);
        let q = rng.vec_f32(b * d);
        let (g, c) = both_paths(&fb, &q, k, mask);
        let what = format!("case {case}: n={n} d={d} k={k} b={b} {format:?} mask={mask_mode}");
        agreement(&what, &g, &c, eps(d), &allowed_fn(&fb, mask)).unwrap();
        if mask_mode == 2 || n == 0 {
            assert!(
                g.ids.iter().all(|&i| i == NO_ID),
                "{what}: expected no rows"
            );
        }
    }
    println!(
        "48 seeded GPU/CPU cases in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn cpu_path_matches_naive_reference_per_format() {
    let mut rng = Rng::new(77);
    for format in FORMATS {
        let (n, d, b, k) = (3000, 37, 5, 20);
        let mut fb = FlatBank::new(
            &Compute::cpu(),
            d,
            FlatBankOptions {
                format,
                ..Default::default()
            },
        )
        .unwrap();
        let rows = rng.vec_f32(n * d);
        pollster::block_on(fb.append(&rows)).unwrap();
        let q = rng.vec_f32(b * d);
        let got = fb.topk_cpu(&q, k, None).unwrap();
        let deq: Vec<f32> = (0..n).flat_map(|i| fb.row(i).unwrap()).collect();
        let want = topk_naive(&deq, d, &q, k, &|_| true);
        agreement(&format!("{format:?}"), &got, &want, eps(d), &|_| true).unwrap();
    }
}

#[test]
fn exact_ties_give_identical_ids_and_scores() {
    // Small-integer data: every dot product is exact on both paths, so scores are bitwise equal
    // and the many exact ties must be broken identically (lower row id first).
    let mut rng = Rng::new(5);
    for format in FORMATS {
        for &(n, d, k, b) in &[
            (5000usize, 7usize, 256usize, 3usize),
            (777, 33, 10, 64),
            (300, 384, 100, 1),
        ] {
            let rows: Vec<f32> = (0..n * d).map(|_| rng.below(3) as f32 - 1.0).collect();
            // Plus exact duplicates of earlier rows.
            let mut all = rows.clone();
            all.extend_from_slice(&rows[..(n / 2) * d]);
            let q: Vec<f32> = (0..b * d).map(|_| rng.below(5) as f32 - 2.0).collect();
            let mut fb = bank(format, d, FlatBankOptions::default());
            pollster::block_on(fb.append(&all)).unwrap();
            let (g, c) = both_paths(&fb, &q, k, None);
            assert_eq!(g.ids, c.ids, "{format:?} n={n} d={d} k={k}: ids differ");
            assert_eq!(
                g.scores, c.scores,
                "{format:?} n={n} d={d} k={k}: scores differ"
            );
            agreement("ties", &g, &c, 0.0, &|_| true).unwrap();
        }
    }
}

/// Panics naming the first index where the GPU and CPU values differ, and both values.
fn same<T: PartialEq + std::fmt::Debug>(what: &str, gpu: &[T], cpu: &[T]) {
    if let Some(i) = (0..gpu.len().min(cpu.len())).find(|&i| gpu[i] != cpu[i]) {
        panic!("{what}: index {i}: GPU {:?}, CPU {:?}", gpu[i], cpu[i]);
    }
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
}

#[test]
fn one_query_scan_every_rows_per_invocation_chunks_masks_and_ties() {
    // B = 1 runs the two phases (`score1` scores every row with no barrier, `pick` selects per
    // range of rows): each rows-per-invocation setting (1..=8), selection ranges of one round
    // or the default, many small chunks (sizes not multiples of a round), masks (random or
    // excluding every row), deletions, and small-integer data whose exact ties must be broken
    // by lower id exactly as on the CPU.
    let mut rng = Rng::new(0x5CA1);
    for case in 0..32 {
        let format = FORMATS[case % 3];
        let r = 1 + case % 8;
        let d = *rng.pick(&[1usize, 5, 19, 64]);
        let n = *rng.pick(&[1usize, 255, 257, 1023, 1025, 3000, 9001]);
        let k = *rng.pick(&[1usize, 10, 16, 100, 256]);
        let layout = Layout::new(format, d);
        let chunks = (case % 2 == 0).then(|| (7 * layout.block_words() * 4 + 1) as u64 * 9);
        let opts = FlatBankOptions {
            max_chunk_bytes: chunks,
            tuning: Tuning {
                rows_per_invocation: Some(r),
                rows_per_group: (case % 3 == 0).then_some(256 * r),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut fb = bank(format, d, opts);
        let integer = case % 4 < 2;
        let rows: Vec<f32> = if integer {
            (0..n * d).map(|_| rng.below(3) as f32 - 1.0).collect()
        } else {
            rng.vec_f32(n * d)
        };
        pollster::block_on(fb.append(&rows)).unwrap();
        for _ in 0..(n / 10) {
            fb.remove(rng.below(n)).unwrap();
        }
        let none = case % 7 == 6;
        let mask: Vec<u32> = (0..n.div_ceil(32))
            .map(|_| if none { 0 } else { rng.next_u64() as u32 })
            .collect();
        let mask = (case % 5 < 2 || none).then_some(&mask[..]);
        let q: Vec<f32> = if integer {
            (0..d).map(|_| rng.below(5) as f32 - 2.0).collect()
        } else {
            rng.vec_f32(d)
        };
        let plan = fb.gpu_plan(1, k).unwrap();
        assert!(plan.two_phase && plan.rows_per_invocation == r, "{plan:?}");
        let (g, c) = both_paths(&fb, &q, k, mask);
        let what = format!(
            "case {case}: n={n} d={d} k={k} R={r} {format:?} chunks={} mask={}",
            fb.chunk_count(),
            mask.is_some()
        );
        if integer {
            same(&format!("{what}: ids"), &g.ids, &c.ids);
            same(&format!("{what}: scores"), &g.scores, &c.scores);
        } else {
            agreement(&what, &g, &c, eps(d), &allowed_fn(&fb, mask)).unwrap();
        }
    }
}

#[test]
fn multi_query_scan_every_shape_chunks_masks_and_ties() {
    // B > 1 on the barrier-free multi-query scan (`scorem`: every query of the batch in each
    // workgroup, scores in a [B, N] scratch, then selection per query), forced on any adapter:
    // B = 1 (`score1`), 2, 16, 64; rows per invocation and queries per pass 1..=4; N not a
    // multiple of a round; k = 1 and k > N; masks allowing nothing; many small chunks;
    // small-integer data whose exact ties must be broken by lower id exactly as on the CPU.
    let t0 = Instant::now();
    let mut rng = Rng::new(0x5CA2);
    for case in 0..32 {
        let format = FORMATS[case % 3];
        let r = 1 + case % 4;
        let qc = 1 + (case / 4) % 4;
        let b = [1usize, 2, 16, 64][(case / 2) % 4];
        let d = *rng.pick(&[1usize, 5, 19, 64]);
        let n = *rng.pick(&[1usize, 255, 257, 1025, 3000, 9001]);
        let n = if b * n * d > 4_000_000 { n / 4 } else { n };
        let k = *rng.pick(&[1usize, 10, 100, 256, n + 1]).min(&256);
        let layout = Layout::new(format, d);
        let chunks = (case % 2 == 0).then(|| (7 * layout.block_words() * 4 + 1) as u64 * 9);
        let opts = FlatBankOptions {
            max_chunk_bytes: chunks,
            tuning: Tuning {
                rows_per_invocation: Some(r),
                queries_per_pass: Some(qc),
                rows_per_group: (case % 3 == 0).then_some(256 * r),
                multi_query_scan: Some(true),
                f16_integer_decode: Some(case % 2 == 1),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut fb = bank(format, d, opts);
        let integer = case % 4 < 2;
        let rows: Vec<f32> = if integer {
            (0..n * d).map(|_| rng.below(3) as f32 - 1.0).collect()
        } else {
            rng.vec_f32(n * d)
        };
        pollster::block_on(fb.append(&rows)).unwrap();
        for _ in 0..(n / 10) {
            fb.remove(rng.below(n)).unwrap();
        }
        let mask_mode = case % 5;
        let mask: Vec<u32> = (0..n.div_ceil(32))
            .map(|_| match mask_mode {
                0 => 0,
                _ => rng.next_u64() as u32,
            })
            .collect();
        let mask = (mask_mode < 2).then_some(&mask[..]);
        let q: Vec<f32> = if integer {
            (0..b * d).map(|_| rng.below(5) as f32 - 2.0).collect()
        } else {
            rng.vec_f32(b * d)
        };
        let plan = fb.gpu_plan(b, k).unwrap();
        assert!(
            plan.two_phase
                && plan.multi_query == (b > 1)
                && plan.rows_per_invocation == r
                && plan.queries_per_pass == if b > 1 { qc } else { 1 },
            "{plan:?}"
        );
        let (g, c) = both_paths(&fb, &q, k, mask);
        let what = format!(
            "case {case}: n={n} d={d} k={k} b={b} R={r} QC={qc} {format:?} chunks={} mask={mask_mode}",
            fb.chunk_count()
        );
        if integer {
            same(&format!("{what}: ids"), &g.ids, &c.ids);
            same(&format!("{what}: scores"), &g.scores, &c.scores);
        } else {
            agreement(&what, &g, &c, eps(d), &allowed_fn(&fb, mask)).unwrap();
        }
        if mask_mode == 0 {
            if let Some(i) = g.ids.iter().position(|&i| i != NO_ID) {
                panic!(
                    "{what}: mask allows nothing, GPU slot {i} holds row {}",
                    g.ids[i]
                );
            }
        }
    }
    println!(
        "32 multi-query scan cases in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn score_scratch_is_kept_and_reused_across_calls() {
    let (n, d) = (3000usize, 16usize);
    let mut rng = Rng::new(0x5C7);
    let opts = FlatBankOptions {
        tuning: Tuning {
            multi_query_scan: Some(true),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut fb = bank(BankFormat::F32, d, opts);
    pollster::block_on(fb.append(&rng.vec_f32(n * d))).unwrap();
    assert_eq!(fb.gpu_scratch_bytes(), 0);
    let q = rng.vec_f32(16 * d);
    let (g, c) = both_paths(&fb, &q, 10, None);
    agreement("first", &g, &c, eps(d), &|_| true).unwrap();
    let held = fb.gpu_scratch_bytes();
    assert!(held >= (16 * n * 4) as u64, "scratch of {held} bytes");
    // Smaller and equal batches reuse it; results stay right with stale scores in it.
    for b in [1usize, 16, 3] {
        let mask: Vec<u32> = (0..n.div_ceil(32)).map(|_| rng.next_u64() as u32).collect();
        let (g, c) = both_paths(&fb, &q[..b * d], 10, Some(&mask));
        agreement(
            &format!("b={b}"),
            &g,
            &c,
            eps(d),
            &allowed_fn(&fb, Some(&mask)),
        )
        .unwrap();
        assert_eq!(fb.gpu_scratch_bytes(), held, "b={b}: scratch reallocated");
    }
}

#[test]
fn f16_integer_decode_is_exact_for_subnormal_and_normal_halves() {
    // Halves m * 2^-24 for |m| < 1024 (subnormal) and normal ones (11-bit m, up to 2^-5)
    // times small-integer queries: every score is a multiple of 2^-24 below 1, exact in f32, so
    // both f16 decodes must equal the CPU path bit for bit, ties included.
    let mut rng = Rng::new(0xF16);
    let (n, d, b, k) = (2000usize, 8usize, 4usize, 256usize);
    let rows: Vec<f32> = (0..n * d)
        .map(|i| {
            let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
            if i % 3 == 0 {
                let m = (rng.below(1024) + 1024) as f32;
                sign * m * (2.0f32).powi(rng.below(8) as i32 - 24)
            } else {
                sign * rng.below(1024) as f32 * (2.0f32).powi(-24)
            }
        })
        .collect();
    let q: Vec<f32> = (0..b * d).map(|_| rng.below(5) as f32 - 2.0).collect();
    for int_decode in [false, true] {
        for multi in [false, true] {
            let opts = FlatBankOptions {
                tuning: Tuning {
                    multi_query_scan: Some(multi),
                    queries_per_group: (!multi).then_some(1),
                    f16_integer_decode: Some(int_decode),
                    ..Default::default()
                },
                ..Default::default()
            };
            let mut fb = bank(BankFormat::F16, d, opts);
            pollster::block_on(fb.append(&rows)).unwrap();
            let (g, c) = both_paths(&fb, &q, k, None);
            let what = format!("f16 integer decode {int_decode}, multi-query {multi}");
            same(&format!("{what}: ids"), &g.ids, &c.ids);
            same(&format!("{what}: scores"), &g.scores, &c.scores);
        }
    }
}

#[test]
fn k_larger_than_n_and_empty_bank_fill_sentinels() {
    for format in FORMATS {
        let mut fb = bank(format, 5, FlatBankOptions::default());
        let q = [0.1f32, 0.2, 0.3, 0.4, 0.5];
        let (g, c) = both_paths(&fb, &q, 7, None);
        assert!(g.ids.iter().all(|&i| i == NO_ID) && c.ids.iter().all(|&i| i == NO_ID));
        assert!(g.scores.iter().all(|&s| s == f32::NEG_INFINITY));
        pollster::block_on(fb.append(&Rng::new(1).vec_f32(3 * 5))).unwrap();
        let (g, c) = both_paths(&fb, &q, 7, None);
        assert_eq!(&g.ids[3..], &[NO_ID; 4]);
        assert_eq!(&g.scores[3..], &[f32::NEG_INFINITY; 4]);
        assert_eq!(g.ids, c.ids);
        fb.remove(1).unwrap();
        let (g, _) = both_paths(&fb, &q, 7, None);
        assert_eq!(g.ids.iter().filter(|&&i| i != NO_ID).count(), 2);
        assert!(!g.ids.contains(&1));
    }
}

#[test]
fn errors_are_typed_and_launch_nothing() {
    let mut fb = bank(BankFormat::F32, 4, FlatBankOptions::default());
    pollster::block_on(fb.append(&[0.5; 8])).unwrap();
    let q = [1.0f32; 4];
    let e = |r: Result<TopkResult, KernelError>| r.unwrap_err();
    let code = |r| e(r).code();
    assert_eq!(
        code(pollster::block_on(fb.topk(&q, 0, None, FetchPath::Gpu))),
        "INVALID_INPUT"
    );
    assert_eq!(
        code(pollster::block_on(fb.topk(&q, 257, None, FetchPath::Gpu))),
        "INVALID_INPUT"
    );
    assert_eq!(
        code(pollster::block_on(fb.topk(
            &q[..3],
            1,
            None,
            FetchPath::Gpu
        ))),
        "DIMENSION_MISMATCH"
    );
    assert!(matches!(
        e(pollster::block_on(fb.topk(&[], 1, None, FetchPath::Gpu))),
        KernelError::InvalidArgument {
            name: "queries",
            ..
        }
    ));
    assert!(matches!(
        e(pollster::block_on(fb.topk(
            &q,
            1,
            Some(&[]),
            FetchPath::Gpu
        ))),
        KernelError::Shape { name: "mask", .. }
    ));
    assert_eq!(
        code(pollster::block_on(fb.topk(
            &[f32::NAN; 4],
            1,
            None,
            FetchPath::Gpu
        ))),
        "NON_FINITE"
    );
    assert_eq!(
        pollster::block_on(fb.append(&[1.0; 3])).unwrap_err().code(),
        "SHAPE_MISMATCH"
    );
    assert_eq!(
        pollster::block_on(fb.set_row(2, &[1.0; 4]))
            .unwrap_err()
            .code(),
        "INVALID_INPUT"
    );
    assert_eq!(
        pollster::block_on(fb.set_row(0, &[1.0; 8]))
            .unwrap_err()
            .code(),
        "DIMENSION_MISMATCH"
    );
    assert_eq!(fb.remove(9).unwrap_err().code(), "INVALID_INPUT");
    assert_eq!(fb.gather_cpu(&[0], 0).unwrap_err().code(), "INVALID_INPUT");
    // Nothing changed.
    assert_eq!(fb.len(), 2);
    let stateless = pollster::block_on(topk(
        gpu(),
        &[1.0; 8],
        4,
        &[1.0; 4],
        0,
        TopkOptions::default(),
    ));
    assert_eq!(stateless.unwrap_err().code(), "INVALID_INPUT");
    let f16 = TopkOptions {
        format: BankFormat::F16,
        ..Default::default()
    };
    let r = pollster::block_on(topk(gpu(), &[1e5, 0.0, 0.0, 0.0], 4, &[1.0; 4], 1, f16));
    assert_eq!(r.unwrap_err().code(), "INVALID_INPUT");
    // A CPU-only bank refuses the GPU path with a typed error.
    let cpu = FlatBank::new(&Compute::cpu(), 4, FlatBankOptions::default()).unwrap();
    let r = pollster::block_on(cpu.topk(&q, 1, None, FetchPath::Gpu));
    assert_eq!(r.unwrap_err().code(), "GPU_UNAVAILABLE");
}

#[test]
fn stateless_topk_gpu_matches_cpu() {
    let mut rng = Rng::new(21);
    for format in FORMATS {
        let (n, d, b, k) = (2500, 45, 4, 12);
        let rows = rng.vec_f32(n * d);
        let q = rng.vec_f32(b * d);
        let mask: Vec<u32> = (0..n.div_ceil(32)).map(|_| rng.next_u64() as u32).collect();
        let opts = TopkOptions {
            mask: Some(&mask),
            format,
        };
        let g = pollster::block_on(topk(gpu(), &rows, d, &q, k, opts)).unwrap();
        let c = topk_cpu(&rows, d, &q, k, opts).unwrap();
        let cpu_compute = pollster::block_on(Compute::new(Prefer::Cpu));
        let c2 = pollster::block_on(topk(&cpu_compute, &rows, d, &q, k, opts)).unwrap();
        assert_eq!(c, c2);
        let allowed = |i: u32| (mask[i as usize / 32] >> (i % 32)) & 1 == 1;
        agreement(&format!("stateless {format:?}"), &g, &c, eps(d), &allowed).unwrap();
    }
}

#[test]
fn bank_over_the_binding_limit_is_chunked_100k_x_384_f32() {
    let t0 = Instant::now();
    let (n, d) = (100_000usize, 384usize);
    let mut rng = Rng::new(100);
    let rows = rng.vec_f32(n * d);
    let mut fb = bank(
        BankFormat::F32,
        d,
        FlatBankOptions {
            capacity: n,
            ..Default::default()
        },
    );
    pollster::block_on(fb.append(&rows)).unwrap();
    assert_eq!(fb.bank_bytes(), 153_600_000);
    assert!(
        fb.chunk_count() >= 2,
        "expected several chunks, got {}",
        fb.chunk_count()
    );
    let boundary = fb.chunk_rows();
    println!(
        "100k x 384 f32: {} bytes in {} chunks of {} rows (upload {:.1} s)",
        fb.bank_bytes(),
        fb.chunk_count(),
        boundary,
        t0.elapsed().as_secs_f64()
    );
    // Make the best rows straddle the chunk boundary, and remove one of them.
    let mut q = rng.vec_f32(2 * d);
    q[..d].copy_from_slice(&rows[(boundary - 1) * d..boundary * d]);
    q[d..].copy_from_slice(&rows[boundary * d..(boundary + 1) * d]);
    fb.remove(boundary + 1).unwrap();
    let mask: Vec<u32> = (0..n.div_ceil(32))
        .map(|w| if w % 7 == 3 { 0 } else { u32::MAX })
        .collect();
    for m in [None, Some(&mask[..])] {
        let (g, c) = both_paths(&fb, &q, 10, m);
        agreement("100k x 384", &g, &c, eps(d), &allowed_fn(&fb, m)).unwrap();
        assert_eq!(g.ids_of(0)[0], (boundary - 1) as u32);
        assert_eq!(g.ids_of(1)[0], boundary as u32);
    }
    // Gather across the boundary on the GPU equals the CPU gather.
    let ids = [
        (boundary - 1) as u32,
        boundary as u32,
        NO_ID,
        (n - 1) as u32,
    ];
    let gg = pollster::block_on(fb.gather_gpu(GatherIds::Host(&ids), 1)).unwrap();
    let got = pollster::block_on(gg.read()).unwrap();
    assert_eq!(got, fb.gather_cpu(&ids, 1).unwrap());
    assert_eq!(&got[..d], &rows[(boundary - 1) * d..boundary * d]);
    println!(
        "chunked 100k x 384 test: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn small_chunks_and_piecewise_appends_match_one_shot() {
    let mut rng = Rng::new(31);
    for format in FORMATS {
        let d = 19;
        let layout = Layout::new(format, d);
        // Three blocks (192 rows) per chunk: many chunks, appends crossing their boundaries.
        let chunk = 3 * layout.block_words() as u64 * 4;
        let opts = FlatBankOptions {
            max_chunk_bytes: Some(chunk),
            ..Default::default()
        };
        let mut fb = bank(format, d, opts);
        let n = 2000;
        let rows = rng.vec_f32(n * d);
        let mut at = 0;
        let mut staged_bytes = 0u64;
        while at < n {
            let m = (1 + rng.below(300)).min(n - at);
            let before = fb.uploaded_bytes();
            pollster::block_on(fb.append(&rows[at * d..(at + m) * d])).unwrap();
            let delta = fb.uploaded_bytes() - before;
            let new_rows = (m * layout.row_bytes()) as u64;
            let live_words = ((at + m).div_ceil(32) - at / 32) as u64 * 4;
            assert_eq!(
                delta,
                new_rows + live_words,
                "append of {m} rows uploaded {delta} bytes"
            );
            staged_bytes += new_rows;
            at += m;
        }
        assert!(fb.chunk_count() >= 10, "{} chunks", fb.chunk_count());
        assert!(staged_bytes < fb.uploaded_bytes() + 1);
        let q = rng.vec_f32(3 * d);
        let one_shot = topk_cpu(
            &rows,
            d,
            &q,
            30,
            TopkOptions {
                format,
                ..Default::default()
            },
        )
        .unwrap();
        let (g, c) = both_paths(&fb, &q, 30, None);
        assert_eq!(
            c, one_shot,
            "{format:?}: piecewise CPU bank differs from one-shot"
        );
        agreement(&format!("small chunks {format:?}"), &g, &c, eps(d), &|_| {
            true
        })
        .unwrap();
    }
}

#[test]
fn updates_upload_only_what_changed() {
    let mut rng = Rng::new(8);
    let d = 64;
    let mut fb = bank(BankFormat::F32, d, FlatBankOptions::default());
    let rows = rng.vec_f32(5000 * d);
    pollster::block_on(fb.append(&rows)).unwrap();
    let row_bytes = (d * 4) as u64;
    // Append 10 rows: 10 rows + the live words they touch.
    let before = fb.uploaded_bytes();
    let extra = rng.vec_f32(10 * d);
    pollster::block_on(fb.append(&extra)).unwrap();
    assert_eq!(fb.uploaded_bytes() - before, 10 * row_bytes + 4);
    // Remove: one word.
    let before = fb.uploaded_bytes();
    assert!(fb.remove(42).unwrap());
    assert!(!fb.remove(42).unwrap());
    assert_eq!(fb.uploaded_bytes() - before, 4);
    // Update: one row.
    let before = fb.uploaded_bytes();
    let mut q = rng.vec_f32(d);
    pollster::block_on(fb.set_row(4321, &q)).unwrap();
    assert_eq!(fb.uploaded_bytes() - before, row_bytes);
    // Row 4321 now equals the query: it wins on both paths; row 42 never appears.
    q.iter_mut().for_each(|x| *x *= 2.0);
    let (g, c) = both_paths(&fb, &q, 5, None);
    assert_eq!(g.ids_of(0)[0], 4321);
    assert_eq!(c.ids_of(0)[0], 4321);
    let all_live = |i: u32| i != 42;
    agreement("updates", &g, &c, eps(d), &all_live).unwrap();
    let q42: Vec<f32> = rows[42 * d..43 * d].to_vec();
    let (g, _) = both_paths(&fb, &q42, 3, None);
    assert!(!g.ids.contains(&42));
    assert!(fb.restore(42).unwrap());
    let (g, _) = both_paths(&fb, &q42, 3, None);
    assert_eq!(g.ids_of(0)[0], 42);
    println!(
        "bank of {} rows: uploaded {} bytes in total, grew by copying {} bytes on the GPU",
        fb.len(),
        fb.uploaded_bytes(),
        fb.grown_bytes()
    );
}

#[test]
fn dispatch_over_65535_workgroups_is_folded() {
    let t0 = Instant::now();
    // A scan dispatch never exceeds 32,768 workgroups (a chunk is at most 128 MiB and a
    // workgroup reads at least 256 rows x 16 bytes), so the folded dispatch is the first merge
    // pass: 2,049 lists per query, 2 lists per merge workgroup, 64 queries = 65,600 workgroups.
    let n = 2049 * 256 - 5;
    let b = 64;
    let mut rng = Rng::new(65535);
    let rows: Vec<f32> = (0..n)
        .map(|_| rng.below(1 << 20) as f32 / (1 << 20) as f32)
        .collect();
    let opts = FlatBankOptions {
        tuning: Tuning {
            rows_per_group: Some(256),
            merge_fanin: Some(2),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut fb = bank(BankFormat::F32, 1, opts);
    pollster::block_on(fb.append(&rows)).unwrap();
    let plan = fb.gpu_plan(b, 1).unwrap();
    assert!(plan.max_dispatch > 65_535, "{plan:?}");
    // d = 1 and values on a 2^-20 grid times powers of two: exact scores, many exact ties,
    // broken by lower id on both paths.
    let q: Vec<f32> = (0..b).map(|i| [1.0, -1.0, 0.5, -0.25][i % 4]).collect();
    let (g, c) = both_paths(&fb, &q, 1, None);
    assert_eq!(g, c);
    println!(
        "folded dispatch ({} workgroups): {:.1} s",
        plan.max_dispatch,
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn gather_on_gpu_matches_cpu_and_chains_from_resident_topk() {
    let mut rng = Rng::new(12);
    for format in FORMATS {
        let (n, d) = (3000usize, 37usize);
        let mut fb = bank(format, d, FlatBankOptions::default());
        pollster::block_on(fb.append(&rng.vec_f32(n * d))).unwrap();
        for block in [1usize, 4, 7] {
            let ids: Vec<u32> = (0..20)
                .map(|t| {
                    if t % 6 == 5 {
                        NO_ID
                    } else {
                        rng.below(n.div_ceil(block) + 2) as u32
                    }
                })
                .collect();
            let gg = pollster::block_on(fb.gather_gpu(GatherIds::Host(&ids), block)).unwrap();
            assert_eq!(gg.rows, ids.len() * block);
            let got = pollster::block_on(gg.read()).unwrap();
            let want = fb.gather_cpu(&ids, block).unwrap();
            assert_close(
                &format!("gather {format:?} block {block}"),
                &got,
                &want,
                0.0,
                0.0,
            );
        }
        // Top-k kept on the GPU, gathered without a readback in between.
        let q = rng.vec_f32(4 * d);
        let res = pollster::block_on(fb.topk_gpu_resident(&q, 8, None)).unwrap();
        let rows = pollster::block_on(fb.gather_gpu(
            GatherIds::Gpu {
                buffer: &res.ids,
                count: res.queries * res.k,
            },
            1,
        ))
        .unwrap();
        let top = pollster::block_on(res.read()).unwrap();
        let cpu_top = fb.topk_cpu(&q, 8, None).unwrap();
        agreement("resident", &top, &cpu_top, eps(d), &|_| true).unwrap();
        let got = pollster::block_on(rows.read()).unwrap();
        assert_eq!(got, fb.gather_cpu(&top.ids, 1).unwrap());
    }
}

#[test]
fn recall_at_10_of_quantised_formats() {
    // Synthetic clustered embeddings (normalised), as a memory bank of sentence vectors looks.
    let (n, d, b) = (20_000usize, 384usize, 64usize);
    let mut rng = Rng::new(2024);
    let centers: Vec<Vec<f32>> = (0..200)
        .map(|_| (0..d).map(|_| rng.normal()).collect())
        .collect();
    let mut rows = Vec::with_capacity(n * d);
    let sample = |rng: &mut Rng| {
        let c = &centers[rng.below(centers.len())];
        let mut v: Vec<f32> = c.iter().map(|x| x + 0.8 * rng.normal()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    };
    for _ in 0..n {
        rows.extend(sample(&mut rng));
    }
    let q: Vec<f32> = (0..b).flat_map(|_| sample(&mut rng)).collect();
    let exact = topk_cpu(&rows, d, &q, 10, TopkOptions::default()).unwrap();
    for format in [BankFormat::F16, BankFormat::Int8] {
        let mut fb = bank(format, d, FlatBankOptions::default());
        pollster::block_on(fb.append(&rows)).unwrap();
        let (g, c) = both_paths(&fb, &q, 10, None);
        let (rg, rc) = (recall(&g, &exact), recall(&c, &exact));
        println!("recall@10 of {format:?} vs f32 exact (synthetic, {n} x {d}, {b} queries): GPU {rg:.4}, CPU {rc:.4}");
        assert!(rg >= 0.9 && rc >= 0.9, "{format:?}: recall {rg} / {rc}");
    }
    locomo_recall();
}

/// Recall on the LoCoMo turn embeddings when the eval data is present (it is not in CI's
/// clone): reported, not asserted.
fn locomo_recall() {
    let dir = std::env::var("MNEMO_EVAL_DIR")
        .unwrap_or_else(|_| format!("{}/../shared/eval", env!("CARGO_MANIFEST_DIR")));
    let read = |name: &str| -> Option<Vec<f32>> {
        let bytes = std::fs::read(format!("{dir}/locomo/{name}")).ok()?;
        Some(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    };
    let (Some(turns), Some(questions)) = (read("turns.f32"), read("questions.f32")) else {
        println!("LoCoMo eval data not found under {dir}: recall on real embeddings not computed");
        return;
    };
    let d = 384;
    let exact = topk_cpu(&turns, d, &questions, 10, TopkOptions::default()).unwrap();
    for format in [BankFormat::F16, BankFormat::Int8] {
        let got = topk_cpu(
            &turns,
            d,
            &questions,
            10,
            TopkOptions {
                format,
                ..Default::default()
            },
        )
        .unwrap();
        println!(
            "recall@10 of {format:?} vs f32 exact (LoCoMo: {} turns, {} questions): {:.4}",
            turns.len() / d,
            questions.len() / d,
            recall(&got, &exact)
        );
    }
}

#[test]
fn auto_path_and_cpu_only_banks() {
    let mut fb = bank(
        BankFormat::F32,
        8,
        FlatBankOptions {
            auto_gpu_min_bytes: 64 * 1024,
            ..Default::default()
        },
    );
    pollster::block_on(fb.append(&[0.25; 8 * 100])).unwrap();
    assert_eq!(fb.resolve(FetchPath::Auto).unwrap(), FetchPath::Cpu);
    pollster::block_on(fb.append(&vec![0.5; 8 * 3000])).unwrap();
    // Over the threshold: the GPU, except on a software adapter (lavapipe), where the CPU path
    // is far faster.
    let software = gpu().adapter_info().unwrap().device_type == "cpu";
    let want = if software {
        FetchPath::Cpu
    } else {
        FetchPath::Gpu
    };
    assert_eq!(fb.resolve(FetchPath::Auto).unwrap(), want);
    let gpu_only = bank(
        BankFormat::F32,
        8,
        FlatBankOptions {
            cpu_mirror: false,
            ..Default::default()
        },
    );
    assert_eq!(gpu_only.resolve(FetchPath::Auto).unwrap(), FetchPath::Gpu);
    assert_eq!(
        gpu_only.resolve(FetchPath::Cpu).unwrap_err().code(),
        "INVALID_INPUT"
    );
    let cpu_only = FlatBank::new(
        &Compute::cpu(),
        8,
        FlatBankOptions {
            cpu_mirror: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(cpu_only.has_cpu_mirror() && !cpu_only.has_gpu());
    assert_eq!(cpu_only.resolve(FetchPath::Auto).unwrap(), FetchPath::Cpu);
}

#[test]
fn device_lost_is_reported() {
    let c = pollster::block_on(Compute::gpu()).unwrap();
    let mut fb = FlatBank::new(&c, 4, FlatBankOptions::default()).unwrap();
    pollster::block_on(fb.append(&[0.5; 16])).unwrap();
    c.gpu_context().unwrap().destroy();
    match pollster::block_on(fb.topk(&[1.0; 4], 2, None, FetchPath::Gpu)) {
        Err(KernelError::Gpu(GpuError::DeviceLost(_))) => {}
        other => panic!("expected DeviceLost, got {other:?}"),
    }
    // The CPU mirror still answers.
    let r = pollster::block_on(fb.topk(&[1.0; 4], 2, None, FetchPath::Cpu)).unwrap();
    assert_eq!(r.ids, vec![0, 1]);
}
