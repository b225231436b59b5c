// The page the engine's Playwright tests drive: loads the package and exposes `window.engineT`
// (the shared API scenario, a worker runner, and a cache of open engines for multi-tab tests).
// `?entry=encoder` loads the package's `mnemo/encoder` entry (Mnemo with the built-in encoder)
// instead of its default entry.
const entry = new URLSearchParams(location.search).get('entry') === 'encoder' ? 'mnemo_encoder' : 'mnemo';
const pkg = await import(`/pkg/${entry}.js`);
const init = pkg.default;
import { apiScenario, checkScenario, axis } from './engine-scenario.js';

const open = {};

/** Open (cached per name) an engine. */
async function engine(name, opts = {}) {
  if (!open[name]) open[name] = await pkg.Mnemo.open(name, opts);
  return open[name];
}

/** Run the API scenario in a dedicated module worker; resolves to its report. */
function inWorker(name) {
  return new Promise((ok, fail) => {
    const w = new Worker(new URL('./engine-worker.js', import.meta.url), { type: 'module' });
    w.onmessage = (e) => { w.terminate(); e.data.error ? fail(new Error(e.data.error)) : ok(e.data.report); };
    w.onerror = (e) => { w.terminate(); fail(new Error(`worker error: ${e.message}`)); };
    w.postMessage({ name });
  });
}

function errInfo(e) {
  return { code: e?.code ?? null, message: String(e?.message ?? e), field: e?.field ?? null };
}

await init();
window.engineT = { entry, pkg, Mnemo: pkg.Mnemo, engine, apiScenario, checkScenario, inWorker, axis, errInfo, ready: true };
