// Product-key lookup (PKM / UltraMem memory layers). One workgroup per query.
//
// 1. Top-k of each query half against its sub-keys: sub-keys are scored in chunks of TILE - k
//    that are sorted together with the current best k (bitonic sort in workgroup memory; key:
//    higher score first, then lower index), so any number of sub-keys works.
// 2. The k² combinations s1[a] + s2[b] (slot i1[a] * n2 + i2[b]) are sorted in one tile (k <= 32)
//    and the best k kept (ties: lower slot).
// 3. Softmax of the k scores; the output is the weighted sum of the selected value rows.
// Same selection rules as the CPU reference `pkm::pkm_cpu`.
//
// Output buffer (u32 words): [b, dv] f32 outputs, then [b, k] slots, [b, k] f32 weights,
// [b, k] f32 scores.

override WG: u32 = 256u;
const TILE: u32 = 1024u;
const NEG: f32 = -3.4028234e38; // rounds to -f32::MAX (Tint rejects literals past it)
const NOID: u32 = 0xffffffffu;
const KMAX: u32 = 32u;

struct Params {
    b: u32,
    d: u32,
    h1: u32,
    n1: u32,
    n2: u32,
    dv: u32,
    k: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> queries: array<f32>;   // [b, d]
@group(0) @binding(2) var<storage, read> keys1: array<f32>;     // [n1, h1]
@group(0) @binding(3) var<storage, read> keys2: array<f32>;     // [n2, d - h1]
@group(0) @binding(4) var<storage, read> values: array<f32>;    // [n1 * n2, dv]
@group(0) @binding(5) var<storage, read_write> out: array<u32>;

var<workgroup> ks: array<f32, TILE>;
var<workgroup> ki: array<u32, TILE>;
var<workgroup> b1s: array<f32, KMAX>;
var<workgroup> b1i: array<u32, KMAX>;
var<workgroup> b2s: array<f32, KMAX>;
var<workgroup> b2i: array<u32, KMAX>;
var<workgroup> wts: array<f32, KMAX>;
var<workgroup> slots: array<u32, KMAX>;

fn better(sa: f32, ia: u32, sb: f32, ib: u32) -> bool {
    return sa > sb || (sa == sb && ia < ib);
}

fn sort_tile(lid: u32) {
    for (var k = 2u; k <= TILE; k = k * 2u) {
        for (var j = k / 2u; j > 0u; j = j / 2u) {
            for (var t = lid; t < TILE / 2u; t = t + WG) {
                let i = 2u * j * (t / j) + (t % j);
                let l = i + j;
                let up = (i & k) == 0u;
                if (better(ks[l], ki[l], ks[i], ki[i]) == up) {
                    let s = ks[i];
                    ks[i] = ks[l];
                    ks[l] = s;
                    let a = ki[i];
                    ki[i] = ki[l];
                    ki[l] = a;
                }
            }
            workgroupBarrier();
        }
    }
}

fn subkey_score(half: u32, q: u32, i: u32) -> f32 {
    let d = params.d;
    let h1 = params.h1;
    var acc = 0.0;
    if (half == 0u) {
        for (var j = 0u; j < h1; j = j + 1u) {
            acc = acc + queries[q * d + j] * keys1[i * h1 + j];
        }
    } else {
        let h2 = d - h1;
        for (var j = 0u; j < h2; j = j + 1u) {
            acc = acc + queries[q * d + h1 + j] * keys2[i * h2 + j];
        }
    }
    return acc;
}

// Top-k of one half into ks/ki[0..k).
fn top_half(half: u32, q: u32, lid: u32) {
    let k = params.k;
    var n = params.n1;
    if (half == 1u) {
        n = params.n2;
    }
    for (var s = lid; s < k; s = s + WG) {
        ks[s] = NEG;
        ki[s] = NOID;
    }
    let chunk = TILE - k;
    for (var base = 0u; base < n; base = base + chunk) {
        workgroupBarrier();
        for (var s = lid; s < TILE; s = s + WG) {
            if (s >= k) {
                let i = base + s - k;
                if (i < n) {
                    ks[s] = subkey_score(half, q, i);
                    ki[s] = i;
                } else {
                    ks[s] = NEG;
                    ki[s] = NOID;
                }
            }
        }
        workgroupBarrier();
        sort_tile(lid);
    }
}

@compute @workgroup_size(WG)
fn pkm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let q = wid.x + wid.y * nwg.x;
    if (q >= params.b) {
        return;
    }
    let k = params.k;
    top_half(0u, q, lid);
    if (lid < k) {
        b1s[lid] = ks[lid];
        b1i[lid] = ki[lid];
    }
    workgroupBarrier();
    top_half(1u, q, lid);
    if (lid < k) {
        b2s[lid] = ks[lid];
        b2i[lid] = ki[lid];
    }
    workgroupBarrier();
    for (var s = lid; s < TILE; s = s + WG) {
        if (s < k * k) {
            let a = s / k;
            let c = s % k;
            ks[s] = b1s[a] + b2s[c];
            ki[s] = b1i[a] * params.n2 + b2i[c];
        } else {
            ks[s] = NEG;
            ki[s] = NOID;
        }
    }
    workgroupBarrier();
    sort_tile(lid);
    if (lid == 0u) {
        let m = ks[0];
        var total = 0.0;
        for (var j = 0u; j < k; j = j + 1u) {
            let e = exp(ks[j] - m);
            wts[j] = e;
            total = total + e;
        }
        let base = params.b * params.dv;
        let bk = params.b * k;
        for (var j = 0u; j < k; j = j + 1u) {
            let w = wts[j] / total;
            wts[j] = w;
            slots[j] = ki[j];
            out[base + q * k + j] = ki[j];
            out[base + bk + q * k + j] = bitcast<u32>(w);
            out[base + 2u * bk + q * k + j] = bitcast<u32>(ks[j]);
        }
    }
    workgroupBarrier();
    let dv = params.dv;
    for (var v = lid; v < dv; v = v + WG) {
        var acc = 0.0;
        for (var j = 0u; j < k; j = j + 1u) {
            acc = acc + wts[j] * values[slots[j] * dv + v];
        }
        out[q * dv + v] = bitcast<u32>(acc);
    }
}
