//! CPU: the chunked algorithm against the recurrent reference.
#![cfg(not(target_arch = "wasm32"))]
use mnemo::kernels::recurrence::*;
use mnemo::rng::Rng;

fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    let m = want.iter().fold(0f32, |a, b| a.max(b.abs())).max(1e-30);
    got.iter()
        .zip(want)
        .fold(0f32, |a, (g, w)| a.max((g - w).abs()))
        / m
}

#[test]
fn chunked_matches_recurrent_cpu() {
    let mut rng = Rng::new(1);
    for case in 0..24 {
        let h = 1 + rng.below(3);
        let dk = *rng.pick(&[16usize, 32, 5]);
        let dv = *rng.pick(&[16usize, 32, 7]);
        let t = *rng.pick(&[1usize, 31, 32, 33, 100, 257]);
        let dkind = case % 3;
        let delta = (case / 3) % 2 == 1;
        let lo = *rng.pick(&[0.5f32, 0.9, 0.9999]);
        let q = rng.vec_f32(t * h * dk);
        let mut k = rng.vec_f32(t * h * dk);
        if delta {
            for row in k.chunks_mut(dk) {
                let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                row.iter_mut().for_each(|x| *x /= n);
            }
        }
        let v = rng.vec_f32(t * h * dv);
        let dec: Vec<f32> = (0..t * h * if dkind == 2 { dk } else { 1 })
            .map(|_| rng.range_f32(lo, 1.0))
            .collect();
        let beta: Vec<f32> = (0..t * h).map(|_| rng.range_f32(0.0, 1.0)).collect();
        let st = rng.vec_f32(h * dk * dv);
        let input = RecurrenceInput {
            q: &q,
            k: &k,
            v: &v,
            decay: match dkind {
                0 => Decay::None,
                1 => Decay::Scalar(&dec),
                _ => Decay::Vector(&dec),
            },
            beta: if delta { Some(&beta) } else { None },
            heads: h,
            dk,
            dv,
            scale: None,
            state: Some(&st),
        };
        let a = recurrent_cpu(&input).unwrap();
        let b = chunked_cpu(&input).unwrap();
        let eo = rel_err(&b.out, &a.out);
        let es = rel_err(&b.state, &a.state);
        println!("case {case}: h={h} dk={dk} dv={dv} t={t} decay={dkind} delta={delta} lo={lo}: out {eo:e} state {es:e}");
        assert!(eo < 1e-4 && es < 1e-4);
    }
}
