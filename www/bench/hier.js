// Browser benchmark of the hierarchical memory bank (the CPU path in wasm with simd128, and
// WebGPU). `window.mnemoHierBench.run(options)` returns plain numbers for bench/hier-run.mjs.
import init, { Kernels, HierIndex, version } from '/pkg/mnemo.js';

// mulberry32: seeded uniform [0, 1).
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

function normalGen(next) {
  return () => {
    const u1 = Math.max(next(), 1e-12);
    const u2 = next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  };
}

function around(normal, centre, spread, out, off) {
  const d = centre.length;
  const s = spread / Math.sqrt(d);
  let norm = 0;
  for (let i = 0; i < d; i++) {
    const v = centre[i] + s * normal();
    out[off + i] = v;
    norm += v * v;
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < d; i++) out[off + i] /= norm;
}

/**
 * Clustered, L2-normalised data with the same shape as the Rust generator
 * (mnemo::kernels::hier::synth): one cluster per 100 points, one topic per 20 clusters,
 * spreads 0.8 (topic -> cluster) and 1.2 (cluster -> point). Queries are fresh draws.
 */
export function clustered(n, d, queries, seed = 7) {
  const normal = normalGen(rand(seed));
  const clusters = Math.max(4, Math.floor(n / 100));
  const topics = Math.max(2, Math.floor(clusters / 20));
  const topicVecs = [];
  for (let t = 0; t < topics; t++) {
    const v = new Float32Array(d);
    around(normal, new Float32Array(d), 1e6, v, 0);
    topicVecs.push(v);
  }
  const centres = [];
  const next = rand(seed ^ 0x1234);
  for (let c = 0; c < clusters; c++) {
    const v = new Float32Array(d);
    around(normal, topicVecs[Math.floor(next() * topics)], 0.8, v, 0);
    centres.push(v);
  }
  const draw = (count) => {
    const out = new Float32Array(count * d);
    for (let i = 0; i < count; i++) around(normal, centres[Math.floor(next() * clusters)], 1.2, out, i * d);
    return out;
  };
  return { bank: draw(n), queries: draw(queries) };
}

function pct(sorted, p) {
  return sorted[Math.round((sorted.length - 1) * p)];
}

function recallAt(got, want, k) {
  let hit = 0;
  let total = 0;
  for (let q = 0; q < want.length / k; q++) {
    const g = new Set(got.subarray(q * k, (q + 1) * k));
    for (let j = 0; j < k; j++) {
      const id = want[q * k + j];
      if (id === 0xffffffff) continue;
      total++;
      if (g.has(id)) hit++;
    }
  }
  return total ? hit / total : 1;
}

/** Single-query latencies (ms) of `fn(q)` over the queries, `reps` passes; median and p95. */
async function latency(queries, d, reps, fn) {
  const t = [];
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < queries.length / d; i++) {
      const q = queries.subarray(i * d, (i + 1) * d);
      const t0 = performance.now();
      await fn(q);
      t.push(performance.now() - t0);
    }
  }
  t.sort((a, b) => a - b);
  return { median: pct(t, 0.5), p95: pct(t, 0.95) };
}

export async function run({ sizes = [10000, 100000], dims = 384, queries = 200, k = 10, gpuMax = 100000 } = {}) {
  const cpu = await Kernels.create({ prefer: 'cpu' });
  const gpu = await Kernels.create({ prefer: 'webgpu' });
  const out = {
    version: version(),
    adapter: gpu.adapterInfo() ?? null,
    backend: gpu.backend(),
    crossOriginIsolated: self.crossOriginIsolated,
    sizes: [],
  };
  for (const n of sizes) {
    const row = { n, dims, queries };
    const { bank, queries: qs } = clustered(n, dims, queries);
    let t0 = performance.now();
    const index = await cpu.hierBuild(bank, dims);
    row.buildCpuSeconds = (performance.now() - t0) / 1000;
    row.buildCpuVectorsPerSecond = n / row.buildCpuSeconds;
    const stats = index.stats();
    row.stats = stats;
    // Exact top-k: the full beam scores every row (and is the flat-scan baseline).
    const exact = { beam: stats.leaves };
    const truth = index.search(qs, k, exact).ids;
    const flat = await latency(qs.subarray(0, 50 * dims), dims, 1, (q) => index.search(q, k, exact));
    row.flatCpu = { ...flat, bytesPerQuery: n * dims * 4 };
    row.beams = [];
    const beams = [...new Set([1, 2, 4, 8, 16, 32, stats.default_beam].filter((b) => b <= stats.leaves))].sort((a, b) => a - b);
    for (const beam of beams) {
      const o = { beam };
      const r = index.search(qs, k, o);
      const lat = await latency(qs, dims, 3, (q) => index.search(q, k, o));
      row.beams.push({
        beam,
        isDefault: beam === stats.default_beam,
        recall: recallAt(r.ids, truth, k),
        bytesPerQuery: r.bytesRead / queries,
        median: lat.median,
        p95: lat.p95,
      });
    }
    if (gpu.backend() === 'webgpu' && n <= gpuMax) {
      try {
        // The WebGPU fetch: the index mirrored on the device, one submission + readback per call.
        const r = await gpu.hierSearch(index, qs, k);
        const lat = await latency(qs.subarray(0, 20 * dims), dims, 1, (q) => gpu.hierSearch(index, q, k));
        t0 = performance.now();
        await gpu.hierSearch(index, qs.subarray(0, 16 * dims), k);
        row.gpuSearch = {
          backend: r.backend,
          recall: recallAt(r.ids, truth, k),
          median: lat.median,
          p95: lat.p95,
          batch16PerQuery: (performance.now() - t0) / 16,
        };
      } catch (e) {
        row.gpuSearch = { error: `${e.code ?? ''} ${e.message}` };
      }
      if (n <= 10000) {
        t0 = performance.now();
        const g = await gpu.hierBuild(bank, dims);
        row.buildGpuSeconds = (performance.now() - t0) / 1000;
        row.buildGpuOn = g.builtOn();
        row.gpuBuildIdentical = equalBytes(g.toBytes(false), index.toBytes(false));
        g.free();
      }
    }
    index.free();
    out.sizes.push(row);
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

await init();
window.mnemoHierBench = { run, ready: true, HierIndex };

document.getElementById('run').addEventListener('click', async () => {
  const el = document.getElementById('out');
  el.textContent = 'running…';
  try {
    el.textContent = JSON.stringify(await run({ sizes: [10000] }), null, 2);
  } catch (e) {
    el.textContent = `${e.code ?? 'ERROR'}: ${e.message}`;
  }
});
