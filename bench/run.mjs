// `make bench-peers`: mnemo against the in-browser vector-search peers, on the same data, in the
// same headless Chromium (the system /usr/bin/chromium, WebGPU on SwiftShader; never a
// downloaded browser). For every dataset and library: a fresh profile, a page that loads only
// that library, build + queries + delete + persist; then the browser is restarted on the same
// profile and a fresh page reopens from persistence and answers its first query.
// Writes bench/results/peers-<stamp>.json (raw) and the peers section of BENCHMARKS.md.
//
// Environment:
//   BENCH_SIZES=10000,100000   synthetic set sizes (default both)
//   BENCH_PEERS=a,b            only these runs (ids below; default all that apply)
//   BENCH_LOCOMO=0             skip the LoCoMo set (default: run it when the eval folder exists)
//   MNEMO_EVAL_DIR             eval data (default <repo>/../shared/eval), read-only
//   BENCH_QUERIES=200          measured queries (after BENCH_WARMUP=20 warm-up queries)
//   BENCH_BUDGET_S=120         per query setting: stop measuring after this long (>= 20 queries)
//   BENCH_DELETE=50            items deleted (then checked) per run
//   BENCH_PHASE_TIMEOUT_S=1800 give up on a page after this long
//   BENCH_SPREAD=1.0           synthetic cluster spread (larger: weaker clusters, harder for graph indexes)
//   BENCH_RESULTS_DIR, BENCH_REPORT  where the raw JSON and the markdown go (default bench/results, BENCHMARKS.md)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer, REPO } from '../www/scripts/server.mjs';
import { CHROMIUM, CHROMIUM_ARGS, chromiumVersion } from '../www/scripts/browser.mjs';
import { buildPages, BENCH } from './lib/build.mjs';
import { syntheticDataset, locomoDataset } from './lib/data.mjs';
import { chromiumPeaks, chromiumRoots } from './lib/proc.mjs';
import { writeReport } from './lib/report.mjs';

const env = process.env;
const int = (v, d) => (v === undefined || v === '' ? d : Number(v));
const SIZES = (env.BENCH_SIZES || '10000,100000').split(',').map((s) => Number(s.trim())).filter((n) => n > 0);
const ONLY = env.BENCH_PEERS ? env.BENCH_PEERS.split(',').map((s) => s.trim()) : null;
const WARMUP = int(env.BENCH_WARMUP, 20);
const QUERIES = int(env.BENCH_QUERIES, 200);
const BUDGET_MS = int(env.BENCH_BUDGET_S, 120) * 1000;
const DELETE = int(env.BENCH_DELETE, 50);
const CHECK = int(env.BENCH_CHECK, 50);
const PHASE_TIMEOUT_MS = int(env.BENCH_PHASE_TIMEOUT_S, 1800) * 1000;
const EVAL_DIR = env.MNEMO_EVAL_DIR || path.resolve(REPO, '..', 'shared', 'eval');
const CACHE = path.join(BENCH, '.cache', 'data');
const RESULTS = env.BENCH_RESULTS_DIR ? path.resolve(env.BENCH_RESULTS_DIR) : path.join(BENCH, 'results');
const REPORT = env.BENCH_REPORT ? path.resolve(env.BENCH_REPORT) : path.join(REPO, 'BENCHMARKS.md');
const EXTRA_ARGS = ['--enable-precise-memory-info', '--js-flags=--expose-gc'];

const log = (...a) => console.log('[bench]', ...a);

// --- which runs: each peer once; mnemo on both paths.
const pkgJs = path.join(REPO, 'pkg', 'mnemo.js');
const hasPkg = fs.existsSync(pkgJs);
const hasEngine = hasPkg && /export class Mnemo\b/.test(fs.readFileSync(pkgJs, 'utf8'));
const RUNS = [
  { id: 'exact', module: 'exact' },
  { id: 'voy', module: 'voy' },
  { id: 'orama', module: 'orama' },
  { id: 'hnswlib', module: 'hnswlib' },
  { id: 'client-vector-search', module: 'cvs' },
  { id: 'pglite', module: 'pglite' },
  { id: 'mnemo-webgpu', module: 'mnemo', options: { backend: 'webgpu' }, when: hasEngine },
  { id: 'mnemo-cpu', module: 'mnemo', options: { backend: 'cpu' }, when: hasEngine },
  { id: 'mnemo-kernels-webgpu', module: 'mnemo-kernels', options: { backend: 'webgpu' }, when: hasPkg && !hasEngine },
  { id: 'mnemo-kernels-cpu', module: 'mnemo-kernels', options: { backend: 'cpu' }, when: hasPkg && !hasEngine },
].filter((r) => (ONLY ? ONLY.includes(r.id) : r.when !== false));
if (!hasPkg) log('pkg/ not built: mnemo is left out (run `make pkg`; `make bench-peers` does)');

async function launch(userDataDir) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...EXTRA_ARGS],
  });
}

const MOUNTS = [
  ['/page/', path.join(BENCH, 'page')],
  ['/dist/', path.join(BENCH, 'dist')],
  ['/modules/', path.join(BENCH, 'node_modules')],
  ['/data/', CACHE],
  ['/eval/', EVAL_DIR],
];
/** The file behind a served path (the mounts above, then pkg/). */
function localFile(p) {
  for (const [prefix, dir] of [...MOUNTS, ['/pkg/', path.join(REPO, 'pkg')]]) {
    if (p.startsWith(prefix)) {
      const f = path.resolve(dir, '.' + path.sep + decodeURIComponent(p.slice(prefix.length)));
      return f.startsWith(path.resolve(dir)) && fs.existsSync(f) ? f : null;
    }
  }
  return null;
}

const COUNTED = (p) => !(p.startsWith('/page/') || p === '/dist/harness.js' || p.startsWith('/data/') || p.startsWith('/eval/'));

/** Open the bench page in `ctx`; returns { page, bytes: Map(path -> {raw, gzip}), logs }. */
async function openPage(ctx, url, countBytes = true) {
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const bytes = new Map();
  const pending = [];
  const logs = { errors: [], partial: null };
  page.on('response', (r) => {
    const p = new URL(r.url()).pathname;
    if (!countBytes || !COUNTED(p) || bytes.has(p)) return;
    bytes.set(p, null);
    // Streams the page aborts after reading (PGlite's extension tarball) have no body here:
    // measure the file the server sent instead.
    const local = () => { const f = localFile(p); if (!f) throw new Error(`no body for ${p}`); return fs.readFileSync(f); };
    pending.push(withTimeout(r.body(), 20000, 'response body').catch(local).then((b) => bytes.set(p, { raw: b.length, gzip: zlib.gzipSync(b, { level: 9 }).length })).catch(() => bytes.delete(p)));
  });
  page.on('console', (m) => {
    const t = m.text();
    if (t.startsWith('BENCH-PROGRESS ')) {
      try { logs.partial = JSON.parse(t.slice(15)); log(`  ... ${logs.partial.lastStep}`); } catch { /* ignore */ }
    } else if (m.type() === 'error') {
      logs.errors.push(t.slice(0, 500));
    }
  });
  page.on('pageerror', (e) => logs.errors.push(`pageerror: ${String(e.message).slice(0, 500)}`));
  await page.goto(`${url}/page/index.html`);
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 60000 });
  return { page, bytes, pending, logs };
}

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, fail) => { t = setTimeout(() => fail(new Error(`${what}: timed out after ${ms / 1000} s`)), ms); })]).finally(() => clearTimeout(t));
}

async function phase(url, profile, opts) {
  const ctx = await launch(profile);
  let out;
  let bytes = null;
  const { page, bytes: b, pending, logs } = await openPage(ctx, url, opts.phase === 'build');
  try {
    out = await withTimeout(page.evaluate((o) => window.runBench(o), opts), PHASE_TIMEOUT_MS, `${opts.peer} ${opts.phase}`);
  } catch (e) {
    out = logs.partial || { peer: opts.peer, phase: opts.phase, errors: [] };
    out.errors = [...(out.errors || []), { step: out.lastStep ? `after ${out.lastStep}` : 'run', message: String(e.message || e).split('\n')[0] }];
  }
  const tb = Date.now();
  await Promise.all(pending);
  if (Date.now() - tb > 5000) log(`  reading response bodies took ${((Date.now() - tb) / 1000).toFixed(1)} s`);
  bytes = Object.fromEntries([...b].filter(([, v]) => v));
  out.process = chromiumPeaks();
  out.consoleErrors = logs.errors.slice(0, 20);
  const t = Date.now();
  await withTimeout(ctx.close(), 60000, 'closing the browser').catch((e) => {
    // A browser that does not close in a minute is killed (only the one this process started).
    log(`  ${e.message}: killing it`);
    for (const pid of chromiumRoots()) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  });
  out.closeMs = Date.now() - t;
  if (out.closeMs > 5000) log(`  closing the browser took ${(out.closeMs / 1000).toFixed(1)} s`);
  return { out, bytes };
}

async function probeEnvironment(url) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mnemo-bench-'));
  const ctx = await launch(profile);
  try {
    const { page } = await openPage(ctx, url);
    return await page.evaluate(() => window.benchEnvironment());
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

async function runOne(url, ds, run) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mnemo-bench-'));
  const base = { peer: run.id, module: run.module, adapterOptions: run.options || {}, dataset: ds, warmup: WARMUP, measured: QUERIES, minMeasured: 20, budgetMs: BUDGET_MS, deleteCount: DELETE, checkQueries: CHECK };
  try {
    const t0 = Date.now();
    const build = await phase(url, profile, { ...base, phase: 'build' });
    const res = { dataset: ds.name, run: run.id, build: build.out, bytes: build.bytes };
    let line = `${run.id} on ${ds.name}: build ${((Date.now() - t0) / 1000).toFixed(0)} s`;
    if (build.out.persisted) {
      const deleted = build.out.delete ? build.out.delete.ids : [];
      const t1 = Date.now();
      const reopen = await phase(url, profile, { ...base, phase: 'reopen', deleted });
      res.reopen = reopen.out;
      line += `; reopen page ${((Date.now() - t1) / 1000).toFixed(0)} s, reopen→first answer ${reopen.out.steps?.reopenToFirstAnswerMs?.toFixed(0) ?? '?'} ms`;
    }
    const errs = [...(res.build.errors || []), ...((res.reopen && res.reopen.errors) || [])];
    log(line + (errs.length ? `; errors: ${errs.map((e) => `${e.step}: ${e.message.split('\n')[0]}`).join(' | ')}` : ''));
    return res;
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

// --- main
const started = new Date();
log(`sizes ${SIZES.join(', ')}; runs ${RUNS.map((r) => r.id).join(', ')}`);
await buildPages();
const datasets = [];
if (env.BENCH_LOCOMO !== '0') {
  const l = locomoDataset(CACHE, EVAL_DIR, WARMUP + QUERIES, log);
  if (l) datasets.push(l); else log(`no LoCoMo data under ${EVAL_DIR}/locomo: skipped`);
}
for (const n of SIZES) datasets.push(syntheticDataset(CACHE, n, WARMUP + QUERIES, log));

const { server, url } = await startServer({ mounts: MOUNTS });
const results = [];
let environment;
try {
  environment = await probeEnvironment(url);
  log(`browser ${chromiumVersion()}; WebGPU adapter: ${JSON.stringify(environment.gpu)}`);
  for (const ds of datasets) {
    log(`== ${ds.name}: ${ds.description}`);
    for (const run of RUNS) results.push(await runOne(url, ds, run));
  }
} finally {
  server.close();
}

const machine = {
  cores: os.cpus().length,
  cpu: os.cpus()[0]?.model,
  memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
  loadAverageAtEnd: os.loadavg().map((x) => +x.toFixed(2)),
  node: process.version,
  chromium: chromiumVersion(),
  browser: environment,
};
const envShown = ['BENCH_SIZES', 'BENCH_PEERS', 'BENCH_LOCOMO', 'BENCH_SPREAD', 'BENCH_QUERIES', 'BENCH_BUDGET_S'].filter((k) => env[k]).map((k) => `${k}=${env[k]}`);
const command = [...envShown, env.BENCH_INVOKED_AS || 'node bench/run.mjs'].join(' ');
const doc = {
  started: started.toISOString(),
  finished: new Date().toISOString(),
  command,
  settings: { sizes: SIZES, warmup: WARMUP, queries: QUERIES, budgetMs: BUDGET_MS, deleteCount: DELETE, checkQueries: CHECK, k: 10 },
  machine,
  datasets: datasets.map(({ name, description, n, dims, kind }) => ({ name, description, n, dims, kind })),
  results,
};
fs.mkdirSync(RESULTS, { recursive: true });
const stamp = started.toISOString().replace(/[:.]/g, '-').slice(0, 19);
const file = path.join(RESULTS, `peers-${stamp}-${datasets.map((d) => d.name).join('+')}.json`);
fs.writeFileSync(file, JSON.stringify(doc, null, 1) + '\n');
log(`raw results: ${path.relative(REPO, file)}`);
const md = writeReport(REPORT, RESULTS);
log(`wrote ${path.relative(REPO, md)}`);
