// Scatter: write freshly encoded rows into a bank chunk's blocked layout (see fetch_topk.wgsl),
// so that appends and row updates upload only the new rows, never the whole bank.
//
// `src` holds `n` rows row-major, each `hdr + W` words (hdr = 1: the int8 row scale first).
// One invocation per source word; the dispatch is folded over (x, y).

const WG: u32 = 256u;
const BR: u32 = 8u;

struct Params {
    n: u32,           // staged rows
    words: u32,       // data words per row (W)
    hdr: u32,         // header words per row (0, or 1 for int8)
    block_words: u32, // words per block
    dst0: u32,        // chunk-local index of the first staged row
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(WG)
fn scatter(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let linear = (wid.x + wid.y * nwg.x) * WG + lid;
    let per_row = p.hdr + p.words;
    let i = linear / per_row;
    let c = linear % per_row;
    if (i >= p.n) {
        return;
    }
    let local = p.dst0 + i;
    let blk = local / BR;
    let r = local % BR;
    let v = src[linear];
    if (c < p.hdr) {
        dst[blk * p.block_words + r] = v;
    } else {
        let j = c - p.hdr;
        dst[blk * p.block_words + p.hdr * BR + (j / 4u) * 4u * BR + 4u * r + j % 4u] = v;
    }
}
