// Tiled matmul C[M, N] = A[M, K] B[K, N] (row-major f32), the reference for the adapter's
// achievable arithmetic peak in the attention benchmarks.
//
// One workgroup of 16 x 16 invocations per 64 x 64 tile of C; each invocation accumulates a
// 4 x 4 block in registers. Per step, a 64 x 16 slab of A (stored transposed) and a 16 x 64 slab
// of B are staged in workgroup memory (8 KiB). Any M, N, K (edges are zero-padded).

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

struct Dims {
    m: u32,
    n: u32,
    k: u32,
    tiles_n: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

var<workgroup> at: array<f32, 1024>; // [TK][TM]
var<workgroup> bt: array<f32, 1024>; // [TK][TN]

@compute @workgroup_size(16, 16)
fn matmul(
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
        // 1024 values of each slab, 4 per invocation.
        for (var x = lid; x < 1024u; x += 256u) {
            // A slab: row r = x / TK, col kk = x % TK (coalesced along k), stored [kk][r].
            let r = x / TK;
            let kk = x % TK;
            var va = 0.0;
            if (m0 + r < dims.m && k0 + kk < dims.k) {
                va = a[(m0 + r) * dims.k + k0 + kk];
            }
            at[kk * TM + r] = va;
            // B slab: row kk = x / TN, col cc = x % TN, stored [kk][cc].
            let kb = x / TN;
            let cc = x % TN;
            var vb = 0.0;
            if (k0 + kb < dims.k && n0 + cc < dims.n) {
                vb = b[(k0 + kb) * dims.n + n0 + cc];
            }
            bt[x] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var u = 0u; u < 4u; u++) {
                ar[u] = at[kk * TM + ty * 4u + u];
                br[u] = bt[kk * TN + tx + u * 16u];
            }
            for (var u = 0u; u < 4u; u++) {
                for (var w = 0u; w < 4u; w++) {
                    acc[u * 4u + w] = fma(ar[u], br[w], acc[u * 4u + w]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var u = 0u; u < 4u; u++) {
        let r = m0 + ty * 4u + u;
        for (var w = 0u; w < 4u; w++) {
            let cc = n0 + tx + w * 16u;
            if (r < dims.m && cc < dims.n) {
                c[r * dims.n + cc] = acc[u * 4u + w];
            }
        }
    }
}
