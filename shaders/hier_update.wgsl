// Hierarchical bank build, k-means centroid update.
//
// One workgroup per centroid (linear id folded over (x, y)); each invocation owns dimensions
// lid, lid + WG, ... For every dimension the workgroup walks its group's points in order (tiles of
// WG assignments staged in workgroup memory) and sums the rows assigned to this centroid, so the
// summation order is the point order, as in the CPU reference `kmeans::update_cpu`. A centroid
// with points becomes sum / count and gets its bias -|c|²/2; one without keeps its value.

override WG: u32 = 64u;

struct Params {
    ncent: u32,    // centroids
    d: u32,        // dimensions
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> bank: array<f32>;
@group(0) @binding(2) var<storage, read> pts: array<u32>;
@group(0) @binding(3) var<storage, read> assign: array<u32>;
@group(0) @binding(4) var<storage, read> cgrp: array<u32>;          // group of each centroid
@group(0) @binding(5) var<storage, read> groups: array<vec4<u32>>;  // pstart, pcount, cstart, ccount
@group(0) @binding(6) var<storage, read_write> cents: array<f32>;   // [C, d + 1]
@group(0) @binding(7) var<storage, read_write> counts: array<u32>;  // [C]

var<workgroup> tile_a: array<u32, WG>;
var<workgroup> tile_p: array<u32, WG>;
var<workgroup> red: array<f32, WG>;
var<workgroup> range: vec2<u32>;

@compute @workgroup_size(WG)
fn update_centroids(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let c = wid.x + wid.y * nwg.x;
    if (c >= params.ncent) {
        return;
    }
    let d = params.d;
    if (lid == 0u) {
        let g = groups[cgrp[c]];
        range = g.xy;
    }
    let r = workgroupUniformLoad(&range);
    let pstart = r.x;
    let pcount = r.y;
    var count = 0u;
    var sq = 0.0;
    let cb = c * (d + 1u);
    for (var base = 0u; base < d; base = base + WG) {
        let dim = base + lid;
        var acc = 0.0;
        var n = 0u;
        for (var t0 = 0u; t0 < pcount; t0 = t0 + WG) {
            workgroupBarrier();
            if (t0 + lid < pcount) {
                tile_a[lid] = assign[pstart + t0 + lid];
                tile_p[lid] = pts[pstart + t0 + lid];
            }
            workgroupBarrier();
            let m = min(WG, pcount - t0);
            for (var t = 0u; t < m; t = t + 1u) {
                if (tile_a[t] == c) {
                    n = n + 1u;
                    if (dim < d) {
                        acc = acc + bank[tile_p[t] * d + dim];
                    }
                }
            }
        }
        count = n;
        if (n > 0u && dim < d) {
            let v = acc / f32(n);
            cents[cb + dim] = v;
            sq = sq + v * v;
        } else if (dim < d) {
            let v = cents[cb + dim];
            sq = sq + v * v;
        }
    }
    red[lid] = sq;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        counts[c] = count;
        if (count > 0u) {
            cents[cb + d] = -0.5 * red[0];
        }
    }
}
