// Hierarchical bank build, k-means assignment: the top-1 kernel.
//
// Points are grouped (every node of one tree level is a group); each point is assigned to the
// best centroid of its own group by the routing score x·c + bias (bias = -|c|²/2, stored in the
// last column of each centroid row, stride d + 1): nearest centroid in L2. Ties go to the lower
// centroid index (strict > while scanning in increasing order), as in the CPU reference
// `kmeans::assign_cpu`. One invocation per point; the linear workgroup id is folded over (x, y).

override WG: u32 = 64u;

struct Params {
    npts: u32,     // points
    d: u32,        // dimensions
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> bank: array<f32>;         // [N, d]
@group(0) @binding(2) var<storage, read> pts: array<u32>;          // bank row of each point
@group(0) @binding(3) var<storage, read> pgrp: array<u32>;         // group of each point
@group(0) @binding(4) var<storage, read> groups: array<vec4<u32>>; // pstart, pcount, cstart, ccount
@group(0) @binding(5) var<storage, read> cents: array<f32>;        // [C, d + 1]
@group(0) @binding(6) var<storage, read_write> assign: array<u32>; // [npts] global centroid index

@compute @workgroup_size(WG)
fn assign_points(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let j = (wid.x + wid.y * nwg.x) * WG + lid;
    if (j >= params.npts) {
        return;
    }
    let d = params.d;
    let g = groups[pgrp[j]];
    let xb = pts[j] * d;
    var best = 0.0;
    var bestc = 0xffffffffu;
    for (var c = g.z; c < g.z + g.w; c = c + 1u) {
        let cb = c * (d + 1u);
        var acc = 0.0;
        for (var i = 0u; i < d; i = i + 1u) {
            acc = acc + bank[xb + i] * cents[cb + i];
        }
        let s = acc + cents[cb + d];
        if (bestc == 0xffffffffu || s > best) {
            best = s;
            bestc = c;
        }
    }
    assign[j] = bestc;
}
