// The page the store's Playwright tests drive: loads the wasm package and exposes helpers on
// `window.storeT` (episode builders, batch writer, verifiers) around the `Store` class.
import init, { Store } from '/pkg/mnemo.js';

/** A deterministic episode: embedding[0] = batch, embedding[1] = index, the rest a pattern. */
export function episode(batch, i, dims, ns) {
  const e = new Float32Array(dims);
  e[0] = batch;
  e[1] = i;
  for (let k = 2; k < dims; k++) e[k] = Math.sin(batch * 131 + i * 7 + k) * 0.5;
  return {
    namespace: ns ?? `b${batch}`,
    role: i % 2 ? 'assistant' : 'user',
    text: `batch ${batch} episode ${i}: ${'lorem ipsum '.repeat(4)}`,
    eventTime: 1_700_000_000_000 + batch * 1000 + i,
    embedding: e,
    metadata: { batch, i },
    importance: (i % 10) / 10,
    tags: ['kill', `b${batch}`],
  };
}

/** An episode with an incompressible random embedding (quota tests). */
export function randomEpisode(batch, i, dims, ns) {
  const e = episode(batch, i, dims, ns);
  for (let k = 0; k < dims; k++) e.embedding[k] = Math.random() * 2 - 1;
  return e;
}

/** Fill a separate database with `bytes` of random data (to free it later). */
async function filler(name, bytes) {
  const db = await new Promise((ok, fail) => {
    const r = indexedDB.open(name, 1);
    r.onupgradeneeded = () => r.result.createObjectStore('x');
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
  const chunk = 1 << 20;
  for (let off = 0; off < bytes; off += chunk) {
    const b = new Uint8Array(Math.min(chunk, bytes - off));
    for (let j = 0; j < b.length; j += 65536) crypto.getRandomValues(b.subarray(j, j + 65536));
    await new Promise((ok, fail) => {
      const tx = db.transaction('x', 'readwrite');
      tx.objectStore('x').put(b.buffer, off);
      tx.oncomplete = ok;
      tx.onabort = () => fail(tx.error);
    });
  }
  db.close();
}

/** Delete a database. */
function deleteDb(name) {
  return new Promise((ok, fail) => {
    const r = indexedDB.deleteDatabase(name);
    r.onsuccess = () => ok(true);
    r.onerror = () => fail(r.error);
  });
}

function errInfo(e) {
  return { code: e?.code ?? null, message: String(e?.message ?? e), field: e?.field ?? null };
}

const open = {};

/** Open (cached per name) a store. */
async function store(name, dims = 16, opts = {}) {
  if (!open[name]) open[name] = await Store.open(name, { dims, ...opts });
  return open[name];
}

/**
 * Write batches `from`, `from+1`, ... of `size` episodes forever (until the page dies), calling
 * `window.ack(k)` after batch k's `putMany` resolved (after the transaction's complete event).
 */
async function writeForever(name, from, size, dims) {
  const s = await store(name, dims);
  for (let k = from; ; k++) {
    const batch = [];
    for (let i = 0; i < size; i++) batch.push(episode(k, i, dims));
    await s.putMany(batch);
    await window.ack(k);
  }
}

/** Group every stored row by batch: { complete: [k...], partial: [[k, n]...], bad: [...] }. */
async function verifyBatches(name, size, dims) {
  const s = await store(name, dims);
  const v = await s.loadVectors();
  const counts = new Map();
  const bad = [];
  for (let r = 0; r < v.ids.length; r++) {
    const ns = v.namespaces[v.namespaceOf[r]];
    const k = Number(ns.slice(1));
    const row = v.vectors.subarray(r * dims, (r + 1) * dims);
    const want = episode(k, row[1], dims).embedding;
    for (let c = 0; c < dims; c++) {
      if (row[c] !== want[c]) { bad.push([v.ids[r], c]); break; }
    }
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const complete = [];
  const partial = [];
  for (const [k, n] of counts) (n === size ? complete : partial).push(n === size ? k : [k, n]);
  complete.sort((a, b) => a - b);
  const dbs = (await indexedDB.databases()).map((d) => `${d.name}@${d.version}`);
  return { complete, partial, bad, rows: v.ids.length, count: await s.count(), dbs, dataLoss: s.dataLoss ?? null };
}

await init();
window.storeT = { Store, store, episode, randomEpisode, filler, deleteDb, errInfo, writeForever, verifyBatches, ready: true };
