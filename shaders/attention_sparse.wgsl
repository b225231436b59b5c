// Block selection of block-sparse attention, in exact integer arithmetic so that it equals the
// CPU reference bit for bit (see `sparse_select_cpu` in src/kernels/attention/cpu.rs):
//
// - `sparse_block_means`: one workgroup per (key block, kv head); invocation d sums the
//   quantised keys round(k * kscale[kvh]) (a power-of-two scale: exact) over the block's
//   unmasked keys and writes the integer mean (truncated) to means[b, kvh, d]. The workgroup
//   of kv head 0 also writes the block's (count, first, last) unmasked key indices.
// - `sparse_select`: one invocation per (query row, head) scores every candidate block by the
//   integer dot product of its quantised query with the block mean and keeps the `top` best
//   (ties: lower block index) in rank order in `sel` (NO_BLOCK for empty slots).
//
// Candidates: blocks with an unmasked key the query may see (causal) outside its window
// (pos - window, pos], i.e. first <= pos - window, or (not causal) last > pos.

override D: u32 = 64u;

const MAXTOP: u32 = 32u;
const NO_BLOCK: u32 = 0xffffffffu;

struct Params {
    tq: u32,
    tk: u32,
    heads: u32,
    kv_heads: u32,
    group: u32,
    causal: u32,
    has_mask: u32,
    q_blocks: u32,
    scale: f32,
    offset: i32,
    window: u32,
    block_size: u32,
    n_blocks: u32,
    top: u32,
    chunk: u32,
    splits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(8) var<storage, read> kscale: array<f32>;   // [kv_heads]
@group(0) @binding(9) var<storage, read> qscale: array<f32>;   // [tq * heads]
@group(0) @binding(10) var<storage, read_write> means: array<i32>;      // [n_blocks, kv_heads, D]
@group(0) @binding(11) var<storage, read_write> ranges: array<vec4<u32>>; // [n_blocks]
@group(0) @binding(12) var<storage, read_write> sel: array<u32>;        // [tq * heads, top]

fn key_kept(j: u32) -> bool {
    return p.has_mask == 0u || ((mask[j >> 5u] >> (j & 31u)) & 1u) == 1u;
}

@compute @workgroup_size(128)
fn sparse_block_means(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let gid = wid.x + wid.y * nwg.x;
    if (gid >= p.n_blocks * p.kv_heads) {
        return;
    }
    let b = gid / p.kv_heads;
    let kvh = gid % p.kv_heads;
    let a = b * p.block_size;
    let e = min(a + p.block_size, p.tk);
    let sc = kscale[kvh];
    var sum = 0i;
    var count = 0u;
    var first = 0u;
    var last = 0u;
    for (var j = a; j < e; j++) {
        if (key_kept(j)) {
            if (count == 0u) {
                first = j;
            }
            last = j;
            count += 1u;
            if (lid < D) {
                sum += i32(round(k[(j * p.kv_heads + kvh) * D + lid] * sc));
            }
        }
    }
    if (lid < D) {
        var mean = 0i;
        if (count > 0u) {
            mean = sum / i32(count);
        }
        means[(b * p.kv_heads + kvh) * D + lid] = mean;
    }
    if (lid == 0u && kvh == 0u) {
        ranges[b] = vec4<u32>(count, first, last, 0u);
    }
}

@compute @workgroup_size(64)
fn sparse_select(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (row >= p.tq * p.heads) {
        return;
    }
    let i = row / p.heads;
    let h = row % p.heads;
    let kvh = h / p.group;
    let pos = i32(i) + p.offset;
    let qsc = qscale[row];
    var best_s: array<i32, MAXTOP>;
    var best_b: array<u32, MAXTOP>;
    var n = 0u;
    for (var b = 0u; b < p.n_blocks; b++) {
        let r = ranges[b];
        let cand = r.x > 0u
            && (i32(r.y) <= pos - i32(p.window) || (p.causal == 0u && i32(r.z) > pos));
        if (!cand) {
            continue;
        }
        let mb = (b * p.kv_heads + kvh) * D;
        var score = 0i;
        for (var d = 0u; d < D; d++) {
            score += i32(round(q[row * D + d] * qsc)) * means[mb + d];
        }
        // Position = number of kept entries scoring >= this one (earlier blocks win ties).
        var at = 0u;
        for (var x = 0u; x < n; x++) {
            if (best_s[x] >= score) {
                at = x + 1u;
            } else {
                break;
            }
        }
        if (at < p.top) {
            let e = min(n, p.top - 1u);
            for (var x = e; x > at; x--) {
                best_s[x] = best_s[x - 1u];
                best_b[x] = best_b[x - 1u];
            }
            best_s[at] = score;
            best_b[at] = b;
            n = min(n + 1u, p.top);
        }
    }
    for (var x = 0u; x < p.top; x++) {
        var blk = NO_BLOCK;
        if (x < n) {
            blk = best_b[x];
        }
        sel[row * p.top + x] = blk;
    }
}
