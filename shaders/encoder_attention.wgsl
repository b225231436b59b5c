// Self-attention of the text encoder for CPU-backed adapters (lavapipe, SwiftShader), head size
// 32, all sequences of a padded batch in one dispatch: out = softmax(q kᵀ · scale) v per
// (sequence, head), over the sequence's own keys only (positions < lens[b]; the padding keys are
// skipped rather than masked).
//
// q, k, v, out: [batch * ls, heads * 32] row-major (row b * ls + pos), read as vec4. One
// invocation per (sequence, head, query position): its query (8 vec4, pre-scaled) and output
// accumulator (8 vec4) stay in registers, keys and values are streamed with an online softmax.
// The 16 invocations of a workgroup are 16 consecutive queries of the same (sequence, head), so
// every key / value load has the same address in all lanes (a broadcast on SIMD CPU backends), and
// there is no workgroup memory and no barrier. The kernel of crate::kernels::attention (tiles in
// workgroup memory) serves real GPUs.

struct Params {
    l: u32,       // padded sequence length (queries per sequence)
    ls: u32,      // rows per sequence in the buffers (>= l)
    heads: u32,
    q_blocks: u32, // ceil(l / 16)
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> lens: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(16)
fn attention_v4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    let qb = g % p.q_blocks;
    let bh = g / p.q_blocks;
    let hd = bh % p.heads;
    let b = bh / p.heads;
    let pos = qb * 16u + lid;
    if (b >= arrayLength(&lens) || pos >= p.l) {
        return;
    }
    let h4 = p.heads * 8u;
    let row0 = b * p.ls;
    let qi = (row0 + pos) * h4 + hd * 8u;
    let q0 = q[qi] * p.scale;
    let q1 = q[qi + 1u] * p.scale;
    let q2 = q[qi + 2u] * p.scale;
    let q3 = q[qi + 3u] * p.scale;
    let q4 = q[qi + 4u] * p.scale;
    let q5 = q[qi + 5u] * p.scale;
    let q6 = q[qi + 6u] * p.scale;
    let q7 = q[qi + 7u] * p.scale;
    var m = -3.0e38;
    var den = 0.0;
    var a0 = vec4<f32>();
    var a1 = vec4<f32>();
    var a2 = vec4<f32>();
    var a3 = vec4<f32>();
    var a4 = vec4<f32>();
    var a5 = vec4<f32>();
    var a6 = vec4<f32>();
    var a7 = vec4<f32>();
    let len = min(lens[b], p.l);
    for (var j = 0u; j < len; j++) {
        let ki = (row0 + j) * h4 + hd * 8u;
        let s = dot(q0, k[ki]) + dot(q1, k[ki + 1u]) + dot(q2, k[ki + 2u]) + dot(q3, k[ki + 3u])
            + dot(q4, k[ki + 4u]) + dot(q5, k[ki + 5u]) + dot(q6, k[ki + 6u]) + dot(q7, k[ki + 7u]);
        let mn = max(m, s);
        let c = exp(m - mn);
        let e = exp(s - mn);
        den = den * c + e;
        a0 = a0 * c + e * v[ki];
        a1 = a1 * c + e * v[ki + 1u];
        a2 = a2 * c + e * v[ki + 2u];
        a3 = a3 * c + e * v[ki + 3u];
        a4 = a4 * c + e * v[ki + 4u];
        a5 = a5 * c + e * v[ki + 5u];
        a6 = a6 * c + e * v[ki + 6u];
        a7 = a7 * c + e * v[ki + 7u];
        m = mn;
    }
    // len >= 1 (every sequence has [CLS]), so den > 0.
    let inv = 1.0 / max(den, 1e-30);
    out[qi] = a0 * inv;
    out[qi + 1u] = a1 * inv;
    out[qi + 2u] = a2 * inv;
    out[qi + 3u] = a3 * inv;
    out[qi + 4u] = a4 * inv;
    out[qi + 5u] = a5 * inv;
    out[qi + 6u] = a6 * inv;
    out[qi + 7u] = a7 * inv;
}
