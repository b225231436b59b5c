// `make bench-store`: the store benchmark in headless Chromium (system /usr/bin/chromium):
// write throughput for batches of 1 and 1,000 (strict durability, the default, then relaxed),
// and cold open (Store.open until every vector is in memory) for 10k and 100k episodes of 384
// dims. Prints medians; writes target/bench-store.json. Numbers, not assertions.
//
// Environment: MNEMO_BENCH_REPS (cold-open reloads per size, default 5), MNEMO_BENCH_SIZES
// (default 10000,100000), MNEMO_BENCH_WRITE_REPS (write runs per durability, default 1; the
// median run is reported), MNEMO_BENCH_PARTS (writes,cold), MNEMO_BENCH_SEGCAP (segmentCapacity
// of the cold-open stores), MNEMO_BENCH_UNTIDY (reopen them without the tidy), MNEMO_BENCH_BATCHES
// (batches of 1,000 per write run, default 20), MNEMO_BENCH_SETTLE_MS (the wait after the second
// browser restart before its cold open, default 3000), MNEMO_BENCH_VERBOSE (print every batch's
// time), MNEMO_BENCH_HTTP_CACHE (serve the package cacheable), MNEMO_PKG_DIR (serve another build
// of pkg/ at /pkg/, to compare two builds in the same conditions).
import fs from 'node:fs';
import path from 'node:path';
import { startServer, REPO } from '../scripts/server.mjs';
import { launch, freshProfile, chromiumVersion } from '../scripts/browser.mjs';

const REPS = Number(process.env.MNEMO_BENCH_REPS || 5);
const SIZES = (process.env.MNEMO_BENCH_SIZES || '10000,100000').split(',').map(Number);
const DIMS = 384;
const WRITE_REPS = Number(process.env.MNEMO_BENCH_WRITE_REPS || 1);
const PARTS = (process.env.MNEMO_BENCH_PARTS || 'writes,cold').split(',');
const SEGCAP = process.env.MNEMO_BENCH_SEGCAP ? { segmentCapacity: Number(process.env.MNEMO_BENCH_SEGCAP) } : {};
// MNEMO_BENCH_UNTIDY=1: the cold-open stores are reopened without the tidy that an idle moment after
// their import runs (their deferred segment merges still pending).
const UNTIDY = process.env.MNEMO_BENCH_UNTIDY ? { untidy: true } : {};
const PKG = process.env.MNEMO_PKG_DIR;
const BATCHES = Number(process.env.MNEMO_BENCH_BATCHES || 20);
const SETTLE_MS = Number(process.env.MNEMO_BENCH_SETTLE_MS || 3000);

async function benchPage(ctx, url) {
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  await page.goto(`${url}/bench/store.html`);
  await page.waitForFunction(() => window.storeBench?.ready === true, null, { timeout: 60000 });
  return page;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const f = (x, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

// MNEMO_BENCH_HTTP_CACHE=1: the package is served cacheable (as a deployed app serves it), so
// reloads and restarts may reuse the compiled wasm; by default every response is `no-store`.
const HTTP_CACHE = !!process.env.MNEMO_BENCH_HTTP_CACHE;
const { server, url } = await startServer({ ...(PKG ? { mounts: [['/pkg/', path.resolve(PKG)]] } : {}), cachePkg: HTTP_CACHE });
const profile = freshProfile('mnemo-bench-store-');
let ctx = await launch({ userDataDir: profile });
const out = { browser: chromiumVersion(), dims: DIMS, reps: REPS };
try {
  let page = await benchPage(ctx, url);
  console.log(`browser: ${out.browser} (headless)`);
  if (PKG) console.log(`package: ${PKG}`);
  if (HTTP_CACHE) console.log('package served cacheable (max-age=3600)');
  out.writes = {};
  for (const durability of PARTS.includes('writes') ? ['strict', 'relaxed'] : []) {
    const runs = [];
    for (let r = 0; r < WRITE_REPS; r++) {
      runs.push(await page.evaluate(({ durability, batches, opts }) => window.storeBench.writes({ dims: 384, singles: 300, batches, batchSize: 1000, durability, opts }), { durability, batches: BATCHES, opts: SEGCAP }));
    }
    runs.sort((a, b) => a.batch.perSec - b.batch.perSec);
    const w = runs[Math.floor(runs.length / 2)];
    out.writes[durability] = { median: w, runs };
    const all = (k) => runs.map((r) => f(r[k].perSec)).join(', ');
    console.log(`writes (${durability}${durability === 'strict' ? ', the default' : ''}), ${DIMS} dims${WRITE_REPS > 1 ? `, median of ${WRITE_REPS} runs` : ''}:`);
    console.log(`  batches of 1:     ${f(w.single.perSec)} episodes/s  (put median ${f(w.single.medianMs, 2)} ms, p95 ${f(w.single.p95Ms, 2)} ms, n=${w.single.n})${WRITE_REPS > 1 ? `  [runs: ${all('single')}]` : ''}`);
    if (process.env.MNEMO_BENCH_VERBOSE) for (const r of runs) console.log(`  putMany times (ms): ${r.batch.times.join(' ')}`);
    console.log(`  batches of 1,000: ${f(w.batch.perSec)} episodes/s  (putMany median ${f(w.batch.medianMs, 1)} ms, p95 ${f(w.batch.p95Ms, 1)} ms, n=${w.batch.n})${durability === 'strict' ? '  [target >= 20,000/s]' : ''}${WRITE_REPS > 1 ? `  [runs: ${all('batch')}]` : ''}`);
  }
  out.cold = {};
  for (const n of PARTS.includes('cold') ? SIZES : []) {
    const name = `bench-cold-${n}`;
    const p = await page.evaluate(({ name, n, DIMS, SEGCAP, UNTIDY }) => window.storeBench.populate(name, n, DIMS, { ...SEGCAP, ...UNTIDY }), { name, n, DIMS, SEGCAP, UNTIDY });
    const runs = [];
    for (let r = 0; r < REPS; r++) {
      await page.reload();
      await page.waitForFunction(() => window.storeBench?.ready === true);
      runs.push(await page.evaluate((name) => window.storeBench.coldOpen(name), name));
    }
    // Once more after a full browser restart on the same profile.
    await ctx.close();
    ctx = await launch({ userDataDir: profile });
    page = await benchPage(ctx, url);
    const restart = await page.evaluate((name) => window.storeBench.coldOpen(name), name);
    // And after another restart, once the browser's own start-up work is over (SETTLE_MS later):
    // on 2 cores that work (processes, GPU process, storage services) shares the CPU with an
    // open made at once.
    await ctx.close();
    ctx = await launch({ userDataDir: profile });
    page = await benchPage(ctx, url);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const settled = await page.evaluate((name) => window.storeBench.coldOpen(name), name);
    out.cold[n] = { populate: p, reloads: runs, restart, settled, medianMs: median(runs.map((r) => r.totalMs)) };
    console.log(`cold open ${f(n)} x ${DIMS} (${f(runs[0].bytes / 1048576, 1)} MiB of vectors, ${p.segments} segments${p.pages !== undefined ? `, ${p.pages} pages` : ''}; filled at ${f(p.perSec)} episodes/s${p.tidyDue ? `, then ${UNTIDY.untidy ? 'no tidy (merges pending)' : `a tidy of ${f(p.tidyMs)} ms`}` : ''}):`);
    console.log(`  after a reload:  median ${f(median(runs.map((r) => r.totalMs)), 1)} ms (open ${f(median(runs.map((r) => r.openMs)), 1)} ms + load ${f(median(runs.map((r) => r.loadMs)), 1)} ms; ${REPS} reps: ${runs.map((r) => f(r.totalMs)).join(', ')})${n === 100000 ? '  [target <= 500 ms]' : ''}`);
    console.log(`  after a browser restart: ${f(restart.totalMs, 1)} ms (open ${f(restart.openMs, 1)} + load ${f(restart.loadMs, 1)})`);
    console.log(`  after a browser restart, ${f(SETTLE_MS / 1000, 1)} s later: ${f(settled.totalMs, 1)} ms (open ${f(settled.openMs, 1)} + load ${f(settled.loadMs, 1)})`);
  }
} finally {
  await ctx.close();
  server.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
fs.mkdirSync(path.join(REPO, 'target'), { recursive: true });
fs.writeFileSync(path.join(REPO, 'target', 'bench-store.json'), JSON.stringify(out, null, 2));
console.log('(written to target/bench-store.json)');
