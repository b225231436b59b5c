//! CPU paths: the recurrent reference (the test oracle and the fallback) and the chunked
//! algorithm in plain Rust, the same decomposition the GPU kernels use.

use super::{
    check, check_tokens, Decay, DecayKind, RecurrenceConfig, RecurrenceInput, RecurrenceOutput,
    CHUNK,
};
use crate::kernels::KernelError;

/// The recurrent reference: tokens in order, state in and out.
pub fn recurrent_cpu(input: &RecurrenceInput<'_>) -> Result<RecurrenceOutput, KernelError> {
    let shape = check(input)?;
    let cfg = shape.cfg;
    let mut state = match input.state {
        Some(s) => s.to_vec(),
        None => vec![0.0; cfg.state_len()],
    };
    let mut out = vec![0.0; shape.t * cfg.heads * cfg.dv];
    step_tokens(
        &cfg,
        input.q,
        input.k,
        input.v,
        input.decay,
        input.beta,
        &mut state,
        &mut out,
    );
    Ok(RecurrenceOutput { out, state })
}

/// The recurrent form in place: fold the tokens of `q`, `k`, `v` (and gates) into `state`
/// (`[heads, dk, dv]`) and write the outputs into `out` (`[T, heads, dv]`). Allocates only a
/// `2 · dv` scratch: this is the cheap per-token path of the memory engine.
#[allow(clippy::too_many_arguments)]
pub fn recurrent_cpu_into(
    cfg: &RecurrenceConfig,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    decay: Decay<'_>,
    beta: Option<&[f32]>,
    state: &mut [f32],
    out: &mut [f32],
) -> Result<(), KernelError> {
    let t = check_tokens(cfg, q, k, v, decay, beta)?;
    if state.len() != cfg.state_len() {
        return Err(KernelError::Shape {
            name: "state",
            expected: format!("{} values [heads, dk, dv]", cfg.state_len()),
            got: state.len(),
        });
    }
    if out.len() != t * cfg.heads * cfg.dv {
        return Err(KernelError::Shape {
            name: "out",
            expected: format!("{} values [T, heads, dv]", t * cfg.heads * cfg.dv),
            got: out.len(),
        });
    }
    step_tokens(cfg, q, k, v, decay, beta, state, out);
    Ok(())
}

/// The recurrence over checked inputs.
#[allow(clippy::too_many_arguments)]
fn step_tokens(
    cfg: &RecurrenceConfig,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    decay: Decay<'_>,
    beta: Option<&[f32]>,
    state: &mut [f32],
    out: &mut [f32],
) {
    let (h, dk, dv) = (cfg.heads, cfg.dk, cfg.dv);
    let t_len = q.len() / (h * dk);
    let mut sk = vec![0.0f32; dv];
    let mut sq = vec![0.0f32; dv];
    for t in 0..t_len {
        for hh in 0..h {
            let th = t * h + hh;
            let kt = &k[th * dk..(th + 1) * dk];
            let qt = &q[th * dk..(th + 1) * dk];
            let vt = &v[th * dv..(th + 1) * dv];
            let s = &mut state[hh * dk * dv..(hh + 1) * dk * dv];
            let o = &mut out[th * dv..(th + 1) * dv];
            let a_scalar = match decay {
                Decay::Scalar(d) => d[th],
                _ => 1.0,
            };
            let a_vec = match decay {
                Decay::Vector(d) => Some(&d[th * dk..(th + 1) * dk]),
                _ => None,
            };
            let a_of = |d: usize| a_vec.map_or(a_scalar, |a| a[d]);
            sk.fill(0.0);
            sq.fill(0.0);
            match beta {
                None => {
                    // S = a ⊙ S + k vᵀ; o = Sᵀ q, in one pass over the rows.
                    for d in 0..dk {
                        let (a, kd, qd) = (a_of(d), kt[d], qt[d]);
                        let row = &mut s[d * dv..(d + 1) * dv];
                        for ((r, &vc), oc) in row.iter_mut().zip(vt).zip(sq.iter_mut()) {
                            *r = a * *r + kd * vc;
                            *oc += qd * *r;
                        }
                    }
                    for (oc, &x) in o.iter_mut().zip(&sq) {
                        *oc = cfg.scale * x;
                    }
                }
                Some(b) => {
                    // S' = a ⊙ S; u = β (v − S'ᵀk); S = S' + k uᵀ; o = S'ᵀq + (k·q) u.
                    let mut kq = 0.0f32;
                    for d in 0..dk {
                        let (a, kd, qd) = (a_of(d), kt[d], qt[d]);
                        kq += kd * qd;
                        let row = &mut s[d * dv..(d + 1) * dv];
                        for ((r, ak), aq) in row.iter_mut().zip(sk.iter_mut()).zip(sq.iter_mut()) {
                            *r *= a;
                            *ak += kd * *r;
                            *aq += qd * *r;
                        }
                    }
                    let bt = b[th];
                    for (u, &vc) in sk.iter_mut().zip(vt) {
                        *u = bt * (vc - *u);
                    }
                    for d in 0..dk {
                        let kd = kt[d];
                        let row = &mut s[d * dv..(d + 1) * dv];
                        for (r, &u) in row.iter_mut().zip(&sk) {
                            *r += kd * u;
                        }
                    }
                    for ((oc, &x), &u) in o.iter_mut().zip(&sq).zip(&sk) {
                        *oc = cfg.scale * (x + kq * u);
                    }
                }
            }
        }
    }
}

/// The chunked form on the CPU: chunks of [`CHUNK`] tokens, cumulative log-decays relative to
/// the chunk start, the WY/UT forward substitution for the delta variants. Same decomposition
/// as `shaders/recurrence_chunk_*.wgsl`.
pub fn chunked_cpu(input: &RecurrenceInput<'_>) -> Result<RecurrenceOutput, KernelError> {
    let shape = check(input)?;
    let cfg = shape.cfg;
    let (t_len, h, dk, dv) = (shape.t, cfg.heads, cfg.dk, cfg.dv);
    let mut state = match input.state {
        Some(s) => s.to_vec(),
        None => vec![0.0; cfg.state_len()],
    };
    let mut out = vec![0.0; t_len * h * dv];
    let c = CHUNK;
    // Per-chunk scratch.
    let mut b = vec![0.0f32; c * dk]; // cumulative log decay [C, dk]
    let mut qm = vec![0.0f32; c * c]; // decayed q·k, j <= i
    let mut am = vec![0.0f32; c * c]; // β_i · decayed k·k, j < i
    let mut u = vec![0.0f32; c * dv]; // pseudo-values
    let mut w = vec![0.0f32; c * dk]; // T β (K ⊙ Γ)
    let mut qs = vec![0.0f32; dv];
    for hh in 0..h {
        let s = &mut state[hh * dk * dv..(hh + 1) * dk * dv];
        for t0 in (0..t_len).step_by(c) {
            let l = c.min(t_len - t0);
            let row = |t: usize| (t0 + t) * h + hh;
            // Cumulative log decays from the chunk start (inclusive).
            for t in 0..l {
                for d in 0..dk {
                    let la = match input.decay {
                        Decay::None => 0.0,
                        Decay::Scalar(a) => a[row(t)].ln(),
                        Decay::Vector(a) => a[row(t) * dk + d].ln(),
                    };
                    let prev = if t == 0 { 0.0 } else { b[(t - 1) * dk + d] };
                    b[t * dk + d] = prev + la;
                }
            }
            let kk = |t: usize| &input.k[row(t) * dk..(row(t) + 1) * dk];
            let qq = |t: usize| &input.q[row(t) * dk..(row(t) + 1) * dk];
            let vv = |t: usize| &input.v[row(t) * dv..(row(t) + 1) * dv];
            // Decayed inner products.
            for i in 0..l {
                for j in 0..=i {
                    let (mut aq, mut ak) = (0.0f32, 0.0f32);
                    let (qi, ki, kj) = (qq(i), kk(i), kk(j));
                    for d in 0..dk {
                        let f = if cfg.decay == DecayKind::None {
                            1.0
                        } else {
                            (b[i * dk + d] - b[j * dk + d]).exp()
                        };
                        let kjd = kj[d] * f;
                        aq += qi[d] * kjd;
                        ak += ki[d] * kjd;
                    }
                    qm[i * c + j] = aq;
                    am[i * c + j] = if j < i {
                        input.beta.map_or(0.0, |bt| bt[row(i)] * ak)
                    } else {
                        0.0
                    };
                }
            }
            // Pseudo-values: U = V, or the WY forward substitution for the delta rule.
            if let Some(beta) = input.beta {
                for i in 0..l {
                    let bi = beta[row(i)];
                    for d in 0..dk {
                        let mut x = bi * kk(i)[d] * b[i * dk + d].exp();
                        for j in 0..i {
                            x -= am[i * c + j] * w[j * dk + d];
                        }
                        w[i * dk + d] = x;
                    }
                    for col in 0..dv {
                        let mut x = bi * vv(i)[col];
                        for j in 0..i {
                            x -= am[i * c + j] * u[j * dv + col];
                        }
                        u[i * dv + col] = x;
                    }
                }
                // Ũ = U − W S₀.
                for i in 0..l {
                    for d in 0..dk {
                        let wd = w[i * dk + d];
                        let srow = &s[d * dv..(d + 1) * dv];
                        for (uc, &sc) in u[i * dv..(i + 1) * dv].iter_mut().zip(srow) {
                            *uc -= wd * sc;
                        }
                    }
                }
            } else {
                for i in 0..l {
                    u[i * dv..(i + 1) * dv].copy_from_slice(vv(i));
                }
            }
            // Outputs: o_i = scale (S₀ᵀ (q_i ⊙ Γ_i) + Σ_{j≤i} Qm_ij ũ_j).
            for i in 0..l {
                qs.fill(0.0);
                let qi = qq(i);
                for d in 0..dk {
                    let qd = qi[d] * b[i * dk + d].exp();
                    for (a, &sc) in qs.iter_mut().zip(&s[d * dv..(d + 1) * dv]) {
                        *a += qd * sc;
                    }
                }
                for j in 0..=i {
                    let m = qm[i * c + j];
                    for (a, &uc) in qs.iter_mut().zip(&u[j * dv..(j + 1) * dv]) {
                        *a += m * uc;
                    }
                }
                for (o, &a) in out[row(i) * dv..(row(i) + 1) * dv].iter_mut().zip(&qs) {
                    *o = cfg.scale * a;
                }
            }
            // State: S = Γ_L S₀ + Σ_j (k_j ⊙ exp(b_L − b_j)) ũ_jᵀ.
            for d in 0..dk {
                let bl = b[(l - 1) * dk + d];
                let srow = &mut s[d * dv..(d + 1) * dv];
                let g = bl.exp();
                for x in srow.iter_mut() {
                    *x *= g;
                }
                for j in 0..l {
                    let kh = kk(j)[d] * (bl - b[j * dk + d]).exp();
                    for (x, &uc) in srow.iter_mut().zip(&u[j * dv..(j + 1) * dv]) {
                        *x += kh * uc;
                    }
                }
            }
        }
    }
    Ok(RecurrenceOutput { out, state })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_scalar_cases() {
        // dk = dv = 1, scale 1. Tokens: (q, k, v) = (1, 1, 2), (1, 1, 1); decay 1 then 0.5.
        let (q, k, v, a) = ([1.0, 1.0], [1.0, 1.0], [2.0, 1.0], [1.0, 0.5]);
        let mut input = RecurrenceInput {
            q: &q,
            k: &k,
            v: &v,
            decay: Decay::Scalar(&a),
            heads: 1,
            dk: 1,
            dv: 1,
            scale: Some(1.0),
            ..Default::default()
        };
        // S = 2; then S = 0.5·2 + 1 = 2.
        let r = recurrent_cpu(&input).unwrap();
        assert_eq!((r.out, r.state), (vec![2.0, 2.0], vec![2.0]));
        // Delta rule, β = 0.5: u = 0.5·(2 − 0) = 1, S = 1; S' = 0.5, u = 0.5·(1 − 0.5), S = 0.75.
        input.beta = Some(&[0.5, 0.5]);
        let r = recurrent_cpu(&input).unwrap();
        assert_eq!((r.out, r.state), (vec![1.0, 0.75], vec![0.75]));
        let c = chunked_cpu(&input).unwrap();
        assert!((c.state[0] - 0.75).abs() < 1e-6 && (c.out[1] - 0.75).abs() < 1e-6);
    }
}
