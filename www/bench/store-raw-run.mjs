// Raw IndexedDB measurements in headless Chromium (no mnemo): read throughput by record size and
// read method, and commit cost by record shape and durability. `node bench/store-raw-run.mjs`
// (from www/). MNEMO_RAW=reads,writes selects parts; MNEMO_RAW_MIB sets the read volume.
import fs from 'node:fs';
import { startServer } from '../scripts/server.mjs';
import { launch, freshProfile } from '../scripts/browser.mjs';

const PARTS = (process.env.MNEMO_RAW || 'reads,writes').split(',');
const MIB = Number(process.env.MNEMO_RAW_MIB || 146.5);
const REPS = Number(process.env.MNEMO_BENCH_REPS || 3);
const { server, url } = await startServer();
const profile = freshProfile('mnemo-raw-');
const ctx = await launch({ userDataDir: profile });
const page = ctx.pages()[0] ?? (await ctx.newPage());
page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
const goto = async () => { await page.goto(`${url}/bench/store-raw.html`); await page.waitForFunction(() => window.raw?.ready); };
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
try {
  await goto();
  const fills = {};
  if (PARTS.includes('reads')) {
    // rec:kind:dest:blobRead:mode
    const configs = (process.env.MNEMO_RAW_READS || '1572864:ab:new:-:getAll,1572864:ab:wasm:-:getAll,1572864:ab:none:-:getAll,1572864:blob:new:par:getAll,1572864:blob:wasm:par:getAll,1572864:blob:wasm:seq:getAll,1572864:blob:wasm:stream:getAll,8388608:blob:wasm:par:getAll,1572864:blob:none:par:getAll').split(',');
    console.log('calibration:', JSON.stringify(await page.evaluate(() => window.raw.memcpy())));
    for (const c of configs) {
      const [rec, kind, dest, blobRead, ...m] = c.split(':');
      const mode = m.join(':');
      const name = `raw-${rec}-${kind}`;
      const f = fills[name] ?? await page.evaluate(({ name, total, rec, kind }) => window.raw.fill(name, total, rec, kind), { name, total: MIB * 1048576, rec: Number(rec), kind });
      const runs = [];
      for (let r = 0; r < REPS; r++) {
        await goto();
        runs.push(await page.evaluate(({ name, mode, kind, dest, blobRead }) => window.raw.read(name, mode, kind, dest, blobRead), { name, mode, kind, dest, blobRead }));
      }
      const m2 = (k) => median(runs.map((x) => x[k])).toFixed(1);
      console.log(`read ${runs[0].mib.toFixed(1)} MiB in ${f.records} records of ${(Number(rec) / 1024).toFixed(0)} KiB (${kind}, ${mode}, dest ${dest}, blob read ${blobRead}): total ${m2('totalMs')} ms = open ${m2('openMs')} + idb ${m2('idbMs')} + alloc ${m2('allocMs')} + blob ${m2('blobMs')} + copy ${m2('copyMs')}  (${(runs[0].mib / (median(runs.map((x) => x.totalMs)) / 1000)).toFixed(0)} MiB/s; runs ${runs.map((x) => x.totalMs.toFixed(0)).join(' ')})`);
      fills[name] = f;
    }
  }
  if (PARTS.includes('pipes')) {
    // Blob read pipelines on the same data, interleaved: rec:pipe1/pipe2/...
    const [rec, pipes] = (process.env.MNEMO_RAW_PIPES || '1572864:ab4/byob/stage/ab-none').split(':');
    const name = `raw-pipes-${rec}`;
    const f = await page.evaluate(({ name, total, rec }) => window.raw.fill(name, total, rec, 'blob'), { name, total: MIB * 1048576, rec: Number(rec) });
    const res = {};
    for (let r = 0; r < REPS; r++) {
      for (const pipe of pipes.split('/')) {
        await goto();
        const x = await page.evaluate(({ name, pipe }) => window.raw.readBlobs(name, pipe), { name, pipe });
        (res[pipe] ??= []).push(x);
      }
    }
    for (const [pipe, runs] of Object.entries(res)) {
      console.log(`blob pipeline ${pipe}: ${runs[0].mib.toFixed(1)} MiB in ${f.records} blobs of ${(Number(rec) / 1024).toFixed(0)} KiB: median ${median(runs.map((x) => x.totalMs)).toFixed(1)} ms (tx ${median(runs.map((x) => x.txMs)).toFixed(1)}; runs ${runs.map((x) => x.totalMs.toFixed(0)).join(' ')})`);
    }
  }
  if (PARTS.includes('writes')) {
    const cases = [
      { big: 0, small: 0 },
      { big: 1, small: 0 },
      { big: 1, small: 0, multi: 50 },
      { big: 1, small: 1000, objects: true },
      { big: 1, small: 1000 },
      { big: 1, small: 0, bigBytes: 262144 },
    ];
    for (const durability of ['strict', 'relaxed']) {
      for (const c of cases) {
        const r = await page.evaluate((o) => window.raw.writes(o), { txs: 10, ...c, durability });
        console.log(`commit (${durability}): ${r.big} x ${(r.bigBytes / 1024).toFixed(0)} KiB + ${r.small} small ${r.objects ? 'indexed objects' : 'buffers'}${r.multi ? ` + page with ${r.multi} multiEntry keys` : ''}: median ${r.medianMs.toFixed(1)} ms (min ${r.minMs.toFixed(1)}, max ${r.maxMs.toFixed(1)})`);
      }
    }
  }
} finally {
  await ctx.close();
  server.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
