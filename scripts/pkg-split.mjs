// `make pkg`, last step: join the two wasm-pack builds into one npm package.
//
//   node scripts/pkg-split.mjs <pkg dir> <extra build dir> [<encoder build dir>]
//
// <pkg dir> holds the `js-engine` build (mnemo.js, mnemo_bg.wasm, mnemo.d.ts: the `Mnemo` class,
// what a memory app loads). <extra build dir> holds the `js-store` + `js-kernels` build
// (mnemo_extra.js, mnemo_extra_bg.wasm, mnemo_extra.d.ts: `Store`, `Kernels`, `FlatBank`,
// `HierIndex`). This script copies the extra module's glue and declarations into <pkg dir>
// (its .wasm is written there by the Makefile's wasm-opt), appends to mnemo.js the small classes
// that load the extra module on first use (so `import { Kernels, Store } from 'mnemo'` keeps
// working), appends the extra classes' declarations to mnemo.d.ts, and lists the files in
// package.json. <encoder build dir>, when given, holds the `js-engine` + `encoder` build
// (mnemo_encoder.js / .d.ts: `Mnemo` with the built-in text encoder; its .wasm is written into
// <pkg dir> by the Makefile): it becomes the package's `mnemo/encoder` entry, joined to the extra
// module the same way.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const [pkgDir, extraDir, encoderDir] = process.argv.slice(2);
if (!pkgDir || !extraDir) {
  console.error('usage: node scripts/pkg-split.mjs <pkg dir> <extra build dir>');
  process.exit(2);
}
const read = (dir, f) => fs.readFileSync(path.join(dir, f), 'utf8');
const MARK = '// ---- mnemo: lazily loaded second module (scripts/pkg-split.mjs) ----';

if (!fs.existsSync(path.join(pkgDir, 'mnemo_extra_bg.wasm'))) {
  throw new Error(`${pkgDir}/mnemo_extra_bg.wasm is missing (the Makefile writes it)`);
}

// The classes the extra module exports become lazy stand-ins in mnemo.js.
const extraJs = read(extraDir, 'mnemo_extra.js');
const extraClasses = [...extraJs.matchAll(/^export class (\w+)/gm)].map((m) => m[1]).sort();
const expected = ['FlatBank', 'HierIndex', 'Kernels', 'Store'];
if (extraClasses.join() !== expected.join()) {
  throw new Error(`mnemo_extra.js exports ${extraClasses.join(', ')}; expected ${expected.join(', ')}`);
}
function checkEngineJs(dir, file) {
  const js = read(dir, file);
  if (js.includes(MARK)) throw new Error(`${dir}/${file} was already joined`);
  for (const c of expected) {
    if (new RegExp(`^export class ${c}\\b`, 'm').test(js)) {
      throw new Error(`${dir}/${file} already exports ${c}: build it without js-store / js-kernels`);
    }
  }
  return js;
}
const engineJs = checkEngineJs(pkgDir, 'mnemo.js');
const encoderJs = encoderDir ? checkEngineJs(encoderDir, 'mnemo_encoder.js') : null;
if (encoderDir && !fs.existsSync(path.join(pkgDir, 'mnemo_encoder_bg.wasm'))) {
  throw new Error(`${pkgDir}/mnemo_encoder_bg.wasm is missing (the Makefile writes it)`);
}

// The emitted comment is kept short (this JS is part of what a Mnemo app downloads):
// `Store`, `Kernels`, `FlatBank` and `HierIndex` live in mnemo_extra_bg.wasm, fetched and
// initialised on the first `Store.open`, `Store.deleteStore`, `Kernels.create` or
// `Kernels.load`; an app that only uses `Mnemo` never downloads it. The classes below stand in
// for the extra module's: their static methods forward to it, and `instanceof` recognises its
// objects.
const loader = `
${MARK}
// Stand-ins for the classes of mnemo_extra_bg.wasm, which they load on first use.

let extraModule = null;
let extraLoading = null;

function loadExtra() {
    if (extraLoading === null) {
        extraLoading = import('./mnemo_extra.js').then(async (m) => {
            await m.default();
            extraModule = m;
            return m;
        });
        // A failed download can be retried by the next call.
        extraLoading.catch(() => { extraLoading = null; });
    }
    return extraLoading;
}

function loadedClass(name) {
    if (extraModule === null) {
        const e = new Error(\`\${name}: the kernels module is not loaded yet; await Kernels.load() (or Kernels.create()) first\`);
        e.name = 'MnemoError';
        e.code = 'NOT_LOADED';
        throw e;
    }
    return extraModule[name];
}

function isExtraInstance(name, x) {
    return extraModule !== null && x instanceof extraModule[name];
}

/** The raw episodic store (loads the extra module on first use). */
export class Store {
    static async open(name, options) { return (await loadExtra()).Store.open(name, options); }
    static async deleteStore(name) { return (await loadExtra()).Store.deleteStore(name); }
    static [Symbol.hasInstance](x) { return isExtraInstance('Store', x); }
}

/** The compute kernels (load the extra module on first use). */
export class Kernels {
    static async load() { await loadExtra(); }
    static async create(options) { return (await loadExtra()).Kernels.create(options); }
    static [Symbol.hasInstance](x) { return isExtraInstance('Kernels', x); }
}

/** A resident memory bank for top-k, from \`kernels.flatBank\`. */
export class FlatBank {
    static [Symbol.hasInstance](x) { return isExtraInstance('FlatBank', x); }
}

/** A hierarchical memory bank, from \`kernels.hierBuild\` or \`HierIndex.fromBytes\`. */
export class HierIndex {
    static fromBytes(bytes, bank) { return loadedClass('HierIndex').fromBytes(bytes, bank); }
    static [Symbol.hasInstance](x) { return isExtraInstance('HierIndex', x); }
}
`;
const joinedJs = engineJs.trimEnd() + '\n' + loader;
const joinedEncoderJs = encoderJs === null ? null : encoderJs.trimEnd() + '\n' + loader;

// Declarations: the extra module's interfaces and classes (not its init functions), with
// `Kernels.load` added, after the engine's.
const extraDts = read(extraDir, 'mnemo_extra.d.ts');
// A doc comment (`/** ... */`, no `*/` inside) directly before a declaration belongs to it.
const DOC = String.raw`(\/\*\*(?:(?!\*\/)[^])*\*\/\s*)?`;
const start = extraDts.search(new RegExp(`^${DOC}export (interface|type|class) `, 'm'));
const end = extraDts.search(new RegExp(`^${DOC}export function start\\(\\)`, 'm'));
if (start < 0 || end < 0 || end <= start) throw new Error('unexpected mnemo_extra.d.ts layout');
let decls = extraDts.slice(start, end).trimEnd();
const kernelsCreate = /(\n(\s*)\/\*\*(?:(?!\*\/)[^])*\*\/\s*\n\s*static create\()/;
if (!kernelsCreate.test(decls)) throw new Error('Kernels.create not found in mnemo_extra.d.ts');
decls = decls.replace(kernelsCreate, (m, all, indent) =>
  `\n${indent}/**\n${indent} * Download and initialise the module that holds \`Store\`, \`Kernels\`, \`FlatBank\` and\n` +
  `${indent} * \`HierIndex\` (once; \`Kernels.create\`, \`Store.open\` and \`Store.deleteStore\` do it\n` +
  `${indent} * themselves). \`HierIndex.fromBytes\` needs it done: it throws \`NOT_LOADED\` before.\n` +
  `${indent} */\n${indent}static load(): Promise<void>;` + all);
function joinDts(dts, name) {
  const at = dts.search(new RegExp(`^${DOC}export function start\\(\\)`, 'm'));
  if (at < 0) throw new Error(`unexpected ${name} layout`);
  return dts.slice(0, at) +
    '// Loaded on first use from mnemo_extra_bg.wasm (see the package README):\n\n' +
    decls + '\n\n' + dts.slice(at);
}
const engineDts = joinDts(read(pkgDir, 'mnemo.d.ts'), 'mnemo.d.ts');
const encoderDts = encoderDir ? joinDts(read(encoderDir, 'mnemo_encoder.d.ts'), 'mnemo_encoder.d.ts') : null;

// package.json: ship the extra module too.
const pj = JSON.parse(read(pkgDir, 'package.json'));
const shipped = ['mnemo_extra_bg.wasm', 'mnemo_extra.js', 'mnemo_extra.d.ts'];
if (encoderDir) shipped.push('mnemo_encoder_bg.wasm', 'mnemo_encoder.js', 'mnemo_encoder.d.ts');
for (const f of shipped) {
  if (!pj.files.includes(f)) pj.files.push(f);
}
pj.exports = {
  '.': { types: './mnemo.d.ts', default: './mnemo.js' },
  ...(encoderDir ? { './encoder': { types: './mnemo_encoder.d.ts', default: './mnemo_encoder.js' } } : {}),
  './package.json': './package.json',
};

// The shipped glue without its whole-line comments (what an app downloads; the documentation is
// in the .d.ts files, which keep it): `//` lines and `/* ... */` blocks that start a line. Refused
// if a kept line has an odd number of backticks (a template literal spanning lines could hold a
// line that looks like a comment), and the result must still parse (`node --check`).
function stripComments(js, name) {
  const out = [];
  let inBlock = false;
  for (const line of js.split('\n')) {
    const t = line.trim();
    if (inBlock) {
      if (t.includes('*/')) {
        if (!t.endsWith('*/')) throw new Error(`${name}: code after a block comment: ${line}`);
        inBlock = false;
      }
      continue;
    }
    if (t.startsWith('//')) continue;
    if (t.startsWith('/*')) {
      if (t.includes('*/', 2) && !t.endsWith('*/')) throw new Error(`${name}: code after a block comment: ${line}`);
      inBlock = !t.includes('*/', 2);
      continue;
    }
    if ((line.split('`').length - 1) % 2) throw new Error(`${name}: a template literal spans lines: ${line}`);
    out.push(line);
  }
  const stripped = out.join('\n');
  const tmp = path.join(pkgDir, `.check-${name}.mjs`);
  fs.writeFileSync(tmp, stripped);
  try {
    execFileSync(process.execPath, ['--check', tmp], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`${name} does not parse without its comments: ${e.stderr}`);
  } finally {
    fs.rmSync(tmp);
  }
  return stripped;
}

// Every check passed: write (the extra module's declarations as wasm-bindgen wrote them).
fs.copyFileSync(path.join(extraDir, 'mnemo_extra.d.ts'), path.join(pkgDir, 'mnemo_extra.d.ts'));
fs.writeFileSync(path.join(pkgDir, 'mnemo_extra.js'), stripComments(extraJs, 'mnemo_extra.js'));
fs.writeFileSync(path.join(pkgDir, 'mnemo.js'), stripComments(joinedJs, 'mnemo.js'));
fs.writeFileSync(path.join(pkgDir, 'mnemo.d.ts'), engineDts);
if (encoderDir) {
  fs.writeFileSync(path.join(pkgDir, 'mnemo_encoder.js'), stripComments(joinedEncoderJs, 'mnemo_encoder.js'));
  fs.writeFileSync(path.join(pkgDir, 'mnemo_encoder.d.ts'), encoderDts);
}
fs.writeFileSync(path.join(pkgDir, 'package.json'), JSON.stringify(pj, null, 2) + '\n');
console.log(`pkg: joined ${extraClasses.join(', ')} (mnemo_extra_bg.wasm, loaded on first use) into ${pkgDir}/mnemo.js` +
  (encoderDir ? ' and mnemo_encoder.js (the mnemo/encoder entry)' : ''));
