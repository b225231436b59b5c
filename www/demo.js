// The notebook (index.html): an offline chat memory on mnemo. Messages are remembered with the
// built-in 'hashed-ngrams' embedder (no model download; lexical quality) unless the page is opened
// with ?embedder=none; the recall panel shows what is retrieved for the message being typed, with
// each hit's score parts. `window.notebook` exposes the same actions for the headless driver
// (scripts/run-demo.mjs) and the Playwright test (tests/demo.test.mjs).
import init, { Mnemo, version } from './pkg/mnemo.js';

const NAME = new URLSearchParams(location.search).get('store') || 'mnemo-notebook';
const DIMS = 384;
const NAMESPACE = 'notebook';
const K = 5;

const $ = (id) => document.getElementById(id);
let mem = null;
let weights = null;
let recallSeq = 0;

function fmtTime(t) {
  return new Date(t).toISOString().replace('T', ' ').slice(0, 16);
}

function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

async function open() {
  mem = await Mnemo.open(NAME, { dims: DIMS, embedder: 'hashed-ngrams' });
  // The engine's defaults for this embedder (reported in the status line and used for the bars).
  weights = { vector: 0.35, lexical: 0.65, recency: 0, importance: 0.05 };
  mem.onChange(() => { renderMessages(); });
}

function status(extra = '') {
  const s = mem.stats();
  const a = s.adapter ? `${s.adapter.name || 'unnamed adapter'} (${s.adapter.device_type})` : 'no WebGPU adapter';
  $('status').textContent = `mnemo ${version()} · ${s.count} memories · ${(s.bytesOnDisk / 1024).toFixed(1)} KiB on disk · ` +
    `last search: ${s.backend}/${s.index} · GPU: ${s.gpu ? a : 'none'}${extra ? ` · ${extra}` : ''}`;
}

/** Every remembered message, oldest first (a recall ranked by time). */
async function messages() {
  const s = mem.stats();
  if (s.count === 0) return [];
  const hits = await mem.recall({ k: Math.min(10000, s.count), namespace: NAMESPACE, weights: { vector: 0, lexical: 0, recency: 1, importance: 0 }, halfLife: 1e15 });
  return hits.sort((a, b) => a.time - b.time || a.id - b.id);
}

async function renderMessages() {
  const list = await messages();
  $('messages').innerHTML = list.map((h) => `<li class="msg ${esc(h.role)}" data-id="${h.id}">` +
    `<span class="who">${esc(h.role)}</span> <span class="when">${fmtTime(h.time)}</span>` +
    `<button class="forget" title="forget this memory" data-id="${h.id}">×</button><div class="text">${esc(h.text)}</div></li>`).join('');
  $('messages').scrollTop = $('messages').scrollHeight;
  status();
}

function bars(parts) {
  return ['vector', 'lexical', 'recency', 'importance'].map((p) => {
    const w = (weights[p] ?? 0) * parts[p];
    return `<span class="part ${p}" style="width:${(w * 100).toFixed(1)}%" title="${p}: part ${parts[p].toFixed(3)} × weight ${weights[p]}"></span>`;
  }).join('');
}

/** Recall for `text`; returns { hits, ms } and renders the panel. */
async function recall(text, k = K) {
  const seq = ++recallSeq;
  if (!text.trim()) {
    $('recall-query').textContent = 'Type to see what is recalled.';
    $('hits').innerHTML = '';
    return { hits: [], ms: 0 };
  }
  const t0 = performance.now();
  const hits = await mem.recall({ text, k, namespace: NAMESPACE });
  const ms = performance.now() - t0;
  if (seq !== recallSeq) return { hits, ms }; // a newer keystroke won
  $('recall-query').textContent = `“${text}” — ${hits.length} hits in ${ms.toFixed(1)} ms (${mem.stats().backend})`;
  $('hits').innerHTML = hits.map((h) => `<li class="hit"><div class="score">${h.score.toFixed(3)}</div>` +
    `<div class="bars">${bars(h.parts)}</div>` +
    `<div class="text"><span class="who">${esc(h.role)}</span> ${esc(h.text)}</div>` +
    `<div class="parts">vector ${h.parts.vector.toFixed(2)} · lexical ${h.parts.lexical.toFixed(2)} · recency ${h.parts.recency.toFixed(2)} · importance ${h.parts.importance.toFixed(2)}</div></li>`).join('');
  status();
  return { hits, ms };
}

/** Remember a message; returns { id, ms }. */
async function remember(text, role = 'user', time = Date.now()) {
  const t0 = performance.now();
  const id = await mem.remember({ text, role, time, namespace: NAMESPACE });
  const ms = performance.now() - t0;
  await renderMessages();
  return { id, ms };
}

/** Remember the sample conversation shipped with the demo (one batch). */
async function loadSample() {
  const sample = await (await fetch('data/sample-conversation.json')).json();
  const t0 = performance.now();
  const ids = await mem.rememberMany(sample.messages.map((m) => ({ text: m.text, role: m.role, time: Date.parse(m.time), namespace: NAMESPACE })));
  const ms = performance.now() - t0;
  await renderMessages();
  return { ids, ms, questions: sample.questions, messages: sample.messages.length };
}

async function reset() {
  await mem.close();
  await Mnemo.destroy(NAME);
  await open();
  await renderMessages();
  await recall('');
}

await init();
const tOpen = performance.now();
await open();
const openMs = performance.now() - tOpen;
await renderMessages();
status(`opened in ${openMs.toFixed(0)} ms`);

let typing = null;
$('message').addEventListener('input', () => {
  clearTimeout(typing);
  typing = setTimeout(() => recall($('message').value), 120);
});
$('composer').addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = $('message').value;
  if (!text.trim()) return;
  await recall(text); // what was recalled for it, before it joins the memory
  await remember(text, $('role').value);
  $('message').value = '';
});
$('messages').addEventListener('click', async (e) => {
  const id = e.target?.dataset?.id;
  if (e.target.classList.contains('forget') && id) {
    await mem.forget(Number(id));
    await renderMessages();
  }
});
$('load-sample').addEventListener('click', () => loadSample());
$('reset').addEventListener('click', () => reset());

window.notebook = {
  ready: true,
  openMs,
  version: version(),
  remember,
  recall,
  loadSample,
  reset,
  stats: () => mem.stats(),
  messages: async () => (await messages()).map((h) => ({ id: h.id, role: h.role, text: h.text, time: h.time })),
  weights: () => ({ ...weights }),
};
