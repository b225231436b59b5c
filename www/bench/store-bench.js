// The store benchmark's page: durable write throughput and cold open, timed in the page with
// performance.now(). Driven headless by store-run.mjs (and store-ab.mjs, which loads two builds
// of the package side by side: `?pkg=/pkgB/` picks the build).
const PKG = new URLSearchParams(location.search).get('pkg') || '/pkg/';
const { default: init, Store } = await import(`${PKG}mnemo.js`);

function rand(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function episodes(n, dims, start, next) {
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const e = new Float32Array(dims);
    for (let k = 0; k < dims; k++) e[k] = next() * 2 - 1;
    out[i] = {
      namespace: `conv-${(start + i) % 50}`,
      role: i % 2 ? 'assistant' : 'user',
      text: `episode ${start + i}: the quick brown fox jumps over the lazy dog, remembered for later.`,
      eventTime: 1_700_000_000_000 + start + i,
      embedding: e,
      metadata: { turn: start + i },
      importance: 0.5,
    };
  }
  return out;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const p95 = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(s.length * 0.95))]; };

/** Write throughput for batches of 1 and of `batchSize` (`durability`: strict, the default, or
 *  relaxed). */
async function writes({ dims = 384, singles = 300, batches = 20, batchSize = 1000, durability = 'strict', opts = {} } = {}) {
  await Store.deleteStore('bench-writes');
  const s = await Store.open('bench-writes', { dims, durability, ...opts });
  const next = rand(1);
  const one = episodes(singles, dims, 0, next);
  const t1 = [];
  const s0 = performance.now();
  for (const e of one) {
    const t = performance.now();
    await s.put(e);
    t1.push(performance.now() - t);
  }
  const singleTotal = performance.now() - s0;
  const tb = [];
  let written = 0;
  let batchTotal = 0;
  for (let b = 0; b < batches; b++) {
    const batch = episodes(batchSize, dims, singles + written, next); // built outside the timing
    const t = performance.now();
    await s.putMany(batch);
    const dt = performance.now() - t;
    tb.push(dt);
    batchTotal += dt;
    written += batchSize;
  }
  const count = await s.count();
  s.close();
  await Store.deleteStore('bench-writes');
  return {
    dims,
    durability,
    single: { n: singles, perSec: singles / (singleTotal / 1000), medianMs: median(t1), p95Ms: p95(t1) },
    batch: { n: written, batchSize, perSec: written / (batchTotal / 1000), medianMs: median(tb), p95Ms: p95(tb), times: tb.map((x) => Math.round(x)) },
    count,
  };
}

/** Fill store `name` with `n` episodes of `dims` (batches of 1000; `opts`: extra open options). */
async function populate(name, n, dims, opts = {}) {
  await Store.deleteStore(name);
  const { untidy, ...open } = opts;
  const s = await Store.open(name, { dims, ...open });
  const next = rand(7);
  const t0 = performance.now();
  let pure = 0;
  for (let i = 0; i < n; i += 1000) {
    const batch = episodes(Math.min(1000, n - i), dims, i, next);
    const t = performance.now();
    await s.putMany(batch);
    pure += performance.now() - t;
  }
  // Writes defer segment merges until they pause (400 ms); run them now, as an idle moment after
  // the import would, unless `untidy` (a reload right after the import: up to 48 more records).
  const tidyDue = s.stats().tidyDue;
  const t1 = performance.now();
  if (!untidy) await s.tidy?.();
  const tidyMs = performance.now() - t1;
  const count = await s.count();
  const stats = s.stats();
  s.close();
  return { n: count, segments: stats.segments, pages: stats.pages, ms: performance.now() - t0, perSec: n / (pure / 1000), tidyDue, tidyMs };
}

/** Cold open: from `Store.open` until every vector is in memory. */
async function coldOpen(name) {
  const t0 = performance.now();
  const s = await Store.open(name);
  const t1 = performance.now();
  const v = await s.loadVectors();
  const t2 = performance.now();
  let check = 0;
  for (let i = 0; i < v.vectors.length; i += 997) check += v.vectors[i];
  const out = { rows: v.ids.length, dims: v.dims, openMs: t1 - t0, loadMs: t2 - t1, totalMs: t2 - t0, bytes: v.vectors.byteLength, check };
  s.close();
  return out;
}

await init();
window.storeBench = { writes, populate, coldOpen, ready: true };
