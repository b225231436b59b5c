// Linear recurrence, chunked form, pass 1 of 2: the intra-chunk quantities, all chunks and
// heads in parallel (one workgroup per (chunk, head)).
//
// Inside chunk n (tokens t0 .. t0 + L, C = 32 slots, slots past L padded with a = 1, k = q = v = 0,
// beta = 0), with b_i = sum_{s <= i} log a_s the cumulative log-decay from the chunk start (a
// vector over dk; a scalar broadcast for scalar decay; 0 without decay):
//   Qm[i, j] = sum_d q_id k_jd exp(b_id - b_jd)          (j <= i)
//   qt[i]    = q_i * exp(b_i)                             (reads the state at chunk start)
//   kh[j]    = k_j * exp(b_L - b_j)                       (writes the state at chunk end)
//   gam      = exp(b_L)                                   (decays the state across the chunk)
// and for the delta rule the WY/UT pseudo-values, by forward substitution over the chunk:
//   A[i, j]  = beta_i sum_d k_id k_jd exp(b_id - b_jd)   (j < i)
//   W = (I + A)^-1 diag(beta) (K * exp(B)),  U = (I + A)^-1 diag(beta) V.
// Every exponent is <= 0: no division by small cumulative products, any decay in (0, 1] is safe.
// dk is processed in slices of DS columns staged in workgroup memory (about 12.5 KiB in all).
// Each invocation accumulates a 2 x 2 block of (i, j) pairs: 6 loads feed 8 FMAs.


const C: u32 = 32u;         // tokens per chunk (CHUNK in the host code)
const DS: u32 = 32u;        // dk slice staged at a time
const WG: u32 = 256u;

struct Params {
    t: u32,
    heads: u32,
    dk: u32,
    dv: u32,
    chunk0: u32,     // first chunk of this segment
    n_chunks: u32,   // chunks in this segment
    off_kh: u32,     // offsets into scratch_a: qt at 0, kh, w
    off_w: u32,
    off_qm: u32,     // offsets into scratch_b: u at 0, qm, gam
    off_gam: u32,
    scale: f32,
    has_state: u32,  // 1: the first segment starts from state_in
    state_off: u32,  // offset of the state in `result` (after the outputs)
    decay: u32,      // 0: none, 1: scalar [T, H], 2: vector [T, H, dk] (a uniform: one pipeline)
    delta: u32,      // 1: delta rule
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> decay: array<f32>;
@group(0) @binding(5) var<storage, read> beta: array<f32>;
// [qt | kh | w], each [n_chunks, H, C, dk]
@group(0) @binding(6) var<storage, read_write> scratch_a: array<f32>;
// [u [n_chunks, H, C, dv] | qm [n_chunks, H, C, C] | gam [n_chunks, H, dk]]
@group(0) @binding(7) var<storage, read_write> scratch_b: array<f32>;

// [C][DS] cumulative log decay (vector decay); after the dk slices, [C][C] A (delta rule).
var<workgroup> sb: array<f32, 1024>;
var<workgroup> sq: array<f32, 1024>;   // [C][DS] q slice
var<workgroup> sk: array<f32, 1024>;   // [C][DS] k slice
var<workgroup> sbs: array<f32, 32>;    // [C] cumulative log decay (scalar decay)
var<workgroup> sbeta: array<f32, 32>;  // [C]
var<workgroup> sga: array<f32, 32>;    // [C] exp(b_i), scalar decay
var<workgroup> sgl: array<f32, 32>;    // [C] exp(b_L - b_i), scalar decay

// log(a) for a decay a in (0, 1]. WGSL's log() only promises an absolute error below 2^-21 on
// [0.5, 2]: a large relative error for decays near 1 (up to 0.5% at 0.9999), which compounds over
// long sequences. On [0.5, 1] use log(a) = 2 atanh(z), z = (a - 1) / (a + 1) in [-1/3, 0], by its
// series to z^13 (truncation below 2e-8 relative); a - 1 is exact there.
fn log_decay(a: f32) -> f32 {
    if (a < 0.5) {
        return log(a);
    }
    let z = (a - 1.0) / (a + 1.0);
    let z2 = z * z;
    var s = 1.0 / 13.0;
    s = fma(s, z2, 1.0 / 11.0);
    s = fma(s, z2, 1.0 / 9.0);
    s = fma(s, z2, 1.0 / 7.0);
    s = fma(s, z2, 1.0 / 5.0);
    s = fma(s, z2, 1.0 / 3.0);
    s = fma(s, z2, 1.0);
    return 2.0 * z * s;
}

@compute @workgroup_size(256)
fn prep(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let ln = wid.x;                  // chunk within the segment
    let h = wid.y;
    let nh = p.heads;
    let dk = p.dk;
    let dv = p.dv;
    let t0 = (p.chunk0 + ln) * C;
    let l = min(C, p.t - t0);
    let cr = ln * nh + h;            // (chunk, head) row of the scratch buffers

    if (lid < C) {
        var la = 0.0;
        var bt = 0.0;
        if (lid < l) {
            let th = (t0 + lid) * nh + h;
            if (p.decay == 1u) {
                la = log_decay(decay[th]);
            }
            if (p.delta == 1u) {
                bt = beta[th];
            }
        }
        sbs[lid] = la;
        sbeta[lid] = bt;
    }
    workgroupBarrier();
    if (p.decay == 1u && lid == 0u) {
        for (var i = 1u; i < C; i++) {
            sbs[i] += sbs[i - 1u];
        }
    }
    workgroupBarrier();
    // Per-row decay factors of the scalar (or no) decay: exp(b_i) and exp(b_L - b_i).
    if (lid < C) {
        sga[lid] = exp(sbs[lid]);
        sgl[lid] = exp(sbs[C - 1u] - sbs[lid]);
    }
    workgroupBarrier();

    // Invocation lid owns the pairs (i, j), i in {a2, a2 + 1}, j in {b2, b2 + 1}; the vec4
    // components are (a2, b2), (a2, b2 + 1), (a2 + 1, b2), (a2 + 1, b2 + 1).
    let a2 = (lid / 16u) * 2u;
    let b2 = (lid % 16u) * 2u;
    let live = b2 <= a2 + 1u;
    var accq = vec4<f32>();
    var acca = vec4<f32>();

    for (var d0 = 0u; d0 < dk; d0 += DS) {
        for (var e = lid; e < C * DS; e += WG) {
            let tt = e / DS;
            let d = d0 + e % DS;
            var xq = 0.0;
            var xk = 0.0;
            var xb = 0.0;
            if (tt < l && d < dk) {
                let idx = ((t0 + tt) * nh + h) * dk + d;
                xq = q[idx];
                xk = k[idx];
                if (p.decay == 2u) {
                    xb = log_decay(decay[idx]);
                }
            }
            sq[e] = xq;
            sk[e] = xk;
            sb[e] = xb;
        }
        workgroupBarrier();
        if (p.decay == 2u) {
            if (lid < DS) {
                for (var i = 1u; i < C; i++) {
                    sb[i * DS + lid] += sb[(i - 1u) * DS + lid];
                }
            }
            workgroupBarrier();
        }

        if (live) {
            let r0 = a2 * DS;
            let r1 = r0 + DS;
            let c0 = b2 * DS;
            let c1 = c0 + DS;
            for (var dd = 0u; dd < DS; dd++) {
                let kj0 = sk[c0 + dd];
                let kj1 = sk[c1 + dd];
                var kj = vec4<f32>(kj0, kj1, kj0, kj1);
                if (p.decay == 2u) {
                    let bi0 = sb[r0 + dd];
                    let bi1 = sb[r1 + dd];
                    let bj0 = sb[c0 + dd];
                    let bj1 = sb[c1 + dd];
                    // Pairs with j > i are discarded; clamp so they cannot overflow.
                    let x = vec4<f32>(bi0 - bj0, bi0 - bj1, bi1 - bj0, bi1 - bj1);
                    kj *= exp(min(x, vec4<f32>()));
                }
                let qi0 = sq[r0 + dd];
                let qi1 = sq[r1 + dd];
                accq = fma(vec4<f32>(qi0, qi0, qi1, qi1), kj, accq);
                if (p.delta == 1u) {
                    let ki0 = sk[r0 + dd];
                    let ki1 = sk[r1 + dd];
                    acca = fma(vec4<f32>(ki0, ki0, ki1, ki1), kj, acca);
                }
            }
        }

        // Derived per-token rows for this slice.
        for (var e = lid; e < C * DS; e += WG) {
            let tt = e / DS;
            let dd = e % DS;
            let d = d0 + dd;
            if (d < dk) {
                var ga = sga[tt];
                var gl = sgl[tt];
                var gc = sga[C - 1u];
                if (p.decay == 2u) {
                    let bt = sb[e];
                    let bl = sb[(C - 1u) * DS + dd];
                    ga = exp(bt);
                    gl = exp(bl - bt);
                    gc = exp(bl);
                }
                let o = (cr * C + tt) * dk + d;
                scratch_a[o] = sq[e] * ga;
                scratch_a[p.off_kh + o] = sk[e] * gl;
                if (p.delta == 1u) {
                    scratch_a[p.off_w + o] = sk[e] * ga;
                }
                if (tt == 0u) {
                    scratch_b[p.off_gam + cr * dk + d] = gc;
                }
            }
        }
        workgroupBarrier();
    }

    for (var m = 0u; m < 4u; m++) {
        let ti = a2 + m / 2u;
        let j = b2 + m % 2u;
        var f = 1.0;
        if (p.decay == 1u && j <= ti) {
            f = exp(sbs[ti] - sbs[j]);
        }
        var x = 0.0;
        if (j <= ti) {
            x = accq[m] * f;
        }
        scratch_b[p.off_qm + (cr * C + ti) * C + j] = x;
        if (p.delta == 1u) {
            var a = 0.0;
            if (j < ti) {
                a = sbeta[ti] * acca[m] * f;
            }
            sb[ti * C + j] = a;
        }
    }

    if (p.delta == 1u) {
        // W's right-hand side (K * exp(B)) was written by other invocations.
        storageBarrier();
        workgroupBarrier();
        // Forward substitution, one column of [W | U] per invocation.
        for (var col = lid; col < dk + dv; col += WG) {
            var x: array<f32, 32>;
            for (var i = 0u; i < C; i++) {
                var y = 0.0;
                if (col < dk) {
                    y = scratch_a[p.off_w + (cr * C + i) * dk + col];
                } else if (i < l) {
                    y = v[((t0 + i) * nh + h) * dv + (col - dk)];
                }
                var acc = sbeta[i] * y;
                for (var j = 0u; j < i; j++) {
                    acc = fma(-sb[i * C + j], x[j], acc);
                }
                x[i] = acc;
                if (col < dk) {
                    scratch_a[p.off_w + (cr * C + i) * dk + col] = acc;
                } else {
                    scratch_b[(cr * C + i) * dv + (col - dk)] = acc;
                }
            }
        }
    }
}
