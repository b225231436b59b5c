// Hierarchical bank fetch: gather the selected rows into one contiguous [nq, k, d] buffer on the
// GPU (zeros for empty result slots), so a model can consume them without a CPU round trip.
// One workgroup per result row; invocations stride over the dimensions.

override WG: u32 = 64u;
const NOID: u32 = 0xffffffffu;

struct Params {
    nrows: u32,   // nq * k result rows
    d: u32,
    _pad0: u32,
    _pad1: u32,
}

struct Item {
    s: f32,
    id: u32,
    pos: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> sel: array<Item>;      // [nq * k]
@group(0) @binding(2) var<storage, read> data: array<f32>;      // bank rows in leaf order
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // [nq * k, d]

@compute @workgroup_size(WG)
fn gather(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= params.nrows) {
        return;
    }
    let d = params.d;
    let it = sel[r];
    for (var i = lid; i < d; i = i + WG) {
        var v = 0.0;
        if (it.id != NOID) {
            v = data[it.pos * d + i];
        }
        out[r * d + i] = v;
    }
}
