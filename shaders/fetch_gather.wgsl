// Gather: copy selected rows (or fixed-size blocks of consecutive rows) of a memory bank into one
// contiguous row-major f32 output, dequantising f16 / int8 banks on the way.
//
// Output row o comes from bank row `ids[o / block] * block + o % block`. One dispatch per bank
// chunk: each invocation handles one (output row, slab of 4 data words) and writes only when the source row
// lies in this chunk. Missing rows (id 0xFFFFFFFF, or past the end of the bank) are left as the
// zeros the host cleared the output to. Bank layout as in fetch_topk.wgsl.

const WG: u32 = 256u;
const BR: u32 = 8u;
const NONE: u32 = 0xFFFFFFFFu;

override FORMAT: u32 = 0u;  // 0 = f32, 1 = f16 pairs, 2 = int8 quads with per-row scale

struct Params {
    out_rows: u32,    // ids * block
    block: u32,       // rows per id
    d: u32,           // dimensions of an output row
    words: u32,       // data words per bank row (W, a multiple of 4)
    block_words: u32, // words per bank block
    row0: u32,        // global id of this chunk's first row
    rows: u32,        // rows of this chunk
    id_limit: u32,    // ids >= this select no row (ceil(bank rows / block))
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> bank: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn gather(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let linear = (wid.x + wid.y * nwg.x) * WG + lid;
    let slabs = p.words / 4u;
    let orow = linear / slabs;
    let j = linear % slabs;
    if (orow >= p.out_rows) {
        return;
    }
    let id = ids[orow / p.block];
    if (id == NONE || id >= p.id_limit) {
        return;
    }
    let row = id * p.block + orow % p.block;
    if (row < p.row0 || row - p.row0 >= p.rows) {
        return;
    }
    let local = row - p.row0;
    let blk = local / BR;
    let r = local % BR;
    let hdr = select(0u, BR, FORMAT == 2u);
    let x = bank[(blk * p.block_words + hdr) / 4u + j * BR + r];
    let o = orow * p.d;
    if (FORMAT == 0u) {
        for (var t = 0u; t < 4u; t = t + 1u) {
            let c = 4u * j + t;
            if (c < p.d) {
                out[o + c] = bitcast<f32>(x[t]);
            }
        }
    } else if (FORMAT == 1u) {
        for (var t = 0u; t < 4u; t = t + 1u) {
            let u = unpack2x16float(x[t]);
            let c = 2u * (4u * j + t);
            if (c < p.d) {
                out[o + c] = u.x;
            }
            if (c + 1u < p.d) {
                out[o + c + 1u] = u.y;
            }
        }
    } else {
        let scale = bitcast<f32>(bank[(blk * p.block_words) / 4u + r / 4u][r % 4u]);
        let xi = bitcast<vec4<i32>>(x);
        for (var t = 0u; t < 4u; t = t + 1u) {
            for (var e = 0u; e < 4u; e = e + 1u) {
                let c = 4u * (4u * j + t) + e;
                if (c < p.d) {
                    out[o + c] = f32(extractBits(xi[t], 8u * e, 8u)) * scale;
                }
            }
        }
    }
}
