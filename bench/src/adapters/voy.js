// voy-search 0.6.3: a k-d tree in Rust/WASM (wasm-bindgen, bundler target). Used as its README
// says: `new Voy(resource)` / `add(resource)` with `{ id, title, url, embeddings: number[] }`
// items, `search(query, k)`, `remove(resource)`, and `serialize()` / `Voy.deserialize()` for
// persistence, which the app stores (here: one IndexedDB record). The package imports its .wasm
// as an ES module; we do what a bundler's ESM-integration does: instantiate it with the glue
// module as its import object.
import * as bg from 'voy-search/voy_search_bg.js';
import { kvOpen, kvPut, kvGet } from '../adapter.js';

const CHUNK = 10000; // the resource crosses into WASM as JSON: one string per chunk keeps it below V8's string limit

let ready = null;
function load() {
  ready ??= (async () => {
    const url = new URL('./voy_search_bg.wasm', import.meta.url);
    const { instance } = await WebAssembly.instantiateStreaming(fetch(url), { './voy_search_bg.js': bg });
    bg.__wbg_set_wasm(instance.exports);
  })();
  return ready;
}

function resource(ids, vectors, texts, dims, from, to) {
  const embeddings = [];
  for (let i = from; i < to; i++) {
    embeddings.push({ id: String(ids[i]), title: texts ? texts[i] : '', url: '', embeddings: Array.from(vectors.subarray(i * dims, (i + 1) * dims)) });
  }
  return { embeddings };
}

export function create() {
  let voy = null;
  let dims = 0;
  let db = null;
  const kept = { ids: null, vectors: null, texts: null, pos: new Map() };
  return {
    name: 'voy-search (k-d tree)',
    version: '0.6.3',
    caps: { persist: true, delete: true },
    notes: [`voy: items added in chunks of ${CHUNK} (the resource is passed to WASM as JSON); persistence = serialize() string in one IndexedDB record, Voy.deserialize() at reopen.`],
    async init(o) { await load(); dims = o.dims; db = await kvOpen(o.name); },
    async insert(ids, vectors, texts) {
      for (let from = 0; from < ids.length; from += CHUNK) {
        const r = resource(ids, vectors, texts, dims, from, Math.min(ids.length, from + CHUNK));
        if (!voy) voy = new bg.Voy(r); else voy.add(r);
      }
      kept.ids = ids; kept.vectors = vectors; kept.texts = texts;
      ids.forEach((id, i) => kept.pos.set(id, i));
    },
    async query(q, k) {
      return voy.search(q, k).neighbors.map((x) => Number(x.id));
    },
    async delete(del) {
      const embeddings = [];
      for (const id of del) {
        const i = kept.pos.get(id);
        embeddings.push({ id: String(id), title: kept.texts ? kept.texts[i] : '', url: '', embeddings: Array.from(kept.vectors.subarray(i * dims, (i + 1) * dims)) });
      }
      voy.remove({ embeddings });
    },
    async persist() {
      const s = voy.serialize();
      await kvPut(db, 'index', s);
      db.close();
    },
    async reopen(o) {
      await load();
      dims = o.dims;
      db = await kvOpen(o.name);
      const s = await kvGet(db, 'index');
      if (typeof s !== 'string') throw new Error('nothing persisted');
      voy = bg.Voy.deserialize(s);
    },
    async stats() { return { count: voy ? voy.size() : 0 }; },
  };
}
