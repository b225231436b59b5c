// Helpers of the store's Playwright tests: a Chromium we spawn ourselves (so we know its process
// group and can SIGKILL it), connected over CDP, on a given profile directory.
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from '../scripts/browser.mjs';

/**
 * Start Chromium on `userDataDir` with remote debugging; resolves to
 * { browser, context, pid, kill() } where kill() SIGKILLs the whole process group.
 */
export async function spawnChromium(userDataDir) {
  const child = spawn(
    CHROMIUM,
    [...CHROMIUM_ARGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-port=0', 'about:blank'],
    { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = new Promise((ok) => child.once('exit', ok));
  const ws = await new Promise((ok, fail) => {
    let buf = '';
    const timer = setTimeout(() => fail(new Error(`chromium did not start: ${buf.slice(-2000)}`)), 30000);
    child.stderr.on('data', (d) => {
      buf += d.toString();
      const m = buf.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) { clearTimeout(timer); ok(m[1]); }
    });
    child.once('exit', (code) => { clearTimeout(timer); fail(new Error(`chromium exited (${code}): ${buf.slice(-2000)}`)); });
  });
  child.stderr.resume();
  const browser = await chromium.connectOverCDP(ws);
  const context = browser.contexts()[0];
  return {
    browser,
    context,
    pid: child.pid,
    /**
     * SIGKILL Chromium's whole process group and wait until every process of it is gone: a
     * child still in an uninterruptible write (the storage service in fsync, on a loaded machine)
     * would otherwise hold the profile's IndexedDB files while the next browser opens them, which
     * a real restart never does (and which once made the next browser start with an empty store).
     */
    async kill() {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
      await exited;
      for (const t0 = Date.now(); Date.now() - t0 < 30000;) {
        if (liveInGroup(child.pid) === 0) return;
        await new Promise((ok) => setTimeout(ok, 20));
      }
      throw new Error(`chromium process group ${child.pid} still running 30 s after SIGKILL`);
    },
    /** Close gracefully. */
    async close() {
      await browser.close().catch(() => {});
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
      await exited;
    },
  };
}

/** Processes of process group `pgid` that are still running (zombies, already dead, not counted). */
function liveInGroup(pgid) {
  let n = 0;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat;
    try { stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { continue; }
    // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after it.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) === pgid && f[0] !== 'Z' && f[0] !== 'X') n++;
  }
  return n;
}

/** Open the store test page in `context` and wait for its helpers. */
export async function storePage(context, url) {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  await page.goto(`${url}/tests/store-page.html`);
  await page.waitForFunction(() => window.storeT?.ready === true, null, { timeout: 60000 });
  return page;
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
