// hnswlib-wasm 0.8.2: hnswlib (C++ HNSW) compiled with Emscripten, IDBFS persistence. Used as its
// README says: `loadHnswlib()`, `new HierarchicalNSW('cosine', dims, '')`, `initIndex(maxElements,
// M, efConstruction, seed)`, `setEfSearch`, `addPoints`, `searchKnn`, `markDelete`; persistence
// = `writeIndex(file)` then `syncFileSystem('write')`, and at reopen `syncFileSystem('read')` then
// `readIndex(file, maxElements)`. The empty autoSaveFilename turns auto-saving off (we save once).
import { loadHnswlib, syncFileSystem } from 'hnswlib-wasm';

const M = 16;
const EF_CONSTRUCTION = 200; // hnswlib's default
const SEED = 100;
const EF_SEARCH = [40, 80, 160, 320, 640, 1280];

export function create() {
  let lib = null;
  let index = null;
  let file = '';
  let max = 0;
  return {
    name: `hnswlib-wasm (M=${M}, efConstruction=${EF_CONSTRUCTION})`,
    version: '0.8.2',
    caps: { persist: true, delete: true },
    notes: [`hnswlib-wasm: cosine space, M=${M}, efConstruction=${EF_CONSTRUCTION}; efSearch=40 (the issue's reference setting), then doubled until recall@10 >= 0.99; reopen uses efSearch=40. Persistence through Emscripten IDBFS (writeIndex + syncFileSystem).`],
    variants: EF_SEARCH.map((ef) => ({ label: `efSearch=${ef}`, efSearch: ef })),
    sweepToRecall: 0.99,
    async configure(v) { index.setEfSearch(v.efSearch); },
    async init(o) {
      lib = await loadHnswlib();
      file = o.name;
      max = o.n;
      index = new lib.HierarchicalNSW('cosine', o.dims, '');
      index.initIndex(max, M, EF_CONSTRUCTION, SEED);
      index.setEfSearch(EF_SEARCH[0]);
    },
    async insert(ids, vectors) {
      const dims = vectors.length / ids.length;
      const need = index.getCurrentCount() + ids.length;
      if (need > index.getMaxElements()) index.resizeIndex(need);
      const items = new Array(ids.length);
      for (let i = 0; i < ids.length; i++) items[i] = vectors.subarray(i * dims, (i + 1) * dims);
      index.addPoints(items, Array.from(ids), false);
    },
    async query(q, k) {
      return index.searchKnn(q, k, undefined).neighbors;
    },
    async delete(del) {
      for (const id of del) index.markDelete(id);
    },
    async persist() {
      await index.writeIndex(file);
      await syncFileSystem('write');
    },
    async reopen(o) {
      lib = await loadHnswlib();
      await syncFileSystem('read');
      if (!lib.EmscriptenFileSystemManager.checkFileExists(o.name)) throw new Error('nothing persisted');
      index = new lib.HierarchicalNSW('cosine', o.dims, '');
      await index.readIndex(o.name, o.n);
      index.setEfSearch(EF_SEARCH[0]);
    },
    async stats() {
      return { count: index.getCurrentCount() - index.getDeletedLabels().length, efSearch: index.getEfSearch() };
    },
  };
}
