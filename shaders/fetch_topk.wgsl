// Flat top-k over a memory bank. Two kinds of first pass, then merge passes that reduce lists of
// candidates to one global top-k (entry `merge`):
// - `scan` (hardware GPUs, up to 16 queries per workgroup): fused scores + per-workgroup top-k
//   in workgroup memory, offering each round's 256 rows to the lists as it goes (a barrier per
//   round).
// - Two phases (software adapters for any B; one query on any adapter): `score1` (one query per
//   workgroup layer, R rows per invocation per round) or `scorem` (every query of the batch in
//   each workgroup) score every row with no barrier into `scratch` (`[B, N]` f32), then `pick`
//   selects per query and range of rows: the invocations' best rows are offered first (which
//   makes the list's K-th entry a tight bound), then each invocation's rows that beat the
//   current K-th entry. On CPU rasterisers (lavapipe, SwiftShader) a barrier inside the scoring
//   loop roughly halved the scan's throughput, and a barrier anywhere in the entry point still
//   slowed its barrier-free loop (the entry runs as coroutines), hence separate entry points;
//   each `pick` workgroup also has a fixed cost (~2 ms on SwiftShader), hence few, large ones.
//
// Bank layout (see src/kernels/fetch/format.rs): rows are stored in blocks of BR = 8 rows. A
// block is `BR * (HDR + W)` u32 words: for int8 banks first BR per-row scales (f32 bits, HDR = 1),
// then the W data words of each row (W a multiple of 4) in slabs of four words per row: slab s of
// row r is the vec4 at word `block * block_words + HDR * BR + 4 * (s * BR + r)`. One invocation
// scores one row; consecutive invocations load consecutive vec4s.
// A data word holds one f32 (FORMAT 0), two f16 (FORMAT 1, `unpack2x16float`, or integer ops
// with F16INT) or four int8 (FORMAT 2, sign-extended by shifts, score multiplied by the row's
// scale at the end).
//
// The dot product accumulates in four lanes (lane t: word t of every slab; for packed formats the
// low halves then the high halves, bytes 0..3), combined as (l0 + l1) + (l2 + l3): the order of
// the CPU path. Queries are arranged to match (Layout::arrange_query) and laid out per query
// group as vec4s `queries[((group * S + s) * PER + e) * QB + slot]` (S = W / 4 slabs, PER values
// per word), so each thread keeps QB vec4 accumulators for its row.
//
// Order: a candidate is better than another when its score is higher, or equal with a lower row
// id. Every list is sorted best-first; unused slots hold score -inf and id 0xFFFFFFFF.

const WG: u32 = 256u;
const BR: u32 = 8u;
const NONE: u32 = 0xFFFFFFFFu;
const QMAX: u32 = 16u;

override K: u32 = 10u;      // entries written per list
override K2: u32 = 16u;     // power of two >= K: entries kept per list in workgroup memory
override QB: u32 = 1u;      // queries per workgroup in `scan` (<= QMAX); 1 in `merge`
override BEST: u32 = 16u;   // QB * K2
override FORMAT: u32 = 0u;  // 0 = f32, 1 = f16 pairs, 2 = int8 quads with per-row scale
override R: u32 = 4u;       // `score1` (1..8), `scorem` (1..4): rows per invocation per round
override QC: u32 = 4u;      // `scorem`: queries scored per pass over a round's rows (1..4)
override F16INT: bool = false; // f16 decoded with integer ops instead of `unpack2x16float`

struct Params {
    rows: u32,        // scan: rows of this chunk; merge: input lists per query
    row0: u32,        // scan: global id of the chunk's first row
    words: u32,       // scan: data words per row (W, a multiple of 4)
    block_words: u32, // scan: words per block
    rounds: u32,      // scan: rounds of WG rows per workgroup; merge: input lists per workgroup
    groups: u32,      // workgroups per query group (scan) or per query (merge)
    list0: u32,       // scan: index of this chunk's first output list
    lists: u32,       // output lists per query
    b: u32,           // queries
    use_mask: u32,    // scan: 1 when `allow` is a real mask
    per: u32,         // scan: values per data word (1, 2 or 4)
    neg_inf: f32,     // -infinity, from the host (WGSL constant expressions cannot be infinite)
    total: u32,       // two phases: rows of the whole bank (scratch row stride per query)
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> bank: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> queries: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> live: array<u32>;
@group(0) @binding(4) var<storage, read> allow: array<u32>;
@group(0) @binding(5) var<storage, read_write> out_s: array<f32>;
@group(0) @binding(6) var<storage, read_write> out_i: array<u32>;
@group(0) @binding(7) var<storage, read> in_s: array<f32>;
@group(0) @binding(8) var<storage, read> in_i: array<u32>;
@group(0) @binding(9) var<storage, read_write> scratch: array<f32>;

var<workgroup> best_s: array<f32, BEST>;
var<workgroup> best_i: array<u32, BEST>;
var<workgroup> sc_s: array<f32, WG>;
var<workgroup> sc_i: array<u32, WG>;
var<workgroup> counter: atomic<u32>;

fn neg_inf() -> f32 {
    return p.neg_inf;
}

// a before b in the result order.
fn better(as_: f32, ai: u32, bs: f32, bi: u32) -> bool {
    return as_ > bs || (as_ == bs && ai < bi);
}

fn init_best(lid: u32) {
    for (var i = lid; i < BEST; i = i + WG) {
        best_s[i] = neg_inf();
        best_i[i] = NONE;
    }
}

// Does (s, id) enter list `slot` (better than its current K-th entry)?
fn wants(slot: u32, s: f32, id: u32) -> bool {
    let t = slot * K2 + K - 1u;
    return better(s, id, best_s[t], best_i[t]);
}

// Offer one candidate per invocation (`ok` false: none) to list `slot`. Workgroup-uniform call;
// the previous call (or the initialisation) must have ended with a barrier.
//
// The wanted candidates are compacted into the scratch; then every candidate and every kept
// entry computes its rank in the union (entries are totally ordered: ids are unique, and
// unfilled entries rank by position), and the K2 best are written to their rank. O(n) work per
// invocation and a constant number of barriers, instead of a sorting network.
fn offer(slot: u32, s: f32, id: u32, ok: bool, lid: u32) -> bool {
    if (ok && wants(slot, s, id)) {
        let at = atomicAdd(&counter, 1u);
        sc_s[at] = s;
        sc_i[at] = id;
    }
    // One barrier in the common case (no candidate: the counter stays 0).
    let n = workgroupUniformLoad(&counter);
    if (n == 0u) {
        return false;
    }
    let base = slot * K2;
    var c_s = 0.0;
    var c_i = NONE;
    var c_rank = NONE;
    if (lid < n) {
        c_s = sc_s[lid];
        c_i = sc_i[lid];
        // The kept entries better than the candidate are a prefix of the sorted list.
        var lo = 0u;
        var hi = K2;
        while (lo < hi) {
            let mid = (lo + hi) / 2u;
            if (better(best_s[base + mid], best_i[base + mid], c_s, c_i)) {
                lo = mid + 1u;
            } else {
                hi = mid;
            }
        }
        // Count better candidates, stopping once the rank is out of the list.
        var r = lo;
        for (var j = 0u; j < n && r < K2; j = j + 1u) {
            r = r + u32(better(sc_s[j], sc_i[j], c_s, c_i));
        }
        c_rank = r;
    }
    var e_s = 0.0;
    var e_i = NONE;
    var e_rank = NONE;
    if (lid < K2) {
        e_s = best_s[base + lid];
        e_i = best_i[base + lid];
        var r = lid;
        for (var j = 0u; j < n; j = j + 1u) {
            r = r + u32(better(sc_s[j], sc_i[j], e_s, e_i));
        }
        e_rank = r;
    }
    workgroupBarrier();
    if (e_rank < K2) {
        best_s[base + e_rank] = e_s;
        best_i[base + e_rank] = e_i;
    }
    if (c_rank < K2) {
        best_s[base + c_rank] = c_s;
        best_i[base + c_rank] = c_i;
    }
    if (lid == 0u) {
        atomicStore(&counter, 0u);
    }
    workgroupBarrier();
    return true;
}

// Is any candidate of this round wanted by any list? Workgroup-uniform call.
fn any_wanted(mine: bool, lid: u32) -> bool {
    if (mine) {
        atomicStore(&counter, 1u);
    }
    if (workgroupUniformLoad(&counter) == 0u) {
        return false;
    }
    if (lid == 0u) {
        atomicStore(&counter, 0u);
    }
    workgroupBarrier();
    return true;
}

// One slab's contribution to one query slot's lane accumulators: the word's values (x0: f32 or
// low halves or byte 0; x1: high halves or byte 1; x2, x3: bytes 2, 3) times the query's lanes.
fn step(a: vec4<f32>, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>, qo: u32) -> vec4<f32> {
    var r = a + x0 * queries[qo];
    if (FORMAT >= 1u) {
        r = r + x1 * queries[qo + QB];
    }
    if (FORMAT == 2u) {
        r = r + x2 * queries[qo + 2u * QB];
        r = r + x3 * queries[qo + 3u * QB];
    }
    return r;
}

// The four lanes of a dot product, in the CPU path's order.
fn fold(a: vec4<f32>) -> f32 {
    return (a.x + a.y) + (a.z + a.w);
}

fn row_allowed(g: u32) -> bool {
    var ok = ((live[g >> 5u] >> (g & 31u)) & 1u) != 0u;
    if (p.use_mask != 0u) {
        ok = ok && ((allow[g >> 5u] >> (g & 31u)) & 1u) != 0u;
    }
    return ok;
}

@compute @workgroup_size(WG)
fn scan(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.groups) {
        return;
    }
    let qg = wid.z;
    let q0 = qg * QB;
    let nq = min(QB, p.b - q0);
    init_best(lid);
    workgroupBarrier();
    let hdr = select(0u, BR, FORMAT == 2u);
    let slabs = p.words / 4u;
    let qbase = qg * slabs * p.per;

    for (var round = 0u; round < p.rounds; round = round + 1u) {
        let local = (group * p.rounds + round) * WG + lid;
        let gid = p.row0 + local;
        var ok = local < p.rows;
        if (ok) {
            ok = row_allowed(gid);
        }
        // One accumulator variable per query slot, updated by straight-line code guarded by
        // the constant QB: no private array is indexed in the hot loop (a software rasteriser
        // would spill it to per-lane memory). `score` is indexed by a runtime slot only in the
        // selection below.
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        var a4 = vec4<f32>(0.0);
        var a5 = vec4<f32>(0.0);
        var a6 = vec4<f32>(0.0);
        var a7 = vec4<f32>(0.0);
        var a8 = vec4<f32>(0.0);
        var a9 = vec4<f32>(0.0);
        var a10 = vec4<f32>(0.0);
        var a11 = vec4<f32>(0.0);
        var a12 = vec4<f32>(0.0);
        var a13 = vec4<f32>(0.0);
        var a14 = vec4<f32>(0.0);
        var a15 = vec4<f32>(0.0);
        var score: array<f32, QMAX>;
        if (ok) {
            let blk = local / BR;
            let r = local % BR;
            let base = (blk * p.block_words + hdr) / 4u + r;
            for (var j = 0u; j < slabs; j = j + 1u) {
                let x = bank[base + j * BR];
                let qo = (qbase + j * p.per) * QB;
                var x0: vec4<f32>;
                var x1: vec4<f32>;
                var x2: vec4<f32>;
                var x3: vec4<f32>;
                if (FORMAT == 0u) {
                    x0 = bitcast<vec4<f32>>(x);
                } else {
                    let d = decode(x);
                    x0 = d.x0;
                    x1 = d.x1;
                    x2 = d.x2;
                    x3 = d.x3;
                }
                a0 = step(a0, x0, x1, x2, x3, qo);
                if (QB > 1u) { a1 = step(a1, x0, x1, x2, x3, qo + 1u); }
                if (QB > 2u) { a2 = step(a2, x0, x1, x2, x3, qo + 2u); }
                if (QB > 3u) { a3 = step(a3, x0, x1, x2, x3, qo + 3u); }
                if (QB > 4u) { a4 = step(a4, x0, x1, x2, x3, qo + 4u); }
                if (QB > 5u) { a5 = step(a5, x0, x1, x2, x3, qo + 5u); }
                if (QB > 6u) { a6 = step(a6, x0, x1, x2, x3, qo + 6u); }
                if (QB > 7u) { a7 = step(a7, x0, x1, x2, x3, qo + 7u); }
                if (QB > 8u) { a8 = step(a8, x0, x1, x2, x3, qo + 8u); }
                if (QB > 9u) { a9 = step(a9, x0, x1, x2, x3, qo + 9u); }
                if (QB > 10u) { a10 = step(a10, x0, x1, x2, x3, qo + 10u); }
                if (QB > 11u) { a11 = step(a11, x0, x1, x2, x3, qo + 11u); }
                if (QB > 12u) { a12 = step(a12, x0, x1, x2, x3, qo + 12u); }
                if (QB > 13u) { a13 = step(a13, x0, x1, x2, x3, qo + 13u); }
                if (QB > 14u) { a14 = step(a14, x0, x1, x2, x3, qo + 14u); }
                if (QB > 15u) { a15 = step(a15, x0, x1, x2, x3, qo + 15u); }
            }
            var scale = 1.0;
            if (FORMAT == 2u) {
                scale = bitcast<f32>(bank[(blk * p.block_words) / 4u + r / 4u][r % 4u]);
            }
            score[0] = fold(a0) * scale;
            if (QB > 1u) { score[1] = fold(a1) * scale; }
            if (QB > 2u) { score[2] = fold(a2) * scale; }
            if (QB > 3u) { score[3] = fold(a3) * scale; }
            if (QB > 4u) { score[4] = fold(a4) * scale; }
            if (QB > 5u) { score[5] = fold(a5) * scale; }
            if (QB > 6u) { score[6] = fold(a6) * scale; }
            if (QB > 7u) { score[7] = fold(a7) * scale; }
            if (QB > 8u) { score[8] = fold(a8) * scale; }
            if (QB > 9u) { score[9] = fold(a9) * scale; }
            if (QB > 10u) { score[10] = fold(a10) * scale; }
            if (QB > 11u) { score[11] = fold(a11) * scale; }
            if (QB > 12u) { score[12] = fold(a12) * scale; }
            if (QB > 13u) { score[13] = fold(a13) * scale; }
            if (QB > 14u) { score[14] = fold(a14) * scale; }
            if (QB > 15u) { score[15] = fold(a15) * scale; }
        }
        if (QB == 1u) {
            _ = offer(0u, score[0], gid, ok, lid);
        } else {
            // Cheap common case: nothing in this round beats any list's K-th entry.
            var mine = false;
            if (ok) {
                for (var s = 0u; s < nq; s = s + 1u) {
                    mine = mine || wants(s, score[s], gid);
                }
            }
            if (any_wanted(mine, lid)) {
                for (var s = 0u; s < nq; s = s + 1u) {
                    _ = offer(s, score[s], gid, ok, lid);
                }
            }
        }
    }
    workgroupBarrier();
    for (var s = 0u; s < nq; s = s + 1u) {
        let out = ((q0 + s) * p.lists + p.list0 + group) * K;
        for (var i = lid; i < K; i = i + WG) {
            out_s[out + i] = best_s[s * K2 + i];
            out_i[out + i] = best_i[s * K2 + i];
        }
    }
}

// A bank word's values as f32 lanes: x0 (f32, low halves or byte 0), x1 (high halves or byte 1),
// x2, x3 (bytes 2, 3).
struct Decoded {
    x0: vec4<f32>,
    x1: vec4<f32>,
    x2: vec4<f32>,
    x3: vec4<f32>,
}

// f16 bits (the low 16 bits of each lane) to f32 with integer ops, exactly as
// `unpack2x16float` for every finite half (banks hold no inf or NaN): normal halves rebias the
// exponent (+112 << 23); subnormal ones (exponent 0) become 2^-14 * (1 + m / 1024) - 2^-14 =
// m * 2^-24, exact and without an f32 subnormal in between (CPU rasterisers may flush those).
fn half_bits(h: vec4<u32>) -> vec4<f32> {
    let o = (h & vec4<u32>(0x7FFFu)) << vec4<u32>(13u);
    let normal = bitcast<vec4<f32>>(o + vec4<u32>(0x38000000u));
    let sub = bitcast<vec4<f32>>(o + vec4<u32>(0x38800000u)) - vec4<f32>(6.103515625e-05);
    let mag = select(normal, sub, o < vec4<u32>(0x00800000u));
    return bitcast<vec4<f32>>(bitcast<vec4<u32>>(mag) | ((h & vec4<u32>(0x8000u)) << vec4<u32>(16u)));
}

fn decode(x: vec4<u32>) -> Decoded {
    var d: Decoded;
    if (FORMAT == 0u) {
        d.x0 = bitcast<vec4<f32>>(x);
    } else if (FORMAT == 1u && F16INT) {
        d.x0 = half_bits(x);
        d.x1 = half_bits(x >> vec4<u32>(16u));
    } else if (FORMAT == 1u) {
        let u0 = unpack2x16float(x.x);
        let u1 = unpack2x16float(x.y);
        let u2 = unpack2x16float(x.z);
        let u3 = unpack2x16float(x.w);
        d.x0 = vec4<f32>(u0.x, u1.x, u2.x, u3.x);
        d.x1 = vec4<f32>(u0.y, u1.y, u2.y, u3.y);
    } else {
        // Signed bytes by shifting each to the top and back (arithmetic shift): two vector ops
        // per byte where `extractBits` is slow on some adapters (SwiftShader).
        let xi = bitcast<vec4<i32>>(x);
        d.x0 = vec4<f32>((xi << vec4<u32>(24u)) >> vec4<u32>(24u));
        d.x1 = vec4<f32>((xi << vec4<u32>(16u)) >> vec4<u32>(24u));
        d.x2 = vec4<f32>((xi << vec4<u32>(8u)) >> vec4<u32>(24u));
        d.x3 = vec4<f32>(xi >> vec4<u32>(24u));
    }
    return d;
}

// One slab of one row against one query's lanes (q0..q3 as `step` reads them), in the same
// order as `step`.
fn step1(a: vec4<f32>, x: vec4<u32>, q0: vec4<f32>, q1: vec4<f32>, q2: vec4<f32>, q3: vec4<f32>) -> vec4<f32> {
    let d = decode(x);
    var r = a + d.x0 * q0;
    if (FORMAT >= 1u) {
        r = r + d.x1 * q1;
    }
    if (FORMAT == 2u) {
        r = r + d.x2 * q2;
        r = r + d.x3 * q3;
    }
    return r;
}

fn row_scale(local: u32) -> f32 {
    if (FORMAT != 2u) {
        return 1.0;
    }
    let blk = local / BR;
    let r = local % BR;
    return bitcast<f32>(bank[(blk * p.block_words) / 4u + r / 4u][r % 4u]);
}

// The query lanes of one slab (v0: f32 or low halves or byte 0, v1: high halves or byte 1,
// v2, v3: bytes 2, 3) for the query vec4s starting at `qo`.
struct QLanes {
    v0: vec4<f32>,
    v1: vec4<f32>,
    v2: vec4<f32>,
    v3: vec4<f32>,
}

fn qlanes(qo: u32) -> QLanes {
    var u: QLanes;
    u.v0 = queries[qo];
    if (FORMAT >= 1u) {
        u.v1 = queries[qo + 1u];
    }
    if (FORMAT == 2u) {
        u.v2 = queries[qo + 2u];
        u.v3 = queries[qo + 3u];
    }
    return u;
}

// One decoded slab of one row against one query's lanes, in `step1`'s order.
fn acc(a: vec4<f32>, x: Decoded, u: QLanes) -> vec4<f32> {
    var r = a + x.x0 * u.v0;
    if (FORMAT >= 1u) {
        r = r + x.x1 * u.v1;
    }
    if (FORMAT == 2u) {
        r = r + x.x2 * u.v2;
        r = r + x.x3 * u.v3;
    }
    return r;
}

// Keep the score of query `q` for chunk row `l` (rows past the chunk, queries past the batch:
// discarded).
fn put(q: u32, l: u32, s: f32) {
    if (l < p.rows && q < p.b) {
        scratch[q * p.total + p.row0 + l] = s;
    }
}

// Phase 1 of the one-query top-k (the query is wid.z): every invocation scores R rows per round
// (rows `lid + t * WG` of the round's R * WG, t < R; each query vec4 is loaded once for its R
// rows) and writes each score to `scratch` (`[B, N]`, indexed by global row id). No barrier and
// no workgroup memory: CPU rasterisers (lavapipe, SwiftShader) run an entry point that has a
// barrier anywhere (as coroutines) measurably slower, also in its barrier-free loops, so the
// selection is a separate entry (`pick`). Rounds whose rows are all excluded are skipped;
// `pick` never reads a score of an excluded row.
@compute @workgroup_size(WG)
fn score1(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.groups) {
        return;
    }
    let q = wid.z;
    let hdr = select(0u, BR, FORMAT == 2u);
    let slabs = p.words / 4u;
    let qbase = q * slabs * p.per;
    let bw4 = p.block_words / 4u;
    // vec4 distance between row `l` and row `l + WG` (WG is a multiple of BR).
    let stride = (WG / BR) * bw4;
    let last = p.rows - 1u;
    for (var round = 0u; round < p.rounds; round = round + 1u) {
        let l0 = (group * p.rounds + round) * WG * R + lid;
        let l1 = l0 + 1u * WG;
        let l2 = l0 + 2u * WG;
        let l3 = l0 + 3u * WG;
        let l4 = l0 + 4u * WG;
        let l5 = l0 + 5u * WG;
        let l6 = l0 + 6u * WG;
        let l7 = l0 + 7u * WG;
        let ok0 = l0 <= last && row_allowed(p.row0 + l0);
        let ok1 = R > 1u && l1 <= last && row_allowed(p.row0 + l1);
        let ok2 = R > 2u && l2 <= last && row_allowed(p.row0 + l2);
        let ok3 = R > 3u && l3 <= last && row_allowed(p.row0 + l3);
        let ok4 = R > 4u && l4 <= last && row_allowed(p.row0 + l4);
        let ok5 = R > 5u && l5 <= last && row_allowed(p.row0 + l5);
        let ok6 = R > 6u && l6 <= last && row_allowed(p.row0 + l6);
        let ok7 = R > 7u && l7 <= last && row_allowed(p.row0 + l7);
        if (!(ok0 || ok1 || ok2 || ok3 || ok4 || ok5 || ok6 || ok7)) {
            continue;
        }
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        var a4 = vec4<f32>(0.0);
        var a5 = vec4<f32>(0.0);
        var a6 = vec4<f32>(0.0);
        var a7 = vec4<f32>(0.0);
        // Rows past the end load row `last` instead (their score is discarded).
        let c0 = min(l0, last);
        let b0 = (c0 / BR) * bw4 + hdr / 4u + c0 % BR;
        let b1 = select(b0, b0 + 1u * stride, l1 <= last);
        let b2 = select(b0, b0 + 2u * stride, l2 <= last);
        let b3 = select(b0, b0 + 3u * stride, l3 <= last);
        let b4 = select(b0, b0 + 4u * stride, l4 <= last);
        let b5 = select(b0, b0 + 5u * stride, l5 <= last);
        let b6 = select(b0, b0 + 6u * stride, l6 <= last);
        let b7 = select(b0, b0 + 7u * stride, l7 <= last);
        for (var j = 0u; j < slabs; j = j + 1u) {
            let qo = qbase + j * p.per;
            let q0 = queries[qo];
            var q1 = vec4<f32>(0.0);
            var q2 = vec4<f32>(0.0);
            var q3 = vec4<f32>(0.0);
            if (FORMAT >= 1u) {
                q1 = queries[qo + 1u];
            }
            if (FORMAT == 2u) {
                q2 = queries[qo + 2u];
                q3 = queries[qo + 3u];
            }
            let o = j * BR;
            a0 = step1(a0, bank[b0 + o], q0, q1, q2, q3);
            if (R > 1u) { a1 = step1(a1, bank[b1 + o], q0, q1, q2, q3); }
            if (R > 2u) { a2 = step1(a2, bank[b2 + o], q0, q1, q2, q3); }
            if (R > 3u) { a3 = step1(a3, bank[b3 + o], q0, q1, q2, q3); }
            if (R > 4u) { a4 = step1(a4, bank[b4 + o], q0, q1, q2, q3); }
            if (R > 5u) { a5 = step1(a5, bank[b5 + o], q0, q1, q2, q3); }
            if (R > 6u) { a6 = step1(a6, bank[b6 + o], q0, q1, q2, q3); }
            if (R > 7u) { a7 = step1(a7, bank[b7 + o], q0, q1, q2, q3); }
        }
        put(q, l0, fold(a0) * row_scale(c0));
        if (R > 1u) { put(q, l1, fold(a1) * row_scale(min(l1, last))); }
        if (R > 2u) { put(q, l2, fold(a2) * row_scale(min(l2, last))); }
        if (R > 3u) { put(q, l3, fold(a3) * row_scale(min(l3, last))); }
        if (R > 4u) { put(q, l4, fold(a4) * row_scale(min(l4, last))); }
        if (R > 5u) { put(q, l5, fold(a5) * row_scale(min(l5, last))); }
        if (R > 6u) { put(q, l6, fold(a6) * row_scale(min(l6, last))); }
        if (R > 7u) { put(q, l7, fold(a7) * row_scale(min(l7, last))); }
    }
}

// Phase 1 of the multi-query top-k: every query of the batch in one workgroup (queries laid out
// one after another, QB = 1), with no barrier: each round's R * WG rows are scored against QC
// queries per pass (R * QC accumulators; each bank vec4 serves QC queries, each query vec4 R
// rows; later passes re-read the round's rows from cache, so the bank is read from memory once
// for the batch) and every score is written to `scratch` (`[B, N]`). Selection: `pick`, one
// workgroup per query and row range.
@compute @workgroup_size(WG)
fn scorem(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.groups) {
        return;
    }
    let hdr = select(0u, BR, FORMAT == 2u);
    let slabs = p.words / 4u;
    let qstride = slabs * p.per;
    let bw4 = p.block_words / 4u;
    let stride = (WG / BR) * bw4;
    let last = p.rows - 1u;
    let nq = p.b;

    for (var round = 0u; round < p.rounds; round = round + 1u) {
        let l0 = (group * p.rounds + round) * WG * R + lid;
        let l1 = l0 + WG;
        let l2 = l0 + 2u * WG;
        let l3 = l0 + 3u * WG;
        let ok0 = l0 <= last && row_allowed(p.row0 + l0);
        let ok1 = R > 1u && l1 <= last && row_allowed(p.row0 + l1);
        let ok2 = R > 2u && l2 <= last && row_allowed(p.row0 + l2);
        let ok3 = R > 3u && l3 <= last && row_allowed(p.row0 + l3);
        if (!(ok0 || ok1 || ok2 || ok3)) {
            // Phase 2 checks `row_allowed` before using a score: nothing to keep.
            continue;
        }
        // Rows past the end load row `last` instead (their scores are discarded).
        let c0 = min(l0, last);
        let b0 = (c0 / BR) * bw4 + hdr / 4u + c0 % BR;
        let b1 = select(b0, b0 + stride, l1 <= last);
        let b2 = select(b0, b0 + 2u * stride, l2 <= last);
        let b3 = select(b0, b0 + 3u * stride, l3 <= last);
        let sc0 = row_scale(c0);
        let sc1 = row_scale(min(l1, last));
        let sc2 = row_scale(min(l2, last));
        let sc3 = row_scale(min(l3, last));
        for (var qc = 0u; qc < nq; qc = qc + QC) {
            // Query slots past the batch score its last query (discarded by `put`).
            let o0 = qc * qstride;
            let o1 = min(qc + 1u, nq - 1u) * qstride;
            let o2 = min(qc + 2u, nq - 1u) * qstride;
            let o3 = min(qc + 3u, nq - 1u) * qstride;
            var a00 = vec4<f32>(0.0);
            var a01 = vec4<f32>(0.0);
            var a02 = vec4<f32>(0.0);
            var a03 = vec4<f32>(0.0);
            var a10 = vec4<f32>(0.0);
            var a11 = vec4<f32>(0.0);
            var a12 = vec4<f32>(0.0);
            var a13 = vec4<f32>(0.0);
            var a20 = vec4<f32>(0.0);
            var a21 = vec4<f32>(0.0);
            var a22 = vec4<f32>(0.0);
            var a23 = vec4<f32>(0.0);
            var a30 = vec4<f32>(0.0);
            var a31 = vec4<f32>(0.0);
            var a32 = vec4<f32>(0.0);
            var a33 = vec4<f32>(0.0);
            for (var j = 0u; j < slabs; j = j + 1u) {
                let o = j * BR;
                let jq = j * p.per;
                let u0 = qlanes(o0 + jq);
                var u1: QLanes;
                var u2: QLanes;
                var u3: QLanes;
                if (QC > 1u) { u1 = qlanes(o1 + jq); }
                if (QC > 2u) { u2 = qlanes(o2 + jq); }
                if (QC > 3u) { u3 = qlanes(o3 + jq); }
                let x0 = decode(bank[b0 + o]);
                a00 = acc(a00, x0, u0);
                if (QC > 1u) { a01 = acc(a01, x0, u1); }
                if (QC > 2u) { a02 = acc(a02, x0, u2); }
                if (QC > 3u) { a03 = acc(a03, x0, u3); }
                if (R > 1u) {
                    let x1 = decode(bank[b1 + o]);
                    a10 = acc(a10, x1, u0);
                    if (QC > 1u) { a11 = acc(a11, x1, u1); }
                    if (QC > 2u) { a12 = acc(a12, x1, u2); }
                    if (QC > 3u) { a13 = acc(a13, x1, u3); }
                }
                if (R > 2u) {
                    let x2 = decode(bank[b2 + o]);
                    a20 = acc(a20, x2, u0);
                    if (QC > 1u) { a21 = acc(a21, x2, u1); }
                    if (QC > 2u) { a22 = acc(a22, x2, u2); }
                    if (QC > 3u) { a23 = acc(a23, x2, u3); }
                }
                if (R > 3u) {
                    let x3 = decode(bank[b3 + o]);
                    a30 = acc(a30, x3, u0);
                    if (QC > 1u) { a31 = acc(a31, x3, u1); }
                    if (QC > 2u) { a32 = acc(a32, x3, u2); }
                    if (QC > 3u) { a33 = acc(a33, x3, u3); }
                }
            }
            put(qc, l0, fold(a00) * sc0);
            if (QC > 1u) { put(qc + 1u, l0, fold(a01) * sc0); }
            if (QC > 2u) { put(qc + 2u, l0, fold(a02) * sc0); }
            if (QC > 3u) { put(qc + 3u, l0, fold(a03) * sc0); }
            if (R > 1u) {
                put(qc, l1, fold(a10) * sc1);
                if (QC > 1u) { put(qc + 1u, l1, fold(a11) * sc1); }
                if (QC > 2u) { put(qc + 2u, l1, fold(a12) * sc1); }
                if (QC > 3u) { put(qc + 3u, l1, fold(a13) * sc1); }
            }
            if (R > 2u) {
                put(qc, l2, fold(a20) * sc2);
                if (QC > 1u) { put(qc + 1u, l2, fold(a21) * sc2); }
                if (QC > 2u) { put(qc + 2u, l2, fold(a22) * sc2); }
                if (QC > 3u) { put(qc + 3u, l2, fold(a23) * sc2); }
            }
            if (R > 3u) {
                put(qc, l3, fold(a30) * sc3);
                if (QC > 1u) { put(qc + 1u, l3, fold(a31) * sc3); }
                if (QC > 2u) { put(qc + 2u, l3, fold(a32) * sc3); }
                if (QC > 3u) { put(qc + 3u, l3, fold(a33) * sc3); }
            }
        }
    }

}

// Phase 2 of the two-phase top-k (after `score1` or `scorem` have scored every chunk): one
// workgroup per query (wid.z) and range of `p.rounds * WG` rows of the whole bank (`p.row0` = 0,
// `p.rows` = N; invocation `lid` reads rows `lid + i * WG` of the range). The scores are read
// back from `scratch`; the invocations' best
// allowed rows are offered first (which makes the list's K-th entry a tight bound), then every
// other allowed row of an invocation that beats the current K-th entry, one per invocation per
// offer, until no invocation has one left. Thresholds only rise, so a row not offered could
// never enter the list.
@compute @workgroup_size(WG)
fn pick(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let group = wid.x + wid.y * nwg.x;
    if (group >= p.groups) {
        return;
    }
    let q = wid.z;
    init_best(lid);
    let last = p.rows - 1u;
    let sbase = q * p.total + p.row0;
    let total = p.rounds;
    var m_s = 0.0;
    var m_i = NONE;
    var m_ok = false;
    for (var i = 0u; i < total; i = i + 1u) {
        let l = (group * total + i) * WG + lid;
        if (l > last) {
            break;
        }
        let g = p.row0 + l;
        let sc = scratch[sbase + l];
        if ((!m_ok || better(sc, g, m_s, m_i)) && row_allowed(g)) {
            m_s = sc;
            m_i = g;
            m_ok = true;
        }
    }
    workgroupBarrier();
    _ = offer(0u, m_s, m_i, m_ok, lid);
    var next = 0u;
    loop {
        var c_s = 0.0;
        var c_i = NONE;
        var found = false;
        while (next < total) {
            let l = (group * total + next) * WG + lid;
            next = next + 1u;
            if (l > last) {
                break;
            }
            let g = p.row0 + l;
            let sc = scratch[sbase + l];
            if (g != m_i && wants(0u, sc, g) && row_allowed(g)) {
                c_s = sc;
                c_i = g;
                found = true;
                break;
            }
        }
        if (!offer(0u, c_s, c_i, found, lid)) {
            break;
        }
    }
    workgroupBarrier();
    let out = (q * p.lists + p.list0 + group) * K;
    for (var i = lid; i < K; i = i + WG) {
        out_s[out + i] = best_s[i];
        out_i[out + i] = best_i[i];
    }
}

// Reduce `p.rounds` consecutive input lists (of K entries each) of one query to one list.
@compute @workgroup_size(WG)
fn merge(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let linear = wid.x + wid.y * nwg.x;
    if (linear >= p.groups * p.b) {
        return;
    }
    let q = linear / p.groups;
    let g = linear % p.groups;
    let first = g * p.rounds;
    let nl = min(p.rounds, p.rows - first);
    let count = nl * K;
    let base = (q * p.rows + first) * K;
    init_best(lid);
    workgroupBarrier();
    for (var c0 = 0u; c0 < count; c0 = c0 + WG) {
        let c = c0 + lid;
        var s = neg_inf();
        var id = NONE;
        if (c < count) {
            s = in_s[base + c];
            id = in_i[base + c];
        }
        _ = offer(0u, s, id, id != NONE, lid);
    }
    workgroupBarrier();
    let out = (q * p.lists + g) * K;
    for (var i = lid; i < K; i = i + WG) {
        out_s[out + i] = best_s[i];
        out_i[out + i] = best_i[i];
    }
}
