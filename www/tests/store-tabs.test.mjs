// Two tabs of one origin on one store: a write in one becomes visible in the other (notice, then
// an incremental load); a schema upgrade elsewhere closes both connections with a typed error and
// is never blocked by them.
import { test, run, assert, assertEq, startServer, launch } from './harness.mjs';
import { storePage, sleep } from './store-browser.mjs';

const DIMS = 16;

test('two tabs: notices, incremental loads, upgrade elsewhere', async () => {
  const { server, url } = await startServer();
  const ctx = await launch();
  try {
    const a = await storePage(ctx, url);
    const b = await storePage(ctx, url);
    await a.evaluate(async ({ DIMS }) => {
      const { store, episode } = window.storeT;
      const s = await store('tabs', DIMS);
      await s.putMany(Array.from({ length: 30 }, (_, i) => episode(1, i, DIMS, 'shared')));
    }, { DIMS });
    // Tab B loads everything, then listens.
    const base = await b.evaluate(async ({ DIMS }) => {
      const s = await window.storeT.store('tabs', DIMS);
      const v = await s.loadVectors();
      window.notices = [];
      window.closedCodes = [];
      s.onChange((seq) => window.notices.push(seq));
      s.onClose((e) => window.closedCodes.push(e.code));
      window.mirror = new Map(Array.from(v.ids).map((id, r) => [id, Array.from(v.vectors.subarray(r * v.dims, (r + 1) * v.dims))]));
      window.mirrorSeq = v.seq;
      return { n: v.ids.length, seq: v.seq };
    }, { DIMS });
    assertEq(base.n, 30, 'tab B sees tab A\'s first batch');

    // Tab A writes; tab B gets the notice and applies the changes incrementally.
    const written = await a.evaluate(async ({ DIMS }) => {
      const { store, episode } = window.storeT;
      const s = await store('tabs', DIMS);
      window.closedCodes = [];
      s.onClose((e) => window.closedCodes.push(e.code));
      const ids = await s.putMany(Array.from({ length: 5 }, (_, i) => episode(2, i, DIMS, 'shared')));
      const e = new Float32Array(DIMS).fill(0.25);
      await s.update(1, { embedding: e });
      await s.delete(2);
      return { ids, seq: await s.seq() };
    }, { DIMS });
    await b.waitForFunction((seq) => window.notices.includes(seq), written.seq, { timeout: 10000 });
    const applied = await b.evaluate(async ({ DIMS }) => {
      const s = await window.storeT.store('tabs', DIMS);
      const c = await s.changesSince(window.mirrorSeq);
      const rows = await s.loadRows(c.upserted);
      for (const id of c.deleted) window.mirror.delete(id);
      Array.from(rows.ids).forEach((id, r) => window.mirror.set(id, Array.from(rows.vectors.subarray(r * DIMS, (r + 1) * DIMS))));
      window.mirrorSeq = c.seq;
      const full = await s.loadVectors();
      const same = full.ids.length === window.mirror.size && Array.from(full.ids).every((id, r) =>
        window.mirror.get(id)?.every((x, k) => x === full.vectors[r * DIMS + k]));
      return { c, same, texts: (await s.getMany(c.upserted)).map((e) => e?.text ?? null) };
    }, { DIMS });
    assertEq(applied.c.reset, false, 'incremental, not a reset');
    assertEq(applied.c.upserted, [1, ...written.ids], 'upserted ids');
    assertEq(applied.c.deleted, [2], 'deleted ids');
    assert(applied.same, 'the incrementally maintained mirror equals a full reload');
    assert(applied.texts.slice(1).every((t) => t.startsWith('batch 2')), 'texts of the new episodes');

    // A newer version opens the database in a third tab: A and B close and report it; the
    // upgrade is not blocked.
    const c = await storePage(ctx, url);
    const up = await c.evaluate(async () => {
      // One version past the schema this build wrote.
      const cur = (await indexedDB.databases()).find((d) => d.name === 'mnemo:tabs').version;
      return new Promise((ok) => {
        const t0 = performance.now();
        const r = indexedDB.open('mnemo:tabs', cur + 1);
        r.onblocked = () => ok({ blocked: true });
        r.onsuccess = () => { r.result.close(); ok({ ok: true, ms: performance.now() - t0 }); };
        r.onerror = () => ok({ error: String(r.error) });
        setTimeout(() => ok({ timeout: true }), 10000);
      });
    });
    assert(up.ok, `upgrade elsewhere: ${JSON.stringify(up)}`);
    for (const [tab, p] of [['A', a], ['B', b]]) {
      await p.waitForFunction(() => window.closedCodes.length > 0, null, { timeout: 5000 });
      const r = await p.evaluate(async ({ DIMS }) => {
        const s = await window.storeT.store('tabs', DIMS);
        let call = null;
        try { await s.count(); } catch (e) { call = e.code; }
        let reopen = null;
        try { await window.storeT.Store.open('tabs'); } catch (e) { reopen = e.code; }
        return { closed: window.closedCodes, call, reopen };
      }, { DIMS });
      assertEq(r.closed, ['STORE_UPGRADED_ELSEWHERE'], `tab ${tab} told`);
      assertEq(r.call, 'STORE_UPGRADED_ELSEWHERE', `tab ${tab} later calls`);
      assertEq(r.reopen, 'SCHEMA_TOO_NEW', `tab ${tab} reopening with the older build`);
    }
    await sleep(10);
  } finally {
    await ctx.close();
    server.close();
  }
});

await run('store-tabs.test.mjs');
