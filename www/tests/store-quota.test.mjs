// Quota: shrink the origin's quota through the DevTools protocol, overflow it, check the typed
// error, that the failed batch left nothing behind and the store still reads, then free space and
// check that a small write is accepted.
import { test, run, assert, assertEq, startServer, launch } from './harness.mjs';
import { storePage } from './store-browser.mjs';

const DIMS = 384;

test('QUOTA_EXCEEDED is typed, writes nothing of the batch, and the store stays usable', async () => {
  const { server, url } = await startServer();
  const ctx = await launch();
  try {
    const page = await storePage(ctx, url);
    const cdp = await ctx.newCDPSession(page);
    const origin = new URL(url).origin;
    // Shrink the quota first (Chromium applies an override to the origin's IndexedDB before
    // its first use): 12 MiB. Then 10 MiB of random filler in another database (freed later)
    // and a few episodes.
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 12 << 20 });
    await page.evaluate(async ({ DIMS }) => {
      const { store, episode, filler } = window.storeT;
      await filler('quota-filler', 10 << 20);
      const s = await store('quota', DIMS);
      await s.putMany(Array.from({ length: 50 }, (_, i) => episode(0, i, DIMS, 'q0')));
    }, { DIMS });

    const r = await page.evaluate(async ({ DIMS }) => {
      const { store, randomEpisode, errInfo } = window.storeT;
      const s = await store('quota', DIMS);
      let err = null;
      let k = 1;
      let before = 0;
      for (; k <= 10 && !err; k++) {
        before = await s.count();
        try {
          // ~2.5 MB of incompressible vectors: more than the space left.
          await s.putMany(Array.from({ length: 1600 }, (_, i) => randomEpisode(k, i, DIMS, `q${k}`)));
        } catch (e) {
          err = errInfo(e);
        }
      }
      k--;
      const after = await s.count();
      const failedNs = await s.count(`q${k}`);
      const sample = await s.get(1);
      const scan = (await s.scan({ namespace: 'q0' })).length;
      return { err, k, before, after, failedNs, sampleText: sample?.text ?? null, scan };
    }, { DIMS });
    assert(r.err, `no error after ${r.k} batches`);
    assertEq(r.err.code, 'QUOTA_EXCEEDED', `error ${JSON.stringify(r.err)}`);
    assertEq(r.after, r.before, 'count unchanged by the failed batch');
    assertEq(r.failedNs, 0, 'no episode of the failed batch');
    assert(r.sampleText && r.sampleText.startsWith('batch 0 episode 0'), 'old data still reads');
    assertEq(r.scan, 50, 'scan still works');
    console.log(`  quota: batch ${r.k} of 1600 x ${DIMS} failed with ${r.err.code} (${r.err.message}); ${r.after} episodes intact`);

    // Free space (drop the filler database): a small write, then deletes, succeed.
    const freed = await page.evaluate(async ({ DIMS }) => {
      const { store, episode, deleteDb, errInfo } = window.storeT;
      await deleteDb('quota-filler');
      const s = await store('quota', DIMS);
      const out = {};
      try { out.put = await s.put(episode(999, 0, DIMS, 'small')); } catch (e) { out.put = errInfo(e); }
      try { out.del = await s.delete(2); } catch (e) { out.del = errInfo(e); }
      out.count = await s.count();
      out.small = (await s.scan({ namespace: 'small' })).map((e) => e.text);
      return out;
    }, { DIMS });
    assert(typeof freed.put === 'number', `small write after freeing space: ${JSON.stringify(freed.put)}`);
    assertEq(freed.del, undefined, 'delete after freeing space');
    assertEq(freed.count, r.after, 'one more, one less');
    assertEq(freed.small.length, 1, 'the small write reads back');
  } finally {
    await ctx.close();
    server.close();
  }
});

await run('store-quota.test.mjs');
