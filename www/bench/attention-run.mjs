// `make bench-attention`: open www/bench/attention.html in headless Chromium (WebGPU on
// SwiftShader), run the attention benchmark and print its numbers. Reports, never asserts on
// timings; exits non-zero only if the page fails or the GPU results disagree with the CPU path.
// Options via env: MNEMO_BENCH_MM (matmul size, default 512), MNEMO_BENCH_T (prefill length,
// default 512), MNEMO_BENCH_REPS (default 5).
import { startServer } from '../scripts/server.mjs';
import { launch, chromiumVersion } from '../scripts/browser.mjs';

const num = (name, dflt) => (process.env[name] ? Number(process.env[name]) : dflt);
const opts = { mm: num('MNEMO_BENCH_MM', 512), t: num('MNEMO_BENCH_T', 512), reps: num('MNEMO_BENCH_REPS', 5) };

const { server, url } = await startServer();
const context = await launch();
let failed = false;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => { if (m.type() === 'error') console.error(`[page] ${m.text()}`); });
  page.on('pageerror', (e) => { console.error(`[page error] ${e.message}`); failed = true; });
  await page.goto(`${url}/bench/attention.html`);
  await page.waitForFunction(() => window.mnemoAttentionBench?.ready === true, null, { timeout: 60000 });
  const r = await page.evaluate((o) => window.mnemoAttentionBench.run(o), opts);
  const a = r.adapter;
  console.log(`browser: ${chromiumVersion()} (headless, WebGPU on SwiftShader); mnemo ${r.version}`);
  console.log(`backend: ${r.backend}; adapter: ${a ? `${a.name} [${a.api}, ${a.device_type}]` : 'none'}`);
  console.log(`matmul ${r.matmul.size}^3 x${r.config.repeat}: median ${r.matmul.medianMs.toFixed(1)} ms -> peak ${r.matmul.gflops.toFixed(2)} GFLOP/s`);
  for (const p of r.prefill) {
    console.log(`prefill T=${p.t} H=${r.config.heads} kvH=${r.config.kvHeads} D=${r.config.headDim} ${p.causal ? 'causal    ' : 'non-causal'}: ` +
      `${p.gflops.toFixed(2)} GFLOP/s = ${(100 * p.fractionOfPeak).toFixed(1)}% of matmul peak; ${p.msPerPass.toFixed(1)} ms/pass, ` +
      `${p.tokensPerSecond.toFixed(0)} tokens/s; max row rel. error vs CPU ${p.maxRowRelErrVsCpu.toExponential(2)}`);
    if (!(p.maxRowRelErrVsCpu <= 1e-3)) failed = true;
  }
  console.log(`decode (1 query, H=${r.config.heads}, kvH=${r.config.kvHeads}, D=${r.config.headDim}): median of ${r.config.reps}`);
  console.log('      kv | call ms (p95)     | kernel ms | cpu ms  | rel. error');
  for (const d of r.decode) {
    console.log(`  ${String(d.kv).padStart(6)} | ${d.callMs.toFixed(2).padStart(7)} (${d.callP95Ms.toFixed(2).padStart(7)}) | ${d.kernelMs.toFixed(2).padStart(9)} | ${d.cpuMs.toFixed(2).padStart(7)} | ${d.maxRowRelErrVsCpu.toExponential(2)}`);
    if (!(d.maxRowRelErrVsCpu <= 1e-3)) failed = true;
  }
  if (r.backend !== 'webgpu') failed = true;
} finally {
  await context.close();
  server.close();
}
process.exit(failed ? 1 : 0);
