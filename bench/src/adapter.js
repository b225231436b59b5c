// The adapter interface every benchmarked library implements, and small helpers adapters share.
//
// An adapter module (src/adapters/<name>.js, bundled alone into dist/adapters/<name>.js so a page
// loads only that library) exports `create(options) => Adapter`:
//
//   interface Adapter {
//     name: string;                        // row label, e.g. 'hnswlib-wasm (M=16)'
//     version: string;                     // library version
//     caps: {                              // true, or a string saying why the library cannot
//       persist: true | string;            //   ... survive a page reload (reopen in a fresh page)
//       delete: true | string;             //   ... remove items
//     };
//     notes?: string[];                    // how it was used (settings), shown as footnotes
//     variants?: { label, ...params }[];   // query-time settings to measure (e.g. efSearch); the
//     sweepToRecall?: number;              //   harness stops after the first reaching this recall
//     configure?(variant): Promise<void>;  // switch to a variant before its query phase
//     init({ dims, n, name }): Promise<void>;           // load the library, make an empty index
//     insert(ids: Uint32Array, vectors: Float32Array,   // make these items searchable (any index
//            texts: string[]): Promise<void>;           //   build included)
//     query(vec: Float32Array, k: number): Promise<ArrayLike<number>>;  // the k best ids, best first
//     persist(): Promise<void>;            // flush to durable storage and close (if caps.persist)
//     reopen({ dims, n, name }): Promise<void>;         // in a fresh page: open what persist wrote
//     delete(ids: Uint32Array): Promise<void>;          // (if caps.delete)
//     stats(): Promise<{ count?: number, backend?: string, [k: string]: any }>;
//   }
//
// Ids are the benchmark's item numbers 0..n-1; an adapter maps them to and from whatever the
// library uses. Vectors are unit-length, so cosine, inner product and L2 order agree.

/** Indices of the k largest scores, best first (partial selection; O(n k) worst case, O(n) typical). */
export function topK(scores, k, skip = null) {
  const n = scores.length;
  const bestS = new Float64Array(k).fill(-Infinity);
  const bestI = new Int32Array(k).fill(-1);
  for (let i = 0; i < n; i++) {
    const s = scores[i];
    if (s > bestS[k - 1] && !(skip && skip[i])) {
      let p = k - 1;
      while (p > 0 && bestS[p - 1] < s) { bestS[p] = bestS[p - 1]; bestI[p] = bestI[p - 1]; p--; }
      bestS[p] = s;
      bestI[p] = i;
    }
  }
  let m = k;
  while (m > 0 && bestI[m - 1] < 0) m--;
  return bestI.subarray(0, m);
}

/** Rows of a row-major matrix as plain number arrays (what several libraries require). */
export function rowsAsArrays(vectors, dims) {
  const n = vectors.length / dims;
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = Array.from(vectors.subarray(i * dims, (i + 1) * dims));
  return out;
}

// --- A tiny promise wrapper over IndexedDB, for adapters whose library hands persistence to the
// app (a serialised index the app must store somewhere): one object store, key -> value.

function req(r) {
  return new Promise((ok, fail) => {
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
}

/** Open (creating) database `db` with one object store 'kv'. */
export async function kvOpen(db) {
  const r = indexedDB.open(db, 1);
  r.onupgradeneeded = () => r.result.createObjectStore('kv');
  return req(r);
}

/** Put `value` (structured-cloned) under `key`, resolving when the transaction commits durably. */
export async function kvPut(handle, key, value) {
  const tx = handle.transaction('kv', 'readwrite', { durability: 'strict' });
  tx.objectStore('kv').put(value, key);
  await new Promise((ok, fail) => {
    tx.oncomplete = ok;
    tx.onerror = () => fail(tx.error);
    tx.onabort = () => fail(tx.error);
  });
}

/** The value under `key`, or undefined. */
export async function kvGet(handle, key) {
  return req(handle.transaction('kv', 'readonly').objectStore('kv').get(key));
}
