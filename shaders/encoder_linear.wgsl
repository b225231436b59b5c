// Dense layer of the text encoder: Y[M, N] = X[M, K] · W[N, K]ᵀ + b (row-major f32; W as stored
// by PyTorch, one row per output feature), with an optional exact GELU epilogue
// (override GELU = 1: y = ½ y (1 + erf(y / √2)), erf as in the CPU reference).
//
// One workgroup of 16 x 16 invocations per 64 x 64 tile of Y; each invocation accumulates a
// 4 x 4 block in registers. Per step a 64 x 16 slab of X and a 64 x 16 slab of W (both read
// along K, coalesced) are staged transposed in workgroup memory (8 KiB). Any M, N, K (edges are
// zero-padded).

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

override GELU: u32 = 0u;

struct Dims {
    m: u32,
    n: u32,
    k: u32,
    tiles_n: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> xt: array<f32, 1024>; // [TK][TM]
var<workgroup> wt: array<f32, 1024>; // [TK][TN]

// Abramowitz & Stegun 7.1.26, |error| < 1.5e-7.
fn erf(v: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * abs(v));
    let poly = t * (0.2548296 + t * (-0.28449674 + t * (1.4214137 + t * (-1.4531521 + t * 1.0614054))));
    let r = 1.0 - poly * exp(-v * v);
    return select(r, -r, v < 0.0);
}

@compute @workgroup_size(16, 16)
fn linear(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = wid.x + wid.y * nwg.x;
    let tiles_m = (dims.m + TM - 1u) / TM;
    if (tile >= tiles_m * dims.tiles_n) {
        return;
    }
    let m0 = (tile / dims.tiles_n) * TM;
    let n0 = (tile % dims.tiles_n) * TN;
    let tx = lid3.x; // column group
    let ty = lid3.y; // row group
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < dims.k; k0 += TK) {
        for (var i = lid; i < 1024u; i += 256u) {
            // Row r = i / TK of the slab, column kk = i % TK (coalesced along k), stored [kk][r].
            let r = i / TK;
            let kk = i % TK;
            var vx = 0.0;
            if (m0 + r < dims.m && k0 + kk < dims.k) {
                vx = x[(m0 + r) * dims.k + k0 + kk];
            }
            xt[kk * TM + r] = vx;
            var vw = 0.0;
            if (n0 + r < dims.n && k0 + kk < dims.k) {
                vw = w[(n0 + r) * dims.k + k0 + kk];
            }
            wt[kk * TN + r] = vw;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var u = 0u; u < 4u; u++) {
                ar[u] = xt[kk * TM + ty * 4u + u];
                br[u] = wt[kk * TN + tx + u * 16u];
            }
            for (var u = 0u; u < 4u; u++) {
                for (var v = 0u; v < 4u; v++) {
                    acc[u * 4u + v] = fma(ar[u], br[v], acc[u * 4u + v]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var u = 0u; u < 4u; u++) {
        let r = m0 + ty * 4u + u;
        for (var v = 0u; v < 4u; v++) {
            let c = n0 + tx + v * 16u;
            if (r < dims.m && c < dims.n) {
                var o = acc[u * 4u + v] + bias[c];
                if (GELU != 0u) {
                    o = 0.5 * o * (1.0 + erf(o * 0.70710678));
                }
                y[r * dims.n + c] = o;
            }
        }
    }
}
