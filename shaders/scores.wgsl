// Batched dot-product scores: out[b, i] = dot(queries[b, :], bank[i, :]).
//
// One invocation per (bank row, query). Rows are spread over workgroups of WG invocations; the
// linear workgroup id is folded over (x, y) so that banks with more than 65,535 * WG rows can be
// dispatched; the query index is the z dimension. Dimensions need not be multiples of anything.

override WG: u32 = 64u;

struct Params {
    n: u32,        // bank rows
    d: u32,        // dimensions
    b: u32,        // queries
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> bank: array<f32>;
@group(0) @binding(2) var<storage, read> queries: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn scores(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let group = wid.x + wid.y * groups.x;
    let row = group * WG + lid;
    let q = wid.z;
    if (row >= params.n || q >= params.b) {
        return;
    }
    let d = params.d;
    let rb = row * d;
    let qb = q * d;
    var acc = 0.0;
    for (var j = 0u; j < d; j = j + 1u) {
        acc = fma(bank[rb + j], queries[qb + j], acc);
    }
    out[q * params.n + row] = acc;
}
