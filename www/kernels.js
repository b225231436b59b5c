// The kernel smoke page (kernels.html). Loads the wasm package from /pkg and runs the kernel smoke test:
// scores of B queries against an N x d bank on WebGPU and on the CPU path, compared element by
// element. `window.mnemoDemo` exposes the runs for the headless driver (scripts/run-demo.mjs, tests/smoke.test.mjs).
import init, { Kernels, version } from './pkg/mnemo.js';

function rand(seed) {
  // mulberry32: a seeded generator so every run scores the same data.
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomMatrix(rows, dims, next) {
  const m = new Float32Array(rows * dims);
  for (let i = 0; i < m.length; i++) m[i] = next() * 2 - 1;
  return m;
}

async function timeIt(fn, reps) {
  const times = [];
  let out;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    out = await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { out, median: times[Math.floor(times.length / 2)] };
}

/** The kernel smoke run: returns a plain object describing what ran and how it compared. */
export async function smoke({ n = 10000, dims = 384, queries = 4, reps = 5 } = {}) {
  const next = rand(42);
  const bank = randomMatrix(n, dims, next);
  const q = randomMatrix(queries, dims, next);
  const gpu = await Kernels.create({ prefer: 'webgpu' });
  const cpu = await Kernels.create({ prefer: 'cpu' });
  const g = await timeIt(() => gpu.scores(bank, dims, q), reps);
  const c = await timeIt(() => cpu.scores(bank, dims, q), reps);
  let maxAbs = 0;
  let worst = -1;
  for (let i = 0; i < c.out.length; i++) {
    const d = Math.abs(g.out[i] - c.out[i]);
    if (d > maxAbs) { maxAbs = d; worst = i; }
  }
  return {
    version: version(),
    shape: { n, dims, queries },
    backend: gpu.backend(),
    adapter: gpu.adapterInfo() ?? null,
    fallbackReason: gpu.fallbackReason() ?? null,
    cpuBackend: cpu.backend(),
    maxAbsDiff: maxAbs,
    worstIndex: worst,
    agree: maxAbs <= 1e-3,
    medianMs: { gpu: g.median, cpu: c.median },
    sample: Array.from(g.out.slice(0, 3)),
  };
}

await init();
window.mnemoDemo = { smoke, ready: true };

const out = document.getElementById('smoke-out');
document.getElementById('run-smoke').addEventListener('click', async () => {
  out.textContent = 'running…';
  try {
    out.textContent = JSON.stringify(await smoke(), null, 2);
  } catch (e) {
    out.textContent = `${e.code ?? 'ERROR'}: ${e.message}`;
  }
});
