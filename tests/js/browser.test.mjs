// The web build in headless Chromium: a page served on 127.0.0.1 imports wasm/pkg/web, replays
// every vector file and reports back through the DevTools protocol; the counts it reports are
// checked against the same replay run here in Node.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { HashRing } from '../../wasm/pkg/node/index.mjs';
import { launch, serve } from './chromium.mjs';
import { replay } from './pages/replay.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const vectors = path.join(root, 'tests', 'vectors');
const files = fs.readdirSync(vectors).filter((f) => f.endsWith('.json')).sort();

let chrome;
let server;

before(async () => {
  server = await serve({
    '/pkg/': path.join(root, 'wasm', 'pkg'),
    '/vectors/': vectors,
    '/pages/': path.join(here, 'pages'),
  });
  chrome = await launch();
});

after(async () => {
  await chrome?.close();
  await server?.close();
});

test('every vector file replays in Chromium with the web build', async () => {
  assert.equal(files.length, 4);
  // What the page must report: the same replay, here, against the Node build.
  const expected = {};
  for (const f of files) {
    const r = replay(HashRing, JSON.parse(fs.readFileSync(path.join(vectors, f), 'utf8')));
    assert.deepEqual(r.failures, [], `Node replay of ${f}`);
    expected[f] = r.checked;
  }

  const { page } = chrome;
  await page.goto(`${server.url}/pages/vectors.html?files=${files.join(',')}`);
  await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 120_000 });
  const report = await page.evaluate(() => window.__result);
  const context = `\n${chrome.console.join('\n')}`;
  assert.deepEqual(report.errors, [], `errors in the page${context}`);
  assert.match(report.userAgent, /Chrome\/\d+/);
  for (const f of files) {
    assert.deepEqual(report.files[f].failures, [], `${f} in Chromium${context}`);
    assert.equal(report.files[f].checked, expected[f], `${f}: checks run in Chromium`);
  }
  assert.equal(await page.title(), 'PASS');
});
