// Benchmark data, made or found in Node and served to the pages as binary files.
//
// - Synthetic: seeded clustered vectors, d = 384, L2-normalised. `clusters = n / 100` centres
//   drawn uniformly on the sphere; each item is `normalise(centre + SPREAD * u)` with `u` a
//   uniformly random unit vector, so an item's cosine to its centre is about 1/sqrt(1 + SPREAD^2)
//   and two items of one cluster have cosine about 1/(1 + SPREAD^2). Queries come from the same
//   distribution (new points, not in the set). Deterministic: mulberry32 + Box-Muller, one seed.
// - LoCoMo (when $MNEMO_EVAL_DIR/locomo exists): the 2760 turn embeddings are the set and
//   evenly spaced question embeddings the queries. They are served read-only from the eval
//   folder; only the ground truth (ids and scores, derived) is written to bench/.cache.
//
// Ground truth: exact inner-product top-10 of every query (cosine, as all vectors are unit).
// The 10th score is kept too, so that recall counts ties as hits.
import fs from 'node:fs';
import path from 'node:path';

export const DIMS = 384;
export const K = 10;
export const SPREAD = Number(process.env.BENCH_SPREAD || 1.0); // BENCH_SPREAD: larger = weaker clusters, harder for graph indexes
export const SEED = 7;

/** mulberry32: a small, fast, seeded generator of uniform floats in [0, 1). */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples from `next` (Box-Muller, both outputs used). */
function gaussian(next) {
  let spare = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = next();
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

function normalise(m, row, dims) {
  let s = 0;
  for (let j = 0; j < dims; j++) s += m[row * dims + j] * m[row * dims + j];
  const inv = 1 / Math.sqrt(s);
  for (let j = 0; j < dims; j++) m[row * dims + j] *= inv;
}

/**
 * `n` items and `q` queries of the clustered synthetic distribution, as Float32Arrays
 * (row-major, unit rows). Same seed, same numbers.
 */
export function synthetic(n, q, { dims = DIMS, seed = SEED, spread = SPREAD } = {}) {
  const clusters = Math.max(10, Math.round(n / 100));
  const g = gaussian(mulberry32(seed));
  const centres = new Float32Array(clusters * dims);
  for (let i = 0; i < centres.length; i++) centres[i] = g();
  for (let c = 0; c < clusters; c++) normalise(centres, c, dims);
  const pick = mulberry32(seed ^ 0x9e3779b9);
  const u = new Float32Array(dims);
  const draw = (out, rows) => {
    for (let r = 0; r < rows; r++) {
      const c = Math.floor(pick() * clusters);
      let s = 0;
      for (let j = 0; j < dims; j++) { u[j] = g(); s += u[j] * u[j]; }
      const f = spread / Math.sqrt(s);
      for (let j = 0; j < dims; j++) out[r * dims + j] = centres[c * dims + j] + f * u[j];
      normalise(out, r, dims);
    }
    return out;
  };
  const base = draw(new Float32Array(n * dims), n);
  const queries = draw(new Float32Array(q * dims), q);
  return { base, queries, clusters };
}

/**
 * Exact top-k by inner product for each query row: `ids` (Q*k, best first) and `kth` (the k-th
 * best score of each query).
 */
export function exactTopK(base, queries, dims, k = K) {
  const n = base.length / dims;
  const q = queries.length / dims;
  const ids = new Uint32Array(q * k);
  const kth = new Float32Array(q);
  const bestS = new Float64Array(k);
  const bestI = new Int32Array(k);
  for (let qi = 0; qi < q; qi++) {
    bestS.fill(-Infinity);
    bestI.fill(-1);
    const qo = qi * dims;
    for (let i = 0; i < n; i++) {
      const bo = i * dims;
      let s = 0;
      for (let j = 0; j < dims; j++) s += base[bo + j] * queries[qo + j];
      if (s > bestS[k - 1]) {
        let p = k - 1;
        while (p > 0 && bestS[p - 1] < s) { bestS[p] = bestS[p - 1]; bestI[p] = bestI[p - 1]; p--; }
        bestS[p] = s;
        bestI[p] = i;
      }
    }
    for (let j = 0; j < k; j++) ids[qi * k + j] = bestI[j];
    kth[qi] = bestS[k - 1];
  }
  return { ids, kth };
}

function writeIfMissing(file, make) {
  if (fs.existsSync(file)) return false;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp${process.pid}`;
  fs.writeFileSync(tmp, make());
  fs.renameSync(tmp, file);
  return true;
}

const bytes = (ta) => Buffer.from(ta.buffer, ta.byteOffset, ta.byteLength);

/** Ground truth file: Q*k uint32 ids, then Q float32 k-th scores. */
function gtBytes({ ids, kth }) {
  return Buffer.concat([bytes(ids), bytes(kth)]);
}

/**
 * Make (or reuse from `cacheDir`) the synthetic set of size `n` with `queries` queries. Returns
 * the dataset descriptor the page reads.
 */
export function syntheticDataset(cacheDir, n, queries, log = () => {}) {
  const name = SPREAD === 1 ? `synth-${n}` : `synth-${n}-spread${SPREAD}`;
  const tag = `${name}-q${queries}-s${SEED}-sp${SPREAD}`;
  const baseFile = path.join(cacheDir, `${tag}.base.f32`);
  const qFile = path.join(cacheDir, `${tag}.queries.f32`);
  const gtFile = path.join(cacheDir, `${tag}.gt.bin`);
  if (!fs.existsSync(baseFile) || !fs.existsSync(qFile) || !fs.existsSync(gtFile)) {
    const t0 = Date.now();
    const { base, queries: qs } = synthetic(n, queries);
    writeIfMissing(baseFile, () => bytes(base));
    writeIfMissing(qFile, () => bytes(qs));
    log(`generated ${name} (${n} x ${DIMS}, ${queries} queries) in ${Date.now() - t0} ms; exact top-${K}...`);
    const t1 = Date.now();
    writeIfMissing(gtFile, () => gtBytes(exactTopK(base, qs, DIMS)));
    log(`ground truth for ${name} in ${Date.now() - t1} ms`);
  }
  return {
    name,
    kind: 'synthetic',
    description: `synthetic clustered, ${Math.max(10, Math.round(n / 100))} clusters, spread ${SPREAD}, seed ${SEED}`,
    n,
    dims: DIMS,
    base: `/data/${path.basename(baseFile)}`,
    queries: `/data/${path.basename(qFile)}`,
    queryRows: null, // every row of the queries file, in order
    gt: `/data/${path.basename(gtFile)}`,
    texts: null, // the page makes "item <i>"
  };
}

/**
 * The LoCoMo dataset when `evalDir/locomo` has turns.f32 and questions.f32, else null. The
 * queries are `queries` evenly spaced questions.
 */
export function locomoDataset(cacheDir, evalDir, queries, log = () => {}) {
  const dir = path.join(evalDir, 'locomo');
  const turnsF = path.join(dir, 'turns.f32');
  const questionsF = path.join(dir, 'questions.f32');
  if (!fs.existsSync(turnsF) || !fs.existsSync(questionsF)) return null;
  const turns = new Float32Array(new Uint8Array(fs.readFileSync(turnsF)).buffer);
  const allQ = new Float32Array(new Uint8Array(fs.readFileSync(questionsF)).buffer);
  const n = turns.length / DIMS;
  const nq = allQ.length / DIMS;
  const rows = Array.from({ length: Math.min(queries, nq) }, (_, j) => Math.floor((j * nq) / Math.min(queries, nq)));
  const q = new Float32Array(rows.length * DIMS);
  rows.forEach((r, j) => q.set(allQ.subarray(r * DIMS, (r + 1) * DIMS), j * DIMS));
  const gtFile = path.join(cacheDir, `locomo-${n}-q${rows.length}.gt.bin`);
  if (!fs.existsSync(gtFile)) {
    writeIfMissing(gtFile, () => gtBytes(exactTopK(turns, q, DIMS)));
    log(`ground truth for locomo (${n} turns, ${rows.length} questions)`);
  }
  return {
    name: 'locomo',
    kind: 'real',
    description: `LoCoMo turns (all-MiniLM-L6-v2), ${n} turns, ${rows.length} of ${nq} questions as queries`,
    n,
    dims: DIMS,
    base: '/eval/locomo/turns.f32',
    queries: '/eval/locomo/questions.f32',
    queryRows: rows,
    gt: `/data/${path.basename(gtFile)}`,
    texts: '/eval/locomo/turns.jsonl',
  };
}
