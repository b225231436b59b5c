// A dedicated module worker running the engine's API scenario (IndexedDB and WebGPU in a worker).
import init, * as pkg from '/pkg/mnemo.js';
import { apiScenario } from './engine-scenario.js';

self.onmessage = async (e) => {
  try {
    await init();
    const report = await apiScenario(pkg, e.data.name);
    self.postMessage({ report });
  } catch (err) {
    self.postMessage({ error: `${err?.code ?? ''} ${err?.message ?? err}\n${err?.stack ?? ''}` });
  }
};
