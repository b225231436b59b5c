// The journal (a second copy of every committed write in the Origin Private File System) restores
// a store whose IndexedDB database was discarded: deleted from the page behind the store's back,
// removed from the profile while the browser was down (what Chromium does to a backing store it
// finds corrupt after a crash), and in a dedicated worker. Destroy deletes the journal too.
import fs from 'node:fs';
import path from 'node:path';
import { test, run, assert, assertEq, startServer, launch, freshProfile } from './harness.mjs';
import { storePage } from './store-browser.mjs';

const DIMS = 24;

/** Write batches, singles, an update, deletes, a namespace delete; return the store's content. */
async function fill(page, name) {
  return page.evaluate(async ({ name, DIMS }) => {
    const { store, episode } = window.storeT;
    const s = await store(name, DIMS);
    const ids = [];
    for (let k = 0; k < 6; k++) ids.push(...await s.putMany(Array.from({ length: 50 }, (_, i) => episode(k, i, DIMS))));
    for (let i = 0; i < 10; i++) ids.push(await s.put(episode(9, i, DIMS, 'singles')));
    await s.update(ids[7], { text: 'updated text', importance: 0.25 });
    const e = new Float32Array(DIMS).fill(0.5);
    await s.update(ids[8], { embedding: e });
    await s.deleteMany([ids[0], ids[60]]);
    await s.deleteNamespace('b3');
    return { journal: s.journal, dataLoss: s.dataLoss ?? null };
  }, { name, DIMS });
}

async function content(page, name) {
  return page.evaluate(async ({ name, DIMS }) => {
    const s = await window.storeT.store(name, DIMS);
    const v = await s.loadVectors();
    const eps = await s.getMany(Array.from(v.ids));
    return {
      count: await s.count(),
      ids: Array.from(v.ids),
      vectors: Array.from(v.vectors),
      eps: eps.map((e) => JSON.stringify({ ...e, embedding: undefined })),
      dataLoss: s.dataLoss ?? null,
      journal: s.journal,
    };
  }, { name, DIMS });
}

test('a database deleted behind the store\'s back is restored from the journal, and reported', async () => {
  const { server, url } = await startServer();
  const ctx = await launch();
  try {
    const page = await storePage(ctx, url);
    const w = await fill(page, 'j-page');
    assertEq(w, { journal: 'opfs', dataLoss: null }, 'journal on, nothing lost');
    const a = await content(page, 'j-page');
    assertEq(a.count, 300 + 10 - 2 - 50, 'count before');
    // Close, delete the IndexedDB database directly (not Store.destroy), reload, reopen.
    await page.evaluate(async () => {
      const { deleteDb } = window.storeT;
      (await window.storeT.store('j-page')).close();
      await deleteDb('mnemo:j-page');
    });
    await page.reload();
    await page.waitForFunction(() => window.storeT?.ready === true);
    const b = await content(page, 'j-page');
    assert(/restored from the journal: 258 episodes/.test(b.dataLoss ?? ''), `dataLoss: ${b.dataLoss}`);
    assertEq({ ...b, dataLoss: null }, { ...a, dataLoss: null }, 'restored content');
    // Writes continue after the restore; ids are not reused.
    const r = await page.evaluate(async ({ DIMS }) => {
      const { store, episode } = window.storeT;
      const s = await store('j-page', DIMS);
      const id = await s.put(episode(20, 0, DIMS));
      return { id, count: await s.count() };
    }, { DIMS });
    assert(r.id > Math.max(...a.ids) && r.count === a.count + 1, JSON.stringify(r));
    // destroy deletes the journal: the store does not come back.
    const d = await page.evaluate(async () => {
      const { Store, store, errInfo } = window.storeT;
      await (await store('j-page')).destroy();
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('mnemo-journal');
      const left = [];
      for await (const k of dir.keys()) left.push(k);
      try { await Store.open('j-page'); return { left, err: null }; } catch (e) { return { left, err: errInfo(e) }; }
    });
    assertEq(d.left, [], 'journal directories left after destroy');
    assertEq(d.err?.code, 'INVALID_INPUT', 'destroyed store is gone (open without dims)');
  } finally {
    await ctx.close();
    server.close();
  }
});

test('IndexedDB files removed while the browser is down: the store is restored on restart', async () => {
  const { server, url } = await startServer();
  const profile = freshProfile('mnemo-store-journal-');
  let ctx = await launch({ userDataDir: profile });
  try {
    let page = await storePage(ctx, url);
    await fill(page, 'j-restart');
    const a = await content(page, 'j-restart');
    await ctx.close();
    const idbDir = path.join(profile, 'Default', 'IndexedDB');
    assert(fs.existsSync(idbDir), `no ${idbDir}`);
    fs.rmSync(idbDir, { recursive: true, force: true });
    ctx = await launch({ userDataDir: profile });
    page = await storePage(ctx, url);
    const b = await content(page, 'j-restart');
    assert(/restored from the journal/.test(b.dataLoss ?? ''), `dataLoss: ${b.dataLoss}`);
    assertEq({ ...b, dataLoss: null }, { ...a, dataLoss: null }, 'restored content');
    // And again after a plain restart: nothing to restore, nothing lost.
    await ctx.close();
    ctx = await launch({ userDataDir: profile });
    page = await storePage(ctx, url);
    const c = await content(page, 'j-restart');
    assertEq(c, { ...a, dataLoss: null }, 'after a plain restart');
  } finally {
    await ctx.close();
    server.close();
  }
});

test('in a dedicated worker: the journal restores a discarded database', async () => {
  const { server, url } = await startServer();
  const ctx = await launch();
  try {
    const page = await storePage(ctx, url);
    const r = await page.evaluate(() => new Promise((ok) => {
      const w = new Worker('/tests/store-worker.js', { type: 'module' });
      w.onmessage = (e) => ok(e.data);
      w.onerror = (e) => ok({ error: e.message });
      w.postMessage({ name: 'j-worker', dims: 16 });
    }));
    assert(!r.error, r.error);
    assert(/restored from the journal: 38 episodes/.test(r.report.dataLoss ?? ''), `dataLoss: ${r.report.dataLoss}`);
    assertEq({ ...r.report, dataLoss: null }, { journal: 'opfs', count: 38, same: true, updated: 'updated in the worker', dataLoss: null }, 'worker report');
  } finally {
    await ctx.close();
    server.close();
  }
});

test('a pending entry another tab wrote and has not renamed yet survives a snapshot\'s clean-up', async () => {
  const { server, url } = await startServer();
  const ctx = await launch();
  try {
    const page = await storePage(ctx, url);
    const r = await page.evaluate(async ({ DIMS }) => {
      const { store, episode } = window.storeT;
      const s = await store('j-stray', DIMS);
      await s.putMany(Array.from({ length: 20 }, (_, i) => episode(1, i, DIMS)));
      const hex = [...new TextEncoder().encode('mnemo:j-stray')].map((b) => b.toString(16).padStart(2, '0')).join('');
      const dir = await (await (await navigator.storage.getDirectory()).getDirectoryHandle('mnemo-journal')).getDirectoryHandle(hex);
      // What another connection leaves between its entry's write and its rename: a closed,
      // unlocked pending file, written just now.
      const f = await dir.getFileHandle('p-00000000deadbeef', { create: true });
      const w = await f.createWritable();
      await w.write(new Uint8Array(1000).fill(7));
      await w.close();
      await s.clear(); // writes a snapshot, then cleans up what it covers and stray pending files
      const names = [];
      for await (const k of dir.keys()) names.push(k);
      await s.put(episode(2, 0, DIMS));
      return { names, count: await s.count() };
    }, { DIMS });
    assert(r.names.includes('p-00000000deadbeef'), `the young pending file was removed: ${r.names.join(' ')}`);
    assert(r.names.some((n) => n.startsWith('s-')), `no snapshot: ${r.names.join(' ')}`);
    assertEq(r.count, 1, 'count after clear + put');
  } finally {
    await ctx.close();
    server.close();
  }
});

await run('store-journal.test.mjs');
