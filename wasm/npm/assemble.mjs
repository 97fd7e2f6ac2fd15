// Assembles the npm package from wasm-bindgen's output (called by wasm/build.sh).
// Usage: node wasm/npm/assemble.mjs STAGE PKG
//   STAGE/nodejs, STAGE/web: `wasm-bindgen --target nodejs|web --out-name ringsession` output
//   PKG: the package folder to create (package.json and README.md from this folder)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const [stage, pkg] = process.argv.slice(2);
if (!stage || !pkg) throw new Error('usage: node assemble.mjs STAGE PKG');

// The glue snippet (wasm/src/glue.js) is an ES module, which the CommonJS build `require`s; Node
// only loads an ES module through `require` from 20.19/22.12 on, so the Node build gets a
// CommonJS copy. The snippet declares nothing but `export function`s, which keeps this simple.
function toCommonJs(source, file) {
  const names = [];
  const out = source.replace(/^export function (\w+)/gm, (_, name) => {
    names.push(name);
    return `function ${name}`;
  });
  if (/^\s*(export|import)\b/m.test(out)) {
    throw new Error(`${file}: only \`export function\` can be converted to CommonJS`);
  }
  return `'use strict';\n${out}\nmodule.exports = { ${names.join(', ')} };\n`;
}

function copyTree(from, to, transform) {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dst = path.join(to, entry.name);
    if (entry.isDirectory()) {
      copyTree(src, dst, transform);
    } else if (!entry.name.endsWith('_bg.wasm.d.ts') && entry.name !== 'package.json') {
      const data = fs.readFileSync(src);
      fs.writeFileSync(dst, transform ? transform(src, data) : data);
    }
  }
}

fs.rmSync(pkg, { recursive: true, force: true });

copyTree(path.join(stage, 'nodejs'), path.join(pkg, 'node'), (src, data) =>
  src.split(path.sep).includes('snippets') && src.endsWith('.js')
    ? toCommonJs(data.toString('utf8'), src)
    : data,
);
// `import` in Node: the same CommonJS module (one instance, whichever way it was loaded).
fs.writeFileSync(
  path.join(pkg, 'node', 'index.mjs'),
  "import ringsession from './ringsession.js';\n\nexport const { HashRing } = ringsession;\nexport default ringsession;\n",
);
copyTree(path.join(stage, 'web'), path.join(pkg, 'web'));
// The web build is ES modules in .js files: say so, for Node (`ringsession/web`) and bundlers.
fs.writeFileSync(path.join(pkg, 'web', 'package.json'), '{\n  "type": "module"\n}\n');

const cargo = fs.readFileSync(path.join(here, '..', '..', 'Cargo.toml'), 'utf8');
const version = /\[workspace\.package\][^[]*?\bversion\s*=\s*"([^"]+)"/.exec(cargo);
if (!version) throw new Error('no [workspace.package] version in Cargo.toml');
const manifest = JSON.parse(fs.readFileSync(path.join(here, 'package.json'), 'utf8'));
manifest.version = version[1];
fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
fs.copyFileSync(path.join(here, 'README.md'), path.join(pkg, 'README.md'));
