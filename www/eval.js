// The LoCoMo retrieval eval in the browser (`make eval`): the real engine (Mnemo on IndexedDB,
// vector search on the path the engine picks) on the LoCoMo dev turns and their MiniLM
// embeddings, one namespace per conversation, every question asked after its conversation.
// Parsing, turn times and metrics come from the Rust eval code (src/engine/locomo.rs, eval.rs)
// through the `eval` build of the package (/pkg-eval). `window.locomoEval.run()` returns a report.
import init, { Mnemo, LocomoEval } from '/pkg-eval/mnemo.js';

const STORE = 'locomo-eval';
const METHODS = [
  { name: 'vector-only', embedding: true, text: false, weights: { vector: 1, lexical: 0, recency: 0, importance: 0 } },
  { name: 'lexical-only', embedding: false, text: true, weights: { vector: 0, lexical: 1, recency: 0, importance: 0 } },
  { name: 'default fusion', embedding: true, text: true },
  { name: 'fusion + fading context', embedding: true, text: true, context: true },
];

async function bytes(f) {
  const r = await fetch(`/eval-data/${f}`);
  if (!r.ok) throw new Error(`${f}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}
async function text(f) {
  return new TextDecoder().decode(await bytes(f));
}
function quantiles(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], p95: s[Math.min(s.length - 1, Math.floor(s.length * 0.95))] };
}

async function run({ prefer = 'webgpu', backend = 'auto', log = () => {} } = {}) {
  await init();
  const ev = LocomoEval.parse(await text('turns.jsonl'), await bytes('turns.f32'), await text('questions.jsonl'), await bytes('questions.f32'), await text('baseline_results.json'));
  const dims = ev.dims();
  const turns = ev.turns();
  const tv = ev.turnVectors();
  const qs = ev.questions();
  const qv = ev.questionVectors();
  const nTurns = turns.conv.length;
  const nQ = qs.conv.length;
  await Mnemo.destroy(STORE);
  const t0 = performance.now();
  const mem = await Mnemo.open(STORE, { dims, prefer, backend });
  const openMs = performance.now() - t0;
  // One namespace per conversation, remembered conversation by conversation (ids follow rows).
  const rowOf = new Map();
  const convRows = new Map();
  for (let i = 0; i < nTurns; i++) {
    const c = turns.conv[i];
    if (!convRows.has(c)) convRows.set(c, []);
    convRows.get(c).push(i);
  }
  const tLoad = performance.now();
  for (const [, rows] of convRows) {
    const ids = await mem.rememberMany(rows.map((i) => ({
      text: turns.text[i], embedding: tv.subarray(i * dims, (i + 1) * dims), namespace: turns.namespace[i], time: turns.time[i], role: turns.role[i],
    })));
    ids.forEach((id, j) => rowOf.set(id, rows[j]));
  }
  const loadMs = performance.now() - tLoad;
  log(`loaded ${nTurns} turns of ${convRows.size} conversations in ${loadMs.toFixed(0)} ms`);
  const report = { dims, turns: nTurns, questions: nQ, openMs, loadMs, methods: {}, sameIds: null };
  let vectorTop20 = null;
  for (const m of METHODS) {
    const rankings = [];
    const offsets = [0];
    const times = [];
    const top20 = [];
    for (let q = 0; q < nQ; q++) {
      const c = qs.conv[q];
      const rows = convRows.get(c);
      const query = { k: rows.length, namespace: turns.namespace[rows[0]], now: qs.now[q], payload: false };
      if (m.embedding) query.embedding = qv.subarray(q * dims, (q + 1) * dims);
      if (m.text) query.text = qs.text[q];
      if (m.weights) query.weights = m.weights;
      if (m.context) query.context = true;
      const s = performance.now();
      const hits = await mem.recall(query);
      times.push(performance.now() - s);
      const ranked = hits.map((h) => rowOf.get(h.id));
      top20.push(ranked.slice(0, 20));
      // Turns recall did not return (lexical-only: no query word) follow in conversation order.
      const seen = new Set(ranked);
      for (const r of rows) if (!seen.has(r)) ranked.push(r);
      rankings.push(...ranked);
      offsets.push(rankings.length);
    }
    ev.score(m.name, new Uint32Array(rankings), new Uint32Array(offsets));
    report.methods[m.name] = { ...quantiles(times), backend: mem.stats().backend, index: mem.stats().index };
    if (m.name === 'vector-only') vectorTop20 = top20;
    log(`${m.name}: ${nQ} questions, recall (k = whole conversation) median ${report.methods[m.name].median.toFixed(2)} ms`);
  }
  // "Same ids": the engine's vector-only top 20 against an exact cosine top 20 in JS (float64
  // dot products of the stored vectors, ties by conversation order).
  let same = 0;
  for (let q = 0; q < nQ; q++) {
    const rows = convRows.get(qs.conv[q]);
    const qq = qv.subarray(q * dims, (q + 1) * dims);
    const scored = rows.map((r) => {
      let s = 0;
      for (let d = 0; d < dims; d++) s += qq[d] * tv[r * dims + d];
      return [r, s];
    });
    scored.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    const want = scored.slice(0, 20).map((x) => x[0]);
    if (JSON.stringify(want) === JSON.stringify(vectorTop20[q])) same++;
  }
  report.sameIds = same;
  // Interactive-size recall latency: k = 10 with payload (text, meta), default fusion.
  const lat = [];
  for (let q = 0; q < nQ; q++) {
    const rows = convRows.get(qs.conv[q]);
    const s = performance.now();
    await mem.recall({ embedding: qv.subarray(q * dims, (q + 1) * dims), text: qs.text[q], k: 10, namespace: turns.namespace[rows[0]] });
    lat.push(performance.now() - s);
  }
  report.k10 = quantiles(lat);
  // Across all namespaces (no filter): the same questions searching every conversation.
  const latAll = [];
  for (let q = 0; q < nQ; q += 4) {
    const s = performance.now();
    await mem.recall({ embedding: qv.subarray(q * dims, (q + 1) * dims), text: qs.text[q], k: 10 });
    latAll.push(performance.now() - s);
  }
  report.k10all = quantiles(latAll);
  const st = mem.stats();
  report.stats = { count: st.count, backend: st.backend, index: st.index, gpu: st.gpu, adapter: st.adapter, bytesOnDisk: st.bytesOnDisk };
  report.table14 = ev.table(['cat 1-4']);
  report.table15 = ev.table(['cat 1-5']);
  report.tableCats = ev.table(['cat 1 multi-hop', 'cat 2 temporal', 'cat 3 open-domain', 'cat 4 single-hop', 'cat 5 adversarial']);
  const subsets = ['cat 1-4', 'cat 1-5', 'cat 1 multi-hop', 'cat 2 temporal', 'cat 3 open-domain', 'cat 4 single-hop', 'cat 5 adversarial'];
  report.vectorVsCosine = Math.max(...subsets.map((s) => ev.maxDiff(s, 'vector-only', 'cosine')));
  report.lexicalVsBm25 = Math.max(...subsets.map((s) => ev.maxDiff(s, 'lexical-only', 'bm25')));
  const any10 = (s, m) => ev.metrics(s, m).any[2];
  report.fusionAny10 = any10('cat 1-4', 'default fusion');
  report.contextAny10 = any10('cat 1-4', 'fusion + fading context');
  report.rrfAny10 = any10('cat 1-4', 'baseline: hybrid_rrf');
  await mem.close();
  await Mnemo.destroy(STORE);
  return report;
}

window.locomoEval = { run, ready: true };
