// mnemo's engine (issue 6): `Mnemo.open` / `rememberMany` / `recall` / `forget` / `close`, on
// IndexedDB, top-k on WebGPU or the CPU path. Written against the JS API in issue 6; the driver
// schedules it only when the built package (pkg/mnemo.js) exports `Mnemo` (until then the
// placeholder mnemo-kernels.js stands in). Vector-only recall (lexical, recency and importance
// weights 0) so the numbers compare with the peers' pure vector search.
//
// Assumptions to check when the engine lands (each in one place below):
// - the backend override is an option of `Mnemo.open` named BACKEND_OPTION ('webgpu' | 'cpu');
// - `meta` round-trips through recall hits (we keep the benchmark id in `meta.i`);
// - `rememberMany` resolves to the new ids in input order.
import * as pkg from '/pkg/mnemo.js';

const BACKEND_OPTION = 'backend';
const BATCH = 5000; // items per rememberMany (one atomic batch each)
const WEIGHTS = { vector: 1, lexical: 0, recency: 0, importance: 0 };
const T0 = Date.UTC(2024, 0, 1);

export function create({ backend = 'webgpu' } = {}) {
  let mem = null;
  let dims = 0;
  const engineId = new Map(); // bench id -> engine id
  const benchId = new Map(); // engine id -> bench id (fallback when meta does not round-trip)
  const Mnemo = () => {
    if (typeof pkg.Mnemo !== 'function') throw new Error('this build of mnemo does not export Mnemo (engine not merged yet)');
    return pkg.Mnemo;
  };
  const openOptions = (d) => ({ dims: d, [BACKEND_OPTION]: backend });
  return {
    name: `mnemo (${backend})`,
    version: '?',
    caps: { persist: true, delete: true },
    notes: [`mnemo engine (${backend}): Mnemo.open(name, { dims, ${BACKEND_OPTION}: '${backend}' }), rememberMany in batches of ${BATCH}, vector-only recall (weights ${JSON.stringify(WEIGHTS)}), close() to persist, forget(id) to delete.`],
    async init(o) {
      await pkg.default();
      this.version = pkg.version ? pkg.version() : '?';
      dims = o.dims;
      await Mnemo().destroy(o.name).catch(() => {});
      mem = await Mnemo().open(o.name, openOptions(dims));
    },
    async insert(ids, vectors, texts) {
      for (let from = 0; from < ids.length; from += BATCH) {
        const to = Math.min(ids.length, from + BATCH);
        const items = [];
        for (let i = from; i < to; i++) {
          items.push({
            text: texts[i],
            embedding: vectors.slice(i * dims, (i + 1) * dims),
            namespace: 'bench',
            time: T0 + i * 1000,
            meta: { i: ids[i] },
          });
        }
        const got = await mem.rememberMany(items);
        for (let j = 0; j < got.length; j++) {
          engineId.set(ids[from + j], got[j]);
          benchId.set(got[j], ids[from + j]);
        }
      }
    },
    async query(q, k) {
      const hits = await mem.recall({ embedding: q, k, weights: WEIGHTS });
      return hits.map((h) => (h.meta && h.meta.i !== undefined ? h.meta.i : benchId.get(h.id)));
    },
    async delete(del) {
      for (const id of del) await mem.forget(engineId.get(id));
    },
    async persist() {
      await mem.close();
      mem = null;
    },
    async reopen(o) {
      await pkg.default();
      this.version = pkg.version ? pkg.version() : '?';
      dims = o.dims;
      mem = await Mnemo().open(o.name, openOptions(dims));
    },
    async stats() { return { ...mem.stats() }; },
    async close() { if (mem) await mem.close(); },
  };
}
