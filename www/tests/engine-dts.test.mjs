// The generated TypeScript declarations (pkg/mnemo.d.ts) carry the engine's public contract:
// the Mnemo class with typed signatures (no `any`), and every option / result interface with a
// doc comment on each property.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, run, assert } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dts = fs.readFileSync(path.resolve(here, '../../pkg/mnemo.d.ts'), 'utf8');

function block(kind, name) {
  const start = dts.indexOf(`export ${kind} ${name}`);
  assert(start >= 0, `export ${kind} ${name} is in mnemo.d.ts`);
  let depth = 0;
  for (let i = dts.indexOf('{', start); i < dts.length; i++) {
    if (dts[i] === '{') depth++;
    if (dts[i] === '}' && --depth === 0) return dts.slice(start, i + 1);
  }
  throw new Error(`unterminated ${name}`);
}

test('Mnemo class signatures are typed', () => {
  const c = block('class', 'Mnemo');
  const want = [
    'static open(name: string, options?: MnemoOptions | null): Promise<Mnemo>;',
    'static import(name: string, bytes: Uint8Array, options?: MnemoOptions | null): Promise<Mnemo>;',
    'static destroy(name: string): Promise<void>;',
    'remember(memory: MemoryInput): Promise<number>;',
    'rememberMany(memories: MemoryInput[]): Promise<number[]>;',
    'recall(query: RecallOptions): Promise<RecallHit[]>;',
    'update(id: number, patch: MemoryPatch): Promise<void>;',
    'forget(id: number): Promise<void>;',
    'forgetNamespace(namespace: string): Promise<number>;',
    'export(): Promise<Uint8Array>;',
    'stats(): MnemoStats;',
    'close(): Promise<void>;',
    'embed(texts: string[]): Promise<Float32Array[]>;',
  ];
  for (const w of want) assert(c.includes(w), `Mnemo declares ${w}`);
  assert(!/\bany\b/.test(c), 'no `any` in the Mnemo class');
});

test('the mnemo/encoder entry declares the encoder statics; the default entry does not', () => {
  const enc = fs.readFileSync(path.resolve(here, '../../pkg/mnemo_encoder.d.ts'), 'utf8');
  const pj = JSON.parse(fs.readFileSync(path.resolve(here, '../../pkg/package.json'), 'utf8'));
  assert(pj.exports?.['./encoder']?.default === './mnemo_encoder.js', 'package.json exports ./encoder');
  for (const w of ['static modelCached(model: string): Promise<boolean>;', 'static deleteModel(model: string): Promise<boolean>;',
    'embed(texts: string[]): Promise<Float32Array[]>;', 'static open(name: string, options?: MnemoOptions | null): Promise<Mnemo>;']) {
    assert(enc.includes(w), `mnemo_encoder.d.ts declares ${w}`);
    if (w.includes('Model')) assert(!dts.includes(w), `mnemo.d.ts does not declare ${w}`);
  }
  assert(/export class Kernels/.test(enc), 'mnemo_encoder.d.ts also declares the lazily loaded Kernels');
});

test('option and result interfaces are documented', () => {
  const ifaces = ['MnemoOptions', 'ContextOptions', 'Weights', 'MemoryInput', 'MemoryPatch', 'RecallOptions', 'ScoreParts', 'RecallHit', 'MnemoStats', 'ImportResult', 'EncoderOptions', 'EmbedderStats'];
  for (const name of ifaces) {
    const b = block('interface', name);
    const props = [...b.matchAll(/^\s+(\w+)\??:/gm)].map((m) => m[1]);
    assert(props.length > 0, `${name} has properties`);
    for (const p of props) {
      const re = new RegExp(`\\*/\\s*\\n\\s*${p}\\??:`);
      assert(re.test(b), `${name}.${p} has a doc comment`);
    }
  }
  for (const [iface, prop] of [['RecallHit', 'parts: ScoreParts'], ['MnemoStats', "backend: 'webgpu' | 'cpu'"], ['MemoryInput', 'embedding?: Float32Array'], ['RecallOptions', 'namespace?: string | string[]'], ['EncoderOptions', "model: 'all-MiniLM-L6-v2'"], ['EncoderOptions', 'weights?: Uint8Array | ArrayBuffer | Blob | string'], ['EncoderOptions', "backend?: 'auto' | 'webgpu' | 'cpu'"], ['MnemoStats', 'embedder: EmbedderStats | null']]) {
    assert(block('interface', iface).includes(prop), `${iface} has ${prop}`);
  }
  assert(/export type Embedder = 'hashed-ngrams' \| \(\(texts: string\[\]\) => Promise<Float32Array\[\]>.*\| EncoderOptions;/.test(dts), 'Embedder type (with EncoderOptions)');
});

test('Store and Kernels (second module) are declared, with Kernels.load', () => {
  const k = block('class', 'Kernels');
  for (const w of ['static create(options?: KernelsOptions | null): Promise<Kernels>;', 'static load(): Promise<void>;']) {
    assert(k.includes(w), `Kernels declares ${w}`);
  }
  assert(block('class', 'Store').includes('static open(name: string, options?: StoreOptions | null): Promise<Store>;'), 'Store.open is declared');
  for (const c of ['FlatBank', 'HierIndex']) block('class', c);
});

await run('engine-dts.test.mjs');
