// Linear recurrence, chunked form, pass 2 of 2: carry the state across the chunks of a segment
// and write the outputs. One workgroup per (dv tile of BV columns, head); the state tile
// S (dk x BV) lives in workgroup memory as vec4 columns. Per chunk (inputs from pass 1):
//   U~ = U - W S            (delta rule; otherwise U~ = V)
//   O  = scale (qt S + tril(Qm) U~)
//   S  = diag(gam) S + kh^T U~
// Two barriers per chunk. Each invocation computes whole inner products for 4 adjacent columns
// (a vec4), so every value loaded from memory feeds 4 FMAs.

override BV: u32 = 16u;     // columns per workgroup, a multiple of 4; dk * BV <= 2048; C * BV <= 1024

const C: u32 = 32u;
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
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read> scratch_a: array<f32>;
@group(0) @binding(3) var<storage, read> scratch_b: array<f32>;
@group(0) @binding(4) var<storage, read> state_in: array<f32>;
// Outputs [T, H, dv] followed by the state [H, dk, dv] (carried between segments).
@group(0) @binding(5) var<storage, read_write> result: array<f32>;

var<workgroup> ss: array<vec4<f32>, 512>;  // [dk][BV / 4] state tile
var<workgroup> su: array<vec4<f32>, 256>;  // [C][BV / 4] pseudo-values U~

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
    let nv = BV / 4u;

    for (var e = lid; e < dk * nv; e += WG) {
        let d = e / nv;
        let c4 = col0 + (e % nv) * 4u;
        var x = vec4<f32>();
        for (var i = 0u; i < 4u; i++) {
            let col = c4 + i;
            let si = (h * dk + d) * dv + col;
            if (col < dv) {
                if (p.chunk0 > 0u) {
                    x[i] = result[p.state_off + si];
                } else if (p.has_state == 1u) {
                    x[i] = state_in[si];
                }
            }
        }
        ss[e] = x;
    }
    workgroupBarrier();

    // Invocation lid owns row tt and columns c4 .. c4 + 3 of the chunk's U~ and outputs.
    let tt = lid / nv;
    let cv = lid % nv;
    let c4 = col0 + cv * 4u;
    let owns = lid < C * nv;

    for (var ln = 0u; ln < p.n_chunks; ln++) {
        let t0 = (p.chunk0 + ln) * C;
        let l = min(C, p.t - t0);
        let cr = ln * nh + h;

        // U~ and the inter-chunk part of the outputs.
        var qs = vec4<f32>();
        if (owns) {
            let rb = (cr * C + tt) * dk;
            var aw = vec4<f32>();
            for (var d = 0u; d < dk; d++) {
                let sv = ss[d * nv + cv];
                qs = fma(vec4<f32>(scratch_a[rb + d]), sv, qs);
                if (p.delta == 1u) {
                    aw = fma(vec4<f32>(scratch_a[p.off_w + rb + d]), sv, aw);
                }
            }
            var u = vec4<f32>();
            if (tt < l) {
                for (var i = 0u; i < 4u; i++) {
                    let col = c4 + i;
                    if (col < dv) {
                        if (p.delta == 1u) {
                            u[i] = scratch_b[(cr * C + tt) * dv + col] - aw[i];
                        } else {
                            u[i] = v[((t0 + tt) * nh + h) * dv + col];
                        }
                    }
                }
            }
            su[lid] = u;
        }
        workgroupBarrier();

        // Outputs: add the intra-chunk part.
        if (owns && tt < l) {
            var o = qs;
            let mb = p.off_qm + (cr * C + tt) * C;
            for (var j = 0u; j <= tt; j++) {
                o = fma(vec4<f32>(scratch_b[mb + j]), su[j * nv + cv], o);
            }
            let ob = ((t0 + tt) * nh + h) * dv;
            for (var i = 0u; i < 4u; i++) {
                if (c4 + i < dv) {
                    result[ob + c4 + i] = p.scale * o[i];
                }
            }
        }
        // State: decay across the chunk, then add the chunk's writes.
        for (var e = lid; e < dk * nv; e += WG) {
            let d = e / nv;
            let ce = e % nv;
            var x = scratch_b[p.off_gam + cr * dk + d] * ss[e];
            let kb = p.off_kh + cr * C * dk + d;
            for (var j = 0u; j < l; j++) {
                x = fma(vec4<f32>(scratch_a[kb + j * dk]), su[j * nv + ce], x);
            }
            ss[e] = x;
        }
        workgroupBarrier();
    }

    for (var e = lid; e < dk * nv; e += WG) {
        let d = e / nv;
        let c4e = col0 + (e % nv) * 4u;
        let x = ss[e];
        for (var i = 0u; i < 4u; i++) {
            let col = c4e + i;
            if (col < dv) {
                result[p.state_off + (h * dk + d) * dv + col] = x[i];
            }
        }
    }
}
