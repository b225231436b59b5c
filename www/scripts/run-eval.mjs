// `make eval`: the LoCoMo retrieval eval through the real engine in headless Chromium. Needs
// `$MNEMO_EVAL_DIR/locomo` (default ../shared/eval/locomo next to the repository), served
// read-only by the test server (never copied into the repository); without it, says so and exits
// 0. Prints any@k / all@k / MRR for k = 1, 5, 10, 20 — vector-only, lexical-only, the default
// fusion, fusion + fading context — beside the baselines of that folder's README, and checks:
// vector-only reproduces the exact-cosine numbers (and ids), lexical-only the BM25 ones within
// 0.01, the default fusion beats hybrid RRF on any@10 (categories 1-4). Exit 1 if a check fails.
import fs from 'node:fs';
import path from 'node:path';
import { startServer, REPO } from './server.mjs';
import { launch, chromiumVersion } from './browser.mjs';

const base = path.resolve(REPO, process.env.MNEMO_EVAL_DIR || '../shared/eval');
const dir = path.join(base, 'locomo');
if (!fs.existsSync(path.join(dir, 'turns.jsonl'))) {
  console.log(`make eval: no LoCoMo data at ${dir} (set MNEMO_EVAL_DIR); nothing to evaluate.`);
  process.exit(0);
}
const pkgEval = path.join(REPO, 'target/pkg-eval');
const { server, url } = await startServer({ mounts: [['/eval-data/', dir], ['/pkg-eval/', pkgEval]] });
const context = await launch();
let failed = false;
try {
  const page = await context.newPage();
  page.on('pageerror', (e) => { console.error(`[page error] ${e.message}`); failed = true; });
  page.on('console', (m) => { if (m.type() === 'error') console.error(`[page] ${m.text()}`); });
  await page.exposeFunction('evalLog', (s) => console.log(`  ${s}`));
  await page.goto(`${url}/eval.html`);
  await page.waitForFunction(() => window.locomoEval?.ready === true, null, { timeout: 60000 });
  console.log(`LoCoMo retrieval eval through the engine — data ${dir}`);
  console.log(`browser: ${chromiumVersion()} (headless, WebGPU on SwiftShader)`);
  const prefer = process.env.MNEMO_EVAL_PREFER || 'webgpu';
  const backend = process.env.MNEMO_EVAL_BACKEND || 'auto';
  const r = await page.evaluate(({ prefer, backend }) => window.locomoEval.run({ prefer, backend, log: window.evalLog }), { prefer, backend });
  const a = r.stats.adapter;
  console.log(`  engine: ${r.stats.count} memories, ${r.dims} dims, open ${r.openMs.toFixed(0)} ms, rememberMany of every turn ${r.loadMs.toFixed(0)} ms; GPU ${r.stats.gpu ? `${a?.name || 'unnamed'} (${a?.device_type})` : 'none'}; vector search ran on ${r.stats.backend}/${r.stats.index} (backend option '${backend}')`);
  console.log(`  recall latency, k = 10 with text and metadata, default fusion, one conversation: median ${r.k10.median.toFixed(2)} ms, p95 ${r.k10.p95.toFixed(2)} ms; across all ${5} conversations (no namespace filter): median ${r.k10all.median.toFixed(2)} ms, p95 ${r.k10all.p95.toFixed(2)} ms`);
  console.log('\nLoCoMo dev (conversations 0-4), every question against its own conversation (namespace):\n');
  console.log(r.table14);
  console.log(r.table15);
  console.log('Per category:\n');
  console.log(r.tableCats);
  const checks = [
    [r.vectorVsCosine <= 1e-9 && r.sameIds === r.questions, `vector-only reproduces the exact-cosine baseline: max |diff| ${r.vectorVsCosine.toExponential(1)} over every subset and metric; top-20 ids identical to an exact float64 cosine ranking for ${r.sameIds} of ${r.questions} questions`],
    [r.lexicalVsBm25 <= 0.01, `lexical-only reproduces BM25 within 0.01: max |diff| ${r.lexicalVsBm25.toFixed(4)}`],
    [r.fusionAny10 > r.rrfAny10, `default fusion beats hybrid RRF on any@10 (cat 1-4): ${r.fusionAny10.toFixed(3)} vs ${r.rrfAny10.toFixed(3)}`],
  ];
  console.log('Checks:');
  for (const [ok, msg] of checks) {
    console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${msg}`);
    if (!ok) failed = true;
  }
  console.log(`  fading context: any@10 (cat 1-4) ${r.contextAny10.toFixed(3)} vs ${r.fusionAny10.toFixed(3)} without — ${r.contextAny10 > r.fusionAny10 ? 'helps' : 'does not help'} on LoCoMo (off by default)`);
  fs.mkdirSync(path.join(REPO, 'target'), { recursive: true });
  fs.writeFileSync(path.join(REPO, 'target/eval-locomo.json'), JSON.stringify(r, null, 1));
  console.log('  (report written to target/eval-locomo.json)');
} finally {
  await context.close();
  server.close();
}
process.exit(failed ? 1 : 0);
