// Linear recurrence, chunked form, pass 2 of 2: carry the state across the chunks of a segment
// and write the outputs. One workgroup per (dv tile of BV columns, head); the state tile
// S (dk x BV) lives in workgroup memory. Per chunk (inputs from pass 1):
//   U~ = U - W S            (delta rule; otherwise U~ = V)
//   O  = scale (qt S + tril(Qm) U~)
//   S  = diag(gam) S + kh^T U~
// Two barriers per chunk; every inner product is computed whole by one invocation.

override DELTA: u32 = 0u;
override BV: u32 = 16u;     // columns per workgroup; dk * BV <= 2048
override PAIRS: u32 = 2u;   // ceil(C * BV / WG)

const C: u32 = 32u;
const WG: u32 = 256u;

struct Params {
    t: u32,
    heads: u32,
    dk: u32,
    dv: u32,
    chunk0: u32,
    n_chunks: u32,
    off_kh: u32,
    off_w: u32,
    off_qm: u32,
    off_gam: u32,
    scale: f32,
    has_state: u32,  // 1: the first segment starts from state_in
    state_off: u32,  // offset of the state in `result` (after the outputs)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read> scratch_a: array<f32>;
@group(0) @binding(3) var<storage, read> scratch_b: array<f32>;
@group(0) @binding(4) var<storage, read> state_in: array<f32>;
// Outputs [T, H, dv] followed by the state [H, dk, dv] (carried between segments).
@group(0) @binding(5) var<storage, read_write> result: array<f32>;

var<workgroup> ss: array<f32, 2048>;  // [dk][BV] state tile
var<workgroup> su: array<f32, 512>;   // [C][BV] pseudo-values U~

@compute @workgroup_size(256)
fn scan(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let h = wid.y;
    let col0 = wid.x * BV;
    let nh = p.heads;
    let dk = p.dk;
    let dv = p.dv;

    for (var e = lid; e < dk * BV; e += WG) {
        let col = col0 + e % BV;
        let si = (h * dk + e / BV) * dv + col;
        var x = 0.0;
        if (col < dv) {
            if (p.chunk0 > 0u) {
                x = result[p.state_off + si];
            } else if (p.has_state == 1u) {
                x = state_in[si];
            }
        }
        ss[e] = x;
    }
    workgroupBarrier();

    for (var ln = 0u; ln < p.n_chunks; ln++) {
        let t0 = (p.chunk0 + ln) * C;
        let l = min(C, p.t - t0);
        let cr = ln * nh + h;

        // U~ and the inter-chunk part of the outputs.
        var qs: array<f32, 4>;
        for (var i = 0u; i < PAIRS; i++) {
            let e = lid + i * WG;
            if (e < C * BV) {
                let tt = e / BV;
                let c = e % BV;
                let col = col0 + c;
                let rb = (cr * C + tt) * dk;
                var aq = 0.0;
                var aw = 0.0;
                for (var d = 0u; d < dk; d++) {
                    let sv = ss[d * BV + c];
                    aq = fma(scratch_a[rb + d], sv, aq);
                    if (DELTA == 1u) {
                        aw = fma(scratch_a[p.off_w + rb + d], sv, aw);
                    }
                }
                var u = 0.0;
                if (tt < l && col < dv) {
                    if (DELTA == 1u) {
                        u = scratch_b[(cr * C + tt) * dv + col] - aw;
                    } else {
                        u = v[((t0 + tt) * nh + h) * dv + col];
                    }
                }
                su[e] = u;
                qs[i] = aq;
            }
        }
        workgroupBarrier();

        // Outputs: add the intra-chunk part.
        for (var i = 0u; i < PAIRS; i++) {
            let e = lid + i * WG;
            let tt = e / BV;
            let c = e % BV;
            let col = col0 + c;
            if (e < C * BV && tt < l && col < dv) {
                var o = qs[i];
                let mb = p.off_qm + (cr * C + tt) * C;
                for (var j = 0u; j <= tt; j++) {
                    o = fma(scratch_b[mb + j], su[j * BV + c], o);
                }
                result[((t0 + tt) * nh + h) * dv + col] = p.scale * o;
            }
        }
        // State: decay across the chunk, then add the chunk's writes.
        for (var e = lid; e < dk * BV; e += WG) {
            let d = e / BV;
            let c = e % BV;
            var x = scratch_b[p.off_gam + cr * dk + d] * ss[e];
            for (var j = 0u; j < l; j++) {
                x = fma(scratch_a[p.off_kh + (cr * C + j) * dk + d], su[j * BV + c], x);
            }
            ss[e] = x;
        }
        workgroupBarrier();
    }

    for (var e = lid; e < dk * BV; e += WG) {
        let col = col0 + e % BV;
        if (col < dv) {
            result[p.state_off + (h * dk + e / BV) * dv + col] = ss[e];
        }
    }
}
