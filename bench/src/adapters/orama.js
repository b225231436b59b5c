// @orama/orama 3.1.18: a full-text + vector search engine in plain JS. Used as its README says:
// `create({ schema: { text: 'string', embedding: 'vector[384]' } })`, `insertMultiple`,
// `search({ mode: 'vector', vector: { value, property }, similarity, limit })`, `removeMultiple`.
// similarity is set to 0: the default threshold (0.8) drops true neighbours, which on clustered
// data and real sentence embeddings often score below 0.8.
// Persistence: Orama's own `save(db)` snapshot (a plain object), structured-cloned into one
// IndexedDB record, and `load(db, raw)` at reopen. (The data-persistence plugin's formats build
// one string of the whole index: about 16 kB per 384-d vector, past V8's string limit beyond
// ~30k vectors.)
import { create as createDb, insertMultiple, search, removeMultiple, save, load, count } from '@orama/orama';
import { kvOpen, kvPut, kvGet } from '../adapter.js';

const VERSION = '3.1.18';

export function create() {
  let db = null;
  let kv = null;
  let dims = 0;
  const schema = (d) => ({ text: 'string', embedding: `vector[${d}]` });
  return {
    name: 'Orama (vector mode, similarity 0)',
    version: VERSION,
    caps: { persist: true, delete: true },
    notes: ['Orama: similarity threshold 0 (default 0.8 drops true neighbours); documents carry the text too; persistence = save(db) snapshot structured-cloned into IndexedDB, load() at reopen.'],
    async init(o) {
      dims = o.dims;
      db = createDb({ schema: schema(dims) });
      kv = await kvOpen(o.name);
    },
    async insert(ids, vectors, texts) {
      const docs = new Array(ids.length);
      for (let i = 0; i < ids.length; i++) {
        docs[i] = { id: String(ids[i]), text: texts[i], embedding: Array.from(vectors.subarray(i * dims, (i + 1) * dims)) };
      }
      await insertMultiple(db, docs, 1000);
    },
    async query(q, k) {
      const r = await search(db, { mode: 'vector', vector: { value: q, property: 'embedding' }, similarity: 0, limit: k, includeVectors: false });
      return r.hits.map((h) => Number(h.id));
    },
    async delete(del) {
      await removeMultiple(db, Array.from(del, String));
    },
    async persist() {
      const raw = await save(db);
      await kvPut(kv, 'index', raw);
      kv.close();
    },
    async reopen(o) {
      dims = o.dims;
      kv = await kvOpen(o.name);
      const raw = await kvGet(kv, 'index');
      if (!raw) throw new Error('nothing persisted');
      db = createDb({ schema: schema(dims) });
      await load(db, raw);
    },
    async stats() { return { count: await count(db) }; },
  };
}
