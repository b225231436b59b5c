// Raw IndexedDB measurements (plain JS, no mnemo): what the browser itself delivers for the
// record shapes the store could use. Driven by store-raw-run.mjs (`node bench/store-raw-run.mjs`).
// Numbers, not assertions: they bound what any layout can reach on this machine.

function openDb(name, stores) {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(name, 1);
    r.onupgradeneeded = () => {
      for (const [s, idx] of stores) {
        const os = r.result.createObjectStore(s);
        for (const [n, kp, multi] of idx || []) os.createIndex(n, kp, { multiEntry: !!multi });
      }
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}
const del = (name) => new Promise((res) => { const r = indexedDB.deleteDatabase(name); r.onsuccess = r.onerror = r.onblocked = () => res(); });
const req = (r) => new Promise((res, rej) => { r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
const done = (tx) => new Promise((res, rej) => { tx.oncomplete = () => res(); tx.onabort = tx.onerror = () => rej(tx.error); });

function randBytes(n, seed) {
  const b = new Uint32Array(Math.ceil(n / 4));
  let a = seed >>> 0;
  for (let i = 0; i < b.length; i++) { a = (Math.imul(a, 1664525) + 1013904223) >>> 0; b[i] = a; }
  return new Uint8Array(b.buffer, 0, n);
}

/** Fill `name` with `total` bytes in records of `recBytes` ('ab' ArrayBuffer values or 'blob'). */
async function fill(name, total, recBytes, kind = 'ab') {
  await del(name);
  const db = await openDb(name, [['s']]);
  const n = Math.ceil(total / recBytes);
  const t0 = performance.now();
  for (let i = 0; i < n; i += 16) {
    const tx = db.transaction(['s'], 'readwrite', { durability: 'relaxed' });
    for (let k = i; k < Math.min(n, i + 16); k++) {
      const b = randBytes(recBytes, k + 1);
      tx.objectStore('s').put(kind === 'blob' ? new Blob([b]) : b.buffer.slice(0, recBytes), k);
    }
    await done(tx);
  }
  db.close();
  return { records: n, ms: performance.now() - t0 };
}

/** Read everything back; `mode`: getAll | cursor | chunks:K (K getAll ranges in one tx) | txs:K.
 *  Blobs are read with `blobRead` (par: all arrayBuffer() at once; seq: one by one; stream: BYOB
 *  straight into the destination). The destination is `dest` (new: a fresh buffer; wasm: a
 *  WebAssembly.Memory grown beforehand; none: no copy). */
async function read(name, mode = 'getAll', kind = 'ab', dest = 'new', blobRead = 'par') {
  const t0 = performance.now();
  const db = await openDb(name, [['s']]);
  const t1 = performance.now();
  let vals = [];
  if (mode === 'getAll') {
    const tx = db.transaction(['s'], 'readonly');
    vals = await req(tx.objectStore('s').getAll());
  } else if (mode === 'cursor') {
    const tx = db.transaction(['s'], 'readonly');
    await new Promise((res, rej) => {
      const r = tx.objectStore('s').openCursor();
      r.onsuccess = () => { const c = r.result; if (!c) return res(); vals.push(c.value); c.continue(); };
      r.onerror = () => rej(r.error);
    });
  } else if (mode.startsWith('chunks:') || mode.startsWith('txs:')) {
    const k = Number(mode.split(':')[1]);
    const tx0 = db.transaction(['s'], 'readonly');
    const n = await req(tx0.objectStore('s').count());
    const per = Math.ceil(n / k);
    const ps = [];
    for (let i = 0; i < n; i += per) {
      const tx = mode.startsWith('txs:') ? db.transaction(['s'], 'readonly') : tx0;
      ps.push(req(tx.objectStore('s').getAll(IDBKeyRange.bound(i, i + per - 1))));
    }
    vals = (await Promise.all(ps)).flat();
  }
  const t2 = performance.now();
  let bytes = 0;
  for (const v of vals) bytes += kind === 'blob' ? v.size : v.byteLength;
  let dst = null;
  if (dest === 'new') dst = new Uint8Array(bytes);
  if (dest === 'wasm') {
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
    mem.grow(Math.ceil(bytes / 65536));
    dst = new Uint8Array(mem.buffer, 0, bytes);
  }
  const t3 = performance.now();
  let blobMs = 0;
  if (kind === 'blob' && blobRead === 'stream' && dst) {
    let off = 0;
    for (const b of vals) {
      const r = b.stream().getReader({ mode: 'byob' });
      let end = off + b.size;
      while (off < end) {
        const { value, done } = await r.read(new Uint8Array(dst.buffer, off, end - off));
        if (done) break;
        off += value.byteLength;
        dst = new Uint8Array(value.buffer);
      }
    }
  } else {
    if (kind === 'blob') {
      const tb = performance.now();
      if (blobRead === 'seq') { const out = []; for (const b of vals) out.push(await b.arrayBuffer()); vals = out; }
      else vals = await Promise.all(vals.map((b) => b.arrayBuffer()));
      blobMs = performance.now() - tb;
    }
    if (dst) {
      let off = 0;
      for (const v of vals) { dst.set(new Uint8Array(v), off); off += v.byteLength; }
    }
  }
  let sum = 0;
  if (dst) for (let i = 0; i < dst.length; i += 4096) sum += dst[i];
  const t4 = performance.now();
  db.close();
  return { mode, kind, dest, blobRead, records: vals.length, mib: bytes / 1048576, openMs: t1 - t0, idbMs: t2 - t1, allocMs: t3 - t2, blobMs, copyMs: t4 - t3 - blobMs, totalMs: t4 - t0, sum };
}

/** Read blob-valued records with the pipelines the store could use (after one getAll of the
 *  Blob handles): `pipe` = 'ab4' (arrayBuffer(), 4 in flight, copied into a fresh destination),
 *  'byob' (one stream at a time, read straight into the destination), 'stage' (BYOB into a
 *  reused 1 MiB staging buffer, then copied), 'ab-none' (arrayBuffer() only, no destination). */
async function readBlobs(name, pipe = 'ab4') {
  const t0 = performance.now();
  const db = await openDb(name, [['s']]);
  const tx = db.transaction(['s'], 'readonly');
  const blobs = await req(tx.objectStore('s').getAll());
  const t1 = performance.now();
  let total = 0;
  for (const b of blobs) total += b.size;
  let dst = pipe === 'ab-none' ? null : new Uint8Array(total);
  let off = 0;
  if (pipe === 'ab4' || pipe === 'ab-none') {
    const pending = [];
    let next = 0;
    let keep = 0;
    for (let i = 0; i < blobs.length; i++) {
      while (next < blobs.length && next < i + 4) pending.push(blobs[next++].arrayBuffer());
      const ab = await pending.shift();
      if (dst) dst.set(new Uint8Array(ab), off);
      else keep += ab.byteLength;
      off += ab.byteLength;
    }
  } else if (pipe === 'byob') {
    let reader = blobs.length ? blobs[0].stream().getReader({ mode: 'byob' }) : null;
    for (let i = 0; i < blobs.length; i++) {
      const nextReader = i + 1 < blobs.length ? blobs[i + 1].stream().getReader({ mode: 'byob' }) : null;
      const end = off + blobs[i].size;
      while (off < end) {
        const { value, done } = await reader.read(new Uint8Array(dst.buffer, off, end - off));
        if (value) dst = new Uint8Array(value.buffer);
        if (done) break;
        off += value.byteLength;
      }
      reader.releaseLock();
      reader = nextReader;
    }
  } else if (pipe === 'stage') {
    let stage = new Uint8Array(1 << 20);
    for (let i = 0; i < blobs.length; i++) {
      const r = blobs[i].stream().getReader({ mode: 'byob' });
      for (;;) {
        const { value, done } = await r.read(new Uint8Array(stage.buffer, 0, stage.length));
        if (value) stage = new Uint8Array(value.buffer);
        if (done) break;
        dst.set(value, off);
        off += value.byteLength;
      }
    }
  }
  const t2 = performance.now();
  let sum = 0;
  if (dst) for (let i = 0; i < dst.length; i += 4096) sum += dst[i];
  db.close();
  return { pipe, records: blobs.length, mib: total / 1048576, txMs: t1 - t0, readMs: t2 - t1, totalMs: t2 - t0, sum };
}

/** CPU calibration: copy `mib` MiB between two preallocated buffers (twice; the second is warm). */
function memcpy(mib = 146.5) {
  const n = Math.floor(mib * 1048576);
  const a = new Uint8Array(n); const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 4096) a[i] = i;
  const t0 = performance.now(); b.set(a); const t1 = performance.now(); a.set(b); const t2 = performance.now();
  return { coldMs: t1 - t0, warmMs: t2 - t1 };
}

/** Commit cost: `txs` transactions, each putting `big` records of `bigBytes` plus `small` small
 *  records (optionally objects with an index), with the given durability. */
async function writes({ txs = 10, big = 1, bigBytes = 1572864, small = 0, objects = false, durability = 'strict', multi = 0 }) {
  const name = 'raw-writes';
  await del(name);
  const db = await openDb(name, [['s'], ['e', [['ns_t', ['ns', 't']]]], ['p', [['k', 'k', true]]]]);
  const times = [];
  let id = 0;
  for (let t = 0; t < txs; t++) {
    const bufs = [];
    for (let i = 0; i < big; i++) bufs.push(randBytes(bigBytes, t * 100 + i + 1).buffer.slice(0));
    const t0 = performance.now();
    const tx = db.transaction(['s', 'e', 'p'], 'readwrite', { durability });
    for (let i = 0; i < big; i++) tx.objectStore('s').put(bufs[i], id++);
    for (let i = 0; i < small; i++) {
      const b = randBytes(200, id).buffer.slice(0);
      if (objects) tx.objectStore('e').put({ ns: `conv-${i % 50}`, t: 1e12 + id, b }, id++);
      else tx.objectStore('s').put(b, id++);
    }
    if (multi) {
      const k = [];
      for (let i = 0; i < multi; i++) k.push([`conv-${i}`, 1e12 + id + i, 1e12 + id + i + 1000]);
      tx.objectStore('p').put({ k, b: randBytes(250000, id).buffer.slice(0) }, id++);
    }
    tx.objectStore('s').put(new ArrayBuffer(64), 'state');
    await done(tx);
    times.push(performance.now() - t0);
  }
  db.close();
  await del(name);
  times.sort((a, b) => a - b);
  return { txs, big, bigBytes, small, objects, durability, multi, medianMs: times[Math.floor(times.length / 2)], minMs: times[0], maxMs: times[times.length - 1] };
}

window.raw = { fill, read, readBlobs, writes, del, memcpy, ready: true };
