// client-vector-search 0.2.0: an in-memory array scanned with cosine similarity in plain JS, with
// IndexedDB persistence. Used as its README says: `new EmbeddingIndex(objects)` with
// `{ id, text, embedding: number[] }` objects, `search(embedding, { topK })`, `remove({ id })`,
// `saveIndex('indexedDB', { DBName, objectStoreName })`; at reopen the README's
// `getAllObjectsFromIndexedDB(DBName, objectStoreName)` loads the objects back into an index.
// Its embedding helper imports transformers.js (a model download at run time): that import is
// stubbed out in this bundle (see src/stubs/transformers.js); embeddings are precomputed.
import { EmbeddingIndex } from 'client-vector-search';

const STORE = 'ClientEmbeddingStore';

export function create() {
  let index = null;
  let dbName = '';
  let dims = 0;
  return {
    name: 'client-vector-search',
    version: '0.2.0',
    caps: { persist: true, delete: true },
    notes: ['client-vector-search: in-memory linear scan (cosine rounded to 6 digits, as the library does); saveIndex(\'indexedDB\') to persist, getAllObjectsFromIndexedDB() + new EmbeddingIndex() at reopen; its transformers.js import is stubbed (it would download a model at run time).'],
    async init(o) { dims = o.dims; dbName = o.name; index = new EmbeddingIndex([]); },
    async insert(ids, vectors, texts) {
      for (let i = 0; i < ids.length; i++) {
        index.add({ id: ids[i], text: texts[i], embedding: Array.from(vectors.subarray(i * dims, (i + 1) * dims)) });
      }
    },
    async query(q, k) {
      const r = await index.search(Array.from(q), { topK: k });
      return r.map((x) => x.object.id);
    },
    async delete(del) {
      for (const id of del) index.remove({ id });
    },
    async persist() {
      await index.saveIndex('indexedDB', { DBName: dbName, objectStoreName: STORE });
    },
    async reopen(o) {
      dims = o.dims;
      const objects = await new EmbeddingIndex([]).getAllObjectsFromIndexedDB(o.name, STORE);
      if (!objects.length) throw new Error('nothing persisted');
      index = new EmbeddingIndex(objects);
    },
    async stats() { return { count: index.size() }; },
  };
}
