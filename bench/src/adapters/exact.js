// Baseline: a plain-JS exact scan (what an app writes without a library). Vectors in one
// Float32Array, dot products in a 4-way unrolled loop, partial top-k; deletes are tombstones;
// persistence is one IndexedDB record holding the vectors' ArrayBuffer.
import { topK, kvOpen, kvPut, kvGet } from '../adapter.js';

export function create() {
  let dims = 0;
  let n = 0;
  let vecs = new Float32Array(0);
  let ids = new Uint32Array(0);
  let dead = new Uint8Array(0);
  let scores = new Float32Array(0);
  let db = null;
  let name = '';

  function reserve(cap) {
    if (cap * dims <= vecs.length) return;
    const c = Math.max(cap, n * 2);
    const v = new Float32Array(c * dims); v.set(vecs.subarray(0, n * dims)); vecs = v;
    const i = new Uint32Array(c); i.set(ids.subarray(0, n)); ids = i;
    const d = new Uint8Array(c); d.set(dead.subarray(0, n)); dead = d;
  }

  return {
    name: 'plain-JS exact scan',
    version: '-',
    caps: { persist: true, delete: true },
    notes: ['Baseline: one Float32Array, unrolled dot products, partial top-k; persistence = one IndexedDB record (the ArrayBuffer); deletes are tombstones.'],
    async init(o) { dims = o.dims; name = o.name; db = await kvOpen(name); },
    async insert(newIds, vectors) {
      const m = newIds.length;
      reserve(n + m);
      vecs.set(vectors, n * dims);
      ids.set(newIds, n);
      n += m;
    },
    async query(q, k) {
      if (scores.length < n) scores = new Float32Array(vecs.length / dims);
      const d = dims;
      for (let i = 0; i < n; i++) {
        const o = i * d;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let j = 0; j < d; j += 4) {
          s0 += vecs[o + j] * q[j];
          s1 += vecs[o + j + 1] * q[j + 1];
          s2 += vecs[o + j + 2] * q[j + 2];
          s3 += vecs[o + j + 3] * q[j + 3];
        }
        scores[i] = s0 + s1 + s2 + s3;
      }
      const top = topK(scores.subarray(0, n), k, dead);
      return Array.from(top, (i) => ids[i]);
    },
    async delete(del) {
      const pos = new Map();
      for (let i = 0; i < n; i++) pos.set(ids[i], i);
      for (const id of del) { const p = pos.get(id); if (p !== undefined) dead[p] = 1; }
    },
    async persist() {
      await kvPut(db, 'index', {
        dims, n,
        vectors: vecs.slice(0, n * dims).buffer,
        ids: ids.slice(0, n).buffer,
        dead: dead.slice(0, n).buffer,
      });
      db.close();
    },
    async reopen(o) {
      dims = o.dims;
      db = await kvOpen(o.name);
      const r = await kvGet(db, 'index');
      if (!r) throw new Error('nothing persisted');
      n = r.n;
      vecs = new Float32Array(r.vectors);
      ids = new Uint32Array(r.ids);
      dead = new Uint8Array(r.dead);
    },
    async stats() {
      let live = 0;
      for (let i = 0; i < n; i++) live += dead[i] ? 0 : 1;
      return { count: live };
    },
  };
}
