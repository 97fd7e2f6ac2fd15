'use strict';
// Helper of generate.py: runs the real npm `hashring` (3.2.0) on a job file and
// writes what it answers. Usage: node npm_hashring.js NODE_PREFIX JOB.json OUT.json
//
// Job: {"cases": [{"name", "keys": [...], "states": [{"nodes": [[name, weight], ...]}],
//                   "ranges": [{"state", "key", "n"}]}],
//       "sweep": [[w0, w1, ...], ...]}
// Out: {"version", "cases": [{"name", "states": [{"owners", "points", "continuum_sha256"}],
//                              "ranges": [[...], ...]}],
//       "sweep": [[points of node 0, ...], ...]}
// Every ring is built fresh from the state's node list ({name: weight}, in list
// order), which is what hashring's own add()/remove() do internally.
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const [, , prefix, jobPath, outPath] = process.argv;
const HashRing = require(path.join(prefix, 'node_modules', 'hashring'));
const job = JSON.parse(fs.readFileSync(jobPath, 'utf8'));

function build(nodes) {
  const servers = {};
  for (const [name, weight] of nodes) servers[name] = weight;
  // Object.keys order must be the list order (generate.py refuses integer-like names).
  const order = Object.keys(servers);
  nodes.forEach(([name], i) => {
    if (order[i] !== name) throw new Error('node order changed by the JS object: ' + name);
  });
  return new HashRing(servers);
}

function describe(ring, nodes) {
  const points = {};
  for (const [name] of nodes) points[name] = 0;
  const h = crypto.createHash('sha256');
  for (const node of ring.ring) {
    points[node.server] += 1;
    h.update(node.value + ' ' + node.server + '\n', 'utf8');
  }
  return { points, continuum_sha256: h.digest('hex') };
}

const out = { version: HashRing.version, cases: [], sweep: [] };
for (const c of job.cases) {
  const rings = c.states.map((s) => build(s.nodes));
  const states = c.states.map((s, i) => {
    const ring = rings[i];
    const owners = c.keys.map((k) => {
      const o = ring.get(k);
      return o === undefined ? null : o;
    });
    return Object.assign({ owners }, describe(ring, s.nodes));
  });
  const ranges = c.ranges.map((r) => rings[r.state].range(r.key, r.n, true));
  out.cases.push({ name: c.name, states, ranges });
}
for (const weights of job.sweep) {
  const nodes = weights.map((w, i) => ['s' + i, w]);
  const d = describe(build(nodes), nodes);
  out.sweep.push(nodes.map(([name]) => d.points[name]));
}
fs.writeFileSync(outPath, JSON.stringify(out));
