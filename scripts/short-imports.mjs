// `make pkg`, after scripts/pkg-split.mjs: give each wasm module's imports from its JS glue short
// names (`a`, `b`, ... `ba`, ...) in the .wasm and in the glue's import object alike.
//
//   node scripts/short-imports.mjs <pkg dir> <module> [<module> ...]   (module: e.g. `mnemo`)
//
// wasm-bindgen names every import `__wbg_<name>_<16 hex digits>`; the hash digits do not compress,
// and each name is shipped twice (the .wasm's import section and the glue's object key): about
// 300 names per module. The import section is rebuilt with the new names (every other section is
// copied byte for byte); in <module>.js each old name must occur exactly once, as a key of the
// import object, or nothing is written.
import fs from 'node:fs';
import path from 'node:path';

const [dir, ...modules] = process.argv.slice(2);
if (!dir || modules.length === 0) {
  console.error('usage: node scripts/short-imports.mjs <pkg dir> <module> [<module> ...]');
  process.exit(2);
}

function leb(buf, at) {
  let v = 0, shift = 0, b;
  do { b = buf[at++]; v += (b & 0x7f) * 2 ** shift; shift += 7; } while (b & 0x80);
  return [v, at];
}
function encLeb(v) {
  const out = [];
  do { let b = v % 128; v = Math.floor(v / 128); if (v) b |= 0x80; out.push(b); } while (v);
  return Buffer.from(out);
}
const encName = (s) => { const b = Buffer.from(s, 'utf8'); return Buffer.concat([encLeb(b.length), b]); };
// Short names in order: a..z, then two letters, ...
function shortName(i) {
  let s = '';
  do { s = String.fromCharCode(97 + (i % 26)) + s; i = Math.floor(i / 26) - 1; } while (i >= 0);
  return s;
}

for (const m of modules) {
  const wasmPath = path.join(dir, `${m}_bg.wasm`);
  const jsPath = path.join(dir, `${m}.js`);
  const wasm = fs.readFileSync(wasmPath);
  let js = fs.readFileSync(jsPath, 'utf8');
  const moduleName = `./${m}_bg.js`;
  if (wasm.readUInt32LE(0) !== 0x6d736100) throw new Error(`${wasmPath}: not a wasm module`);
  const parts = [wasm.subarray(0, 8)];
  let at = 8, renamed = 0;
  const rename = new Map();
  while (at < wasm.length) {
    const id = wasm[at];
    const [len, body] = leb(wasm, at + 1);
    const end = body + len;
    if (id !== 2) { parts.push(wasm.subarray(at, end)); at = end; continue; }
    let [n, p] = leb(wasm, body);
    const out = [encLeb(n)];
    for (let i = 0; i < n; i++) {
      let l;
      [l, p] = leb(wasm, p);
      const mod = wasm.subarray(p, p + l).toString('utf8'); p += l;
      [l, p] = leb(wasm, p);
      const field = wasm.subarray(p, p + l).toString('utf8'); p += l;
      const descStart = p;
      const kind = wasm[p++];
      if (kind === 0) [, p] = leb(wasm, p);
      else if (kind === 1 || kind === 2) {
        if (kind === 1) p++; // reftype
        const flags = wasm[p++];
        [, p] = leb(wasm, p);
        if (flags & 1) [, p] = leb(wasm, p);
      } else if (kind === 3) p += 2;
      else if (kind === 4) { p++; [, p] = leb(wasm, p); }
      else throw new Error(`${wasmPath}: unknown import kind ${kind}`);
      let name = field;
      if (mod === moduleName) {
        name = rename.get(field) ?? shortName(rename.size);
        rename.set(field, name);
      }
      out.push(encName(mod), encName(name), wasm.subarray(descStart, p));
    }
    if (p !== end) throw new Error(`${wasmPath}: import section length mismatch`);
    const bodyBuf = Buffer.concat(out);
    parts.push(Buffer.from([2]), encLeb(bodyBuf.length), bodyBuf);
    at = end;
  }
  for (const [old, short] of rename) {
    if (old === short) continue;
    const re = new RegExp(`^(\\s*)${old}(: function)`, 'gm');
    const hits = js.match(re)?.length ?? 0;
    const anywhere = js.split(old).length - 1;
    if (hits !== 1 || anywhere !== 1) throw new Error(`${jsPath}: import ${old} occurs ${anywhere} times (${hits} as a key); expected once, as a key`);
    js = js.replace(re, `$1${short}$2`);
    renamed++;
  }
  const before = wasm.length;
  const after = Buffer.concat(parts);
  fs.writeFileSync(wasmPath, after);
  fs.writeFileSync(jsPath, js);
  console.log(`short-imports: ${m}: ${renamed} imports renamed, wasm ${before} -> ${after.length} bytes`);
}
