// The engine's JS API scenario, shared by the page and the dedicated worker of
// www/tests/engine.test.mjs: it runs every call of the public API against a fresh IndexedDB store
// and returns a plain, structured-clonable report that the test checks the same way for both.
// `pkg` is the imported package module (`/pkg/mnemo.js`, already initialised).

const DIMS = 16;

/** A unit vector with most of its weight on axis `i`. */
export function axis(i, dims = DIMS, spread = 0.05) {
  const v = new Float32Array(dims);
  for (let k = 0; k < dims; k++) v[k] = spread * Math.sin(i * 13 + k * 7);
  v[i % dims] = 1;
  let n = 0;
  for (const x of v) n += x * x;
  n = Math.sqrt(n);
  return v.map((x) => x / n);
}

function errInfo(e) {
  return { isError: e instanceof Error, code: e?.code ?? null, field: e?.field ?? null, message: String(e?.message ?? e) };
}

async function expectError(p) {
  try {
    await p;
    return { isError: false, code: 'NO ERROR' };
  } catch (e) {
    return errInfo(e);
  }
}

const slim = (hits) => hits.map((h) => ({ id: h.id, text: h.text, ns: h.namespace, score: h.score }));

/** Run the scenario on the store `name`; returns the report. */
export async function apiScenario(pkg, name) {
  const { Mnemo } = pkg;
  const r = { where: typeof window === 'undefined' ? 'worker' : 'page' };
  await Mnemo.destroy(name);
  await Mnemo.destroy(`${name}-copy`);
  await Mnemo.destroy(`${name}-fn`);
  const mem = await Mnemo.open(name, { dims: DIMS });
  const t0 = Date.UTC(2026, 2, 1);
  const texts = [
    'I signed the lease for the flat on Rua das Flores',
    'My sister Maya is vegetarian and hates cilantro',
    'I am allergic to peanuts',
    'Started cello lessons with a teacher called Ines',
    'The deposit goes to Mr. Okafor by bank transfer',
    'Biscuit needs his rabies booster in September',
  ];
  const id0 = await mem.remember({ text: texts[0], embedding: axis(0), namespace: 'conv-1', time: t0, role: 'user', meta: { turn: 0 }, importance: 0.9, tags: ['home'] });
  const ids = await mem.rememberMany(texts.slice(1).map((text, i) => ({
    text, embedding: axis(i + 1), namespace: i < 3 ? 'conv-1' : 'conv-2', time: t0 + (i + 1) * 3600e3,
    role: i % 2 ? 'assistant' : 'user', meta: { turn: i + 1 }, tags: i === 4 ? ['pet'] : [],
  })));
  r.ids = [id0, ...ids];
  r.idsAreNumbers = r.ids.every((x) => typeof x === 'number' && Number.isSafeInteger(x));
  // Recall by embedding + text.
  const hits = await mem.recall({ embedding: axis(2), text: 'allergic peanuts', k: 3 });
  r.top = hits[0];
  r.topIsPeanuts = hits[0].text === texts[2];
  r.hitKeys = Object.keys(hits[0]).sort();
  r.partKeys = Object.keys(hits[0].parts).sort();
  r.scoreIsSum = hits.every((h) => {
    const w = { vector: 0.55, lexical: 0.45, recency: 0, importance: 0.05 };
    const s = w.vector * h.parts.vector + w.lexical * h.parts.lexical + w.recency * h.parts.recency + w.importance * h.parts.importance;
    return Math.abs(s - h.score) < 1e-9;
  });
  // Filters.
  r.conv2 = slim(await mem.recall({ embedding: axis(2), namespace: 'conv-2', k: 10 }));
  r.sinceHits = slim(await mem.recall({ embedding: axis(0), since: t0 + 2.5 * 3600e3, k: 10 }));
  r.tagHits = slim(await mem.recall({ embedding: axis(0), tags: ['pet', 'home'], k: 10 }));
  r.recent = slim(await mem.recall({ k: 2, weights: { vector: 0, lexical: 0, recency: 1, importance: 0 }, now: t0 + 10 * 3600e3 }));
  r.allNamespaces = new Set((await mem.recall({ embedding: axis(4), k: 10 })).map((h) => h.namespace)).size;
  // Update and forget.
  await mem.update(ids[4], { importance: 1, meta: { turn: 5, edited: true } });
  const upd = await mem.recall({ embedding: axis(5), k: 1 });
  r.updated = { importance: upd[0].importance, meta: upd[0].meta };
  await mem.forget(ids[1]);
  r.forgottenGone = (await mem.recall({ embedding: axis(2), text: 'allergic peanuts', k: 10 })).every((h) => h.id !== ids[1]);
  // Export / import.
  const bytes = await mem.export();
  r.exportIsBytes = bytes instanceof Uint8Array && bytes.length > 0;
  const copy = await Mnemo.import(`${name}-copy`, bytes);
  const a = slim(await mem.recall({ embedding: axis(3), text: 'cello teacher', k: 4, now: t0 }));
  const b = slim(await copy.recall({ embedding: axis(3), text: 'cello teacher', k: 4, now: t0 }));
  r.importSame = JSON.stringify(a.map((h) => [h.text, h.score])) === JSON.stringify(b.map((h) => [h.text, h.score]));
  r.importCount = copy.stats().count;
  await copy.close();
  await Mnemo.destroy(`${name}-copy`);
  // forgetNamespace.
  r.forgotNs = await mem.forgetNamespace('conv-2');
  // Stats.
  const st = mem.stats();
  r.stats = { count: st.count, dims: st.dims, backend: st.backend, index: st.index, gpu: st.gpu, hasAdapter: st.adapter !== null, bytesOnDisk: st.bytesOnDisk };
  // GPU and CPU paths give the same hits.
  const g = await mem.recall({ embedding: axis(3), text: 'deposit', k: 3, backend: 'webgpu' });
  r.gpuBackend = mem.stats().backend;
  const c = await mem.recall({ embedding: axis(3), text: 'deposit', k: 3, backend: 'cpu' });
  r.cpuBackend = mem.stats().backend;
  r.gpuCpuSame = JSON.stringify(slim(g)) === JSON.stringify(slim(c));
  // Errors.
  r.errors = {
    dims: await expectError(mem.remember({ text: 'x', embedding: new Float32Array(DIMS + 1) })),
    noEmbedder: await expectError(mem.remember({ text: 'no embedding' })),
    badK: await expectError(mem.recall({ embedding: axis(0), k: 0 })),
    badBatch: await expectError(mem.rememberMany([{ text: 'ok', embedding: axis(0) }, { text: '', embedding: axis(1) }])),
    notFound: await expectError(mem.forget(987654)),
    notFloat: await expectError(mem.remember({ text: 'x', embedding: [1, 2, 3] })),
  };
  r.countAfterErrors = mem.stats().count;
  // An async embedder function.
  const calls = [];
  const fn = await Mnemo.open(`${name}-fn`, {
    dims: 8,
    embedder: async (batch) => { calls.push(batch.length); return batch.map((t) => { const v = new Float32Array(8); v[t.length % 8] = 1; return v; }); },
  });
  await fn.rememberMany([{ text: 'abc' }, { text: 'abcd' }]);
  const fh = await fn.recall({ text: 'xyz', k: 1, weights: { lexical: 0 } });
  r.fnEmbedder = { calls, top: fh[0]?.text ?? null };
  await fn.close();
  await Mnemo.destroy(`${name}-fn`);
  // Built-in hashed-ngrams embedder.
  await Mnemo.destroy(`${name}-hashed`);
  const hm = await Mnemo.open(`${name}-hashed`, { dims: 256, embedder: 'hashed-ngrams' });
  await hm.rememberMany(texts.map((text) => ({ text, namespace: 'demo' })));
  const hh = await hm.recall({ text: 'Who teaches me the cello?', k: 1 });
  r.hashedTop = hh[0]?.text ?? null;
  await hm.close();
  await Mnemo.destroy(`${name}-hashed`);
  // Close.
  await mem.close();
  r.afterClose = await expectError(mem.recall({ embedding: axis(0) }));
  await Mnemo.destroy(name);
  return r;
}

/** The checks both the page and the worker report must pass (returns failure messages). */
export function checkScenario(r) {
  const bad = [];
  const want = (c, m) => { if (!c) bad.push(`${r.where}: ${m}`); };
  want(r.idsAreNumbers && r.ids.length === 6, `ids ${JSON.stringify(r.ids)}`);
  want(r.topIsPeanuts, `top hit ${JSON.stringify(r.top)}`);
  want(JSON.stringify(r.hitKeys) === JSON.stringify(['id', 'importance', 'meta', 'namespace', 'parts', 'role', 'score', 'tags', 'text', 'time']), `hit keys ${r.hitKeys}`);
  want(JSON.stringify(r.partKeys) === JSON.stringify(['importance', 'lexical', 'recency', 'vector']), `part keys ${r.partKeys}`);
  want(r.scoreIsSum, 'score = sum of weighted parts');
  want(r.conv2.length === 2 && r.conv2.every((h) => h.ns === 'conv-2'), `namespace filter ${JSON.stringify(r.conv2)}`);
  want(r.sinceHits.length === 3, `since filter ${JSON.stringify(r.sinceHits)}`);
  want(r.tagHits.length === 2, `tags filter ${JSON.stringify(r.tagHits)}`);
  want(r.recent.length === 2 && r.recent[0].id === r.ids[5] && r.recent[1].id === r.ids[4], `recency order ${JSON.stringify(r.recent)}`);
  want(r.allNamespaces === 2, 'recall without namespace spans every namespace');
  want(r.updated.importance === 1 && r.updated.meta.edited === true, `update ${JSON.stringify(r.updated)}`);
  want(r.forgottenGone, 'a forgotten memory is never recalled');
  want(r.exportIsBytes && r.importSame && r.importCount === 5, `export/import ${r.importSame} ${r.importCount}`);
  want(r.forgotNs === 2, `forgetNamespace ${r.forgotNs}`);
  want(r.stats.count === 3 && r.stats.dims === 16 && r.stats.bytesOnDisk > 0, `stats ${JSON.stringify(r.stats)}`);
  want(['webgpu', 'cpu'].includes(r.stats.backend), `stats.backend ${r.stats.backend}`);
  want(r.gpuCpuSame, 'GPU and CPU paths return the same hits');
  want(r.cpuBackend === 'cpu', `backend after a cpu recall: ${r.cpuBackend}`);
  const e = r.errors;
  want(e.dims.isError && e.dims.code === 'DIMENSION_MISMATCH' && e.dims.field === 'embedding', `dims error ${JSON.stringify(e.dims)}`);
  want(e.noEmbedder.code === 'NO_EMBEDDER', `no embedder ${JSON.stringify(e.noEmbedder)}`);
  want(e.badK.code === 'INVALID_INPUT' && e.badK.field === 'k', `bad k ${JSON.stringify(e.badK)}`);
  want(e.badBatch.code === 'INVALID_INPUT' && e.badBatch.field === 'episodes[1].text', `bad batch ${JSON.stringify(e.badBatch)}`);
  want(e.notFound.code === 'NOT_FOUND', `not found ${JSON.stringify(e.notFound)}`);
  want(e.notFloat.code === 'INVALID_INPUT' && e.notFloat.field === 'embedding', `not a Float32Array ${JSON.stringify(e.notFloat)}`);
  want(r.countAfterErrors === 3, 'failed calls wrote nothing');
  want(JSON.stringify(r.fnEmbedder.calls) === '[2,1]' && r.fnEmbedder.top === 'abc', `async embedder ${JSON.stringify(r.fnEmbedder)}`);
  want(r.hashedTop === 'Started cello lessons with a teacher called Ines', `hashed-ngrams top ${r.hashedTop}`);
  want(r.afterClose.code === 'STORE_CLOSED', `after close ${JSON.stringify(r.afterClose)}`);
  return bad;
}
