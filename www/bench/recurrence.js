// Browser benchmark of the linear recurrence (driven headless by recurrence-run.mjs): prefill
// throughput in tokens/s of `kernels.linearRecurrence` with form 'chunked' and 'recurrent' on
// WebGPU, and on the CPU (wasm) path, for the gated delta rule and GLA. Medians of `reps` runs
// after one warm-up run; the chunked WebGPU output is checked against the CPU reference.
import init, { Kernels, version } from '../pkg/mnemo.js';

function rand(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function inputs(T, H, D, variant, seed) {
  const next = rand(seed);
  const uni = (n, lo, hi) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * next(); return a; };
  const q = uni(T * H * D, -1, 1);
  const k = uni(T * H * D, -1, 1);
  for (let r = 0; r < T * H; r++) { // L2-normalised keys
    let n = 0; for (let d = 0; d < D; d++) n += k[r * D + d] ** 2;
    n = Math.sqrt(n) || 1; for (let d = 0; d < D; d++) k[r * D + d] /= n;
  }
  const v = uni(T * H * D, -1, 1);
  const o = { q, k, v, heads: H, dk: D, dv: D };
  if (variant === 'gla') o.decay = uni(T * H * D, 0.9, 1);
  else { o.decay = uni(T * H, 0.9, 1); o.beta = uni(T * H, 0.1, 1); }
  return o;
}

async function median(fn, reps) {
  await fn(); // warm-up (pipeline compilation)
  const ms = [];
  for (let i = 0; i < reps; i++) { const t0 = performance.now(); await fn(); ms.push(performance.now() - t0); }
  ms.sort((a, b) => a - b);
  return ms[Math.floor(ms.length / 2)];
}

function relErrPerHead(got, want, heads, width) {
  let worst = 0;
  const rows = want.length / (heads * width);
  for (let h = 0; h < heads; h++) {
    let diff = 0, mag = 0;
    for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) {
      const i = (r * heads + h) * width + c;
      diff = Math.max(diff, Math.abs(got[i] - want[i])); mag = Math.max(mag, Math.abs(want[i]));
    }
    worst = Math.max(worst, mag > 0 ? diff / mag : diff);
  }
  return worst;
}

/** Run the benchmark; returns plain data for the driver. `log` gets progress lines. */
export async function run({ ts = [1024, 4096], heads = 8, d = 64, variants = ['gated_delta', 'gla'], reps = 3, log = () => {} } = {}) {
  const gpu = await Kernels.create({ prefer: 'webgpu' });
  const cpu = await Kernels.create({ prefer: 'cpu' });
  const rows = [];
  for (const variant of variants) {
    for (const T of ts) {
      const o = inputs(T, heads, d, variant, T);
      const impls = {
        gpu_chunked: () => gpu.linearRecurrence({ ...o, form: 'chunked' }),
        gpu_recurrent: () => gpu.linearRecurrence({ ...o, form: 'recurrent' }),
        cpu_recurrent: () => cpu.linearRecurrence({ ...o, form: 'recurrent' }),
        cpu_chunked: () => cpu.linearRecurrence({ ...o, form: 'chunked' }),
      };
      const row = { variant, T, ms: {}, tokensPerS: {} };
      for (const [name, fn] of Object.entries(impls)) {
        const ms = await median(fn, reps);
        row.ms[name] = ms;
        row.tokensPerS[name] = T / (ms / 1000);
        log(`${variant} T=${T} ${name}: ${ms.toFixed(1)} ms`);
      }
      const g = await impls.gpu_chunked();
      const c = await impls.cpu_recurrent();
      row.relErr = Math.max(relErrPerHead(g.out, c.out, heads, d), relErrPerHead(g.state, c.state, heads, d * d));
      row.chunkedOverRecurrent = row.tokensPerS.gpu_chunked / row.tokensPerS.gpu_recurrent;
      row.gpuOverCpu = row.tokensPerS.gpu_chunked / row.tokensPerS.cpu_recurrent;
      rows.push(row);
    }
  }
  return { version: version(), backend: gpu.backend(), adapter: gpu.adapterInfo() ?? null, heads, d, reps, rows };
}

await init();
window.mnemoBench = { run, ready: true };
const out = document.getElementById('out');
document.getElementById('run').addEventListener('click', async () => {
  out.textContent = 'running…\n';
  try {
    const r = await run({ log: (l) => { out.textContent += l + '\n'; } });
    out.textContent += JSON.stringify(r, null, 2);
  } catch (e) {
    out.textContent += `${e.code ?? 'ERROR'}: ${e.message}`;
  }
});
