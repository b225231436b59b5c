// `make bench-store`: the store benchmark in headless Chromium (system /usr/bin/chromium):
// durable write throughput for batches of 1 and 1,000, and cold open (Store.open until every
// vector is in memory) for 10k and 100k episodes of 384 dims. Prints medians; writes
// target/bench-store.json. Numbers, not assertions.
import fs from 'node:fs';
import path from 'node:path';
import { startServer, REPO } from '../scripts/server.mjs';
import { launch, freshProfile, chromiumVersion } from '../scripts/browser.mjs';

const REPS = Number(process.env.MNEMO_BENCH_REPS || 5);
const SIZES = (process.env.MNEMO_BENCH_SIZES || '10000,100000').split(',').map(Number);
const DIMS = 384;

async function benchPage(ctx, url) {
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  await page.goto(`${url}/bench/store.html`);
  await page.waitForFunction(() => window.storeBench?.ready === true, null, { timeout: 60000 });
  return page;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const f = (x, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

const { server, url } = await startServer();
const profile = freshProfile('mnemo-bench-store-');
let ctx = await launch({ userDataDir: profile });
const out = { browser: chromiumVersion(), dims: DIMS, reps: REPS };
try {
  let page = await benchPage(ctx, url);
  console.log(`browser: ${out.browser} (headless)`);
  const w = await page.evaluate(() => window.storeBench.writes({ dims: 384, singles: 300, batches: 20, batchSize: 1000 }));
  out.writes = w;
  console.log(`durable writes (strict), ${DIMS} dims:`);
  console.log(`  batches of 1:     ${f(w.single.perSec)} episodes/s  (put median ${f(w.single.medianMs, 2)} ms, p95 ${f(w.single.p95Ms, 2)} ms, n=${w.single.n})`);
  console.log(`  batches of 1,000: ${f(w.batch.perSec)} episodes/s  (putMany median ${f(w.batch.medianMs, 1)} ms, p95 ${f(w.batch.p95Ms, 1)} ms, n=${w.batch.n})  [target >= 20,000/s]`);
  out.cold = {};
  for (const n of SIZES) {
    const name = `bench-cold-${n}`;
    const p = await page.evaluate(({ name, n, DIMS }) => window.storeBench.populate(name, n, DIMS), { name, n, DIMS });
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
    out.cold[n] = { populate: p, reloads: runs, restart, medianMs: median(runs.map((r) => r.totalMs)) };
    console.log(`cold open ${f(n)} x ${DIMS} (${f(runs[0].bytes / 1048576, 1)} MiB of vectors, ${p.segments} segments; filled at ${f(p.perSec)} episodes/s):`);
    console.log(`  after a reload:  median ${f(median(runs.map((r) => r.totalMs)), 1)} ms (open ${f(median(runs.map((r) => r.openMs)), 1)} ms + load ${f(median(runs.map((r) => r.loadMs)), 1)} ms; ${REPS} reps)${n === 100000 ? '  [target <= 500 ms]' : ''}`);
    console.log(`  after a browser restart: ${f(restart.totalMs, 1)} ms (open ${f(restart.openMs, 1)} + load ${f(restart.loadMs, 1)})`);
  }
} finally {
  await ctx.close();
  server.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
fs.mkdirSync(path.join(REPO, 'target'), { recursive: true });
fs.writeFileSync(path.join(REPO, 'target', 'bench-store.json'), JSON.stringify(out, null, 2));
console.log('(written to target/bench-store.json)');
