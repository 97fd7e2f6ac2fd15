// getNode and getNodeMany of the wasm HashRing (wasm/pkg, Node build) against npm hashring
// 3.2.0's get(), on 10 nodes and 100 000 random 32-hex keys, in one process so the ratios
// compare like with like. Run by `make bench-js` (benches/js/run.sh).
//
// Each figure is the median of ROUNDS timed passes over all keys, after a warm-up pass.
// hashring keeps an LRU cache of its last 5000 keys (its default); with 100 000 distinct keys
// in a fixed order, every get() misses it, as with real session ids.
import crypto from 'node:crypto';
import { createRequire } from 'node:module';

import { HashRing } from '../../wasm/pkg/node/index.mjs';

const require = createRequire(import.meta.url);
const NpmHashRing = require('hashring');

const NODES = 10;
const KEYS = 100_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);

const nodes = Array.from({ length: NODES }, (_, i) => `10.0.0.${i + 1}:6379`);
const keys = Array.from({ length: KEYS }, () => crypto.randomBytes(16).toString('hex'));

const npm = new NpmHashRing(nodes);
const ring = new HashRing(nodes);

// The two must agree key for key before their speed means anything (10 equal weights: the
// same 40 digests per node in both).
const expected = keys.map((k) => npm.get(k));
const many = ring.getNodeMany(keys);
for (let i = 0; i < KEYS; i++) {
  if (ring.getNode(keys[i]) !== expected[i] || many[i] !== expected[i]) {
    throw new Error(`owners differ at key ${keys[i]}: npm ${expected[i]}, wasm ${ring.getNode(keys[i])}`);
  }
}

let sink = 0;
const passes = {
  'npm hashring get()': () => {
    for (let i = 0; i < KEYS; i++) sink += npm.get(keys[i]).length;
  },
  'wasm getNode()': () => {
    for (let i = 0; i < KEYS; i++) sink += ring.getNode(keys[i]).length;
  },
  'wasm getNodeMany()': () => {
    sink += ring.getNodeMany(keys).length;
  },
};
// Rounds interleave the three, so that a busy moment of the machine hits them alike.
const times = Object.fromEntries(Object.keys(passes).map((name) => [name, []]));
for (let r = -1; r < ROUNDS; r++) {
  for (const [name, pass] of Object.entries(passes)) {
    const t0 = process.hrtime.bigint();
    pass();
    if (r >= 0) times[name].push(Number(process.hrtime.bigint() - t0) / KEYS); // r = -1: warm-up
  }
}
const results = Object.fromEntries(
  Object.entries(times).map(([name, t]) => [name, t.sort((a, b) => a - b)[t.length >> 1]]),
);

const base = results['npm hashring get()'];
const goals = { 'wasm getNode()': 3, 'wasm getNodeMany()': 5 };
console.log(`${NODES} nodes, ${KEYS} random 32-hex keys, median of ${ROUNDS} passes, node ${process.version}`);
for (const [name, ns] of Object.entries(results)) {
  const ratio = base / ns;
  const goal = goals[name] ? `  (goal >= ${goals[name]}x: ${ratio >= goals[name] ? 'met' : 'NOT met'})` : '';
  console.log(`${name.padEnd(20)} ${ns.toFixed(1).padStart(8)} ns/key  ${ratio.toFixed(2).padStart(6)}x${goal}`);
}
if (sink === 0) console.log(''); // keep the work observable
