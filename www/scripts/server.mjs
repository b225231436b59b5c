// A tiny static file server for the demo page, the browser tests and the benchmarks.
// Serves www/ at `/` and the wasm-pack output (../pkg) at `/pkg/`, with the MIME types
// browsers need for ES modules and WebAssembly streaming compilation. No dependencies.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const WWW = path.resolve(here, '..');
export const REPO = path.resolve(WWW, '..');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
};

/** Map a URL path to a file: `/pkg/...` → repo/pkg, `/shared/...` → ../shared (eval data, read-only), else www/. */
function resolve(urlPath, mounts) {
  const clean = decodeURIComponent(urlPath.split('?')[0]);
  for (const [prefix, dir] of mounts) {
    if (clean === prefix.slice(0, -1) || clean.startsWith(prefix)) {
      const rel = clean.slice(prefix.length);
      const file = path.resolve(dir, '.' + path.sep + rel);
      if (!file.startsWith(path.resolve(dir))) return null; // no escaping the mount
      return file;
    }
  }
  return null;
}

/**
 * Start the server. `port` 0 picks a free port. Extra `mounts` are [urlPrefix, dir] pairs
 * checked before the defaults; `cachePkg` lets browsers cache `/pkg/...` responses (default: every
 * response `no-store`). Resolves to { server, url }.
 */
export function startServer({ port = 0, host = '127.0.0.1', mounts = [], cachePkg = false } = {}) {
  const all = [...mounts, ['/pkg/', path.join(REPO, 'pkg')], ['/', WWW]];
  const server = http.createServer((req, res) => {
    let file = resolve(req.url || '/', all);
    if (file && fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
    if (!file || !fs.existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] || 'application/octet-stream',
      // `cachePkg`: the package's files may be cached for an hour, as a deployed app serves them
      // (lets the browser keep compiled wasm across reloads); everything else is never cached.
      'cache-control': cachePkg && (req.url || '').startsWith('/pkg') ? 'public, max-age=3600' : 'no-store',
      // Cross-origin isolation: lets pages use precise timers and SharedArrayBuffer.
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      const { port: p } = server.address();
      ok({ server, url: `http://${host === '0.0.0.0' ? 'localhost' : host}:${p}` });
    });
  });
}
