// Kill test: write numbered batches in a loop, SIGKILL the browser at a random moment, restart on
// the same profile and check that every batch acknowledged before the kill is complete and that no
// batch is partial. 20 rounds (MNEMO_KILL_ROUNDS) in `make test`; `make test-kill` runs it alone.
// Now and then Chromium discards the whole IndexedDB database on the restart (its LevelDB finds a
// damaged record: "checksum mismatch"); the store then restores every committed write from its
// journal in the Origin Private File System, and the round says so (README "Known bugs").
import { test, run, assert, startServer, freshProfile } from './harness.mjs';
import { spawnChromium, storePage, sleep } from './store-browser.mjs';

const ROUNDS = Number(process.env.MNEMO_KILL_ROUNDS || 20);
const SIZE = 100;
// 100 rows x 192 dims = 75 KiB of vectors per batch: a new segment at least 64 KiB, which the
// store writes as a Blob (smaller ones are inline ArrayBuffers); MNEMO_KILL_DIMS to change it.
const DIMS = Number(process.env.MNEMO_KILL_DIMS || 192);

function mulberry(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test(`${ROUNDS} rounds of SIGKILL during batch writes lose no acknowledged batch and leave none partial`, async () => {
  const { server, url } = await startServer();
  const profile = freshProfile('mnemo-store-kill-');
  const rand = mulberry(Number(process.env.MNEMO_KILL_SEED || 20240611));
  const acked = new Set();
  let next = 0;
  let totalAcked = 0;
  let committedUnacked = 0;
  const restored = []; // rounds whose reopen reported a data loss (and the journal's restore)
  try {
    for (let round = 0; round <= ROUNDS; round++) {
      const b = await spawnChromium(profile);
      try {
        const page = await storePage(b.context, url);
        const v = await page.evaluate(({ SIZE, DIMS }) => window.storeT.verifyBatches('kill', SIZE, DIMS), { SIZE, DIMS });
        assert(v.partial.length === 0, `round ${round}: partial batches ${JSON.stringify(v.partial)}`);
        assert(v.bad.length === 0, `round ${round}: rows with wrong vectors ${JSON.stringify(v.bad.slice(0, 5))}`);
        assert(v.count === v.rows, `round ${round}: count ${v.count} != rows ${v.rows}`);
        const present = new Set(v.complete);
        const lost = [...acked].filter((k) => !present.has(k));
        assert(lost.length === 0, `round ${round}: acknowledged batches lost: ${lost.length} of ${acked.size} (${lost.slice(0, 10)}...); stored ${v.rows} rows; databases ${v.dbs}; the browser's dataLoss: ${v.dataLoss}; profile ${profile}`);
        if (v.dataLoss) {
          restored.push(round);
          console.log(`  round ${round}: the browser discarded the database; Store.dataLoss: ${v.dataLoss}`);
        }
        committedUnacked += v.complete.filter((k) => !acked.has(k)).length;
        for (const k of v.complete) acked.add(k); // committed: count it from now on
        next = v.complete.length ? v.complete[v.complete.length - 1] + 1 : 0;
        if (round === ROUNDS) {
          console.log(`  kill test: ${ROUNDS} kills, ${totalAcked} batches acknowledged (${v.complete.length} stored, x${SIZE} episodes), ${committedUnacked} committed just before a kill without their ack arriving; ${restored.length} reopen(s) found the database discarded and restored it from the journal`);
          break;
        }
        let n = 0;
        await page.exposeBinding('ack', (_src, k) => { acked.add(k); n++; totalAcked++; });
        page.evaluate(({ next, SIZE, DIMS }) => window.storeT.writeForever('kill', next, SIZE, DIMS), { next, SIZE, DIMS })
          .catch(() => {});
        const t0 = Date.now();
        while (n === 0 && Date.now() - t0 < 20000) await sleep(10); // at least one ack per round
        await sleep(20 + rand() * 600);
      } finally {
        await b.kill();
      }
    }
  } finally {
    server.close();
  }
});

await run('store-kill.test.mjs');
