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
// dk is processed in slices of DS columns staged in workgroup memory (about 10.5 KiB in all).

override DECAY: u32 = 0u;   // 0: none, 1: scalar [T, H], 2: vector [T, H, dk]
override DELTA: u32 = 0u;   // 1: delta rule

const C: u32 = 32u;         // tokens per chunk (CHUNK in the host code)
const DS: u32 = 16u;        // dk slice staged at a time
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
    _pad0: u32,
    _pad1: u32,
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

var<workgroup> sb: array<f32, 512>;    // [C][DS] cumulative log decay (vector decay)
var<workgroup> sq: array<f32, 512>;    // [C][DS] q slice
var<workgroup> sk: array<f32, 512>;    // [C][DS] k slice
var<workgroup> sbs: array<f32, 32>;    // [C] cumulative log decay (scalar decay)
var<workgroup> sbeta: array<f32, 32>;  // [C]
var<workgroup> sa: array<f32, 1024>;   // [C][C] A (delta)

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
            if (DECAY == 1u) {
                la = log(decay[th]);
            }
            if (DELTA == 1u) {
                bt = beta[th];
            }
        }
        sbs[lid] = la;
        sbeta[lid] = bt;
    }
    workgroupBarrier();
    if (DECAY == 1u && lid == 0u) {
        for (var i = 1u; i < C; i++) {
            sbs[i] += sbs[i - 1u];
        }
    }
    workgroupBarrier();

    // Invocation lid owns the pairs (ti, jb + 8m), m = 0..3.
    let ti = lid / 8u;
    let jb = lid % 8u;
    var accq: array<f32, 4>;
    var acca: array<f32, 4>;

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
                if (DECAY == 2u) {
                    xb = log(decay[idx]);
                }
            }
            sq[e] = xq;
            sk[e] = xk;
            sb[e] = xb;
        }
        workgroupBarrier();
        if (DECAY == 2u && lid < DS) {
            for (var i = 1u; i < C; i++) {
                sb[i * DS + lid] += sb[(i - 1u) * DS + lid];
            }
        }
        workgroupBarrier();

        for (var m = 0u; m < 4u; m++) {
            let j = jb + 8u * m;
            if (j <= ti) {
                var aq = accq[m];
                var ak = acca[m];
                for (var dd = 0u; dd < DS; dd++) {
                    var kj = sk[j * DS + dd];
                    if (DECAY == 2u) {
                        kj *= exp(sb[ti * DS + dd] - sb[j * DS + dd]);
                    }
                    aq = fma(sq[ti * DS + dd], kj, aq);
                    if (DELTA == 1u) {
                        ak = fma(sk[ti * DS + dd], kj, ak);
                    }
                }
                accq[m] = aq;
                acca[m] = ak;
            }
        }

        // Derived per-token rows for this slice.
        for (var e = lid; e < C * DS; e += WG) {
            let tt = e / DS;
            let dd = e % DS;
            let d = d0 + dd;
            if (d < dk) {
                var bt = 0.0;
                var bl = 0.0;
                if (DECAY == 1u) {
                    bt = sbs[tt];
                    bl = sbs[C - 1u];
                } else if (DECAY == 2u) {
                    bt = sb[e];
                    bl = sb[(C - 1u) * DS + dd];
                }
                let o = (cr * C + tt) * dk + d;
                scratch_a[o] = sq[e] * exp(bt);
                scratch_a[p.off_kh + o] = sk[e] * exp(bl - bt);
                if (DELTA == 1u) {
                    scratch_a[p.off_w + o] = sk[e] * exp(bt);
                }
                if (tt == 0u) {
                    scratch_b[p.off_gam + cr * dk + d] = exp(bl);
                }
            }
        }
        workgroupBarrier();
    }

    for (var m = 0u; m < 4u; m++) {
        let j = jb + 8u * m;
        var f = 1.0;
        if (DECAY == 1u && j <= ti) {
            f = exp(sbs[ti] - sbs[j]);
        }
        var x = 0.0;
        if (j <= ti) {
            x = accq[m] * f;
        }
        scratch_b[p.off_qm + (cr * C + ti) * C + j] = x;
        if (DELTA == 1u) {
            var a = 0.0;
            if (j < ti) {
                a = sbeta[ti] * acca[m] * f;
            }
            sa[ti * C + j] = a;
        }
    }

    if (DELTA == 1u) {
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
                    acc = fma(-sa[i * C + j], x[j], acc);
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
