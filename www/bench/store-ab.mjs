// A/B comparison of two builds of the package on the store benchmark, in the same conditions:
// both builds are served side by side (/pkgA/, /pkgB/), each fills its own store once, then the
// measurements alternate A, B, A, B... (cold opens after a page reload, cold opens after a browser
// restart, and write runs), and medians per build are printed. For a shared, noisy machine.
//
//   node bench/store-ab.mjs <dirA> <dirB>      (from www/; e.g. a copy of an older pkg/ and pkg/)
//
// Environment: MNEMO_AB_N (episodes of the cold-open store, default 100000), MNEMO_AB_REPS
// (alternations of reload cold opens, default 7), MNEMO_AB_RESTARTS (default 3), MNEMO_AB_WRITES
// (alternations of write runs, default 3; 0 skips), MNEMO_AB_BATCHES (batches of 1,000 per write
// run after 100 single puts, default 10), MNEMO_AB_FRESH=1 (each write run in a browser of its own
// with a fresh profile, as an app's first session: no other store's clean-up running behind it),
// MNEMO_AB_SEGCAP_A / _B (segmentCapacity), MNEMO_AB_SETTLE_MS (wait after each browser restart
// before its cold open, default 0: at once, sharing the CPU with the browser's own start-up).
import fs from 'node:fs';
import path from 'node:path';
import { startServer } from '../scripts/server.mjs';
import { launch, freshProfile, chromiumVersion } from '../scripts/browser.mjs';

const [dirA, dirB] = process.argv.slice(2);
if (!dirA || !dirB) throw new Error('usage: node bench/store-ab.mjs <pkgDirA> <pkgDirB>');
const N = Number(process.env.MNEMO_AB_N || 100000);
const REPS = Number(process.env.MNEMO_AB_REPS || 7);
const RESTARTS = Number(process.env.MNEMO_AB_RESTARTS || 3);
const WRITES = Number(process.env.MNEMO_AB_WRITES ?? 3);
const BATCHES = Number(process.env.MNEMO_AB_BATCHES || 10);
const FRESH = Boolean(process.env.MNEMO_AB_FRESH);
const SETTLE_MS = Number(process.env.MNEMO_AB_SETTLE_MS || 0);
const DIMS = 384;
const segcap = (k) => (process.env[`MNEMO_AB_SEGCAP_${k}`] ? { segmentCapacity: Number(process.env[`MNEMO_AB_SEGCAP_${k}`]) } : {});
const builds = { A: path.resolve(dirA), B: path.resolve(dirB) };

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const f = (x, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

const { server, url } = await startServer({ mounts: [['/pkgA/', builds.A], ['/pkgB/', builds.B]] });
const profile = freshProfile('mnemo-bench-ab-');
let ctx = await launch({ userDataDir: profile });
async function open(k, c = ctx) {
  const page = c.pages()[0] ?? (await c.newPage());
  await page.goto(`${url}/bench/store.html?pkg=/pkg${k}/`);
  await page.waitForFunction(() => window.storeBench?.ready === true, null, { timeout: 60000 });
  return page;
}
const res = { A: { reload: [], restart: [], batch: [], single: [] }, B: { reload: [], restart: [], batch: [], single: [] } };
console.log(`browser: ${chromiumVersion()} (headless); A = ${builds.A}, B = ${builds.B}`);
try {
  for (const k of ['A', 'B']) {
    const page = await open(k);
    const p = await page.evaluate(({ k, N, DIMS, opts }) => window.storeBench.populate(`ab-${k}`, N, DIMS, opts), { k, N, DIMS, opts: segcap(k) });
    console.log(`${k}: filled ${f(p.n)} x ${DIMS} at ${f(p.perSec)} episodes/s (${p.segments} segments${p.pages !== undefined ? `, ${p.pages} pages` : ''})`);
  }
  for (let r = 0; r < REPS; r++) {
    for (const k of ['A', 'B']) {
      const page = await open(k);
      res[k].reload.push((await page.evaluate((k) => window.storeBench.coldOpen(`ab-${k}`), k)).totalMs);
    }
  }
  for (let r = 0; r < RESTARTS; r++) {
    for (const k of ['A', 'B']) {
      await ctx.close();
      ctx = await launch({ userDataDir: profile });
      const page = await open(k);
      if (SETTLE_MS) await new Promise((r) => setTimeout(r, SETTLE_MS));
      res[k].restart.push((await page.evaluate((k) => window.storeBench.coldOpen(`ab-${k}`), k)).totalMs);
    }
  }
  for (let r = 0; r < WRITES; r++) {
    for (const k of ['A', 'B']) {
      const own = FRESH ? { profile: freshProfile('mnemo-bench-ab-w-') } : null;
      if (own) own.ctx = await launch({ userDataDir: own.profile });
      const page = await open(k, own?.ctx);
      const w = await page.evaluate((batches) => window.storeBench.writes({ dims: 384, singles: 100, batches, batchSize: 1000 }), BATCHES);
      if (own) {
        await own.ctx.close();
        fs.rmSync(own.profile, { recursive: true, force: true });
      }
      res[k].batch.push(w.batch.perSec);
      res[k].single.push(w.single.perSec);
    }
  }
} finally {
  await ctx.close();
  server.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
const line = (what, key, unit, d = 0) => {
  const a = median(res.A[key]); const b = median(res.B[key]);
  console.log(`${what}: A ${f(a, d)} ${unit}, B ${f(b, d)} ${unit} (B/A ${f(b / a, 2)}; A runs ${res.A[key].map((x) => f(x)).join(' ')}; B runs ${res.B[key].map((x) => f(x)).join(' ')})`);
};
console.log(`medians, alternating A/B:`);
if (REPS) line(`cold open ${f(N)} after a reload`, 'reload', 'ms', 1);
if (RESTARTS) line(`cold open ${f(N)} after a restart`, 'restart', 'ms', 1);
if (WRITES) line('strict writes, batches of 1,000', 'batch', 'episodes/s');
if (WRITES) line('strict writes, batches of 1', 'single', 'episodes/s');
