// `make bench-encoder`: mnemo's built-in text encoder against transformers.js in headless
// Chromium (WebGPU on SwiftShader), one page run: www/bench/encoder.html times sentences/s for
// batch 1 and batch 32 over the same LoCoMo turns for mnemo's CPU and WebGPU paths and for
// transformers.js on wasm and on WebGPU (the same all-MiniLM-L6-v2 weights; transformers.js runs
// the ONNX export of scripts/export-onnx.py from local files), checks every engine's vectors
// against sentence-transformers and against mnemo's CPU path (cosine), then measures cold start
// (page load -> first embedding with the weights in the browser's cache) for both, interleaved.
// Every request outside the local server is aborted and counted (the run fails if there is one).
// Reports, never asserts on timings; exits non-zero if a page fails, a request leaves localhost,
// a CPU engine fails, or a CPU engine's cosine against the reference is below 0.999 (a WebGPU
// engine's failure or low cosine is printed, not fatal: SwiftShader support varies).
// Options via env: MNEMO_BENCH_ENGINES (default mnemo-cpu,mnemo-webgpu,tjs-wasm,tjs-webgpu),
// MNEMO_BENCH_B1 (turns one by one, default 200), MNEMO_BENCH_B32 (batches of 32, default 6),
// MNEMO_BENCH_BUDGET_S (per engine and phase, "batch1,batch32" seconds, default 60,120; each engine
// makes at least one call per phase), MNEMO_BENCH_COLD_REPS (default 3).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, REPO } from '../scripts/server.mjs';
import { launch, chromiumVersion } from '../scripts/browser.mjs';

const env = (k, d) => process.env[k] || d;
const engines = env('MNEMO_BENCH_ENGINES', 'mnemo-cpu,mnemo-webgpu,tjs-wasm,tjs-webgpu').split(',');
const [b1s, b32s] = env('MNEMO_BENCH_BUDGET_S', '60,120').split(',').map(Number);
const cfg = {
  engines,
  b1Texts: Number(env('MNEMO_BENCH_B1', 200)),
  b32Batches: Number(env('MNEMO_BENCH_B32', 6)),
  budgetMs: Object.fromEntries(engines.map((e) => [e, [b1s * 1000, b32s * 1000]])),
};
const coldReps = Number(env('MNEMO_BENCH_COLD_REPS', 3));

const minilmDir = process.env.MNEMO_MINILM_DIR || path.join(REPO, '.cache/minilm');
const onnxDir = path.join(REPO, '.cache/minilm-onnx');
const evalDir = path.resolve(process.env.MNEMO_EVAL_DIR || path.join(REPO, '../shared/eval'));
const tjsDir = path.join(REPO, 'bench/node_modules/@huggingface/transformers');
// transformers.js's own onnxruntime-web (nested when another package hoists an older one).
const ortDir = [path.join(tjsDir, 'node_modules/onnxruntime-web'), path.join(REPO, 'bench/node_modules/onnxruntime-web')]
  .find((d) => fs.existsSync(path.join(d, 'dist/ort-wasm-simd-threaded.asyncify.wasm')));
const need = [
  [path.join(minilmDir, 'model.safetensors'), 'make setup'],
  [path.join(onnxDir, 'all-MiniLM-L6-v2/onnx/model.onnx'), 'scripts/export-onnx.sh'],
  [path.join(evalDir, 'minilm/sentences.jsonl'), 'MNEMO_EVAL_DIR (the reference texts)'],
  [path.join(tjsDir, 'dist/transformers.js'), 'npm ci in bench/ (make bench-encoder)'],
];
if (coldReps > 0 || engines.some((e) => e.startsWith('mnemo'))) need.push([path.join(REPO, 'pkg/mnemo_encoder.js'), 'make pkg']);
for (const [f, how] of need) {
  if (!fs.existsSync(f)) { console.error(`bench-encoder: ${f} missing: ${how}`); process.exit(1); }
}
if (!ortDir) { console.error('bench-encoder: onnxruntime-web (transformers.js dependency) not found under bench/node_modules'); process.exit(1); }
const version = (dir) => JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;

const { server, url } = await startServer({
  mounts: [
    ['/minilm/', minilmDir], ['/models/', onnxDir], ['/eval/', evalDir],
    ['/tjs/', path.join(tjsDir, 'dist')], ['/ort/', path.join(ortDir, 'dist')],
  ],
});
const load0 = os.loadavg();
const context = await launch();
const blocked = [];
const requests = [];
await context.route('**/*', (route) => {
  const u = new URL(route.request().url());
  if (u.origin === url || u.protocol === 'data:' || u.protocol === 'blob:') return route.continue();
  blocked.push(u.href);
  return route.abort('blockedbyclient');
});
context.on('request', (r) => requests.push(r.url()));
let failed = false;
const t0 = Date.now();
let result, colds = [];
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    const t = m.text();
    if (t.startsWith('[encoder] ')) console.log(`  ${t.slice(10)}`);
    else if (m.type() === 'error') console.error(`[page] ${t}`);
  });
  page.on('pageerror', (e) => { console.error(`[page error] ${e.message}`); failed = true; });
  await page.goto(`${url}/bench/encoder.html`);
  await page.waitForFunction(() => window.encBench?.ready === true, null, { timeout: 60000 });
  console.log(`browser: ${chromiumVersion()} (headless, WebGPU on SwiftShader); transformers.js ${version(tjsDir)}, onnxruntime-web ${version(ortDir)}; load average ${load0.map((x) => x.toFixed(1)).join(' ')} (${os.cpus().length} cores)`);
  result = await page.evaluate((c) => window.encBench.run({ ...c, log: (s) => console.log(`[encoder] ${s}`) }), cfg);

  // Cold start, interleaved: a fresh navigation each time, the model from the browser's cache.
  for (let rep = 0; rep < coldReps; rep++) {
    for (const which of ['mnemo', 'tjs']) {
      const from = requests.length;
      await page.goto(`${url}/bench/encoder.html?cold=${which}`);
      await page.waitForFunction(() => window.encCold !== undefined, null, { timeout: 120000 });
      const c = await page.evaluate(() => window.encCold);
      const fetched = requests.slice(from).filter((u) => /\/(minilm|models)\//.test(u)).map((u) => new URL(u).pathname);
      colds.push({ which, rep, ...c, modelRequests: fetched });
      if (c.error) { console.error(`cold start ${which}: ${c.error}`); failed = true; }
    }
  }
} finally {
  await context.close();
  server.close();
}
const load1 = os.loadavg();

const f = (x, d = 1) => (x == null ? '—' : x.toFixed(d));
console.log(`\nLoCoMo turns (the ${result.turns} of ../shared/eval/minilm/sentences.jsonl), sentences/s; budget per engine and phase ${b1s} s / ${b32s} s (at least one call)`);
console.log('engine                   | open ms | 1st call ms | batch 1 (texts)   | batch 32 (batches) | min cos vs ref (n)   | min cos vs mnemo CPU');
for (const r of result.engines) {
  if (r.error) {
    console.log(`${r.name.padEnd(24)} | FAILED: ${r.error}`);
    if (!r.id.endsWith('webgpu')) failed = true; // a WebGPU engine's failure is reported, not fatal
    continue;
  }
  console.log(`${r.name.padEnd(24)} | ${f(r.openMs, 0).padStart(7)} | ${f(r.firstMs, 0).padStart(11)} | ` +
    `${f(r.b1.perSec, 2).padStart(7)} (${String(r.b1.n).padStart(3)})     | ${f(r.b32.perSec, 2).padStart(7)} (${r.b32.n})        | ` +
    `${f(r.parity?.minCosine, 6)} (${r.parity?.n}) | ${r.vsMnemoCpu ? `${f(r.vsMnemoCpu.minCosine, 6)} (${r.vsMnemoCpu.n})` : '—'}`);
  if (r.parity && !(r.parity.minCosine >= 0.999)) {
    console.error(`  ${r.name}: cosine vs sentence-transformers ${r.parity.minCosine} at text ${r.parity.at}`);
    if (!r.id.endsWith('webgpu')) failed = true;
  }
}
if (result.engines.some((r) => r.info)) console.log(`engines: ${result.engines.map((r) => `${r.id} ${JSON.stringify(r.info ?? null)}`).join('; ')}`);
console.log(`WebGPU adapter: ${JSON.stringify(result.adapter)}`);
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[(s.length - 1) >> 1] : null; };
for (const which of ['mnemo', 'tjs']) {
  const cs = colds.filter((c) => c.which === which && !c.error);
  const name = which === 'mnemo' ? "mnemo (IndexedDB cache, backend 'auto')" : 'transformers.js (Cache API, wasm)';
  console.log(`cold start ${name}: median ${f(med(cs.map((c) => c.ms)), 0)} ms over ${cs.length} (${cs.map((c) => c.ms.toFixed(0)).join(', ')}); ` +
    `backend ${cs[0]?.backend}; model files fetched from the server during the cold loads: ${cs.reduce((n, c) => n + c.modelRequests.length, 0)}`);
}
console.log(`requests outside localhost: ${blocked.length}${blocked.length ? ` (blocked: ${[...new Set(blocked)].slice(0, 5).join(', ')})` : ''}`);
console.log(`load average at the end ${load1.map((x) => x.toFixed(1)).join(' ')}; run took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
if (blocked.length) failed = true;
fs.mkdirSync(path.join(REPO, 'target'), { recursive: true });
fs.writeFileSync(path.join(REPO, 'target/bench-encoder.json'), JSON.stringify({ date: new Date().toISOString(), chromium: chromiumVersion(),
  transformersJs: version(tjsDir), onnxruntimeWeb: version(ortDir), load: [load0, load1], config: cfg, result, cold: colds, blocked }, null, 2));
console.log('raw: target/bench-encoder.json');
process.exit(failed ? 1 : 0);
