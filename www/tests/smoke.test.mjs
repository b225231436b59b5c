// The kernel page (kernels.html) loads in headless Chromium and its smoke run agrees with the CPU path on WebGPU.
import { test, run, assert, startServer, launch } from './harness.mjs';

test('demo page smoke run on WebGPU agrees with the CPU reference', async () => {
  const { server, url } = await startServer();
  const ctx = await launch();
  try {
    const page = await ctx.newPage();
    await page.goto(`${url}/kernels.html`);
    await page.waitForFunction(() => window.mnemoDemo?.ready === true, null, { timeout: 60000 });
    const r = await page.evaluate(() => window.mnemoDemo.smoke({ n: 2000, dims: 64, queries: 3, reps: 1 }));
    assert(r.backend === 'webgpu', `backend ${r.backend} (${r.fallbackReason})`);
    assert(r.agree, `max diff ${r.maxAbsDiff}`);
  } finally {
    await ctx.close();
    server.close();
  }
});

await run('smoke.test.mjs');
