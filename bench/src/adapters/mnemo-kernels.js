// PLACEHOLDER for mnemo until the engine (`Mnemo`, issue 6) lands: what exists today is the
// `Kernels` class with an exact `scores` kernel. This adapter keeps the vectors in a JS array and
// answers each query with `Kernels.scores(bank, dims, query)` (on 'webgpu' or 'cpu') followed by
// a top-k in JS. `scores` copies the whole bank into WASM (and, on WebGPU, uploads it to the GPU)
// on EVERY call, so query times here measure that copy, not a resident index. No store yet:
// no persistence, no delete, and "insert" is a memcpy (not reported).
import init, { Kernels, version } from '/pkg/mnemo.js';
import { topK } from '../adapter.js';

export function create({ backend = 'webgpu' } = {}) {
  let kernels = null;
  let dims = 0;
  let n = 0;
  let bank = new Float32Array(0);
  let ids = new Uint32Array(0);
  const noStore = 'placeholder: Kernels has no store (the engine of issue 6 persists to IndexedDB and deletes)';
  return {
    name: `mnemo Kernels.scores exact scan [PLACEHOLDER] (${backend})`,
    version: '?',
    placeholder: true,
    caps: { persist: noStore, delete: noStore },
    notes: [`mnemo placeholder (${backend}): exact scan through Kernels.scores, which re-copies (and on WebGPU re-uploads) the whole bank on every query; top-k in JS. Stand-in until the Mnemo engine (issue 6) lands; the adapter src/adapters/mnemo.js is used automatically once the package exports Mnemo.`],
    async init(o) {
      await init();
      this.version = version();
      dims = o.dims;
      kernels = await Kernels.create({ prefer: backend });
      if (kernels.backend() !== backend) {
        throw new Error(`asked for ${backend}, got ${kernels.backend()}: ${kernels.fallbackReason() ?? ''}`);
      }
    },
    async insert(newIds, vectors) {
      const b = new Float32Array((n + newIds.length) * dims);
      b.set(bank.subarray(0, n * dims)); b.set(vectors, n * dims); bank = b;
      const i = new Uint32Array(n + newIds.length); i.set(ids.subarray(0, n)); i.set(newIds, n); ids = i;
      n += newIds.length;
    },
    async query(q, k) {
      const scores = await kernels.scores(bank, dims, q);
      return Array.from(topK(scores, k), (i) => ids[i]);
    },
    async stats() {
      const a = kernels.adapterInfo();
      return { count: n, backend: kernels.backend(), adapter: a ? `${a.name} (${a.api}, ${a.device_type})` : null };
    },
  };
}
