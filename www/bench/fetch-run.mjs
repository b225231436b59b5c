// `make bench-fetch`: serve www/ and pkg/, open bench/fetch.html in headless Chromium (WebGPU on
// SwiftShader) and print the flat top-k benchmark: query latency (median, p95) for N = 10k and
// 100k, d = 384, k = 10, B = 1 and 16, each format, WebGPU and CPU paths, with the scan bandwidth
// as a fraction of a GPU copy kernel / wasm memcpy measured in the same run. The full result is
// written to target/bench-fetch.json. MNEMO_BENCH_N=10000 limits the sizes; MNEMO_BENCH_FORMATS=f32,int8,
// MNEMO_BENCH_B=16, MNEMO_BENCH_PATHS=gpu select cases; MNEMO_BENCH_RUNS (default 3) sets the copy /
// per-call / amortised triples timed in turn; MNEMO_BENCH_BANK_OPTS='{"_multiQueryScan":false}' adds
// (undocumented tuning) options to every bank.
import fs from 'node:fs';
import path from 'node:path';
import { startServer, REPO } from '../scripts/server.mjs';
import { launch, chromiumVersion } from '../scripts/browser.mjs';

const sizes = (process.env.MNEMO_BENCH_N || '10000,100000').split(',').map(Number).filter(Boolean);
const list = (name, dflt) => (process.env[name] || dflt).split(',').map((x) => x.trim()).filter(Boolean);
const formats = list('MNEMO_BENCH_FORMATS', 'f32,f16,int8');
const batches = list('MNEMO_BENCH_B', '1,16').map(Number);
const paths = list('MNEMO_BENCH_PATHS', 'gpu,cpu');
const runs = Number(process.env.MNEMO_BENCH_RUNS || 3);
const bankOptions = JSON.parse(process.env.MNEMO_BENCH_BANK_OPTS || '{}');
const { server, url } = await startServer();
const context = await launch();
let failed = false;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') console.error(`[page] ${m.text()}`);
    else if (m.text().startsWith('bench: ')) console.log(m.text().slice(7));
  });
  page.on('pageerror', (e) => { console.error(`[page error] ${e.message}`); failed = true; });
  await page.goto(`${url}/bench/fetch.html`);
  await page.waitForFunction(() => window.fetchBench?.ready === true, null, { timeout: 60000 });
  console.log(`browser: ${chromiumVersion()} (headless, WebGPU on SwiftShader)`);
  const r = await page.evaluate(
    (cfg) => window.fetchBench.run({ ...cfg, log: (l) => console.log(`bench: ${l}`) }),
    { sizes, formats, batches, paths, runs, bankOptions },
  );
  const a = r.adapter;
  console.log(`mnemo ${r.version}: backend ${r.backend}${a ? `, adapter ${a.name || '(unnamed)'} [${a.api}, ${a.device_type}]` : ''}${r.fallbackReason ? `, fallback: ${r.fallbackReason}` : ''}`);
  if (r.backend !== 'webgpu') failed = true;
  const out = path.join(REPO, 'target', 'bench-fetch.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(r, null, 2));
  console.log(`full results: ${path.relative(process.cwd(), out)}`);
} catch (e) {
  console.error(e);
  failed = true;
} finally {
  await context.close();
  server.close();
}
process.exit(failed ? 1 : 0);
