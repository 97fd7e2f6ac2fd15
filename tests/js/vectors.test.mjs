// Replays every tests/vectors/*.json file against the Node build of the npm package (wasm/pkg):
// owners key by key, point counts, get_nodes answers, and getNodeMany == getNode in every state.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { HashRing } from '../../wasm/pkg/node/index.mjs';

const vectors = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'vectors');
const files = fs.readdirSync(vectors).filter((f) => f.endsWith('.json')).sort();

test('vector files are present', () => {
  assert.deepEqual(files, ['hash_ring.json', 'ketama.json', 'md5_128.json', 'uhashring.json']);
});

for (const file of files) {
  const { layout, cases } = JSON.parse(fs.readFileSync(path.join(vectors, file), 'utf8'));

  test(`${file}: ${cases.length} cases`, async (t) => {
    assert.ok(cases.length > 0);
    for (const c of cases) {
      await t.test(c.name, () => replay(layout, c));
    }
  });
}

function replay(layout, c) {
  let list = [];
  let ring;
  c.states.forEach((state, s) => {
    const where = `state ${s} (${state.op})`;
    if (state.op === 'build') {
      list = c.nodes.map(([name, weight]) => [name, weight]);
      // The array-of-{host, weight} form keeps the list order whatever the names look like.
      ring = new HashRing(
        list.map(([host, weight]) => ({ host, weight })),
        { layout },
      );
    } else if (state.op === 'remove') {
      list = list.filter(([name]) => name !== state.node);
      ring.removeNode(state.node);
    } else if (state.op === 'add') {
      list.push([state.node, state.weight]);
      ring.addNode(state.node, state.weight);
    } else {
      assert.fail(`unknown op ${state.op}`);
    }

    assert.equal(ring.layout, layout);
    assert.equal(ring.size, list.length, where);
    assert.deepEqual(Object.entries(ring.nodes), list, `${where}: nodes`);
    const points = Object.fromEntries(list.map(([name]) => [name, ring.points(name)]));
    assert.deepEqual(points, state.points, `${where}: points`);

    const owners = c.keys.map((k) => ring.getNode(k));
    const expected = state.owners.map((o) => (o === null ? undefined : o));
    const wrong = owners.flatMap((o, i) => (o === expected[i] ? [] : [i]));
    assert.equal(
      wrong.length,
      0,
      `${where}: ${wrong.length} owners differ, first key ${JSON.stringify(c.keys[wrong[0]])}: ` +
        `got ${owners[wrong[0]]}, expected ${expected[wrong[0]]}`,
    );
    assert.deepEqual(ring.getNodeMany(c.keys), owners, `${where}: getNodeMany vs getNode`);

    // The same keys as UTF-8 bytes give the same owners.
    const enc = new TextEncoder();
    assert.deepEqual(
      ring.getNodeMany(c.keys.map((k) => enc.encode(k))),
      owners,
      `${where}: Uint8Array keys`,
    );

    for (const q of (c.get_nodes ?? []).filter((q) => q.state === s)) {
      const got = ring.getNodes(q.key, q.n);
      assert.deepEqual(got, q.expect, `${where}: getNodes(${JSON.stringify(q.key)}, ${q.n})`);
    }
  });

  // The same queries on rings built from scratch from each state's node list: add and remove
  // give the ring that a fresh build gives.
  const fresh = new Map();
  for (const q of c.get_nodes ?? []) {
    if (!fresh.has(q.state)) fresh.set(q.state, freshRing(layout, c, q.state));
    const r = fresh.get(q.state);
    const where = `get_nodes state ${q.state} key ${JSON.stringify(q.key)} n ${q.n}`;
    assert.deepEqual(r.getNodes(q.key, q.n), q.expect, `${where} (fresh build)`);
  }
  for (const r of fresh.values()) r.free();
}

// The ring of state `s`, built from scratch from the node list that the states give.
function freshRing(layout, c, s) {
  let list = c.nodes.map(([name, weight]) => [name, weight]);
  for (const state of c.states.slice(1, s + 1)) {
    if (state.op === 'remove') list = list.filter(([name]) => name !== state.node);
    if (state.op === 'add') list.push([state.node, state.weight]);
  }
  return new HashRing(list.map(([host, weight]) => ({ host, weight })), { layout });
}
