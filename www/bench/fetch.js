// The flat top-k benchmark page. `window.fetchBench.run(config)` builds resident banks of N
// normalised random rows (d = 384) in each format and times `bank.topk` on WebGPU and on the CPU
// path (median and p95 over the samples), plus the kernel time with submission and readback
// amortised (`benchGpuScans`), against a plain GPU copy kernel and a wasm memcpy (and a plain
// one-core wasm read, `benchRead`, for the CPU path) measured in the same run (the copy also interleaved with the per-call and amortised GPU timings, `runs` triples,
// so both see the same load; medians of each, and the median of each triple's own scan/copy ratio).
// Bandwidths count bytes moved: a scan reads the bank once; a copy of
// S bytes reads S and writes S (2 S / time). The Node driver is bench/fetch-run.mjs
// (`make bench-fetch`).
import init, { Kernels, version } from '../pkg/mnemo.js';

function rng(seed) {
  // mulberry32, then Box-Muller for normal samples.
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(Math.max(u(), 1e-12))) * Math.cos(2 * Math.PI * u());
}

function normalRows(rows, dims, seed) {
  const next = rng(seed);
  const m = new Float32Array(rows * dims);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < dims; c++) { const v = next(); m[r * dims + c] = v; s += v * v; }
    s = Math.sqrt(s);
    for (let c = 0; c < dims; c++) m[r * dims + c] /= s;
  }
  return m;
}

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * q))];
}

/** Time `fn` (async) after one warm-up: at least `min` samples, up to `max` or `budgetMs`. */
async function sample(fn, { min = 3, max = 30, budgetMs = 3000 } = {}) {
  await fn();
  const t = [];
  const start = performance.now();
  while (t.length < max && (t.length < min || performance.now() - start < budgetMs)) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return { median: quantile(t, 0.5), p95: quantile(t, 0.95), samples: t.length };
}

function median(arr) {
  const s = Array.from(arr).sort((a, b) => a - b);
  return quantile(s, 0.5);
}

export async function run({
  sizes = [10000, 100000], dims = 384, k = 10, batches = [1, 16],
  formats = ['f32', 'f16', 'int8'], paths = ['gpu', 'cpu'], budgetMs = 3000, runs = 3,
  bankOptions = {}, log = () => {},
} = {}) {
  const kernels = await Kernels.create({ prefer: 'webgpu' });
  const out = {
    version: version(), backend: kernels.backend(), adapter: kernels.adapterInfo() ?? null,
    fallbackReason: kernels.fallbackReason() ?? null, dims, k, baselines: {}, results: [],
  };
  if (kernels.backend() === 'webgpu') {
    const bytes = 96 * 2 ** 20;
    const ms = median(await kernels.benchGpuCopy(bytes, 5, 4));
    out.baselines.gpuCopy = { bytes, ms, gbps: (2 * bytes) / ms / 1e6 };
    log(`GPU copy kernel: ${(bytes / 2 ** 20).toFixed(0)} MiB in ${ms.toFixed(2)} ms = ${out.baselines.gpuCopy.gbps.toFixed(2)} GB/s (read + write)`);
  }
  {
    const bytes = 128 * 2 ** 20;
    const ms = median(kernels.benchMemcpy(bytes, 7));
    out.baselines.memcpy = { bytes, ms, gbps: (2 * bytes) / ms / 1e6 };
    log(`wasm memcpy: ${(bytes / 2 ** 20).toFixed(0)} MiB in ${ms.toFixed(2)} ms = ${out.baselines.memcpy.gbps.toFixed(2)} GB/s (read + write)`);
    // One core reading (what a read-only scan can reach at best), over a bank-sized buffer.
    const rbytes = 150 * 2 ** 20;
    const rms = median(kernels.benchRead(rbytes, 7));
    out.baselines.read = { bytes: rbytes, ms: rms, gbps: rbytes / rms / 1e6 };
    log(`wasm read: ${(rbytes / 2 ** 20).toFixed(0)} MiB in ${rms.toFixed(2)} ms = ${out.baselines.read.gbps.toFixed(2)} GB/s (${(100 * out.baselines.read.gbps / out.baselines.memcpy.gbps).toFixed(0)}% of the memcpy figure)`);
  }
  const piece = 10000;
  for (const n of sizes) {
    for (const format of formats) {
      const bank = kernels.flatBank(dims, { ...bankOptions, format, capacity: n });
      const t0 = performance.now();
      for (let p = 0; p * piece < n; p++) {
        await bank.append(normalRows(Math.min(piece, n - p * piece), dims, 1000 + p));
      }
      const bytes = bank.bankBytes();
      log(`bank n=${n} ${format}: ${(bytes / 1e6).toFixed(1)} MB in ${bank.chunkCount()} GPU chunk(s), built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      for (const b of batches) {
        const q = normalRows(b, dims, 7 + b);
        for (const path of paths) {
          if (path === 'gpu' && !bank.hasGpu()) continue;
          const s = await sample(() => bank.topk(q, k, { path }), { budgetMs });
          const gbps = bytes / s.median / 1e6;
          const base = path === 'gpu' ? out.baselines.gpuCopy : out.baselines.memcpy;
          const r = { n, format, b, path, ...s, bytes, gbps, fractionOfBaseline: gbps / base.gbps };
          out.results.push(r);
          if (path === 'cpu') r.fractionOfRead = gbps / out.baselines.read.gbps;
          log(`latency ${path} n=${n} ${format} B=${b}: median ${s.median.toFixed(2)} ms, p95 ${s.p95.toFixed(2)} ms (${s.samples} samples); scan ${gbps.toFixed(2)} GB/s = ${(100 * r.fractionOfBaseline).toFixed(0)}% of ${path === 'gpu' ? 'GPU copy' : `memcpy, ${(100 * r.fractionOfRead).toFixed(0)}% of a plain read`}`);
        }
        if (bank.hasGpu() && paths.includes('gpu')) {
          // Copy kernel, one top-k call, one submission of 4 top-k, in turn; medians of each.
          const reps = 4;
          const copyBytes = out.baselines.gpuCopy.bytes;
          const tc = [], tp = [], t = [];
          for (let i = 0; i < runs; i++) {
            tc.push((await kernels.benchGpuCopy(copyBytes, 1, 4))[0]);
            const t0 = performance.now();
            await bank.topk(q, k, { path: 'gpu' });
            tp.push(performance.now() - t0);
            t.push(await bank.benchGpuScans(q, k, reps));
          }
          const copyGbps = (2 * copyBytes) / median(tc) / 1e6;
          const call = median(tp);
          const ms = median(t);
          const gbps = bytes / ms / 1e6;
          // Also the median of each run's own ratio (scan and copy timed back to back), steadier
          // than the ratio of medians when the machine's load changes during the run.
          const ratio = (ts) => median(ts.map((x, i) => (bytes / x) / ((2 * copyBytes) / tc[i])));
          const callRatio = ratio(tp);
          const scanRatio = ratio(t);
          out.results.push({ n, format, b, path: 'gpu-per-call-interleaved', median: call, bytes, gbps: bytes / call / 1e6, copyGbps, fractionOfBaseline: bytes / call / 1e6 / copyGbps, medianRunRatio: callRatio });
          out.results.push({ n, format, b, path: 'gpu-amortised', median: ms, bytes, gbps, copyGbps, fractionOfBaseline: gbps / copyGbps, medianRunRatio: scanRatio });
          log(`per-call gpu top-k n=${n} ${format} B=${b} (interleaved with the copy): ${call.toFixed(2)} ms = ${(bytes / call / 1e6).toFixed(2)} GB/s = ${(100 * bytes / call / 1e6 / copyGbps).toFixed(0)}% of GPU copy; median per-run ratio ${(100 * callRatio).toFixed(0)}%`);
          log(`amortised gpu scan n=${n} ${format} B=${b}: ${ms.toFixed(2)} ms per top-k = ${gbps.toFixed(2)} GB/s = ${(100 * gbps / copyGbps).toFixed(0)}% of GPU copy (${copyGbps.toFixed(2)} GB/s, interleaved, ${runs} runs); median per-run ratio ${(100 * scanRatio).toFixed(0)}%`);
        }
      }
      bank.free();
    }
  }
  return out;
}

await init();
window.fetchBench = { ready: true, run };

const outEl = document.getElementById('out');
document.getElementById('run').addEventListener('click', async () => {
  outEl.textContent = '';
  try {
    await run({ log: (l) => { outEl.textContent += l + '\n'; } });
  } catch (e) {
    outEl.textContent += `${e.code ?? 'ERROR'}: ${e.message}`;
  }
});
