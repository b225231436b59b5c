// A minimal test harness for the Node/Playwright browser tests (www/tests/*.test.mjs).
// `test(name, fn)` registers; `run()` runs them in order, prints one line each and a summary,
// and sets the exit code. Shared helpers: a server for www/ + pkg/, and the system Chromium.
import { startServer } from '../scripts/server.mjs';
import { launch, freshProfile } from '../scripts/browser.mjs';

const tests = [];

/** Register a test. */
export function test(name, fn) {
  tests.push({ name, fn });
}

/** Throw with `message` unless `cond`. */
export function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

/** Deep-equality assertion through JSON (enough for plain data). */
export function assertEq(actual, expected, message) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${message}: expected ${e}, got ${a}`);
}

/** Run every registered test; exit 1 if any failed. */
export async function run(file) {
  let passed = 0;
  const failed = [];
  for (const t of tests) {
    const t0 = Date.now();
    try {
      await t.fn();
      passed++;
      console.log(`test ${file} :: ${t.name} ... ok (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
      failed.push(t.name);
      console.log(`test ${file} :: ${t.name} ... FAILED\n${e && e.stack ? e.stack : e}`);
    }
  }
  console.log(`${file}: ${passed} passed; ${failed.length} failed`);
  process.exitCode = failed.length ? 1 : 0;
  return failed.length === 0;
}

export { startServer, launch, freshProfile };
