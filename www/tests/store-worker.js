// A dedicated module worker for the store's journal test: writes, discards the database behind
// the store's back, reopens, and reports what it found (the journal works in a worker too).
import init, { Store } from '/pkg/mnemo.js';

/** As store-page.js's `episode` (that module touches `window`, which a worker has not). */
function episode(batch, i, dims, ns) {
  const e = new Float32Array(dims);
  e[0] = batch;
  e[1] = i;
  for (let k = 2; k < dims; k++) e[k] = Math.sin(batch * 131 + i * 7 + k) * 0.5;
  return { namespace: ns, role: 'user', text: `batch ${batch} episode ${i}`, eventTime: 1_700_000_000_000 + i, embedding: e, metadata: { batch, i } };
}

function deleteDb(name) {
  return new Promise((ok, fail) => {
    const r = indexedDB.deleteDatabase(name);
    r.onsuccess = () => ok(true);
    r.onerror = () => fail(r.error);
  });
}

self.onmessage = async (e) => {
  const { name, dims } = e.data;
  try {
    await init();
    const s = await Store.open(name, { dims });
    const ids = await s.putMany(Array.from({ length: 40 }, (_, i) => episode(1, i, dims, 'w')));
    await s.update(ids[5], { text: 'updated in the worker' });
    await s.deleteMany([ids[0], ids[1]]);
    const before = Array.from((await s.loadVectors()).vectors);
    const journal = s.journal;
    s.close();
    await deleteDb(`mnemo:${name}`);
    const r = await Store.open(name);
    const after = Array.from((await r.loadVectors()).vectors);
    const report = {
      journal,
      count: await r.count(),
      same: JSON.stringify(before) === JSON.stringify(after),
      updated: (await r.get(ids[5]))?.text ?? null,
      dataLoss: r.dataLoss ?? null,
    };
    await r.destroy();
    self.postMessage({ report });
  } catch (err) {
    self.postMessage({ error: `${err?.code ?? ''} ${err?.message ?? err}\n${err?.stack ?? ''}` });
  }
};
