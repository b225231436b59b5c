// Hierarchical bank fetch: score candidate rows and keep the best of each tile.
//
// Used for both routing (rows = centroids of one tree level, with a bias column: score
// q·c - |c|²/2) and the final leaf scan (rows = bank rows in leaf order, plain dot product,
// optional allow-mask over row ids). A query's candidates are a list of `nranges` contiguous row
// ranges given as (first row, exclusive prefix of candidate counts), with one extra entry whose
// prefix is the total. Workgroup (query, tile) scores candidates tile*TILE .. +TILE, sorts the
// tile in workgroup memory (bitonic, key: higher score first, then lower id) and writes its best
// `keep` items. `select` repeats the sort over those items until one tile per query remains.
// Empty slots carry score -f32::MAX and id 0xffffffff (they sort last).

override WG: u32 = 256u;
const TILE: u32 = 1024u;
const NEG: f32 = -3.4028234e38; // rounds to -f32::MAX (Tint rejects literals past it)
const NOID: u32 = 0xffffffffu;

struct Params {
    nq: u32,         // queries
    d: u32,          // dimensions
    stride: u32,     // floats per data row (d, or d + 1 with a bias column)
    has_bias: u32,   // 1: add data[row * stride + d]
    nranges: u32,    // ranges per query (the ranges buffer holds nranges + 1 per query)
    keep: u32,       // items kept per tile
    tiles: u32,      // tiles per query (output tiles for `select`)
    use_mask: u32,   // 1: skip rows whose id is not set in `mask`
    mask_words: u32, // words in `mask`
    incount: u32,    // `select`: input items per query
    _pad0: u32,
    _pad1: u32,
}

struct Item {
    s: f32,
    id: u32,
    pos: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> queries: array<f32>;     // [nq, d]
@group(0) @binding(2) var<storage, read> data: array<f32>;        // [rows, stride]
@group(0) @binding(3) var<storage, read> ids: array<u32>;         // [rows] tie-break / result id
@group(0) @binding(4) var<storage, read> mask: array<u32>;        // allow-mask bitset over ids
@group(0) @binding(5) var<storage, read> ranges: array<vec2<u32>>; // [nq, nranges + 1]
@group(0) @binding(6) var<storage, read_write> out: array<Item>;  // [nq, tiles, keep]
@group(0) @binding(7) var<storage, read> inp: array<Item>;        // select: [nq, incount]

var<workgroup> ks: array<f32, TILE>;
var<workgroup> ki: array<u32, TILE>;
var<workgroup> kp: array<u32, TILE>;
var<workgroup> total_shared: u32;

fn better(sa: f32, ia: u32, sb: f32, ib: u32) -> bool {
    return sa > sb || (sa == sb && ia < ib);
}

// Sort ks/ki/kp best first. Every invocation of the workgroup must call it.
fn sort_tile(lid: u32) {
    for (var k = 2u; k <= TILE; k = k * 2u) {
        for (var j = k / 2u; j > 0u; j = j / 2u) {
            for (var t = lid; t < TILE / 2u; t = t + WG) {
                let i = 2u * j * (t / j) + (t % j);
                let l = i + j;
                let up = (i & k) == 0u;
                let lb = better(ks[l], ki[l], ks[i], ki[i]);
                if (lb == up) {
                    let s = ks[i];
                    ks[i] = ks[l];
                    ks[l] = s;
                    let a = ki[i];
                    ki[i] = ki[l];
                    ki[l] = a;
                    let p = kp[i];
                    kp[i] = kp[l];
                    kp[l] = p;
                }
            }
            workgroupBarrier();
        }
    }
}

fn write_best(q: u32, t: u32, lid: u32) {
    let obase = (q * params.tiles + t) * params.keep;
    for (var i = lid; i < params.keep; i = i + WG) {
        out[obase + i] = Item(ks[i], ki[i], kp[i]);
    }
}

fn allowed(id: u32) -> bool {
    let w = id / 32u;
    return w < params.mask_words && ((mask[w] >> (id % 32u)) & 1u) == 1u;
}

@compute @workgroup_size(WG)
fn scan(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let lin = wid.x + wid.y * nwg.x;
    let q = lin / params.tiles;
    let t = lin % params.tiles;
    if (q >= params.nq) {
        return;
    }
    let d = params.d;
    let rb = q * (params.nranges + 1u);
    if (lid == 0u) {
        total_shared = ranges[rb + params.nranges].y;
    }
    let total = workgroupUniformLoad(&total_shared);
    if (t * TILE >= total) {
        // Dispatches are sized for the worst case: most tiles of most queries are empty.
        let obase = (q * params.tiles + t) * params.keep;
        for (var i = lid; i < params.keep; i = i + WG) {
            out[obase + i] = Item(NEG, NOID, NOID);
        }
        return;
    }
    let qb = q * d;
    for (var r = 0u; r < TILE; r = r + WG) {
        let slot = r + lid;
        let p = t * TILE + slot;
        var s = NEG;
        var id = NOID;
        var pos = NOID;
        if (p < total) {
            // The last range whose prefix is <= p (prefix[nranges] = total > p).
            var lo = 0u;
            var hi = params.nranges;
            while (hi - lo > 1u) {
                let mid = (lo + hi) / 2u;
                if (ranges[rb + mid].y <= p) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let rg = ranges[rb + lo];
            let row = rg.x + (p - rg.y);
            let rid = ids[row];
            if (params.use_mask == 0u || allowed(rid)) {
                let db = row * params.stride;
                var acc = 0.0;
                for (var i = 0u; i < d; i = i + 1u) {
                    acc = acc + queries[qb + i] * data[db + i];
                }
                if (params.has_bias == 1u) {
                    acc = acc + data[db + d];
                }
                s = acc;
                id = rid;
                pos = row;
            }
        }
        ks[slot] = s;
        ki[slot] = id;
        kp[slot] = pos;
    }
    workgroupBarrier();
    sort_tile(lid);
    write_best(q, t, lid);
}

@compute @workgroup_size(WG)
fn select(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let lin = wid.x + wid.y * nwg.x;
    let q = lin / params.tiles;
    let t = lin % params.tiles;
    if (q >= params.nq) {
        return;
    }
    for (var r = 0u; r < TILE; r = r + WG) {
        let slot = r + lid;
        let p = t * TILE + slot;
        if (p < params.incount) {
            let it = inp[q * params.incount + p];
            ks[slot] = it.s;
            ki[slot] = it.id;
            kp[slot] = it.pos;
        } else {
            ks[slot] = NEG;
            ki[slot] = NOID;
            kp[slot] = NOID;
        }
    }
    workgroupBarrier();
    sort_tile(lid);
    write_best(q, t, lid);
}
