// The Mnemo JS API in headless Chromium on IndexedDB: every call of the public API, on a page and
// in a dedicated Web Worker (the same scenario, the same checks).
import { test, run, assert, startServer, launch } from './harness.mjs';

async function enginePage(ctx, url) {
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') console.error(`[page] ${m.text()}`); });
  await page.goto(`${url}/tests/engine-page.html`);
  await page.waitForFunction(() => window.engineT?.ready === true, null, { timeout: 60000 });
  return page;
}

test('Mnemo API on a page', async () => {
  const { server, url } = await startServer();
  const ctx = await launch();
  try {
    // The package is two wasm modules (README, "Package"): a Mnemo-only page never fetches the
    // second one; the first Kernels.create does.
    const wasmFetched = [];
    ctx.on('request', (req) => { if (/\.wasm$/.test(new URL(req.url()).pathname)) wasmFetched.push(new URL(req.url()).pathname); });
    const page = await enginePage(ctx, url);
    const r = await page.evaluate(async () => {
      const report = await window.engineT.apiScenario(window.engineT.pkg, 'api-page');
      return { report, bad: window.engineT.checkScenario(report) };
    });
    console.log(`  page: backend ${r.report.stats.backend}, gpu ${r.report.stats.gpu}, webgpu recall ran on ${r.report.gpuBackend}, ${r.report.stats.bytesOnDisk} bytes on disk`);
    assert(r.bad.length === 0, r.bad.join('\n'));
    assert(wasmFetched.some((p) => p.endsWith('/mnemo_bg.wasm')), `the engine module was fetched: ${wasmFetched}`);
    assert(!wasmFetched.some((p) => p.includes('mnemo_extra')), `a Mnemo-only page fetched the second module: ${wasmFetched}`);
    const k = await page.evaluate(async () => {
      const { Kernels } = window.engineT.pkg;
      const kernels = await Kernels.create({ prefer: 'cpu' });
      return { isKernels: kernels instanceof Kernels, backend: kernels.backend() };
    });
    assert(k.isKernels && k.backend === 'cpu', `Kernels from the second module: ${JSON.stringify(k)}`);
    assert(wasmFetched.some((p) => p.endsWith('/mnemo_extra_bg.wasm')), `Kernels.create fetched the second module: ${wasmFetched}`);
  } finally {
    await ctx.close();
    server.close();
  }
});

test('Mnemo API in a dedicated Web Worker', async () => {
  const { server, url } = await startServer();
  const ctx = await launch();
  try {
    const page = await enginePage(ctx, url);
    const r = await page.evaluate(async () => {
      const report = await window.engineT.inWorker('api-worker');
      return { report, bad: window.engineT.checkScenario(report) };
    });
    console.log(`  worker: backend ${r.report.stats.backend}, gpu ${r.report.stats.gpu}, webgpu recall ran on ${r.report.gpuBackend}`);
    assert(r.report.where === 'worker', `ran in ${r.report.where}`);
    assert(r.bad.length === 0, r.bad.join('\n'));
  } finally {
    await ctx.close();
    server.close();
  }
});

await run('engine.test.mjs');
