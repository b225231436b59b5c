// `make bench-hier`: the hierarchical memory bank benchmark in headless Chromium (WebGPU on
// SwiftShader): serves www/ + pkg/, opens bench/hier.html, runs it and prints the numbers.
// MNEMO_HIER_SIZES=10000 to run a subset.
import { startServer } from '../scripts/server.mjs';
import { launch, chromiumVersion } from '../scripts/browser.mjs';

const sizes = (process.env.MNEMO_HIER_SIZES || '10000,100000').split(',').map(Number);
const { server, url } = await startServer();
const context = await launch();
let failed = false;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => { if (m.type() === 'error') console.error(`[page] ${m.text()}`); });
  page.on('pageerror', (e) => { console.error(`[page error] ${e.message}`); failed = true; });
  await page.goto(`${url}/bench/hier.html`);
  await page.waitForFunction(() => window.mnemoHierBench?.ready === true, null, { timeout: 60000 });
  const r = await page.evaluate((s) => window.mnemoHierBench.run({ sizes: s }), sizes);
  const a = r.adapter;
  console.log(`browser: ${chromiumVersion()} (headless); crossOriginIsolated: ${r.crossOriginIsolated}`);
  console.log(`mnemo ${r.version}; WebGPU: ${r.backend}${a ? ` (${a.name || 'unnamed'}, ${a.device_type})` : ''}`);
  console.log('reference (the issue, same machine): hnswlib-wasm top-10 over 10k x 384 in 0.39 ms p95; builds ~3,200 vectors/s');
  const f = (x, d = 3) => (x === undefined || x === null || Number.isNaN(x) ? '-' : Number(x).toFixed(d));
  for (const s of r.sizes) {
    const st = s.stats;
    console.log(`\n=== N = ${s.n} x ${s.dims} (clustered, seeded), ${s.queries} queries, k = 10 ===`);
    console.log(`CPU build (wasm): ${f(s.buildCpuSeconds, 2)} s = ${f(s.buildCpuVectorsPerSecond, 0)} vectors/s; ` +
      `branching ${st.branching}, height ${st.height}, ${st.leaves} leaves (max ${st.max_leaf_rows} rows)`);
    if (s.buildGpuSeconds !== undefined) {
      console.log(`WebGPU build: ${f(s.buildGpuSeconds, 2)} s = ${f(s.n / s.buildGpuSeconds, 0)} vectors/s (built on ${s.buildGpuOn}; identical to the CPU build: ${s.gpuBuildIdentical})`);
    }
    console.log(`flat exact scan (CPU, wasm): median ${f(s.flatCpu.median)} ms, p95 ${f(s.flatCpu.p95)} ms; ${s.flatCpu.bytesPerQuery} bytes/query`);
    console.log('beam | recall@10 | bytes/query | fewer than flat | median ms | p95 ms');
    for (const b of s.beams) {
      console.log(`${String(b.beam).padStart(4)}${b.isDefault ? '*' : ' '} | ${f(b.recall, 4)} | ${f(b.bytesPerQuery, 0)} | ${f(s.flatCpu.bytesPerQuery / b.bytesPerQuery, 1)}x | ${f(b.median)} | ${f(b.p95)}`);
    }
    console.log('(* = default beam; single-query synchronous HierIndex.search calls)');
    if (s.gpuSearch) {
      const g = s.gpuSearch;
      if (g.error) console.log(`WebGPU search: not run: ${g.error}`);
      else console.log(`WebGPU search (${g.backend}), default beam: recall@10 ${f(g.recall, 4)}; B=1 median ${f(g.median)} ms, p95 ${f(g.p95)} ms; B=16 ${f(g.batch16PerQuery)} ms/query (software adapter: ratios only)`);
    }
  }
} catch (e) {
  console.error(e);
  failed = true;
} finally {
  await context.close();
  server.close();
}
process.exit(failed ? 1 : 0);
