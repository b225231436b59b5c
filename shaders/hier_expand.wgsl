// Hierarchical bank fetch: turn the beam selected at one tree level into the candidate ranges of
// the next level. For each of the `beam` selected entries (score, id, pos) of a query, the
// children of entry `pos` are rows nodes[pos].x .. + nodes[pos].y of the next level (or of the
// bank, below the last level). Writes (first row, exclusive prefix) per entry plus a final entry
// holding the total, the layout `hier_scan` reads. One invocation per query.

override WG: u32 = 64u;
const NOID: u32 = 0xffffffffu;

struct Params {
    nq: u32,
    beam: u32,
    _pad0: u32,
    _pad1: u32,
}

struct Item {
    s: f32,
    id: u32,
    pos: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> sel: array<Item>;          // [nq, beam]
@group(0) @binding(2) var<storage, read> nodes: array<vec2<u32>>;   // per entry: first child, count
@group(0) @binding(3) var<storage, read_write> ranges: array<vec2<u32>>; // [nq, beam + 1]

@compute @workgroup_size(WG)
fn expand(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    if (q >= params.nq) {
        return;
    }
    var prefix = 0u;
    let ob = q * (params.beam + 1u);
    for (var j = 0u; j < params.beam; j = j + 1u) {
        let it = sel[q * params.beam + j];
        if (it.id != NOID) {
            let n = nodes[it.pos];
            ranges[ob + j] = vec2<u32>(n.x, prefix);
            prefix = prefix + n.y;
        } else {
            ranges[ob + j] = vec2<u32>(0u, prefix);
        }
    }
    ranges[ob + params.beam] = vec2<u32>(0u, prefix);
}
