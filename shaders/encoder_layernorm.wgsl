// LayerNorm of the text encoder, with the residual add fused: for each row of `h` values,
// z = x + r (r only when `has_residual`), y = (z - mean) / sqrt(var + eps) * gamma + beta
// (biased variance, two passes over the row held in workgroup memory).
//
// One workgroup of 64 invocations per row (rows folded over x, y); rows up to 1024 wide.

const WG: u32 = 64u;
const MAXH: u32 = 1024u;

struct Params {
    rows: u32,
    h: u32,
    has_residual: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> res: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

var<workgroup> row: array<f32, MAXH>;
var<workgroup> part: array<f32, WG>;

fn reduce(lid: u32, v: f32) -> f32 {
    part[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            part[lid] += part[lid + s];
        }
        workgroupBarrier();
    }
    let total = part[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64)
fn layernorm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.h;
    var sum = 0.0;
    for (var i = lid; i < p.h; i += WG) {
        var z = x[base + i];
        if (p.has_residual != 0u) {
            z += res[base + i];
        }
        row[i] = z;
        sum += z;
    }
    let mean = reduce(lid, sum) / f32(p.h);
    var sq = 0.0;
    for (var i = lid; i < p.h; i += WG) {
        let d = row[i] - mean;
        sq += d * d;
    }
    let inv = inverseSqrt(reduce(lid, sq) / f32(p.h) + p.eps);
    for (var i = lid; i < p.h; i += WG) {
        y[base + i] = (row[i] - mean) * inv * gamma[i] + beta[i];
    }
}
