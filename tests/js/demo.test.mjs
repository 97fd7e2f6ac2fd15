// The demo's /ring page in headless Chromium: log in, open /ring, and check that the shard the
// browser's WebAssembly ring finds for the session is the one the server chose, and that the page
// never contains the session id. Once with the memory store (a one-node ring) and once sharded
// over three real redis-server processes (skipped if redis-server is not installed).
//
// The demo runs as `.venv/bin/python -m ringsession.demo` (make build-python makes the venv);
// RINGSESSION_DEMO_MAIN=path/to/script.py runs that script instead, with the same arguments.
// RINGSESSION_SCREENSHOTS=dir saves a screenshot of each /ring page there.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { launch } from './chromium.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const python = path.join(root, '.venv', 'bin', 'python');
const PASSWORD = 'ring-test-password';

let chrome;
const started = []; // processes this file started, stopped in after()

function hasDemo() {
  if (!fs.existsSync(python)) return 'no .venv/bin/python (run make build-python)';
  try {
    execFileSync(python, ['-c', 'import ringsession.demo.ring'], { stdio: 'ignore' });
  } catch {
    return 'ringsession.demo.ring does not import in .venv (run make build-python)';
  }
  return null;
}

function hasRedis() {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'redis-server is not installed';
  }
}

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitForPort(port, proc, what) {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`${what} exited with ${proc.exitCode}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what} did not listen on ${port}`);
}

function start(cmd, args, what) {
  const proc = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (c) => (output += c));
  proc.stderr.on('data', (c) => (output += c));
  proc.output = () => output;
  proc.what = what;
  started.push(proc);
  return proc;
}

async function startDemo(extra) {
  const port = await freePort();
  const main = process.env.RINGSESSION_DEMO_MAIN;
  const args = [
    ...(main ? [main] : ['-m', 'ringsession.demo']),
    '--port', String(port), '--password', PASSWORD, '--cookie-secret', 'ring-test-secret', ...extra,
  ];
  const proc = start(python, args, 'the demo');
  await waitForPort(port, proc, 'the demo');
  return { url: `http://127.0.0.1:${port}`, proc };
}

/** The session id inside Tornado's signed cookie value (version 2: |-separated, length-prefixed). */
function sessionId(cookie) {
  const fields = cookie.replace(/^"|"$/g, '').split('|');
  assert.equal(fields[0], '2', `not a v2 signed cookie: ${cookie}`);
  return Buffer.from(fields[4].split(':')[1], 'base64').toString('utf8');
}

async function checkRing(url, expectNodes) {
  const { page } = chrome;
  const context = page.context();
  await context.clearCookies();
  await page.goto(`${url}/login`);
  await page.fill('#name', 'demo');
  await page.fill('#pwd', PASSWORD);
  await Promise.all([page.waitForURL(`${url}/index`), page.click('button[type=submit]')]);
  const response = await page.goto(`${url}/ring`);
  assert.equal(response.status(), 200, `GET /ring: ${response.status()} (is the ring page wired into the demo?)`);
  await page.waitForSelector('body[data-ring]', { timeout: 30_000 });
  const view = await page.evaluate(() => window.ringView);
  const logs = `\n${chrome.console.join('\n')}`;
  assert.equal(await page.getAttribute('body', 'data-ring'), 'ready', `${JSON.stringify(view)}${logs}`);
  assert.equal(view.size, expectNodes);
  assert.equal(view.samePoints, true, 'the wasm ring has the server ring\'s points');
  const server = (await page.textContent('#server-node')).trim();
  const wasm = (await page.textContent('#wasm-node')).trim();
  assert.equal(wasm, server, 'the shard found by wasm in the browser vs the one the server chose');
  assert.equal(view.wasmNode, view.serverNode);
  assert.equal(view.agree, true);
  assert.equal(view.markerNode, server, 'the marker sits on an arc of the chosen shard');
  assert.match(await page.textContent('#verdict'), /agree/);

  // The page never holds the session id (the cookie is HttpOnly; the page must not undo that).
  const cookie = (await context.cookies()).find((c) => c.name === 'session_id');
  assert.ok(cookie, 'a session cookie after login');
  assert.equal(cookie.httpOnly, true);
  const sid = sessionId(cookie.value);
  assert.match(sid, /^[A-Za-z0-9_-]{43}$/);
  const html = await response.text();
  assert.ok(!html.includes(sid), 'the session id is in the /ring page');
  assert.ok(!html.includes(cookie.value), 'the session cookie is in the /ring page');
  assert.match(response.headers()['cache-control'] ?? '', /no-store/);
  assert.match(response.headers()['content-security-policy'] ?? '', /script-src 'self' 'wasm-unsafe-eval'/);

  if (process.env.RINGSESSION_SCREENSHOTS) {
    fs.mkdirSync(process.env.RINGSESSION_SCREENSHOTS, { recursive: true });
    const file = path.join(process.env.RINGSESSION_SCREENSHOTS, `ring-${expectNodes}-nodes.png`);
    await page.screenshot({ path: file, fullPage: true });
  }
  return { server, wasm };
}

const skipDemo = hasDemo();

before(async () => {
  if (!skipDemo) chrome = await launch();
});

after(async () => {
  try {
    await chrome?.close();
  } finally {
    await Promise.all(
      started
        .filter((proc) => proc.exitCode === null)
        .map((proc) => {
          const exited = new Promise((resolve) => proc.once('exit', resolve));
          proc.kill('SIGTERM');
          return exited;
        }),
    );
  }
});

test('/ring with the memory store: one node, browser and server agree', { skip: skipDemo ?? false }, async () => {
  const demo = await startDemo([]);
  try {
    const { server } = await checkRing(demo.url, 1);
    assert.equal(server, 'memory');
  } catch (e) {
    e.message += `\ndemo output:\n${demo.proc.output()}`;
    throw e;
  }
});

test('/ring sharded over three Redis servers: browser and server agree', { skip: skipDemo ?? hasRedis() ?? false }, async () => {
  const ports = [await freePort(), await freePort(), await freePort()];
  for (const port of ports) {
    const redis = start(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      'redis-server',
    );
    await waitForPort(port, redis, `redis-server on ${port}`);
  }
  const demo = await startDemo(ports.flatMap((p) => ['--redis', `redis://127.0.0.1:${p}/0`]));
  try {
    const seen = new Set();
    // Several logins, several sessions: at least two different shards must come up.
    for (let i = 0; i < 8 && seen.size < 2; i++) {
      const { server } = await checkRing(demo.url, 3);
      assert.ok(ports.some((p) => server === `127.0.0.1:${p}`), `shard ${server}`);
      seen.add(server);
    }
    assert.ok(seen.size >= 2, `every session went to ${[...seen]}`);
  } catch (e) {
    e.message += `\ndemo output:\n${demo.proc.output()}`;
    throw e;
  }
});
