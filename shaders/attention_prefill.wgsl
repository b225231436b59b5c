// Tiled softmax attention (prefill) with online softmax: out = softmax(q k^T / sqrt(D)) v per
// (query, head), nothing of size Tq x Tk materialised.
//
// One workgroup per (block of BQ queries, head); TPQ invocations per query (WG = BQ * TPQ).
// The query block is loaded once (pre-scaled) into workgroup memory; the keys are walked in
// tiles of BK keys whose K and V rows are staged in workgroup memory (K rows padded to D + 1
// floats so that invocations reading different rows hit different banks). Per tile:
//   1. every invocation computes full dot products for keys c = t, t + TPQ, ... of its query
//      into `ss` (masked keys get the MASKED sentinel);
//   2. every invocation of a query reads the query's BK scores, updates the running maximum m
//      and sum l (identically in all TPQ invocations), rescales its accumulator and adds
//      p * v for its dims d = t, t + TPQ, ... (DPT = ceil(D / TPQ) <= 16 dims each).
// Fully masked rows (l = 0) are written as zeros. No infinities are used: WGSL implementations
// may assume there are none, so masked scores are a large negative sentinel instead.
//
// Causal: queries are the last Tq positions (query i sits at i + offset, offset = Tk - Tq) and
// see keys j <= i + offset; key tiles past the block's last visible key are skipped.
// Workgroup memory: 4 * (BQ*D + BK*(D+1) + BK*D + BQ*BK) bytes; the host picks BQ, BK, TPQ so
// that it fits WebGPU's default 16 KiB.

override D: u32 = 64u;
override BQ: u32 = 16u;
override BK: u32 = 8u;
override TPQ: u32 = 8u;
override WG: u32 = 128u; // = BQ * TPQ

const DPT: u32 = 16u;
const MASKED: f32 = -3.0e38;
const VALID: f32 = -1.0e38; // scores above this are real

struct Params {
    tq: u32,
    tk: u32,
    heads: u32,
    kv_heads: u32,
    group: u32,      // heads / kv_heads
    causal: u32,
    has_mask: u32,
    q_blocks: u32,   // ceil(tq / BQ)
    scale: f32,
    offset: i32,     // tk - tq
    window: u32,
    block_size: u32,
    n_blocks: u32,
    top: u32,
    chunk: u32,
    splits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> qs: array<f32, BQ * D>;
var<workgroup> ks: array<f32, BK * (D + 1u)>;
var<workgroup> vs: array<f32, BK * D>;
var<workgroup> ss: array<f32, BQ * BK>;

fn key_kept(j: u32) -> bool {
    return p.has_mask == 0u || ((mask[j >> 5u] >> (j & 31u)) & 1u) == 1u;
}

@compute @workgroup_size(WG)
fn prefill(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let gid = wid.x + wid.y * nwg.x;
    if (gid >= p.q_blocks * p.heads) {
        return;
    }
    let h = gid / p.q_blocks;
    let q0 = (gid % p.q_blocks) * BQ;
    let kvh = h / p.group;
    let qr = lid / TPQ;
    let t = lid % TPQ;
    let i = q0 + qr;
    let row_valid = i < p.tq;
    let q_stride = p.heads * D;
    let kv_stride = p.kv_heads * D;
    let pos = i32(i) + p.offset;

    for (var x = lid; x < BQ * D; x += WG) {
        let r = x / D;
        var val = 0.0;
        if (q0 + r < p.tq) {
            val = q[(q0 + r) * q_stride + h * D + x % D] * p.scale;
        }
        qs[x] = val;
    }

    var kend = p.tk;
    if (p.causal != 0u) {
        let last = i32(min(q0 + BQ, p.tq)) - 1 + p.offset;
        kend = u32(clamp(last + 1, 0, i32(p.tk)));
    }

    var m = MASKED;
    var l = 0.0;
    var acc: array<f32, DPT>;
    for (var k0 = 0u; k0 < kend; k0 += BK) {
        workgroupBarrier(); // the previous tile is consumed (and qs is loaded)
        for (var x = lid; x < BK * D; x += WG) {
            let r = x / D;
            let d = x % D;
            let j = k0 + r;
            var kv = 0.0;
            var vv = 0.0;
            if (j < p.tk) {
                let b = j * kv_stride + kvh * D + d;
                kv = k[b];
                vv = v[b];
            }
            ks[r * (D + 1u) + d] = kv;
            vs[x] = vv;
        }
        workgroupBarrier();
        for (var c = t; c < BK; c += TPQ) {
            let j = k0 + c;
            var s = MASKED;
            if (row_valid && j < p.tk && key_kept(j) && (p.causal == 0u || i32(j) <= pos)) {
                let qb = qr * D;
                let kb = c * (D + 1u);
                var dv = 0.0;
                for (var d = 0u; d < D; d++) {
                    dv = fma(qs[qb + d], ks[kb + d], dv);
                }
                s = dv;
            }
            ss[qr * BK + c] = s;
        }
        workgroupBarrier();
        var tmax = MASKED;
        for (var c = 0u; c < BK; c++) {
            tmax = max(tmax, ss[qr * BK + c]);
        }
        if (tmax > VALID) {
            let mnew = max(m, tmax);
            var alpha = 0.0;
            if (m > VALID) {
                alpha = exp(m - mnew);
            }
            l *= alpha;
            for (var r = 0u; r < DPT; r++) {
                acc[r] *= alpha;
            }
            for (var c = 0u; c < BK; c++) {
                let s = ss[qr * BK + c];
                if (s > VALID) {
                    let pw = exp(s - mnew);
                    l += pw;
                    for (var r = 0u; r < DPT; r++) {
                        let d = t + r * TPQ;
                        if (d < D) {
                            acc[r] = fma(pw, vs[c * D + d], acc[r]);
                        }
                    }
                }
            }
            m = mnew;
        }
    }

    if (row_valid) {
        var inv = 0.0;
        if (l > 0.0) {
            inv = 1.0 / l;
        }
        for (var r = 0u; r < DPT; r++) {
            let d = t + r * TPQ;
            if (d < D) {
                out[i * q_stride + h * D + d] = acc[r] * inv;
            }
        }
    }
}
