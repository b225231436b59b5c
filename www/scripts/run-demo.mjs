// `make demo`: serve www/ and the built package, open the demo in headless Chromium (WebGPU on
// SwiftShader), run the scripted demo and print what it did.
import { startServer } from './server.mjs';
import { launch, chromiumVersion } from './browser.mjs';

const { server, url } = await startServer();
const context = await launch();
let failed = false;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => { if (m.type() === 'error') console.error(`[page] ${m.text()}`); });
  page.on('pageerror', (e) => { console.error(`[page error] ${e.message}`); failed = true; });
  await page.goto(`${url}/index.html`);
  await page.waitForFunction(() => window.mnemoDemo?.ready === true, null, { timeout: 60000 });

  console.log(`browser: ${chromiumVersion()} (headless, WebGPU on SwiftShader)`);
  const r = await page.evaluate(() => window.mnemoDemo.smoke());
  const a = r.adapter;
  console.log(`mnemo ${r.version}: kernel smoke run — scores of ${r.shape.queries} queries against a ${r.shape.n} x ${r.shape.dims} bank`);
  console.log(`  backend: ${r.backend}${a ? `; adapter: ${a.name || '(unnamed)'} [api ${a.api}, ${a.device_type}${a.driver ? `, ${a.driver}` : ''}]` : ''}${r.fallbackReason ? `; fallback: ${r.fallbackReason}` : ''}`);
  console.log(`  GPU vs CPU reference: max |diff| = ${r.maxAbsDiff.toExponential(2)} at index ${r.worstIndex} -> ${r.agree ? 'agree' : 'DISAGREE'}`);
  console.log(`  median time: webgpu ${r.medianMs.gpu.toFixed(2)} ms, cpu ${r.medianMs.cpu.toFixed(2)} ms (software adapter: ratios, not absolute claims)`);
  if (!r.agree || r.backend !== 'webgpu') failed = true;

  await page.screenshot({ path: '../target/demo.png' }).catch(() => {});
} finally {
  await context.close();
  server.close();
}
console.log('\nTo use the demo in a real browser: `make serve`, then open http://localhost:8080/');
process.exit(failed ? 1 : 0);
