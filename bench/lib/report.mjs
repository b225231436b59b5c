// Render bench/results/peers-*.json into the peers section of BENCHMARKS.md (between the
// `<!-- peers:begin -->` / `<!-- peers:end -->` markers; text outside them is left alone). For
// each dataset the newest run that measured it is used. Run alone to re-render and print:
//   node bench/lib/report.mjs
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '..', '..');

const SKELETON = `# Benchmarks

Numbers, never assertions. Regenerate with \`make bench\` (peers in headless Chromium, then the
native criterion benches); the sections between the markers are rewritten by the scripts.

<!-- peers:begin -->
<!-- peers:end -->

<!-- native:begin -->
<!-- native:end -->
`;

/** Replace the text between `<!-- name:begin -->` and `<!-- name:end -->` in `file` (created from a skeleton if missing). */
export function replaceSection(file, name, body) {
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : SKELETON;
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  if (!text.includes(begin) || !text.includes(end)) text = `${text.trimEnd()}\n\n${begin}\n${end}\n`;
  const a = text.indexOf(begin) + begin.length;
  const b = text.indexOf(end);
  fs.writeFileSync(file, `${text.slice(0, a)}\n${body.trim()}\n${text.slice(b)}`);
  return file;
}

const fmtInt = (x) => (x == null || !isFinite(x) ? '?' : Math.round(x).toLocaleString('en-US'));
function fmtMs(x) {
  if (x == null || !isFinite(x)) return '?';
  if (x < 1) return x.toFixed(3);
  if (x < 10) return x.toFixed(2);
  if (x < 100) return x.toFixed(1);
  return Math.round(x).toLocaleString('en-US');
}
const mb = (b) => (b == null ? '?' : (b / 2 ** 20).toFixed(0));
const kbz = (b) => (b == null ? '?' : (b / 1024).toFixed(1));

/** Every results document, newest first. */
export function loadResults(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => /^peers-.*\.json$/.test(f))
    .map((f) => ({ file: f, ...JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) }))
    .sort((a, b) => b.started.localeCompare(a.started));
}

/**
 * For each dataset, the newest result of every run id (library) over all documents, so that
 * re-running one library updates its row only: [{ doc (the newest), older (other documents
 * contributing rows), dataset, results }].
 */
function newestPerDataset(docs) {
  const seen = new Map();
  for (const doc of docs) {
    for (const ds of doc.datasets) {
      if (!seen.has(ds.name)) seen.set(ds.name, { doc, older: [], dataset: ds, results: [] });
      const e = seen.get(ds.name);
      // Placeholder rows (mnemo-kernels-*) of older documents are not carried into a table that
      // has the engine's rows.
      const placeholder = (r) => r.run.startsWith('mnemo-kernels') && doc !== e.doc;
      const fresh = doc.results.filter((r) => r.dataset === ds.name && !placeholder(r) && !e.results.some((x) => x.run === r.run));
      if (fresh.length && doc !== e.doc) e.older.push({ doc, runs: fresh.map((r) => r.run) });
      e.results.push(...fresh);
    }
  }
  const order = (n) => (n === 'locomo' ? -1 : Number(n.split('-')[1]) || 0);
  return [...seen.values()].sort((a, b) => order(a.dataset.name) - order(b.dataset.name));
}

/** First line of an error, plus the first JS frame that is not WASM or glue (where it happened). */
function describe(message) {
  const [first, ...rest] = String(message).split('\n');
  const frame = rest.map((l) => l.trim().match(/^at (\S+) \((?:.*\/)?([^/:]+\.js):/)).find((m) => m && !/^(__wbg|wasm_bindgen|real$)/.test(m[1]));
  return frame ? `${first.slice(0, 200)} (at ${frame[1]} in ${frame[2]})` : first.slice(0, 200);
}

function errorsOf(r) {
  return [...(r.build?.errors || []).map((e) => ({ ...e, phase: 'build' })), ...((r.reopen?.errors) || []).map((e) => ({ ...e, phase: 'reopen' }))];
}

const isMnemo = (r) => r.run.startsWith('mnemo');
const bundleBytes = (r) => Object.values(r.bytes || {}).reduce((a, v) => a + v.gzip, 0);

/** The markdown of one dataset's table (+ its footnotes). */
function renderDataset({ doc, older, dataset, results }) {
  const notes = [];
  const note = (text) => {
    let i = notes.indexOf(text);
    if (i < 0) { notes.push(text); i = notes.length - 1; }
    return `<sup>${i + 1}</sup>`;
  };
  const lines = [];
  lines.push(`### ${dataset.name}: ${dataset.description} (n = ${fmtInt(dataset.n)}, d = ${dataset.dims})`);
  lines.push('');
  lines.push(`Run ${doc.started.slice(0, 16).replace('T', ' ')} UTC with \`${doc.command}\` (\`bench/results/${doc.file}\`); load average at its end ${doc.machine.loadAverageAtEnd.join(' / ')} on ${doc.machine.cores} cores.`);
  for (const o of older) lines.push(`Rows of ${o.runs.join(', ')}: from the earlier run ${o.doc.started.slice(0, 16).replace('T', ' ')} UTC with \`${o.doc.command}\` (\`bench/results/${o.doc.file}\`; load average at its end ${o.doc.machine.loadAverageAtEnd.join(' / ')}).`);
  lines.push('');
  lines.push('| library | query setting | insert (vectors/s) | query median (ms) | query p95 (ms) | recall@10 | reopen → first answer (ms) | delete (ms/item) | peak JS heap (MB) | renderer peak RSS (MB) | bundle (kB gzip) |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const b = r.build || {};
    const errs = errorsOf(r);
    const name = `${b.name || r.run}${b.version && b.version !== '-' ? ` ${b.version}` : ''}`;
    const fatal = errs.find((e) => e.step === 'run' || e.step.startsWith('after'));
    // insert
    let insert;
    if (b.placeholder || (r.run.startsWith('mnemo-kernels'))) insert = `—${note('mnemo placeholder: "insert" is a copy into a JS array (no store yet), not comparable.')}`;
    else if (b.steps?.insertPerSec) insert = fmtInt(b.steps.insertPerSec);
    else insert = `—${note(`${r.run}: insert did not finish: ${(fatal || errs[0] || { message: 'unknown' }).message.split('\n')[0].slice(0, 200)}`)}`;
    // reopen
    let reopen;
    if (b.caps && b.caps.persist !== true) reopen = `—${note(`${r.run}: ${b.caps.persist}`)}`;
    else if (r.reopen?.steps?.reopenToFirstAnswerMs != null) {
      reopen = fmtMs(r.reopen.steps.reopenToFirstAnswerMs);
      const c = r.reopen.check;
      if (r.reopen.firstAnswer && r.reopen.firstAnswer.recall < 0.5) reopen += note(`${r.run}: the first answer after reopen had recall ${r.reopen.firstAnswer.recall.toFixed(2)}.`);
      if (c && c.deletedReturned > 0) reopen += note(`${r.run}: after reopen, deleted items came back (${c.deletedReturned} times in ${c.queries} queries).`);
    } else {
      const e = errs.find((x) => x.step === 'persist' || x.phase === 'reopen');
      reopen = `—${note(`${r.run}: ${e ? `${e.phase === 'reopen' ? 'reopen' : 'persist'} failed: ${describe(e.message)}` : 'not measured (build phase did not reach persist)'}`)}`;
    }
    // delete
    let del;
    if (b.caps && b.caps.delete !== true) del = `—${note(`${r.run}: ${b.caps.delete}`)}`;
    else if (b.delete) {
      del = fmtMs(b.delete.perItemMs);
      if (b.delete.deletedReturned > 0) del += ` ✗${note(`${r.run}: deleted items were still returned (${b.delete.deletedReturned} times in ${b.delete.queries} queries).`)}`;
    } else {
      const e = errs.find((x) => x.step === 'delete');
      del = `—${note(`${r.run}: delete ${e ? `failed: ${e.message.slice(0, 200)}` : 'not measured'}`)}`;
    }
    const heap = mb(b.heap?.peakUsed);
    const rss = mb(b.process?.rendererPeakRss);
    const bundle = kbz(bundleBytes(r));
    const variants = b.variants && b.variants.length ? b.variants : [null];
    variants.forEach((v, i) => {
      const setting = v ? (v.label === 'default' ? '' : v.label) : '';
      let med = '—', p95 = '—', rec = '—';
      if (v) {
        med = fmtMs(v.medianMs);
        p95 = fmtMs(v.p95Ms);
        rec = v.recall.toFixed(3);
        if (v.count < (doc.settings?.queries ?? 200)) p95 += note(`${r.run}${v.label !== 'default' ? ` ${v.label}` : ''}: ${v.count} measured queries (the per-setting time budget of ${(doc.settings.budgetMs / 1000).toFixed(0)} s ran out), after ${v.warmup} warm-up queries.`);
      } else if (fatal) {
        med = `—${note(`${r.run}: ${describe(fatal.message)}${fatal.step.startsWith('after') ? ` (${fatal.step})` : b.lastStep ? ` (after the "${b.lastStep}" step)` : ''}`)}`;
      }
      if (i === 0) lines.push(`| ${name} | ${setting} | ${insert} | ${med} | ${p95} | ${rec} | ${reopen} | ${del} | ${heap} | ${rss} | ${bundle} |`);
      else lines.push(`| 〃 | ${setting} | | ${med} | ${p95} | ${rec} | | | | | |`);
    });
  }
  lines.push('');
  if (notes.length) {
    notes.forEach((t, i) => lines.push(`${i + 1}. ${t}`));
    lines.push('');
  }
  return lines.join('\n');
}

/** Issue 7's targets, checked against the mnemo rows of the largest synthetic set. */
function renderTargets(sets) {
  const big = sets.filter((s) => s.dataset.kind === 'synthetic').sort((a, b) => b.dataset.n - a.dataset.n)[0];
  if (!big) return '';
  const mn = big.results.filter(isMnemo);
  const peers = big.results.filter((r) => !isMnemo(r) && r.build?.variants?.length);
  if (!mn.length) return '';
  const out = [`### Issue 7's targets at n = ${fmtInt(big.dataset.n)} (reported, not asserted)`, ''];
  const engine = mn.some((r) => !r.run.startsWith('mnemo-kernels'));
  if (!engine) out.push('The mnemo rows are the **placeholder** (exact scan through `Kernels.scores`, re-uploading the bank per query), not the engine: the targets are for the engine, so "not met" below is expected until it lands.', '');
  // Each peer's fastest setting with recall >= 0.99 (exact search counts as 1.0).
  const bestPeer = (r) => r.build.variants.filter((v) => v.recall >= 0.99).sort((a, b) => a.p95Ms - b.p95Ms)[0];
  out.push('| mnemo run | recall@10 | p95 (ms) | peers at recall ≥ 0.99 with lower p95 | reopen (ms) | persistent peers reopening faster | insert (vectors/s) | peers inserting faster |');
  out.push('|---|---:|---:|---|---:|---|---:|---|');
  for (const m of mn) {
    const v = (m.build.variants || [])[0];
    if (!v) { out.push(`| ${m.run} | — | — | (no measurement) | | | | |`); continue; }
    const faster = peers.map((p) => ({ p, v: bestPeer(p) })).filter((x) => x.v && x.v.p95Ms < v.p95Ms).map((x) => `${x.p.run} (${fmtMs(x.v.p95Ms)}, ${x.v.label})`);
    const reopen = m.reopen?.steps?.reopenToFirstAnswerMs;
    const rFaster = reopen == null ? ['(mnemo run has no reopen)'] : peers.filter((p) => p.reopen?.steps?.reopenToFirstAnswerMs < reopen).map((p) => `${p.run} (${fmtMs(p.reopen.steps.reopenToFirstAnswerMs)})`);
    const ins = m.run.startsWith('mnemo-kernels') ? null : m.build.steps?.insertPerSec;
    const iFaster = ins == null ? ['(not comparable: placeholder)'] : peers.filter((p) => p.build.steps?.insertPerSec > ins).map((p) => `${p.run} (${fmtInt(p.build.steps.insertPerSec)})`);
    out.push(`| ${m.run} | ${v.recall.toFixed(3)} | ${fmtMs(v.p95Ms)} | ${faster.join(', ') || 'none: met'} | ${reopen == null ? '—' : fmtMs(reopen)} | ${rFaster.join(', ') || 'none: met'} | ${ins == null ? '—' : fmtInt(ins)} | ${iFaster.join(', ') || 'none: met'} |`);
  }
  out.push('');
  return out.join('\n');
}

function renderMachine(doc) {
  const m = doc.machine;
  const g = m.browser?.gpu;
  const gpu = g ? [g.vendor, g.architecture, g.device, g.description].filter(Boolean).join(' / ') || '(unnamed adapter)' : 'none';
  return [
    `Machine (newest run, ${doc.finished.slice(0, 10)}): ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB; ${m.chromium}, headless, flags of \`www/scripts/browser.mjs\` plus \`--enable-precise-memory-info --js-flags=--expose-gc\`; WebGPU adapter: ${gpu} (software: GPU timings are for ratios, not absolute claims); Node ${m.node}; load average at the end ${m.loadAverageAtEnd.join(' / ')}.`,
  ].join('\n');
}

function renderBundles(sets) {
  const seen = new Map();
  for (const s of sets) for (const r of s.results) if (!seen.has(r.run) && r.bytes && Object.keys(r.bytes).length) seen.set(r.run, r.bytes);
  const lines = ['<details><summary>Bytes each page loaded (besides the shared harness and the data)</summary>', '', '| run | file | bytes | gzip -9 |', '|---|---|---:|---:|'];
  for (const [run, bytes] of seen) {
    for (const [f, v] of Object.entries(bytes)) lines.push(`| ${run} | \`${f}\` | ${fmtInt(v.raw)} | ${fmtInt(v.gzip)} |`);
  }
  lines.push('', '</details>', '');
  return lines.join('\n');
}

function renderHow(sets) {
  const notes = [];
  for (const s of sets) for (const r of s.results) for (const n of r.build?.notes || []) if (!notes.includes(n)) notes.push(n);
  return ['How each library was used (each as its README says):', '', ...notes.map((n) => `- ${n}`), ''].join('\n');
}

/** The whole peers section. */
export function renderPeers(docs) {
  const sets = newestPerDataset(docs);
  if (!sets.length) return '_No peer results yet: run `make bench-peers`._';
  const parts = [
    '## In-browser peers (`make bench-peers`)',
    '',
    renderMachine(docs[0]),
    '',
    'Columns: insert = items made searchable per second, index build included; query = top-10 of one query, after 20 warm-up queries, over 200 measured queries (fewer when a time budget ran out, see notes); recall@10 against exact inner product (ties count as hits); reopen = a fresh browser on the same profile: import the library, open from persistence, answer the first query; delete = removing 50 items (the exact best hit of 50 queries), checked that they never come back, also after reopen; peak JS heap = max of `performance.memory.usedJSHeapSize` sampled during the build page (misses WASM memory); renderer peak RSS = VmHWM of the page\'s renderer process (includes WASM memory and the page\'s fixed ~100 MB); bundle = gzip -9 bytes of the library code the page loaded (JS, WASM, data files), the shared harness and the vectors excluded. Rows marked 〃 are other query settings on the same index.',
    '',
    ...sets.map(renderDataset),
    renderTargets(sets),
    renderHow(sets),
    renderBundles(sets),
  ];
  return parts.join('\n');
}

/** Re-render BENCHMARKS.md's peers section from `resultsDir`; returns the file. */
export function writeReport(file, resultsDir) {
  const body = renderPeers(loadResults(resultsDir));
  console.log(`\n${body}\n`);
  return replaceSection(file, 'peers', body);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeReport(path.join(REPO, 'BENCHMARKS.md'), path.join(REPO, 'bench', 'results'));
}
