// The engine across tabs and reloads, in headless Chromium on IndexedDB: a memory remembered in
// one tab is recalled in another (and a forget there is respected here); everything survives a
// page reload, and the reopen uses the persisted indexes.
import { test, run, assert, assertEq, startServer, launch } from './harness.mjs';

async function enginePage(ctx, url) {
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  await page.goto(`${url}/tests/engine-page.html`);
  await page.waitForFunction(() => window.engineT?.ready === true, null, { timeout: 60000 });
  return page;
}

test('two tabs: a write in one is recalled in the other', async () => {
  const { server, url } = await startServer();
  const ctx = await launch();
  try {
    const a = await enginePage(ctx, url);
    const b = await enginePage(ctx, url);
    await a.evaluate(async () => {
      await window.engineT.Mnemo.destroy('tabs');
      const m = await window.engineT.engine('tabs', { dims: 64, embedder: 'hashed-ngrams' });
      await m.rememberMany(['the train leaves at nine', 'coffee with Sam on Friday', 'the garden needs water']
        .map((text) => ({ text, namespace: 'chat' })));
    });
    // Tab B opens the same memory and listens for other tabs' writes.
    const before = await b.evaluate(async () => {
      const m = await window.engineT.engine('tabs', { dims: 64, embedder: 'hashed-ngrams' });
      window.changes = 0;
      m.onChange(() => { window.changes++; });
      return (await m.recall({ text: 'violin recital', k: 3 })).map((h) => h.text);
    });
    assert(!before.some((t) => t.includes('violin')), 'nothing about a violin yet');
    const id = await a.evaluate(async () => {
      const m = await window.engineT.engine('tabs');
      return m.remember({ text: 'my violin recital is on the 12th of May', namespace: 'chat' });
    });
    // B recalls it right away (recall checks the store's sequence), and its background sync runs.
    const got = await b.evaluate(async () => {
      const m = await window.engineT.engine('tabs');
      const hits = await m.recall({ text: 'when is the violin recital?', k: 1 });
      return { id: hits[0]?.id, text: hits[0]?.text, count: m.stats().count };
    });
    assertEq(got.id, id, 'tab B recalls tab A\'s new memory');
    assertEq(got.count, 4, 'tab B counts it');
    await b.waitForFunction(() => window.changes > 0, null, { timeout: 10000 });
    // A forget in B is respected in A.
    await b.evaluate(async (id) => (await window.engineT.engine('tabs')).forget(id), id);
    const after = await a.evaluate(async () => {
      const m = await window.engineT.engine('tabs');
      return (await m.recall({ text: 'violin recital', k: 4 })).map((h) => h.text);
    });
    assert(!after.some((t) => t.includes('violin')), `a forgotten memory came back in tab A: ${after}`);
  } finally {
    await ctx.close();
    server.close();
  }
});

test('reload: memories and indexes persist', async () => {
  const { server, url } = await startServer();
  const ctx = await launch();
  try {
    const page = await enginePage(ctx, url);
    await page.evaluate(async () => {
      await window.engineT.Mnemo.destroy('reload');
      const m = await window.engineT.engine('reload', { dims: 64, embedder: 'hashed-ngrams' });
      const words = ['apple', 'river', 'cello', 'lease', 'flat', 'dog', 'peanut', 'flight', 'sister', 'teacher'];
      const items = [];
      for (let i = 0; i < 300; i++) items.push({ text: `${words[i % 10]} ${words[(i * 7) % 10]} note ${i}`, namespace: `n${i % 3}`, time: 1e12 + i });
      await m.rememberMany(items);
      await m.close(); // persists the derived indexes
      const m2 = await window.engineT.Mnemo.open('reload', { embedder: 'hashed-ngrams' });
      await m2.remember({ text: 'the passport is in the blue drawer', namespace: 'n0' });
      // No close: the page goes away with this write not yet in the persisted indexes.
    });
    await page.reload();
    await page.waitForFunction(() => window.engineT?.ready === true, null, { timeout: 60000 });
    const r = await page.evaluate(async () => {
      const t0 = performance.now();
      const m = await window.engineT.Mnemo.open('reload', { embedder: 'hashed-ngrams' });
      const openMs = performance.now() - t0;
      const hits = await m.recall({ text: 'where is my passport?', k: 1 });
      const n1 = await m.recall({ text: 'cello', namespace: 'n1', k: 50 });
      return { count: m.stats().count, top: hits[0]?.text, openMs, n1: n1.length, n1ns: [...new Set(n1.map((h) => h.namespace))] };
    });
    console.log(`  reopen after reload: ${r.openMs.toFixed(1)} ms for ${r.count} memories`);
    assertEq(r.count, 301, 'every memory survives the reload');
    assertEq(r.top, 'the passport is in the blue drawer', 'the write after the last persist is recalled');
    assertEq(r.n1ns, ['n1'], 'namespace filter after reload');
    assert(r.n1 > 0, 'lexical hits in n1 after reload');
  } finally {
    await ctx.close();
    server.close();
  }
});

await run('engine-tabs.test.mjs');
