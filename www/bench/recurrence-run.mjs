// `make bench-recurrence` (browser half): serve www/ and pkg/, open bench/recurrence.html in
// headless Chromium (WebGPU on SwiftShader), run the benchmark and print a table. Numbers are
// reported, never asserted (software adapter: ratios, not absolute claims).
// Options: MNEMO_BENCH_REPS (default 3), MNEMO_BENCH_TS (default "1024,4096"),
// MNEMO_BENCH_VARIANTS (default "gated_delta"; "gated_delta,gla" adds GLA).
import { startServer } from '../scripts/server.mjs';
import { launch, chromiumVersion } from '../scripts/browser.mjs';

const reps = Number(process.env.MNEMO_BENCH_REPS || 3);
const ts = (process.env.MNEMO_BENCH_TS || '1024,4096').split(',').map(Number);
const variants = (process.env.MNEMO_BENCH_VARIANTS || 'gated_delta').split(',').map((s) => s.trim());
const { server, url } = await startServer();
const context = await launch();
let failed = false;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => console.log(`[page] ${m.text()}`));
  page.on('pageerror', (e) => { console.error(`[page error] ${e.message}`); failed = true; });
  await page.goto(`${url}/bench/recurrence.html`);
  await page.waitForFunction(() => window.mnemoBench?.ready === true, null, { timeout: 60000 });
  const r = await page.evaluate(({ reps, ts, variants }) => window.mnemoBench.run({ reps, ts, variants, log: (l) => console.log(l) }), { reps, ts, variants });
  const a = r.adapter;
  console.log(`\nbrowser: ${chromiumVersion()} (headless); mnemo ${r.version}; backend ${r.backend}; adapter: ${a ? `${a.name} [${a.api}, ${a.device_type}]` : 'none'}`);
  console.log(`linear recurrence prefill, H=${r.heads}, dk=dv=${r.d}, median of ${r.reps} runs after a warm-up`);
  const pad = (s, n) => String(s).padStart(n);
  const tps = (x) => `${x.toFixed(0)} tok/s`;
  console.log(`${'variant'.padEnd(12)} ${pad('T', 5)} ${pad('gpu chunked', 15)} ${pad('gpu recurrent', 15)} ${pad('cpu recurrent', 15)} ${pad('cpu chunked', 15)} ${pad('chk/rec', 8)} ${pad('gpu/cpu', 8)} ${pad('rel err', 9)}`);
  for (const row of r.rows) {
    const t = row.tokensPerS;
    console.log(`${row.variant.padEnd(12)} ${pad(row.T, 5)} ${pad(tps(t.gpu_chunked), 15)} ${pad(tps(t.gpu_recurrent), 15)} ${pad(tps(t.cpu_recurrent), 15)} ${pad(tps(t.cpu_chunked), 15)} ${pad(row.chunkedOverRecurrent.toFixed(2) + 'x', 8)} ${pad(row.gpuOverCpu.toFixed(2) + 'x', 8)} ${pad(row.relErr.toExponential(1), 9)}`);
    if (!(row.relErr <= 1e-3)) failed = true;
  }
  console.log('chk/rec = WebGPU chunked over WebGPU recurrent (target >= 4x); gpu/cpu = WebGPU chunked over the CPU (wasm) recurrent path; rel err = max per-head |diff|/max|ref| of WebGPU chunked vs CPU.');
} finally {
  await context.close();
  server.close();
}
process.exit(failed ? 1 : 0);
