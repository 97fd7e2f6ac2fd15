// Helpers of the browser tests: headless Chromium reached through the DevTools protocol
// (playwright-core's connectOverCDP), and a small static file server on 127.0.0.1.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** The flags every test run uses (a fresh profile is added per launch). */
export const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--remote-debugging-address=127.0.0.1',
  '--remote-debugging-port=0',
];

/**
 * Starts Chromium with a fresh --user-data-dir and connects to it. Returns {browser, page,
 * console, close}; `console` collects the page's console messages and errors (for failure
 * messages). `close` stops the process this call started and removes its profile.
 */
export async function launch() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (tests/js/run.sh does it)`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ringsession-chromium-'));
  // Its own process group, so that close() can stop its helper processes too.
  const proc = spawn(CHROMIUM, [...FLAGS, `--user-data-dir=${profile}`, 'about:blank'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  let stderr = '';
  const listening = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Chromium did not start in 30 s:\n${stderr}`)), 30_000);
    proc.stderr.on('data', (chunk) => {
      stderr += chunk;
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Chromium exited with ${code} before listening:\n${stderr}`));
    });
  });
  let ws;
  try {
    ws = await listening;
  } catch (e) {
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      // gone already
    }
    fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    throw e;
  }
  const browser = await chromium.connectOverCDP(ws);
  const context = browser.contexts()[0] ?? (await browser.newContext());
  const page = await context.newPage();
  const messages = [];
  page.on('console', (m) => messages.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => messages.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => messages.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  const close = async () => {
    await browser.close().catch(() => {});
    const timeout = new Promise((resolve) => setTimeout(resolve, 5000));
    await Promise.race([exited, timeout]);
    try {
      process.kill(-proc.pid, 'SIGKILL'); // whatever is left of the group this launch started
    } catch {
      // the group is gone already
    }
    await Promise.race([exited, timeout]);
    try {
      fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch (e) {
      console.warn(`could not remove the Chromium profile ${profile}: ${e.message}`);
    }
  };
  return { browser, page, console: messages, close };
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
};

/**
 * Serves `routes` ({'/prefix/': directory, '/page.html': {type, body}}) on 127.0.0.1, on a free
 * port. Returns {url, close}.
 */
export async function serve(routes) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const fixed = routes[url.pathname];
    if (fixed && typeof fixed === 'object') {
      res.writeHead(200, { 'content-type': fixed.type, 'cache-control': 'no-store' });
      res.end(fixed.body);
      return;
    }
    for (const [prefix, dir] of Object.entries(routes)) {
      if (typeof dir !== 'string' || !url.pathname.startsWith(prefix)) continue;
      const file = path.resolve(dir, decodeURIComponent(url.pathname.slice(prefix.length)));
      if (!file.startsWith(path.resolve(dir) + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) break;
      res.writeHead(200, {
        'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-store',
      });
      fs.createReadStream(file).pipe(res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
