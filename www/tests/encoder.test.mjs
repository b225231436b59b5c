// The built-in text encoder (all-MiniLM-L6-v2) through the JS API in headless Chromium (WebGPU on
// SwiftShader): the option checks and error codes, the IndexedDB weight cache (weights passed
// once as a same-origin URL, then loaded from the cache after a page reload), text-only
// remember / recall, and parity with sentence-transformers on the reference texts of
// $MNEMO_EVAL_DIR/minilm (default ../shared/eval/minilm): cosine >= 0.999 for every text, all 231
// texts on the CPU path and on the WebGPU path (MNEMO_ENCODER_WEB_GPU_TEXTS=N: the first N only).
// Prints speeds (never asserted; MNEMO_ENCODER_WEB_SPEED=0 skips the WebGPU batch of 32). The weights (90 MB) are served from .cache/minilm (make setup);
// without them this test FAILS; without the reference data it says so loudly and skips parity.
import fs from 'node:fs';
import path from 'node:path';
import { test, run, assert, startServer, launch } from './harness.mjs';
import { REPO } from '../scripts/server.mjs';

const MODEL = 'all-MiniLM-L6-v2';
const minilmDir = process.env.MNEMO_MINILM_DIR || path.join(REPO, '.cache/minilm');
const evalDir = path.resolve(process.env.MNEMO_EVAL_DIR || path.join(REPO, '../shared/eval'));
const haveRef = fs.existsSync(path.join(evalDir, 'minilm/sentences.jsonl'));
const GPU_TEXTS = Number(process.env.MNEMO_ENCODER_WEB_GPU_TEXTS || 231);
// The WebGPU batch of 32 LoCoMo turns (seconds on SwiftShader); MNEMO_ENCODER_WEB_SPEED=0 skips it.
const GPU_BATCH32 = process.env.MNEMO_ENCODER_WEB_SPEED !== '0';

async function enginePage(ctx, url) {
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') console.error(`[page] ${m.text()}`); });
  await page.goto(`${url}/tests/engine-page.html?entry=encoder`);
  await page.waitForFunction(() => window.engineT?.ready === true, null, { timeout: 60000 });
  return page;
}

// Helpers installed in the page: reference data and cosine parity.
const PAGE_HELPERS = () => {
  window.encT = {
    async reference() {
      const lines = (await (await fetch('/eval/minilm/sentences.jsonl')).text()).trim().split('\n');
      const texts = lines.map((l) => JSON.parse(l).text);
      const emb = new Float32Array(await (await fetch('/eval/minilm/embeddings.f32')).arrayBuffer());
      return { texts, emb };
    },
    parity(vecs, emb, n) {
      let min = Infinity, at = -1;
      for (let i = 0; i < n; i++) {
        const v = vecs[i], r = emb.subarray(i * 384, (i + 1) * 384);
        let d = 0, a = 0, b = 0;
        for (let j = 0; j < 384; j++) { d += v[j] * r[j]; a += v[j] * v[j]; b += r[j] * r[j]; }
        const c = d / Math.sqrt(a * b);
        if (!(c >= min)) { min = c; at = i; }
      }
      return { min, at };
    },
    async code(p) {
      try { await p; return 'resolved'; } catch (e) { return `${e.code}${e.field ? ` ${e.field}` : ''}`; }
    },
  };
};

test('encoder: options, weight cache, text-only memory, parity on CPU and WebGPU paths', async () => {
  for (const f of ['model.safetensors', 'vocab.txt']) {
    assert(fs.existsSync(path.join(minilmDir, f)), `${path.join(minilmDir, f)} missing: run \`make setup\` (fetches the all-MiniLM-L6-v2 weights into .cache/minilm)`);
  }
  if (!haveRef) console.log(`  WARNING: MiniLM reference data not found at ${evalDir}/minilm (set MNEMO_EVAL_DIR): browser parity is NOT checked`);
  const mounts = [['/minilm/', minilmDir]];
  if (haveRef) mounts.push(['/eval/', evalDir]);
  const { server, url } = await startServer({ mounts });
  const ctx = await launch();
  try {
    let page = await enginePage(ctx, url);
    await page.evaluate(PAGE_HELPERS);
    const r1 = await page.evaluate(async ({ MODEL, haveRef }) => {
      const { Mnemo } = window.engineT;
      const { code } = window.encT;
      const vocab = await (await fetch('/minilm/vocab.txt')).text();
      const out = { errors: {} };
      out.cachedBefore = await Mnemo.modelCached(MODEL);
      out.errors.notCached = await code(Mnemo.open('enc-a', { embedder: { model: MODEL } }));
      out.errors.unknownModel = await code(Mnemo.open('enc-a', { embedder: { model: 'bert-base' } }));
      out.errors.noVocab = await code(Mnemo.open('enc-a', { embedder: { model: MODEL, weights: new Uint8Array(8) } }));
      out.errors.badBackend = await code(Mnemo.open('enc-a', { embedder: { model: MODEL, backend: 'tpu' } }));
      out.errors.badWeights = await code(Mnemo.open('enc-a', { embedder: { model: MODEL, weights: new Uint8Array(100), vocab } }));
      out.errors.missingUrl = await code(Mnemo.open('enc-a', { embedder: { model: MODEL, weights: '/minilm/nope.safetensors', vocab } }));
      out.cachedAfterErrors = await Mnemo.modelCached(MODEL);
      // Weights as a same-origin URL, CPU path; cached in IndexedDB on success.
      let t0 = performance.now();
      const mem = await Mnemo.open('enc-a', { embedder: { model: MODEL, weights: '/minilm/model.safetensors', vocab, backend: 'cpu' } });
      out.openMs = performance.now() - t0;
      out.stats = mem.stats();
      out.cachedAfterOpen = await Mnemo.modelCached(MODEL);
      out.errors.dims = await code(Mnemo.open('enc-b', { dims: 256, embedder: { model: MODEL } }));
      out.errors.embedNotArray = await code(mem.embed('hello'));
      out.errors.embedNotString = await code(mem.embed(['a', 3]));
      // Text-only memory.
      const notes = [
        'My dog Rex is a golden retriever who loves the beach',
        'I work night shifts as a nurse at the children\'s hospital',
        'I\'m allergic to peanuts, so never suggest satay',
        'My sister Ana just started learning the cello',
      ];
      const ids = await mem.rememberMany(notes.map((text) => ({ text, namespace: 'me' })));
      const vectorOnly = { vector: 1, lexical: 0, recency: 0, importance: 0 };
      out.recall = [];
      for (const [q, want] of [['What breed is my pet?', 0], ['Which food must I avoid?', 2], ['Who plays a string instrument?', 3]]) {
        const hits = await mem.recall({ text: q, k: 1, weights: vectorOnly });
        out.recall.push({ q, ok: hits[0].id === ids[want], got: hits[0].text });
      }
      const [e0] = await mem.embed([notes[0]]);
      out.firstVector = Array.from(e0.subarray(0, 8));
      if (haveRef) {
        const { texts, emb } = await window.encT.reference();
        t0 = performance.now();
        const vecs = await mem.embed(texts);
        const s = (performance.now() - t0) / 1000;
        out.cpuAll = { n: texts.length, s, perSec: texts.length / s, ...window.encT.parity(vecs, emb, texts.length) };
        // Speeds (printed, not asserted) on LoCoMo turns: 10 one by one, 32 in one call.
        const turns = texts.slice(31, 31 + 32);
        t0 = performance.now();
        for (const t of turns.slice(0, 10)) await mem.embed([t]);
        out.cpuBatch1 = 10 / ((performance.now() - t0) / 1000);
        t0 = performance.now();
        await mem.embed(turns);
        out.cpuBatch32 = turns.length / ((performance.now() - t0) / 1000);
      }
      await mem.close();
      mem.free();
      return out;
    }, { MODEL, haveRef });
    console.log(`  errors: ${JSON.stringify(r1.errors)}`);
    const want = {
      notCached: 'MODEL_NOT_CACHED',
      unknownModel: 'INVALID_INPUT embedder.model',
      noVocab: 'INVALID_INPUT embedder.vocab',
      badBackend: 'INVALID_INPUT embedder.backend',
      badWeights: 'ENCODER_BAD_WEIGHTS',
      missingUrl: 'MODEL_FETCH_FAILED',
      dims: 'DIMENSION_MISMATCH dims',
      embedNotArray: 'INVALID_INPUT texts',
      embedNotString: 'INVALID_INPUT texts[1]',
    };
    for (const [k, v] of Object.entries(want)) assert(r1.errors[k] === v, `${k}: expected ${v}, got ${r1.errors[k]}`);
    assert(!r1.cachedBefore && !r1.cachedAfterErrors, 'nothing cached before a successful open (bad weights are not cached)');
    assert(r1.cachedAfterOpen, 'the weights are cached after the open');
    assert(r1.stats.dims === 384 && r1.stats.embedder?.name === MODEL && r1.stats.embedder?.backend === 'cpu', `stats ${JSON.stringify(r1.stats)}`);
    for (const x of r1.recall) assert(x.ok, `recall "${x.q}" got "${x.got}"`);
    console.log(`  open with weights from a URL (fetch + parse + cache): ${r1.openMs.toFixed(0)} ms`);
    if (r1.cpuAll) {
      console.log(`  CPU path (wasm): ${r1.cpuAll.n} reference texts in ${r1.cpuAll.s.toFixed(1)} s (${r1.cpuAll.perSec.toFixed(1)} texts/s), min cosine ${r1.cpuAll.min.toFixed(6)} (text ${r1.cpuAll.at})`);
      assert(r1.cpuAll.min >= 0.999, `CPU path cosine ${r1.cpuAll.min} at text ${r1.cpuAll.at}`);
      console.log(`  CPU path speed: batch 1 ${r1.cpuBatch1.toFixed(1)} sentences/s, batch 32 (LoCoMo turns) ${r1.cpuBatch32.toFixed(1)} sentences/s`);
    }

    // A reload: a new JS realm, the model from the IndexedDB cache (no weights passed); WebGPU path.
    await page.reload();
    await page.waitForFunction(() => window.engineT?.ready === true, null, { timeout: 60000 });
    await page.evaluate(PAGE_HELPERS);
    const r2 = await page.evaluate(async ({ MODEL, haveRef, GPU_TEXTS, GPU_BATCH32 }) => {
      const { Mnemo } = window.engineT;
      const out = {};
      // The default path ('auto': the CPU path on SwiftShader, a software adapter).
      const first = await Mnemo.open('enc-a', { embedder: { model: MODEL } });
      await first.embed(['My dog Rex is a golden retriever who loves the beach']);
      out.coldStartMs = performance.now(); // from navigation start to the first embedding
      out.autoBackend = first.stats().embedder?.backend;
      await first.close();
      first.free();
      const mem = await Mnemo.open('enc-a', { embedder: { model: MODEL, backend: 'webgpu' } });
      const [e0] = await mem.embed(['My dog Rex is a golden retriever who loves the beach']);
      out.stats = mem.stats();
      out.firstVector = Array.from(e0.subarray(0, 8));
      out.count = mem.stats().count;
      const hits = await mem.recall({ text: 'What breed is my pet?', k: 1 });
      out.recallTop = hits[0]?.text;
      if (haveRef) {
        const { texts, emb } = await window.encT.reference();
        const sub = texts.slice(0, GPU_TEXTS);
        let t0 = performance.now();
        const vecs = await mem.embed(sub);
        const s = (performance.now() - t0) / 1000;
        out.gpu = { n: sub.length, s, perSec: sub.length / s, ...window.encT.parity(vecs, emb, sub.length) };
        t0 = performance.now();
        for (const t of texts.slice(31, 34)) await mem.embed([t]);
        out.gpuBatch1 = 3 / ((performance.now() - t0) / 1000);
        if (GPU_BATCH32) {
          const turns = texts.slice(31, 31 + 32);
          t0 = performance.now();
          await mem.embed(turns);
          out.gpuBatch32 = turns.length / ((performance.now() - t0) / 1000);
        }
      }
      out.deleted = await Mnemo.deleteModel(MODEL);
      out.cachedAfterDelete = await Mnemo.modelCached(MODEL);
      await mem.close();
      await Mnemo.destroy('enc-a');
      return out;
    }, { MODEL, haveRef, GPU_TEXTS, GPU_BATCH32 });
    assert(r2.stats.embedder?.backend === 'webgpu', `embedder on WebGPU: ${JSON.stringify(r2.stats)}`);
    assert(r2.count === 4, `the memories survived the reload: ${r2.count}`);
    assert(/golden retriever/.test(r2.recallTop ?? ''), `recall after reload: ${r2.recallTop}`);
    const d = Math.max(...r1.firstVector.map((x, i) => Math.abs(x - r2.firstVector[i])));
    assert(d < 1e-3, `WebGPU vs CPU first values differ by ${d}`);
    assert(r2.autoBackend === 'cpu', `'auto' on SwiftShader runs the CPU path: ${r2.autoBackend}`);
    console.log(`  cold start (page load → wasm → model from IndexedDB → first embedding, default path = ${r2.autoBackend}): ${r2.coldStartMs.toFixed(0)} ms`);
    if (r2.gpu) {
      console.log(`  WebGPU path (SwiftShader): ${r2.gpu.n} reference texts in ${r2.gpu.s.toFixed(1)} s (${r2.gpu.perSec.toFixed(2)} texts/s), min cosine ${r2.gpu.min.toFixed(6)} (text ${r2.gpu.at}); batch 1 ${r2.gpuBatch1.toFixed(2)} sentences/s, batch 32 ${r2.gpuBatch32 ? `${r2.gpuBatch32.toFixed(2)} sentences/s (LoCoMo turns)` : 'not measured (MNEMO_ENCODER_WEB_SPEED=0)'}`);
      assert(r2.gpu.min >= 0.999, `WebGPU path cosine ${r2.gpu.min} at text ${r2.gpu.at}`);
    }
    assert(r2.deleted && !r2.cachedAfterDelete, 'deleteModel removes the cached files');
  } finally {
    await ctx.close();
    server.close();
  }
});

test('the default entry has no encoder: ENCODER_NOT_IN_BUILD, other embedders still work', async () => {
  const { server, url } = await startServer();
  const ctx = await launch();
  try {
    const page = await ctx.newPage();
    page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
    await page.goto(`${url}/tests/engine-page.html`);
    await page.waitForFunction(() => window.engineT?.ready === true, null, { timeout: 60000 });
    const r = await page.evaluate(async (MODEL) => {
      const { Mnemo, entry } = window.engineT;
      let code = 'resolved', field = null, message = '';
      try { await Mnemo.open('enc-default', { dims: 384, embedder: { model: MODEL } }); } catch (e) { ({ code, field, message } = e); }
      const m = await Mnemo.open('enc-default-h', { dims: 64, embedder: 'hashed-ngrams' });
      const id = await m.remember({ text: 'plain hashed n-grams' });
      await m.close();
      return { entry, code, field, message, id, statics: typeof Mnemo.modelCached };
    }, 'all-MiniLM-L6-v2');
    console.log(`  default entry (${r.entry}): ${r.code} (${r.field}): ${r.message}`);
    assert(r.entry === 'mnemo', `loaded ${r.entry}`);
    assert(r.code === 'ENCODER_NOT_IN_BUILD' && r.field === 'embedder', `code ${r.code} field ${r.field}`);
    assert(/mnemo\/encoder/.test(r.message), 'the message names the mnemo/encoder entry');
    assert(typeof r.id === 'number', 'hashed-ngrams still works');
    assert(r.statics === 'undefined', 'no modelCached in the default entry');
  } finally {
    await ctx.close();
    server.close();
  }
});

await run('encoder.test.mjs');
