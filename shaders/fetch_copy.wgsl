// A plain copy kernel (`dst = src`, one vec4 per invocation): the bandwidth baseline that the
// top-k scan is measured against on the same adapter in the same run (benchmarks only).

const WG: u32 = 256u;

struct Params {
    n4: u32,  // vec4s to copy
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<u32>>;

@compute @workgroup_size(WG)
fn copy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i < p.n4) {
        dst[i] = src[i];
    }
}
