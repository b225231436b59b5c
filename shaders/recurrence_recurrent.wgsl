// Linear recurrence, recurrent form: tokens in order, state in and out.
//
// Per head h and token t (see src/kernels/recurrence/mod.rs):
//   S' = diag(a_t) S;  u = beta_t (v_t - S'^T k_t) (delta) or u = v_t;  S = S' + k_t u^T;
//   o_t = scale * S^T q_t = scale * (S'^T q_t + (k_t . q_t) u).
//
// One workgroup per (dv tile of BV columns, head). Every state column evolves independently, so
// tiles never talk to each other. Inside a workgroup, invocation (r, c) holds the state rows
// d = r, r + R, r + 2R, ... of column c in registers (ROWS = ceil(dk / R) <= 16 of them). Per
// token each invocation decays its rows and writes partial dot products with k and q to
// workgroup memory; one barrier later every invocation sums the R partials of its column and
// updates its rows. The partials are double-buffered by token parity: one barrier per token.
// The variant (decay kind, delta rule) is a uniform, so one pipeline per layout serves them all.

override BV: u32 = 16u;     // columns per workgroup
override R: u32 = 16u;      // row groups (invocations per column), <= 64
override ROWS: u32 = 16u;   // rows per invocation = ceil(dk / R), <= MAXROWS
override WG: u32 = 256u;    // BV * R, <= 256

const MAXROWS: u32 = 16u;

struct Params {
    t: u32,          // tokens
    heads: u32,
    dk: u32,
    dv: u32,
    scale: f32,
    has_state: u32,  // 1: start from state_in, 0: from zeros
    state_off: u32,  // offset of the final state in `result` (after the outputs)
    decay: u32,      // 0: none, 1: scalar [T, H], 2: vector [T, H, dk]
    delta: u32,      // 1: delta rule (beta [T, H])
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> decay: array<f32>;
@group(0) @binding(5) var<storage, read> beta: array<f32>;
@group(0) @binding(6) var<storage, read> state_in: array<f32>;
// Outputs [T, H, dv] followed by the final state [H, dk, dv].
@group(0) @binding(7) var<storage, read_write> result: array<f32>;

var<workgroup> part_k: array<f32, 512>;   // [2][WG] partial S'^T k
var<workgroup> part_q: array<f32, 512>;   // [2][WG] partial S'^T q
var<workgroup> part_kq: array<f32, 128>;  // [2][R] partial k . q

@compute @workgroup_size(WG)
fn recurrent(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let h = wid.y;
    let c = lid % BV;
    let r = lid / BV;
    let col = wid.x * BV + c;
    let dk = p.dk;
    let dv = p.dv;
    let nh = p.heads;
    let col_ok = col < dv;

    var s: array<f32, MAXROWS>;
    var kr: array<f32, MAXROWS>;
    for (var i = 0u; i < ROWS; i++) {
        let d = r + i * R;
        var x = 0.0;
        if (p.has_state == 1u && d < dk && col_ok) {
            x = state_in[(h * dk + d) * dv + col];
        }
        s[i] = x;
    }

    for (var t = 0u; t < p.t; t++) {
        let par = t & 1u;
        let th = t * nh + h;
        let kb = th * dk;
        var a_s = 1.0;
        if (p.decay == 1u) {
            a_s = decay[th];
        }
        var pk = 0.0;
        var pq = 0.0;
        var pkq = 0.0;
        for (var i = 0u; i < ROWS; i++) {
            let d = r + i * R;
            if (d < dk) {
                var a = a_s;
                if (p.decay == 2u) {
                    a = decay[kb + d];
                }
                let sv = s[i] * a;
                s[i] = sv;
                let kd = k[kb + d];
                let qd = q[kb + d];
                kr[i] = kd;
                pk = fma(sv, kd, pk);
                pq = fma(sv, qd, pq);
                pkq = fma(kd, qd, pkq);
            }
        }
        part_k[par * WG + lid] = pk;
        part_q[par * WG + lid] = pq;
        if (c == 0u) {
            part_kq[par * 64u + r] = pkq;
        }
        workgroupBarrier();

        var sk = 0.0;
        var sq = 0.0;
        var kq = 0.0;
        for (var rr = 0u; rr < R; rr++) {
            sk += part_k[par * WG + rr * BV + c];
            sq += part_q[par * WG + rr * BV + c];
            kq += part_kq[par * 64u + rr];
        }
        var u = 0.0;
        if (col_ok) {
            u = v[th * dv + col];
        }
        if (p.delta == 1u) {
            u = beta[th] * (u - sk);
        }
        for (var i = 0u; i < ROWS; i++) {
            if (r + i * R < dk) {
                s[i] = fma(kr[i], u, s[i]);
            }
        }
        if (r == 0u && col_ok) {
            result[th * dv + col] = p.scale * fma(kq, u, sq);
        }
    }

    for (var i = 0u; i < ROWS; i++) {
        let d = r + i * R;
        if (d < dk && col_ok) {
            result[p.state_off + (h * dk + d) * dv + col] = s[i];
        }
    }
}
