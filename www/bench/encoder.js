// The text encoder benchmark page (issue 8): mnemo's built-in all-MiniLM-L6-v2 (the package's
// `mnemo/encoder` entry, CPU path and WebGPU path) against transformers.js
// (`@huggingface/transformers`, its onnxruntime-web on wasm and on WebGPU) running the same model
// from local files: the ONNX export that scripts/export-onnx.py makes from the same safetensors.
// Everything is served by the local server (bench/encoder-run.mjs mounts the files):
//   /pkg/      mnemo's package             /minilm/  safetensors + vocab.txt (.cache/minilm)
//   /tjs/      transformers.js dist        /ort/     its onnxruntime-web dist (.wasm / .mjs)
//   /models/   the ONNX model folder       /eval/    the reference texts and embeddings
// `window.encBench.run(config)` times sentences/s for batch 1 (one call per text) and batch 32
// (one call of 32 texts) over the same LoCoMo turns, the engines interleaved round by round so
// that they see the same machine load, each capped by a time budget per phase (at least one
// call). `?cold=mnemo` / `?cold=tjs` instead load one engine from its browser cache (mnemo:
// IndexedDB; transformers.js: the Cache API) and set `window.encCold` to the time from
// navigation start to the first embedding.
const MODEL = 'all-MiniLM-L6-v2';
const DIMS = 384;

/** The reference texts (0..30 edge cases, 31..230 LoCoMo turns) and their embeddings. */
async function reference() {
  const lines = (await (await fetch('/eval/minilm/sentences.jsonl')).text()).trim().split('\n');
  const texts = lines.map((l) => JSON.parse(l).text);
  const emb = new Float32Array(await (await fetch('/eval/minilm/embeddings.f32')).arrayBuffer());
  return { texts, emb };
}

function cosine(a, b) {
  let d = 0, x = 0, y = 0;
  for (let j = 0; j < DIMS; j++) { d += a[j] * b[j]; x += a[j] * a[j]; y += b[j] * b[j]; }
  return d / Math.sqrt(x * y);
}

/** mnemo's encoder entry, initialised once. */
let mnemoPkg = null;
async function mnemo() {
  if (!mnemoPkg) {
    mnemoPkg = await import('/pkg/mnemo_encoder.js');
    await mnemoPkg.default();
  }
  return mnemoPkg;
}

/** transformers.js, configured for local files only and a local onnxruntime-web. */
let tjsMod = null;
async function tjs() {
  if (!tjsMod) {
    tjsMod = await import('/tjs/transformers.js');
    const { env } = tjsMod;
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = '/models/';
    env.useBrowserCache = true;
    env.backends.onnx.wasm.wasmPaths = {
      mjs: new URL('/ort/ort-wasm-simd-threaded.asyncify.mjs', location.href).href,
      wasm: new URL('/ort/ort-wasm-simd-threaded.asyncify.wasm', location.href).href,
    };
  }
  return tjsMod;
}

/** An engine: { name, embed(texts) -> Float32Array[] , info }. */
async function openMnemo(backend, withWeights) {
  const { Mnemo } = await mnemo();
  const embedder = { model: MODEL, backend };
  if (withWeights) {
    embedder.weights = '/minilm/model.safetensors';
    embedder.vocab = await (await fetch('/minilm/vocab.txt')).text();
  }
  const mem = await Mnemo.open(`enc-bench-${backend}`, { embedder });
  return {
    name: `mnemo ${backend === 'cpu' ? 'CPU (wasm)' : 'WebGPU'}`,
    info: { backend: mem.stats().embedder?.backend },
    embed: (texts) => mem.embed(texts),
    close: async () => { await mem.close(); mem.free(); },
  };
}

async function openTjs(device) {
  const T = await tjs();
  const ext = await T.pipeline('feature-extraction', MODEL, { device, dtype: 'fp32' });
  return {
    name: `transformers.js ${device}`,
    info: { device, version: T.env.version, ort: T.env.backends.onnx.versions?.web ?? null, threads: T.env.backends.onnx.wasm.numThreads ?? null },
    async embed(texts) {
      const out = await ext(texts, { pooling: 'mean', normalize: true });
      const rows = [];
      for (let i = 0; i < texts.length; i++) rows.push(out.data.slice(i * DIMS, (i + 1) * DIMS));
      out.dispose?.();
      return rows;
    },
    close: async () => { await ext.dispose?.(); },
  };
}

/**
 * The benchmark. `engines`: which of 'mnemo-cpu', 'mnemo-webgpu', 'tjs-wasm', 'tjs-webgpu';
 * `b1Texts` / `b32Batches`: the most turns (batch 1) and batches of 32 per engine;
 * `budgetMs[engine]` = [batch 1 phase, batch 32 phase] time caps (each engine does at least one call).
 */
export async function run({
  engines = ['mnemo-cpu', 'mnemo-webgpu', 'tjs-wasm', 'tjs-webgpu'],
  b1Texts = 200, b32Batches = 6, budgetMs = {}, log = () => {},
} = {}) {
  const { texts, emb } = await reference();
  const turns = texts.slice(31); // the 200 LoCoMo turns of the reference set
  const out = { turns: turns.length, engines: [], adapter: null, userAgent: navigator.userAgent };
  if (navigator.gpu) {
    try {
      const a = await navigator.gpu.requestAdapter();
      out.adapter = a ? { vendor: a.info?.vendor, architecture: a.info?.architecture, description: a.info?.description } : null;
    } catch (e) { out.adapter = { error: String(e) }; }
  }
  const open = {
    'mnemo-cpu': () => openMnemo('cpu', true), // weights from the URL: fetch + parse + IndexedDB write
    // From the cache when the CPU engine put it there (the model is then shared).
    'mnemo-webgpu': async () => openMnemo('webgpu', !(await (await mnemo()).Mnemo.modelCached(MODEL))),
    'tjs-wasm': () => openTjs('wasm'),
    'tjs-webgpu': () => openTjs('webgpu'),
  };
  const live = [];
  for (const id of engines) {
    const r = { id, name: id, openMs: null, firstMs: null, error: null, b1: { n: 0, ms: 0 }, b32: { n: 0, ms: 0 }, vecs: new Map() };
    out.engines.push(r);
    try {
      let t0 = performance.now();
      const e = await open[id]();
      r.openMs = performance.now() - t0;
      r.name = e.name;
      r.info = e.info;
      t0 = performance.now();
      await e.embed([turns[0]]); // first call: pipeline compilation, allocations
      r.firstMs = performance.now() - t0;
      live.push({ r, e });
      log(`${r.name}: open ${r.openMs.toFixed(0)} ms, first embedding ${r.firstMs.toFixed(0)} ms`);
    } catch (err) {
      r.error = String(err?.message ?? err);
      log(`${r.name}: FAILED: ${r.error}`);
    }
  }
  const budget = (id, phase) => (budgetMs[id] ?? [60000, 120000])[phase];

  // Batch 1, interleaved: text i through every engine that is still under its budget.
  for (let i = 0; i < Math.min(b1Texts, turns.length); i++) {
    let any = false;
    for (const { r, e } of live) {
      if (r.b1.n > 0 && r.b1.ms >= budget(r.id, 0)) continue;
      any = true;
      const t0 = performance.now();
      const [v] = await e.embed([turns[i]]);
      r.b1.ms += performance.now() - t0;
      r.b1.n += 1;
      if (!r.vecs.has(31 + i)) r.vecs.set(31 + i, v);
    }
    if (!any) break;
  }
  log(`batch 1: ${live.map(({ r }) => `${r.name} ${r.b1.n} texts`).join(', ')}`);
  // Batch 32, interleaved the same way.
  for (let b = 0; b < Math.min(b32Batches, Math.floor(turns.length / 32)); b++) {
    const batch = turns.slice(b * 32, (b + 1) * 32);
    let any = false;
    for (const { r, e } of live) {
      if (r.b32.n > 0 && r.b32.ms >= budget(r.id, 1)) continue;
      any = true;
      const t0 = performance.now();
      const vs = await e.embed(batch);
      r.b32.ms += performance.now() - t0;
      r.b32.n += 1;
      vs.forEach((v, j) => r.vecs.set(31 + b * 32 + j, v));
    }
    if (!any) break;
    log(`batch 32 #${b + 1}: ${live.map(({ r }) => `${r.name} ${r.b32.n}`).join(', ')}`);
  }
  // Parity: against sentence-transformers on every text the engine embedded, and between engines.
  for (const { r } of live) {
    let min = Infinity, at = -1;
    for (const [i, v] of r.vecs) {
      const c = cosine(v, emb.subarray(i * DIMS, (i + 1) * DIMS));
      if (!(c >= min)) { min = c; at = i; }
    }
    r.parity = { n: r.vecs.size, minCosine: min, at };
  }
  const base = live.find(({ r }) => r.id === 'mnemo-cpu')?.r;
  for (const { r } of live) {
    if (!base || r === base) continue;
    let min = Infinity, at = -1, n = 0;
    for (const [i, v] of r.vecs) {
      const w = base.vecs.get(i);
      if (!w) continue;
      n += 1;
      const c = cosine(v, w);
      if (!(c >= min)) { min = c; at = i; }
    }
    r.vsMnemoCpu = { n, minCosine: min, at };
  }
  for (const { r, e } of live) {
    r.vecs = undefined;
    try { await e.close(); } catch { /* closing is not measured */ }
  }
  for (const r of out.engines) {
    r.b1.perSec = r.b1.n ? r.b1.n / (r.b1.ms / 1000) : null;
    r.b32.perSec = r.b32.n ? (32 * r.b32.n) / (r.b32.ms / 1000) : null;
    delete r.vecs;
  }
  return out;
}

/** Cold start: page load -> (import, init, model from the browser cache) -> first embedding. */
async function cold(which) {
  const text = 'My dog Rex is a golden retriever who loves the beach';
  try {
    if (which === 'mnemo') {
      const { Mnemo } = await mnemo();
      const mem = await Mnemo.open('enc-cold', { embedder: { model: MODEL } }); // 'auto'
      const [v] = await mem.embed([text]);
      const ms = performance.now();
      window.encCold = { ms, backend: mem.stats().embedder?.backend, norm: Math.hypot(...v) };
    } else {
      const T = await tjs();
      const ext = await T.pipeline('feature-extraction', MODEL, { device: 'wasm', dtype: 'fp32' });
      const o = await ext([text], { pooling: 'mean', normalize: true });
      const ms = performance.now();
      window.encCold = { ms, backend: 'wasm', norm: Math.hypot(...o.data) };
    }
  } catch (e) {
    window.encCold = { error: String(e?.message ?? e) };
  }
}

const coldWhich = new URLSearchParams(location.search).get('cold');
if (coldWhich) {
  cold(coldWhich);
} else {
  const outEl = document.getElementById('out');
  document.getElementById('run')?.addEventListener('click', async () => {
    outEl.textContent = '';
    const log = (s) => { outEl.textContent += `${s}\n`; };
    const r = await run({ log });
    log(JSON.stringify(r, null, 2));
  });
  window.encBench = { run, ready: true };
}
