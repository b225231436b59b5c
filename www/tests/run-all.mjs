// Runs every www/tests/*.test.mjs in its own Node process (each drives the system Chromium
// through Playwright) and prints a summary. Exit code 1 if any file failed.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.dirname(fileURLToPath(import.meta.url));
const only = process.argv[2];
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.test.mjs') && (!only || f.includes(only))).sort();
let bad = 0;
for (const f of files) {
  console.log(`\n== ${f}`);
  const r = spawnSync(process.execPath, [path.join(dir, f)], { stdio: 'inherit', cwd: path.resolve(dir, '..') });
  if (r.status !== 0) bad++;
}
console.log(`\nbrowser e2e (Playwright): ${files.length - bad} of ${files.length} files passed`);
process.exit(bad ? 1 : 0);
