// `make demo`: serve www/ and the built package, open the notebook (index.html) in headless
// Chromium (WebGPU on SwiftShader), run a scripted session of the sample conversation
// (www/data/sample-conversation.json) through it — remember every message, ask each question,
// print the recalls with their score parts and timings, reload and ask again — then the kernel
// smoke run (kernels.html). Exits 1 if a question's expected memory is not recalled in the top 3.
import fs from 'node:fs';
import { startServer } from './server.mjs';
import { launch, chromiumVersion } from './browser.mjs';

const { server, url } = await startServer();
const context = await launch();
let failed = false;
const store = `demo-run-${Date.now()}`;
const short = (s, n = 96) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
try {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.setViewportSize({ width: 1280, height: 900 });
  page.on('console', (m) => { if (m.type() === 'error') console.error(`[page] ${m.text()}`); });
  page.on('pageerror', (e) => { console.error(`[page error] ${e.message}`); failed = true; });
  console.log(`browser: ${chromiumVersion()} (headless, WebGPU on SwiftShader)`);

  // 1. The notebook: a scripted session of the sample conversation.
  await page.goto(`${url}/index.html?store=${store}`);
  await page.waitForFunction(() => window.notebook?.ready === true, null, { timeout: 60000 });
  const info = await page.evaluate(() => ({ version: window.notebook.version, openMs: window.notebook.openMs, stats: window.notebook.stats(), weights: window.notebook.weights() }));
  const a = info.stats.adapter;
  console.log(`\nmnemo ${info.version}: chat-memory notebook (index.html), store "${store}" opened in ${info.openMs.toFixed(0)} ms`);
  console.log(`  GPU: ${info.stats.gpu ? `yes — adapter ${a?.name || '(unnamed)'} [api ${a?.api}, ${a?.device_type}]` : 'none (CPU path only)'}`);
  console.log(`  embedder: built-in 'hashed-ngrams' (384 dims, no model; lexical quality), weights ${JSON.stringify(info.weights)}`);
  const loaded = await page.evaluate(() => window.notebook.loadSample());
  console.log(`  remembered the sample conversation: ${loaded.messages} messages in one rememberMany, ${loaded.ms.toFixed(1)} ms`);

  const ask = async (q) => page.evaluate(async (text) => {
    const r = await window.notebook.recall(text, 3);
    return { ms: r.ms, hits: r.hits.map((h) => ({ text: h.text, role: h.role, time: h.time, score: h.score, parts: h.parts })), stats: window.notebook.stats() };
  }, q);
  const firstTop = (await ask(loaded.questions[0].text)).hits[0]?.text;
  let top1 = 0;
  let top3 = 0;
  const times = [];
  console.log('\n  Questions (top 3 recalls; score = Σ weight · part; parts v = vector, l = lexical, r = recency, i = importance):');
  for (const q of loaded.questions) {
    const r = await ask(q.text);
    times.push(r.ms);
    const rank = r.hits.findIndex((h) => h.text.includes(q.expect)) + 1;
    if (rank === 1) top1++;
    if (rank >= 1) top3++;
    else failed = true;
    console.log(`\n  Q: ${q.text}   [${r.ms.toFixed(1)} ms, vector search on ${r.stats.backend}/${r.stats.index}; expected memory at rank ${rank || 'none'}]`);
    r.hits.forEach((h, i) => {
      const p = h.parts;
      console.log(`    ${i + 1}. ${h.score.toFixed(3)}  (v ${p.vector.toFixed(2)} l ${p.lexical.toFixed(2)} r ${p.recency.toFixed(2)} i ${p.importance.toFixed(2)})  ${h.role}: ${short(h.text)}`);
    });
  }
  times.sort((x, y) => x - y);
  console.log(`\n  ${top1} of ${loaded.questions.length} questions recall the expected memory first, ${top3} within the top 3; recall median ${times[Math.floor(times.length / 2)].toFixed(1)} ms, max ${times[times.length - 1].toFixed(1)} ms`);

  // 2. Everything survives a reload.
  await page.reload();
  await page.waitForFunction(() => window.notebook?.ready === true, null, { timeout: 60000 });
  const q0 = loaded.questions[0];
  const after = await ask(q0.text);
  const reopened = await page.evaluate(() => ({ openMs: window.notebook.openMs, count: window.notebook.stats().count }));
  const ok = after.hits[0]?.text === firstTop;
  if (!ok) failed = true;
  console.log(`\n  after a page reload: ${reopened.count} memories, reopened in ${reopened.openMs.toFixed(0)} ms; "${q0.text}" -> ${short(after.hits[0]?.text ?? '(nothing)', 60)} ${ok ? '(the same top memory as before the reload)' : '(DIFFERENT from before the reload)'}`);
  const st = after.stats;
  console.log(`  stats(): ${JSON.stringify({ count: st.count, dims: st.dims, backend: st.backend, index: st.index, gpu: st.gpu, bytesOnDisk: st.bytesOnDisk })}`);
  fs.mkdirSync('../target', { recursive: true });
  await page.screenshot({ path: '../target/demo-notebook.png', fullPage: true }).catch(() => {});
  await page.evaluate(() => window.notebook.reset()).catch(() => {});

  // 3. The kernel smoke run.
  await page.goto(`${url}/kernels.html`);
  await page.waitForFunction(() => window.mnemoDemo?.ready === true, null, { timeout: 60000 });
  const r = await page.evaluate(() => window.mnemoDemo.smoke());
  const ka = r.adapter;
  console.log(`\nmnemo ${r.version}: kernel smoke run (kernels.html) — scores of ${r.shape.queries} queries against a ${r.shape.n} x ${r.shape.dims} bank`);
  console.log(`  backend: ${r.backend}${ka ? `; adapter: ${ka.name || '(unnamed)'} [api ${ka.api}, ${ka.device_type}${ka.driver ? `, ${ka.driver}` : ''}]` : ''}${r.fallbackReason ? `; fallback: ${r.fallbackReason}` : ''}`);
  console.log(`  GPU vs CPU reference: max |diff| = ${r.maxAbsDiff.toExponential(2)} at index ${r.worstIndex} -> ${r.agree ? 'agree' : 'DISAGREE'}`);
  console.log(`  median time: webgpu ${r.medianMs.gpu.toFixed(2)} ms, cpu ${r.medianMs.cpu.toFixed(2)} ms (software adapter: ratios, not absolute claims)`);
  if (!r.agree || r.backend !== 'webgpu') failed = true;
  await page.screenshot({ path: '../target/demo.png' }).catch(() => {});
} finally {
  await context.close();
  server.close();
}
console.log('\nScreenshot of the notebook: target/demo-notebook.png');
console.log('To use the demo in a real browser: `make serve`, then open http://localhost:8080/ (notebook) or http://localhost:8080/kernels.html');
process.exit(failed ? 1 : 0);
