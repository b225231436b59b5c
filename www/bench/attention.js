// Attention benchmark page: measures, on this browser's WebGPU adapter and in the same run,
// (1) the tiled matmul's throughput (the peak reference), (2) prefill attention GFLOP/s and its
// fraction of that peak, (3) decode latency against KV length, end to end (KV upload included)
// and kernel only ((time of 9 dispatches in one call - time of 1) / 8). Medians of `reps` runs.
// `window.mnemoAttentionBench.run(opts)` returns a plain object for the headless driver.
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

function randomArray(len, next) {
  const m = new Float32Array(len);
  for (let i = 0; i < len; i++) m[i] = next() * 2 - 1;
  return m;
}

async function median(fn, reps) {
  const times = [];
  let out;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    out = await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)], p95: times[Math.min(times.length - 1, Math.ceil(times.length * 0.95) - 1)], out };
}

function maxRowRelErr(got, want, d) {
  let worst = 0;
  for (let r = 0; r < want.length / d; r++) {
    let norm = 0;
    let diff = 0;
    for (let x = r * d; x < (r + 1) * d; x++) {
      norm = Math.max(norm, Math.abs(want[x]));
      diff = Math.max(diff, Math.abs(got[x] - want[x]));
    }
    worst = Math.max(worst, norm === 0 ? (diff === 0 ? 0 : Infinity) : diff / norm);
  }
  return worst;
}

/** Run the benchmark. */
export async function run({
  mm = 512, repeat = 3, reps = 5, t = 512, heads = 8, kvHeads = 2, headDim = 64,
  kvLens = [1024, 2048, 4096, 8192, 16384, 32768], decodeReps = 5,
} = {}) {
  const next = rand(7);
  const gpu = await Kernels.create({ prefer: 'webgpu' });
  const cpu = await Kernels.create({ prefer: 'cpu' });
  const result = { version: version(), backend: gpu.backend(), adapter: gpu.adapterInfo() ?? null, config: { mm, repeat, reps, t, heads, kvHeads, headDim, kvLens } };

  // (1) matmul peak
  const a = randomArray(mm * mm, next);
  const b = randomArray(mm * mm, next);
  await gpu.matmul({ a, b, m: mm, k: mm, n: mm }); // warm-up (pipeline compile)
  const mmT = await median(() => gpu.matmul({ a, b, m: mm, k: mm, n: mm, repeat }), reps);
  const mmFlops = 2 * mm * mm * mm * repeat;
  result.matmul = { size: mm, medianMs: mmT.ms, gflops: mmFlops / (mmT.ms * 1e6) };

  // (2) prefill
  const q = randomArray(t * heads * headDim, next);
  const k = randomArray(t * kvHeads * headDim, next);
  const v = randomArray(t * kvHeads * headDim, next);
  result.prefill = [];
  for (const causal of [false, true]) {
    const opts = { q, k, v, heads, kvHeads, headDim, causal };
    const first = await gpu.attention(opts);
    const ref = await cpu.attention(opts);
    const err = maxRowRelErr(first.out, ref.out, headDim);
    const tm = await median(() => gpu.attention({ ...opts, repeat }), reps);
    const pairs = causal ? (t * (t + 1)) / 2 : t * t;
    const flops = 4 * headDim * heads * pairs * repeat;
    const gflops = flops / (tm.ms * 1e6);
    result.prefill.push({ causal, t, medianMs: tm.ms, msPerPass: tm.ms / repeat, gflops, fractionOfPeak: gflops / result.matmul.gflops, tokensPerSecond: (t * repeat) / (tm.ms / 1e3), maxRowRelErrVsCpu: err });
  }

  // (3) decode latency
  const kmax = Math.max(...kvLens);
  const kc = randomArray(kmax * kvHeads * headDim, next);
  const vc = randomArray(kmax * kvHeads * headDim, next);
  const q1 = randomArray(heads * headDim, next);
  result.decode = [];
  for (const kv of kvLens) {
    const opts = { q: q1, k: kc.subarray(0, kv * kvHeads * headDim), v: vc.subarray(0, kv * kvHeads * headDim), heads, kvHeads, headDim };
    const first = await gpu.decodeAttention(opts);
    const ref = await cpu.decodeAttention(opts);
    const err = maxRowRelErr(first.out, ref.out, headDim);
    const call = await median(() => gpu.decodeAttention(opts), decodeReps);
    const nine = await median(() => gpu.decodeAttention({ ...opts, repeat: 9 }), decodeReps);
    const cpuT = await median(() => cpu.decodeAttention(opts), decodeReps);
    result.decode.push({ kv, callMs: call.ms, callP95Ms: call.p95, kernelMs: Math.max(0, (nine.ms - call.ms) / 8), cpuMs: cpuT.ms, maxRowRelErrVsCpu: err });
  }
  return result;
}

await init();
window.mnemoAttentionBench = { run, ready: true };

const out = document.getElementById('out');
document.getElementById('run').addEventListener('click', async () => {
  out.textContent = 'running…';
  try {
    out.textContent = JSON.stringify(await run(), null, 2);
  } catch (e) {
    out.textContent = `${e.code ?? 'ERROR'}: ${e.message}`;
  }
});
