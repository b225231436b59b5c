// The store persists: across a page reload, and across a full browser restart on the same profile.
import { test, run, assert, assertEq, startServer, launch, freshProfile } from './harness.mjs';
import { storePage } from './store-browser.mjs';

const DIMS = 32;

async function snapshot(page, name) {
  return page.evaluate(async ({ name, DIMS }) => {
    const s = await window.storeT.store(name, DIMS);
    const v = await s.loadVectors();
    const eps = await s.getMany(Array.from(v.ids));
    return {
      count: await s.count(),
      ids: Array.from(v.ids),
      sum: Array.from(v.vectors).reduce((a, b) => a + b, 0),
      texts: eps.map((e) => e.text),
      meta: eps.map((e) => JSON.stringify(e.metadata)),
      blob: Array.from((await s.getBlob('bm25'))?.bytes ?? []),
    };
  }, { name, DIMS });
}

test('persists across a page reload and a full browser restart', async () => {
  const { server, url } = await startServer();
  const profile = freshProfile('mnemo-store-persist-');
  let ctx = await launch({ userDataDir: profile });
  try {
    let page = await storePage(ctx, url);
    const before = await page.evaluate(async ({ DIMS }) => {
      const { store, episode } = window.storeT;
      const s = await store('persist', DIMS);
      const ids = await s.putMany(Array.from({ length: 250 }, (_, i) => episode(1, i, DIMS, 'p')));
      for (let i = 0; i < 20; i++) await s.put(episode(2, i, DIMS, 'q'));
      await s.update(ids[3], { text: 'updated after the batch', importance: 0.9 });
      await s.deleteMany([ids[10], ids[11]]);
      await s.putBlob('bm25', 1, await s.seq(), new Uint8Array([1, 2, 3, 250]));
      // A bad batch names the field of the episode at fault and writes nothing.
      const bad = [episode(3, 0, DIMS, 'r'), { ...episode(3, 1, DIMS, 'r'), metadata: [1] }];
      let err = null;
      try { await s.putMany(bad); } catch (e) { err = { code: e.code, field: e.field }; }
      return { count: await s.count(), err };
    }, { DIMS });
    assertEq(before.err, { code: 'INVALID_INPUT', field: 'episodes[1].metadata' }, 'bad batch error');
    assertEq(before.count, 268, 'count before reload');
    const a = await snapshot(page, 'persist');
    assert(a.texts.includes('updated after the batch'), 'update visible');

    await page.reload();
    await page.waitForFunction(() => window.storeT?.ready === true);
    const b = await snapshot(page, 'persist');
    assertEq(b, a, 'after reload');

    await ctx.close();
    ctx = await launch({ userDataDir: profile });
    page = await storePage(ctx, url);
    const c = await snapshot(page, 'persist');
    assertEq(c, a, 'after a full browser restart');
    assertEq(c.blob, [1, 2, 3, 250], 'engine blob persisted');
  } finally {
    await ctx.close();
    server.close();
  }
});

await run('store-persistence.test.mjs');
