// Bundle the benchmark pages with esbuild: dist/harness.js (shared runner, not counted in any
// peer's bytes) and one dist/adapters/<peer>.js per library, each containing only that library.
// PGlite and the mnemo package stay external (served as-is: /modules/... and /pkg/...).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BENCH = path.resolve(here, '..');
export const DIST = path.join(BENCH, 'dist');

export const ADAPTERS = ['exact', 'voy', 'orama', 'hnswlib', 'cvs', 'pglite', 'mnemo-kernels', 'mnemo'];

export async function buildPages() {
  fs.rmSync(DIST, { recursive: true, force: true });
  const common = {
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
    external: ['/pkg/*', '@electric-sql/pglite', '@electric-sql/pglite-pgvector'],
    alias: { '@xenova/transformers': path.join(BENCH, 'src/stubs/transformers.js') },
  };
  await esbuild.build({ ...common, entryPoints: [path.join(BENCH, 'src/harness.js')], outfile: path.join(DIST, 'harness.js') });
  for (const a of ADAPTERS) {
    await esbuild.build({ ...common, entryPoints: [path.join(BENCH, `src/adapters/${a}.js`)], outfile: path.join(DIST, 'adapters', `${a}.js`) });
  }
  // voy's wasm, fetched next to its adapter bundle (what a bundler emits for its .wasm import).
  fs.copyFileSync(path.join(BENCH, 'node_modules/voy-search/voy_search_bg.wasm'), path.join(DIST, 'adapters', 'voy_search_bg.wasm'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildPages();
  for (const f of fs.readdirSync(path.join(DIST, 'adapters'))) {
    console.log(f, fs.statSync(path.join(DIST, 'adapters', f)).size);
  }
}
