// Summarise the native criterion benches (`cargo bench`) into BENCHMARKS.md's native section:
// every target/criterion/**/new/estimates.json (whatever benches exist), its median and mean
// with 95% confidence intervals, and the throughput when the bench declared one.
//   node bench/criterion.mjs [--since <unix seconds>] [--target <dir>]
// --since keeps only estimates written after that time (make bench passes the start of its
// `cargo bench`, so results of benches that no longer exist are left out).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { replaceSection } from './lib/report.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '..');

function arg(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const since = arg('--since') ? Number(arg('--since')) * 1000 : 0;
const target = arg('--target') || process.env.CARGO_TARGET_DIR || path.join(REPO, 'target');
const root = path.join(target, 'criterion');

function walk(dir, out = []) {
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== 'report') walk(p, out); } else if (e.name === 'estimates.json' && path.basename(dir) === 'new') out.push(p);
  }
  return out;
}

function time(ns) {
  if (ns < 1e3) return `${ns.toFixed(1)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(2)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(2)} ms`;
  return `${(ns / 1e9).toFixed(3)} s`;
}

function throughput(t, ns) {
  if (!t) return '';
  const [kind, n] = Object.entries(t)[0];
  const perSec = (Number(n) / ns) * 1e9;
  if (/bytes/i.test(kind)) return `${(perSec / 2 ** 30).toFixed(2)} GiB/s`;
  if (/elements/i.test(kind)) return perSec >= 1e6 ? `${(perSec / 1e6).toFixed(2)} M elem/s` : `${Math.round(perSec).toLocaleString('en-US')} elem/s`;
  return `${perSec.toFixed(1)} ${kind}/s`;
}

const rows = [];
for (const f of walk(root)) {
  const st = fs.statSync(f);
  if (st.mtimeMs < since) continue;
  const est = JSON.parse(fs.readFileSync(f, 'utf8'));
  const benchFile = path.join(path.dirname(f), 'benchmark.json');
  const meta = fs.existsSync(benchFile) ? JSON.parse(fs.readFileSync(benchFile, 'utf8')) : {};
  const id = meta.full_id || path.relative(root, path.dirname(path.dirname(f)));
  const med = est.median;
  const mean = est.mean;
  rows.push({
    id,
    median: med.point_estimate,
    medLo: med.confidence_interval.lower_bound,
    medHi: med.confidence_interval.upper_bound,
    mean: mean.point_estimate,
    throughput: throughput(meta.throughput, med.point_estimate),
    when: st.mtime.toISOString().slice(0, 16).replace('T', ' '),
  });
}
rows.sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true }));

const lines = ['## Native (`cargo bench`, criterion)', ''];
if (!rows.length) {
  lines.push(`_No criterion results under \`${path.relative(REPO, root) || root}\`${since ? ' from this run' : ''}: no \`benches/*.rs\` yet, or \`cargo bench\` has not run._`);
} else {
  lines.push(`${rows.length} benchmarks from \`${path.relative(REPO, root)}\` on ${os.cpus().length} cores (${os.cpus()[0]?.model}); native GPU benches run on the machine's Vulkan adapter (Mesa lavapipe here: software, ratios only). Median with its 95% confidence interval.`, '');
  lines.push('| benchmark | median | 95% CI | mean | throughput (at median) | measured (UTC) |');
  lines.push('|---|---:|---|---:|---:|---|');
  for (const r of rows) lines.push(`| \`${r.id}\` | ${time(r.median)} | ${time(r.medLo)} – ${time(r.medHi)} | ${time(r.mean)} | ${r.throughput} | ${r.when} |`);
}
const body = lines.join('\n');
console.log(`\n${body}\n`);
replaceSection(path.join(REPO, 'BENCHMARKS.md'), 'native', body);
