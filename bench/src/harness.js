// The page-side benchmark runner, shared by every peer (bundled to dist/harness.js). It loads the
// dataset, then imports ONE adapter module (dist/adapters/<peer>.js) inside the timed section, so
// the page loads only that library. The Node driver (run.mjs) calls `window.runBench(options)`.
//
// phase 'build': init, insert all items, queries (warm-up, then measured, per variant), delete
//                a few items and check they never come back, persist (flush + close).
// phase 'reopen': in a fresh browser on the same profile: import + open from persistence +
//                first query (timed together), then check queries (deleted items stay deleted,
//                recall against exact on what is left).

const K = 10;

function fetchBuffer(url) {
  return fetch(url).then((r) => {
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.arrayBuffer();
  });
}

/** Load a dataset descriptor's files: base vectors, the query rows, ground truth, texts. */
async function loadDataset(ds) {
  const [baseBuf, qBuf, gtBuf] = await Promise.all([fetchBuffer(ds.base), fetchBuffer(ds.queries), fetchBuffer(ds.gt)]);
  const dims = ds.dims;
  const base = new Float32Array(baseBuf);
  let queries = new Float32Array(qBuf);
  if (ds.queryRows) {
    const q = new Float32Array(ds.queryRows.length * dims);
    ds.queryRows.forEach((r, j) => q.set(queries.subarray(r * dims, (r + 1) * dims), j * dims));
    queries = q;
  }
  const nq = queries.length / dims;
  const gtIds = new Uint32Array(gtBuf, 0, nq * K);
  const gtKth = new Float32Array(gtBuf, nq * K * 4, nq);
  let texts;
  if (ds.texts) {
    const lines = (await (await fetch(ds.texts)).text()).split('\n').filter((l) => l.trim());
    texts = lines.map((l) => JSON.parse(l).embed_text ?? JSON.parse(l).text);
  } else {
    texts = Array.from({ length: ds.n }, (_, i) => `item ${i}`);
  }
  if (base.length !== ds.n * dims) throw new Error(`${ds.base}: ${base.length} floats, expected ${ds.n} x ${dims}`);
  return { base, queries, nq, gtIds, gtKth, texts, dims, n: ds.n };
}

const dot = (a, ao, b, bo, d) => {
  let s = 0;
  for (let j = 0; j < d; j++) s += a[ao + j] * b[bo + j];
  return s;
};

/** The exact k-th best score of query `qi` among the items not in `gone` (a Set). */
function exactKth(data, qi, gone) {
  const { base, queries, dims, n } = data;
  const best = new Float64Array(K).fill(-Infinity);
  for (let i = 0; i < n; i++) {
    if (gone.has(i)) continue;
    const s = dot(base, i * dims, queries, qi * dims, dims);
    if (s > best[K - 1]) {
      let p = K - 1;
      while (p > 0 && best[p - 1] < s) { best[p] = best[p - 1]; p--; }
      best[p] = s;
    }
  }
  return best[K - 1];
}

/** recall@k of `ids` for query `qi`: distinct returned ids scoring at least the exact k-th score (ties count). */
function recallOf(data, qi, ids, kth) {
  const seen = new Set();
  let hits = 0;
  for (let j = 0; j < Math.min(K, ids.length); j++) {
    const id = Number(ids[j]);
    if (seen.has(id) || !(id >= 0 && id < data.n)) continue;
    seen.add(id);
    if (dot(data.base, id * data.dims, data.queries, qi * data.dims, data.dims) >= kth - 1e-5) hits++;
  }
  return hits / K;
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

function summarise(times) {
  const s = [...times].sort((a, b) => a - b);
  return {
    count: s.length,
    medianMs: percentile(s, 0.5),
    p95Ms: percentile(s, 0.95),
    meanMs: s.reduce((a, b) => a + b, 0) / (s.length || 1),
    minMs: s[0] ?? null,
    maxMs: s[s.length - 1] ?? null,
  };
}

// --- memory: performance.memory (precise with --enable-precise-memory-info), sampled at every
// step and by a timer while the page is idle between awaits.
const heap = { peakUsed: 0, peakTotal: 0, samples: 0 };
function sampleHeap() {
  const m = performance.memory;
  if (!m) return null;
  heap.samples++;
  heap.peakUsed = Math.max(heap.peakUsed, m.usedJSHeapSize);
  heap.peakTotal = Math.max(heap.peakTotal, m.totalJSHeapSize);
  return m.usedJSHeapSize;
}
function retainedHeap() {
  if (typeof gc === 'function') gc(); // --js-flags=--expose-gc
  return sampleHeap();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Tell the driver what is done so far (it keeps the last report if the page dies). */
function progress(out, step) {
  out.lastStep = step;
  console.debug(`BENCH-PROGRESS ${JSON.stringify(out)}`);
}

async function runQueries(adapter, data, { from, count, budgetMs, minCount }) {
  const times = [];
  const recalls = [];
  const t0 = performance.now();
  for (let j = 0; j < count; j++) {
    const qi = from + j;
    const q = data.queries.subarray(qi * data.dims, (qi + 1) * data.dims);
    const t = performance.now();
    const ids = await adapter.query(q, K);
    times.push(performance.now() - t);
    recalls.push(recallOf(data, qi, ids, data.gtKth[qi]));
    if ((j & 7) === 7) sampleHeap();
    if (j + 1 >= minCount && performance.now() - t0 > budgetMs) break;
  }
  return { times, recalls };
}

async function checkAfterDelete(adapter, data, queryIdx, gone) {
  let leaked = 0;
  let recall = 0;
  for (const qi of queryIdx) {
    const q = data.queries.subarray(qi * data.dims, (qi + 1) * data.dims);
    const ids = Array.from(await adapter.query(q, K), Number);
    leaked += ids.filter((id) => gone.has(id)).length;
    recall += recallOf(data, qi, ids, exactKth(data, qi, gone));
  }
  return { queries: queryIdx.length, deletedReturned: leaked, recall: recall / (queryIdx.length || 1) };
}

/** Run one phase; returns a plain JSON-able object. Errors are caught per step and reported. */
async function runBench(o) {
  const out = { peer: o.peer, dataset: o.dataset.name, phase: o.phase, steps: {}, errors: [] };
  const timer = setInterval(sampleHeap, 50);
  try {
    const data = await loadDataset(o.dataset);
    const { dims, n } = data;
    out.heap = { baselineUsed: retainedHeap() };
    const warm = Math.min(o.warmup, data.nq);
    const measured = Math.min(o.measured, data.nq - warm);
    const name = `bench-${o.peer}-${o.dataset.name}`;

    const tImport = performance.now();
    const mod = await import(new URL(`./adapters/${o.module}.js`, import.meta.url).href);
    const adapter = mod.create(o.adapterOptions || {});
    out.name = adapter.name;
    out.version = adapter.version;
    out.caps = adapter.caps;
    out.notes = adapter.notes || [];
    out.placeholder = !!adapter.placeholder;
    out.steps.importMs = performance.now() - tImport;

    if (o.phase === 'build') {
      let t = performance.now();
      await adapter.init({ dims, n, name });
      out.steps.initMs = performance.now() - t;
      out.version = adapter.version;
      sampleHeap();

      const ids = new Uint32Array(n).map((_, i) => i);
      t = performance.now();
      await adapter.insert(ids, data.base, data.texts);
      out.steps.insertMs = performance.now() - t;
      out.steps.insertPerSec = n / (out.steps.insertMs / 1000);
      sampleHeap();
      out.statsAfterInsert = await adapter.stats();
      out.heap.afterInsertUsed = retainedHeap();
      progress(out, 'insert');

      const variants = adapter.variants && adapter.variants.length ? adapter.variants : [{ label: 'default' }];
      out.variants = [];
      for (const v of variants) {
        if (adapter.configure) await adapter.configure(v);
        const w = await runQueries(adapter, data, { from: 0, count: warm, budgetMs: o.budgetMs / 4, minCount: Math.min(3, warm) });
        await sleep(0);
        const m = await runQueries(adapter, data, { from: warm, count: measured, budgetMs: o.budgetMs, minCount: Math.min(o.minMeasured, measured) });
        const recall = m.recalls.reduce((a, b) => a + b, 0) / (m.recalls.length || 1);
        out.variants.push({ ...v, warmup: w.times.length, ...summarise(m.times), recall, minRecall: Math.min(...m.recalls) });
        progress(out, `queries ${v.label}`);
        if (adapter.sweepToRecall && recall >= adapter.sweepToRecall) break;
      }
      out.heap.afterQueriesUsed = sampleHeap();
      if (adapter.configure && variants.length) await adapter.configure(variants[0]);

      if (adapter.caps.delete === true) {
        // Delete the exact best item of the first few measured queries, then check those queries.
        const qIdx = Array.from({ length: Math.min(o.deleteCount, measured) }, (_, j) => warm + j);
        const gone = new Set(qIdx.map((qi) => data.gtIds[qi * K]));
        const del = Uint32Array.from(gone);
        try {
          t = performance.now();
          await adapter.delete(del);
          const ms = performance.now() - t;
          out.delete = { count: del.length, ms, perItemMs: ms / del.length, ids: Array.from(del) };
          Object.assign(out.delete, await checkAfterDelete(adapter, data, qIdx, gone));
          out.statsAfterDelete = await adapter.stats();
          progress(out, 'delete');
        } catch (e) {
          out.errors.push({ step: 'delete', message: String(e && e.message || e) });
        }
      }

      if (adapter.caps.persist === true) {
        try {
          t = performance.now();
          await adapter.persist();
          out.steps.persistMs = performance.now() - t;
          out.persisted = true;
        } catch (e) {
          out.errors.push({ step: 'persist', message: String(e && e.message || e) });
        }
      }
    } else {
      // reopen: the clock started before the import above.
      let t = performance.now();
      await adapter.reopen({ dims, n, name });
      out.steps.openMs = performance.now() - t;
      out.version = adapter.version;
      const q0 = warm;
      t = performance.now();
      const first = Array.from(await adapter.query(data.queries.subarray(q0 * dims, (q0 + 1) * dims), K), Number);
      out.steps.firstQueryMs = performance.now() - t;
      out.steps.reopenToFirstAnswerMs = performance.now() - tImport;
      out.steps.sinceNavigationMs = performance.now();
      progress(out, 'first answer');
      const gone = new Set(o.deleted || []);
      out.firstAnswer = { recall: recallOf(data, q0, first, exactKth(data, q0, gone)) };
      const qIdx = Array.from({ length: Math.min(o.checkQueries, measured) }, (_, j) => warm + j);
      const t1 = performance.now();
      out.check = await checkAfterDelete(adapter, data, qIdx, gone);
      out.check.ms = performance.now() - t1;
      progress(out, 'check queries');
      out.statsAfterReopen = await adapter.stats();
    }
    out.heap.retainedUsed = retainedHeap();
    progress(out, 'done');
    if (adapter.close) {
      // Not part of any measure; some libraries take long to close (PGlite after queries under
      // relaxed durability), so wait at most 10 s.
      const t = performance.now();
      await Promise.race([adapter.close().catch(() => {}), sleep(10000)]);
      out.steps.closeMs = performance.now() - t;
    }
  } catch (e) {
    out.errors.push({ step: 'run', message: String(e && e.stack || e) });
  } finally {
    clearInterval(timer);
    sampleHeap();
    out.heap = { ...(out.heap || {}), peakUsed: heap.peakUsed, peakTotal: heap.peakTotal, samples: heap.samples };
  }
  return out;
}

/** What the browser offers: WebGPU adapter info (null without one), cores as the page sees them. */
async function environment() {
  let gpu = null;
  try {
    const a = navigator.gpu && (await navigator.gpu.requestAdapter());
    if (a) {
      const i = a.info || {};
      gpu = { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description };
    }
  } catch (e) {
    gpu = { error: String(e) };
  }
  return { userAgent: navigator.userAgent, hardwareConcurrency: navigator.hardwareConcurrency, gpu, crossOriginIsolated };
}

window.runBench = runBench;
window.benchEnvironment = environment;
window.benchReady = true;
