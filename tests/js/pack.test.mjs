// `npm pack` of wasm/pkg, installed into a scratch project: `require` and `import` both work and
// give the same answers, the browser build's entry points resolve through `exports`, and the
// tarball holds what it should.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = path.join(root, 'wasm', 'pkg');
let scratch;
let tarball;

function run(cmd, args, cwd, extra = {}) {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...extra });
}

before(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'ringsession-pack-'));
  const out = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', scratch], pkg));
  tarball = { file: path.join(scratch, out[0].filename), files: out[0].files.map((f) => f.path) };
  const project = path.join(scratch, 'project');
  fs.mkdirSync(project);
  fs.writeFileSync(
    path.join(project, 'package.json'),
    JSON.stringify({ name: 'scratch', version: '1.0.0', private: true }),
  );
  // A local tarball without dependencies: no registry needed.
  run('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball.file], project);
});

after(() => {
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

test('the tarball holds the Node and web builds, types, README and package.json', () => {
  const files = tarball.files.sort();
  for (const f of [
    'README.md',
    'package.json',
    'node/ringsession.js',
    'node/index.mjs',
    'node/ringsession.d.ts',
    'node/ringsession_bg.wasm',
    'web/ringsession.js',
    'web/ringsession.d.ts',
    'web/ringsession_bg.wasm',
    'web/package.json',
  ]) {
    assert.ok(files.includes(f), `${f} missing from the tarball: ${files.join(', ')}`);
  }
  assert.ok(files.some((f) => /^node\/snippets\/.*\/glue\.js$/.test(f)));
  assert.ok(files.some((f) => /^web\/snippets\/.*\/glue\.js$/.test(f)));
  assert.deepEqual(files.filter((f) => !/^(node|web)\//.test(f)), ['README.md', 'package.json']);
  const types = fs.readFileSync(path.join(pkg, 'node', 'ringsession.d.ts'), 'utf8');
  assert.match(types, /getNodeMany\(keys: Key\[\]\): \(string \| undefined\)\[\];/);
  assert.match(types, /constructor\(nodes: NodeList, options\?: HashRingOptions \| null\);/);
  assert.match(types, /```js/); // the doc examples made it into the .d.ts
});

const probe = `
const keys = Array.from({ length: 1000 }, (_, i) => 'session-' + i);
const answer = (HashRing) => {
  const ring = new HashRing({ 'redis-a:6379': 1, 'redis-b:6379': 2, 'redis-c:6379': 1 });
  return JSON.stringify({ one: ring.getNode('3f1c0a9e2b7d4c6f8a0b1c2d3e4f5a6b'), many: ring.getNodeMany(keys) });
};
`;

test('require() and import() of the installed package give the same answers', () => {
  const project = path.join(scratch, 'project');
  fs.writeFileSync(path.join(project, 'cjs.cjs'), `${probe}\nconsole.log(answer(require('ringsession').HashRing));\n`);
  fs.writeFileSync(
    path.join(project, 'esm.mjs'),
    `${probe}\nimport { HashRing } from 'ringsession';\nimport def from 'ringsession';\n` +
      `if (def.HashRing !== HashRing) throw new Error('default export differs');\n` +
      `console.log(answer(HashRing));\n`,
  );
  fs.writeFileSync(
    path.join(project, 'dynamic.cjs'),
    `${probe}\nimport('ringsession').then((m) => console.log(answer(m.HashRing)));\n`,
  );
  // --no-experimental-require-module: the CommonJS build must not rely on require(esm) (Node < 20.19).
  const flags = process.allowedNodeEnvironmentFlags.has('--no-experimental-require-module')
    ? ['--no-experimental-require-module']
    : [];
  const cjs = run(process.execPath, [...flags, 'cjs.cjs'], project);
  const esm = run(process.execPath, ['esm.mjs'], project);
  const dyn = run(process.execPath, ['dynamic.cjs'], project);
  const parsed = JSON.parse(cjs);
  assert.equal(parsed.one, 'redis-b:6379');
  assert.equal(parsed.many.length, 1000);
  assert.equal(esm, cjs);
  assert.equal(dyn, cjs);
});

test('the web build resolves through exports and runs with initSync', () => {
  const project = path.join(scratch, 'project');
  fs.writeFileSync(
    path.join(project, 'web.mjs'),
    `${probe}
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { initSync, HashRing } from 'ringsession/web';
const wasm = createRequire(import.meta.url).resolve('ringsession/ringsession_bg.wasm');
initSync({ module: fs.readFileSync(wasm) });
console.log(answer(HashRing));
`,
  );
  // --no-experimental-detect-module: web/*.js must be known as ES modules without sniffing.
  const flags = process.allowedNodeEnvironmentFlags.has('--no-experimental-detect-module')
    ? ['--no-experimental-detect-module']
    : [];
  const web = run(process.execPath, [...flags, 'web.mjs'], project);
  const cjs = run(process.execPath, ['cjs.cjs'], project);
  assert.equal(web, cjs);
});
