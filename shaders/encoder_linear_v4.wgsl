// Dense layer of the text encoder for CPU-backed adapters (lavapipe, SwiftShader):
// Y[M, N] = X[M, K] · W[N, K]ᵀ + b (row-major f32, W as stored by PyTorch), with an optional
// exact GELU epilogue, as `linear` in encoder_linear.wgsl, but without workgroup memory: these
// adapters run invocations as SIMD lanes and barriers are expensive, so each invocation computes
// a register block from its own vec4 loads.
//
// X and W are read as vec4 along K (K a multiple of 4; dims.k = K / 4). Each invocation
// accumulates an 8 x 8 block of Y in 16 vec4: per step of 4 along K it loads 8 vec4 of X and 8
// of W (two 4 x 4 matrices whose columns are rows of W) for 256 multiply-adds (`v * m` = four dot
// products). A workgroup of 64 = 2 x 32 invocations covers 16 rows x 256 columns;
// tiles_n = ceil(N / 256). Rows / columns past M / N read the last valid one (no branch in the
// loop); their results are not written. The loops are unrolled by hand (SwiftShader does not
// unroll loops and keeps indexed arrays in memory). On lavapipe this is ~10x `linear` and the
// former transposed-weight kernel (measurements in the encoder section of README.md).

override GELU: u32 = 0u;

struct Dims {
    m: u32,
    n: u32,
    k4: u32,
    tiles_n: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> xv: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> wv: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// Abramowitz & Stegun 7.1.26, |error| < 1.5e-7 (as in encoder_linear.wgsl).
fn erf(v: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * abs(v));
    let poly = t * (0.2548296 + t * (-0.28449674 + t * (1.4214137 + t * (-1.4531521 + t * 1.0614054))));
    let r = 1.0 - poly * exp(-v * v);
    return select(r, -r, v < 0.0);
}

fn put4(r: u32, c: u32, v: vec4<f32>) {
    if (r >= dims.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (c + j < dims.n) {
            var o = v[j] + bias[c + j];
            if (GELU != 0u) {
                o = 0.5 * o * (1.0 + erf(o * 0.70710678));
            }
            y[r * dims.n + c + j] = o;
        }
    }
}

@compute @workgroup_size(64)
fn linear_v4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    let r0 = (g / dims.tiles_n) * 16u + (lid / 32u) * 8u;
    let c0 = (g % dims.tiles_n) * 256u + (lid % 32u) * 8u;
    if (r0 >= dims.m || c0 >= dims.n) {
        return;
    }
    let k4 = dims.k4;
    let ml = dims.m - 1u;
    let nl = dims.n - 1u;
    let x0 = min(r0, ml) * k4;
    let x1 = min(r0 + 1u, ml) * k4;
    let x2 = min(r0 + 2u, ml) * k4;
    let x3 = min(r0 + 3u, ml) * k4;
    let x4 = min(r0 + 4u, ml) * k4;
    let x5 = min(r0 + 5u, ml) * k4;
    let x6 = min(r0 + 6u, ml) * k4;
    let x7 = min(r0 + 7u, ml) * k4;
    let w0 = min(c0, nl) * k4;
    let w1 = min(c0 + 1u, nl) * k4;
    let w2 = min(c0 + 2u, nl) * k4;
    let w3 = min(c0 + 3u, nl) * k4;
    let w4 = min(c0 + 4u, nl) * k4;
    let w5 = min(c0 + 5u, nl) * k4;
    let w6 = min(c0 + 6u, nl) * k4;
    let w7 = min(c0 + 7u, nl) * k4;
    // a<row>_<column group>
    var a0_0 = vec4<f32>();
    var a0_1 = vec4<f32>();
    var a1_0 = vec4<f32>();
    var a1_1 = vec4<f32>();
    var a2_0 = vec4<f32>();
    var a2_1 = vec4<f32>();
    var a3_0 = vec4<f32>();
    var a3_1 = vec4<f32>();
    var a4_0 = vec4<f32>();
    var a4_1 = vec4<f32>();
    var a5_0 = vec4<f32>();
    var a5_1 = vec4<f32>();
    var a6_0 = vec4<f32>();
    var a6_1 = vec4<f32>();
    var a7_0 = vec4<f32>();
    var a7_1 = vec4<f32>();
    for (var k = 0u; k < k4; k++) {
        let m0 = mat4x4<f32>(wv[w0 + k], wv[w1 + k], wv[w2 + k], wv[w3 + k]);
        let m1 = mat4x4<f32>(wv[w4 + k], wv[w5 + k], wv[w6 + k], wv[w7 + k]);
        let v0 = xv[x0 + k];
        a0_0 += v0 * m0;
        a0_1 += v0 * m1;
        let v1 = xv[x1 + k];
        a1_0 += v1 * m0;
        a1_1 += v1 * m1;
        let v2 = xv[x2 + k];
        a2_0 += v2 * m0;
        a2_1 += v2 * m1;
        let v3 = xv[x3 + k];
        a3_0 += v3 * m0;
        a3_1 += v3 * m1;
        let v4 = xv[x4 + k];
        a4_0 += v4 * m0;
        a4_1 += v4 * m1;
        let v5 = xv[x5 + k];
        a5_0 += v5 * m0;
        a5_1 += v5 * m1;
        let v6 = xv[x6 + k];
        a6_0 += v6 * m0;
        a6_1 += v6 * m1;
        let v7 = xv[x7 + k];
        a7_0 += v7 * m0;
        a7_1 += v7 * m1;
    }
    put4(r0, c0, a0_0);
    put4(r0, c0 + 4u, a0_1);
    put4(r0 + 1u, c0, a1_0);
    put4(r0 + 1u, c0 + 4u, a1_1);
    put4(r0 + 2u, c0, a2_0);
    put4(r0 + 2u, c0 + 4u, a2_1);
    put4(r0 + 3u, c0, a3_0);
    put4(r0 + 3u, c0 + 4u, a3_1);
    put4(r0 + 4u, c0, a4_0);
    put4(r0 + 4u, c0 + 4u, a4_1);
    put4(r0 + 5u, c0, a5_0);
    put4(r0 + 5u, c0 + 4u, a5_1);
    put4(r0 + 6u, c0, a6_0);
    put4(r0 + 6u, c0 + 4u, a6_1);
    put4(r0 + 7u, c0, a7_0);
    put4(r0 + 7u, c0 + 4u, a7_1);
}
