// Attention of a few queries against a long key sequence, split over the keys:
//
// - `decode_partial` (flash-decoding, pass 1): one workgroup per (split, query row, head)
//   attends its split's keys [s * chunk, (s + 1) * chunk) and writes a partial result
//   (running max m, sum l, unnormalised accumulator acc[D]) to `part`;
// - `decode_combine` (pass 2): one workgroup per (query row, head) merges the partials:
//   out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s with M = max_s m_s (zeros when no
//   split saw a key);
// - `sparse_attend` (block-sparse attention): one workgroup per (query row, head) attends its
//   local window and then each selected block (from `sel`, written by attention_sparse.wgsl),
//   skipping keys of a block that the window already covered, and writes the normalised row.
//
// All three walk keys in chunks of CH = WG = 128: in a chunk every invocation scores one key
// (full dot product against the query in workgroup memory; MASKED when the key is not seen),
// then every invocation reads the chunk's scores, updates the running max (identically in all
// invocations) and accumulates p * v for keys kk = g, g + GROUPS, ... (g = lid / LANES) and dims
// d = c, c + LANES, ... (c = lid % LANES, coalesced reads of V rows). The GROUPS partial sums
// are added at the end (they share the running max, so the sum is exact).
// No infinities are used (WGSL may assume none); masked scores are a large negative sentinel.

override D: u32 = 64u; // head dim, <= 128

const WG: u32 = 128u;
const CH: u32 = 128u;
const LANES: u32 = 32u;
const GROUPS: u32 = 4u; // WG / LANES
const DPL: u32 = 4u;    // dims per lane: 128 / LANES
const MASKED: f32 = -3.0e38;
const VALID: f32 = -1.0e38;
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
    offset: i32,     // tk - tq
    window: u32,
    block_size: u32,
    n_blocks: u32,
    top: u32,
    chunk: u32,      // keys per split (a multiple of CH)
    splits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> part: array<f32>;
@group(0) @binding(7) var<storage, read> sel: array<u32>;

var<workgroup> qs: array<f32, 128>;
var<workgroup> ss: array<f32, CH>;
var<workgroup> accs: array<f32, 512>; // GROUPS * 128
var<workgroup> ls: array<f32, GROUPS>;

var<private> m_run: f32;
var<private> l_run: f32;
var<private> acc: array<f32, DPL>;

fn key_kept(j: u32) -> bool {
    return p.has_mask == 0u || ((mask[j >> 5u] >> (j & 31u)) & 1u) == 1u;
}

// Load query row `row` (pre-scaled) and reset the running state.
fn begin(row: u32, lid: u32) {
    if (lid < D) {
        qs[lid] = q[row * D + lid] * p.scale;
    }
    m_run = MASKED;
    l_run = 0.0;
    for (var r = 0u; r < DPL; r++) {
        acc[r] = 0.0;
    }
    workgroupBarrier();
}

// Attend keys [c0, c1) (c1 - c0 <= CH) of kv head `kvh` for a query at position `pos`.
// `skip_window`: keys in the window (pos - window, pos] are not attended (already were).
fn attend_chunk(c0: u32, c1: u32, lid: u32, kvh: u32, pos: i32, skip_window: bool) {
    let j = c0 + lid;
    var s = MASKED;
    let ij = i32(j);
    let in_window = ij <= pos && ij > pos - i32(p.window);
    if (j < c1 && key_kept(j) && (p.causal == 0u || ij <= pos) && !(skip_window && in_window)) {
        let kb = (j * p.kv_heads + kvh) * D;
        var dv = 0.0;
        for (var d = 0u; d < D; d++) {
            dv = fma(qs[d], k[kb + d], dv);
        }
        s = dv;
    }
    ss[lid] = s;
    workgroupBarrier();
    var cmax = MASKED;
    for (var x = 0u; x < CH; x++) {
        cmax = max(cmax, ss[x]);
    }
    if (cmax > VALID) {
        let mnew = max(m_run, cmax);
        var alpha = 0.0;
        if (m_run > VALID) {
            alpha = exp(m_run - mnew);
        }
        l_run *= alpha;
        for (var r = 0u; r < DPL; r++) {
            acc[r] *= alpha;
        }
        let g = lid / LANES;
        let c = lid % LANES;
        for (var kk = g; kk < CH; kk += GROUPS) {
            let sv = ss[kk];
            if (sv > VALID) {
                let pw = exp(sv - mnew);
                l_run += pw;
                let vb = ((c0 + kk) * p.kv_heads + kvh) * D;
                for (var r = 0u; r < DPL; r++) {
                    let d = c + r * LANES;
                    if (d < D) {
                        acc[r] = fma(pw, v[vb + d], acc[r]);
                    }
                }
            }
        }
        m_run = mnew;
    }
    workgroupBarrier(); // ss is reused by the next chunk
}

// Attend keys [a, b) chunk by chunk.
fn attend_range(a: u32, b: u32, lid: u32, kvh: u32, pos: i32, skip_window: bool) {
    for (var c0 = a; c0 < b; c0 += CH) {
        attend_chunk(c0, min(c0 + CH, b), lid, kvh, pos, skip_window);
    }
}

// Sum the GROUPS partial accumulators into accs[0..D] and ls[0] (after a barrier).
fn reduce_groups(lid: u32) {
    let g = lid / LANES;
    let c = lid % LANES;
    for (var r = 0u; r < DPL; r++) {
        accs[g * 128u + c + r * LANES] = acc[r];
    }
    if (c == 0u) {
        ls[g] = l_run;
    }
    workgroupBarrier();
    if (lid < D) {
        var a = 0.0;
        for (var x = 0u; x < GROUPS; x++) {
            a += accs[x * 128u + lid];
        }
        accs[lid] = a; // only this invocation reads and writes column lid of group 0
    }
    if (lid == 0u) {
        ls[0] = ls[0] + ls[1] + ls[2] + ls[3];
    }
    workgroupBarrier();
}

// Keys visible to query row i: [0, kend).
fn key_end(pos: i32) -> u32 {
    if (p.causal != 0u) {
        return u32(clamp(pos + 1, 0, i32(p.tk)));
    }
    return p.tk;
}

@compute @workgroup_size(WG)
fn decode_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let gid = wid.x + wid.y * nwg.x;
    let rows = p.tq * p.heads;
    if (gid >= rows * p.splits) {
        return;
    }
    let row = gid / p.splits; // = i * heads + h
    let s = gid % p.splits;
    let i = row / p.heads;
    let h = row % p.heads;
    let kvh = h / p.group;
    let pos = i32(i) + p.offset;
    begin(row, lid);
    let kend = key_end(pos);
    let a = min(s * p.chunk, kend);
    let b = min(a + p.chunk, kend);
    attend_range(a, b, lid, kvh, pos, false);
    reduce_groups(lid);
    let base = (row * p.splits + s) * (D + 2u);
    if (lid < D) {
        part[base + 2u + lid] = accs[lid];
    }
    if (lid == 0u) {
        part[base] = m_run;
        part[base + 1u] = ls[0];
    }
}

@compute @workgroup_size(WG)
fn decode_combine(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.tq * p.heads || lid >= D) {
        return;
    }
    let stride = D + 2u;
    let base = row * p.splits * stride;
    var mmax = MASKED;
    for (var s = 0u; s < p.splits; s++) {
        if (part[base + s * stride + 1u] > 0.0) {
            mmax = max(mmax, part[base + s * stride]);
        }
    }
    var l = 0.0;
    var a = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        let b = base + s * stride;
        let ls_ = part[b + 1u];
        if (ls_ > 0.0) {
            let w = exp(part[b] - mmax);
            l = fma(w, ls_, l);
            a = fma(w, part[b + 2u + lid], a);
        }
    }
    var o = 0.0;
    if (l > 0.0) {
        o = a / l;
    }
    out[row * D + lid] = o;
}

@compute @workgroup_size(WG)
fn sparse_attend(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.tq * p.heads) {
        return;
    }
    let i = row / p.heads;
    let h = row % p.heads;
    let kvh = h / p.group;
    let pos = i32(i) + p.offset;
    begin(row, lid);
    // The local window (pos - window, pos], clipped to [0, tk).
    let wa = u32(clamp(pos - i32(p.window) + 1, 0, i32(p.tk)));
    let wb = u32(clamp(pos + 1, 0, i32(p.tk)));
    attend_range(wa, max(wa, wb), lid, kvh, pos, false);
    for (var slot = 0u; slot < p.top; slot++) {
        let blk = sel[row * p.top + slot];
        if (blk != NO_BLOCK) {
            let a = blk * p.block_size;
            attend_range(a, min(a + p.block_size, p.tk), lid, kvh, pos, true);
        }
    }
    reduce_groups(lid);
    if (lid < D) {
        var o = 0.0;
        if (ls[0] > 0.0) {
            o = accs[lid] / ls[0];
        }
        out[row * D + lid] = o;
    }
}
