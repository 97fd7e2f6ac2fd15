// The JS API around the core: argument forms, errors (always Error instances with a message that
// names the problem), awkward keys, and the shape of what comes back.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HashRing } from '../../wasm/pkg/node/index.mjs';

const LAYOUTS = ['ketama', 'hash_ring', 'md5_128', 'uhashring'];

/** Asserts that `fn` throws an instance of `type` whose message matches `message`. */
function throwsError(fn, type, message) {
  let thrown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, `expected ${type.name} ${message}, nothing thrown`);
  assert.ok(thrown instanceof Error, `thrown value is not an Error: ${String(thrown)}`);
  assert.ok(thrown instanceof type, `expected ${type.name}, got ${thrown.constructor.name}: ${thrown.message}`);
  assert.match(thrown.message, message);
}

test('the three node-list forms give the same ring', () => {
  for (const layout of LAYOUTS) {
    const a = new HashRing(['a:1', 'b:2', 'c:3'], { layout });
    const b = new HashRing([{ host: 'a:1', weight: 1 }, { host: 'b:2' }, 'c:3'], { layout });
    const c = new HashRing({ 'a:1': 1, 'b:2': 1, 'c:3': 1 }, { layout });
    const keys = Array.from({ length: 500 }, (_, i) => `key-${i}`);
    assert.deepEqual(b.getNodeMany(keys), a.getNodeMany(keys));
    assert.deepEqual(c.getNodeMany(keys), a.getNodeMany(keys));
    assert.deepEqual(a.nodes, { 'a:1': 1, 'b:2': 1, 'c:3': 1 });
    assert.equal(a.layout, layout);
  }
});

test('default layout is ketama; options may be left out', () => {
  assert.equal(new HashRing(['a']).layout, 'ketama');
  assert.equal(new HashRing(['a'], {}).layout, 'ketama');
  assert.equal(new HashRing(['a'], undefined).layout, 'ketama');
  assert.equal(new HashRing(['a'], { layout: undefined }).layout, 'ketama');
});

test('empty ring: no owner, not an error', () => {
  const ring = new HashRing([]);
  assert.equal(ring.size, 0);
  assert.equal(ring.getNode('k'), undefined);
  assert.deepEqual(ring.getNodes('k', 3), []);
  assert.deepEqual(ring.getNodeMany(['a', 'b']), [undefined, undefined]);
  assert.deepEqual(ring.getNodeMany([]), []);
  assert.deepEqual(ring.nodes, {});
  ring.addNode('x');
  assert.equal(ring.getNode('k'), 'x');
  ring.removeNode('x');
  assert.equal(ring.getNode('k'), undefined);
});

test('addNode / removeNode / points / size / nodes', () => {
  const ring = new HashRing(['a']);
  ring.addNode('b', 3);
  ring.addNode({ host: 'c', weight: 2 });
  ring.addNode({ host: 'd' });
  ring.addNode('e', null); // null or undefined: the default weight
  ring.addNode({ host: 'f', weight: null });
  ring.removeNode('f');
  assert.equal(ring.size, 5);
  assert.deepEqual(ring.nodes, { a: 1, b: 3, c: 2, d: 1, e: 1 });
  assert.deepEqual(Object.keys(ring.nodes), ['a', 'b', 'c', 'd', 'e']);
  const total = Object.keys(ring.nodes).reduce((s, n) => s + ring.points(n), 0);
  assert.ok(total > 0 && total <= 160 * 5 * 1.01);
  ring.removeNode('b');
  assert.deepEqual(ring.nodes, { a: 1, c: 2, d: 1, e: 1 });
  // `nodes` is a fresh object each time: changing it does not change the ring.
  const nodes = ring.nodes;
  nodes.a = 100;
  assert.equal(ring.nodes.a, 1);
  assert.equal(new HashRing(['a', 'b']).points('a'), 160);
  assert.equal(new HashRing({ a: 1, b: 3 }, { layout: 'uhashring' }).points('b'), 480);
});

test('getNodes: owner first, distinct, at most the nodes with points', () => {
  const ring = new HashRing({ a: 1, b: 2, c: 3 }, { layout: 'hash_ring' });
  for (let i = 0; i < 200; i++) {
    const key = `k${i}`;
    const all = ring.getNodes(key, 10);
    assert.equal(all.length, 3);
    assert.equal(new Set(all).size, 3);
    assert.equal(all[0], ring.getNode(key));
    assert.deepEqual(ring.getNodes(key, 2), all.slice(0, 2));
    assert.deepEqual(ring.getNodes(key, 0), []);
  }
  assert.equal(ring.getNodes('x', Number.MAX_SAFE_INTEGER).length, 3);
});

test('awkward keys work like any other key', () => {
  const ring = new HashRing(['n1', 'n2', 'n3', 'n4', 'n5']);
  const awkward = [
    '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype', '__defineGetter__',
    '', ' ', '\u0000', '\t\n', 'e\u0301', '\uffff', '🚀'.repeat(40), 'x'.repeat(100000), 'ключ', '鍵',
    '\ud800', // a lone surrogate: hashed as U+FFFD, as TextEncoder writes it
  ];
  const enc = new TextEncoder();
  const single = awkward.map((k) => ring.getNode(k));
  for (const owner of single) assert.ok(['n1', 'n2', 'n3', 'n4', 'n5'].includes(owner));
  assert.deepEqual(ring.getNodeMany(awkward), single);
  assert.deepEqual(awkward.map((k) => ring.getNode(enc.encode(k))), single);
  assert.deepEqual(ring.getNodeMany(awkward.map((k) => enc.encode(k))), single);
  assert.equal(ring.getNode('\ud800'), ring.getNode('\ufffd'));
  // A Buffer is a Uint8Array; a subarray is hashed as its own bytes only.
  assert.equal(ring.getNode(Buffer.from('constructor')), ring.getNode('constructor'));
  const big = enc.encode('xxconstructorxx');
  assert.equal(ring.getNode(big.subarray(2, 13)), ring.getNode('constructor'));
  // Keys longer than the reused buffer, then short ones again.
  assert.equal(ring.getNode('y'.repeat(1 << 20)), ring.getNode(enc.encode('y'.repeat(1 << 20))));
  assert.equal(ring.getNode('a'), ring.getNodeMany(['a'])[0]);
});

test('awkward node names work like any other name', () => {
  const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', '0', '42', 'nœud', '🚀'];
  for (const layout of LAYOUTS) {
    const ring = new HashRing(names.map((host, i) => ({ host, weight: i + 1 })), { layout });
    const nodes = ring.nodes;
    assert.equal(Object.getPrototypeOf(nodes), Object.prototype);
    assert.ok(Object.hasOwn(nodes, '__proto__'));
    assert.equal(nodes['__proto__'], 1);
    assert.equal(nodes.constructor, 2);
    assert.equal(Object.keys(nodes).length, names.length);
    assert.equal(JSON.parse(JSON.stringify(nodes))['__proto__'], 1);
    const owners = new Set(ring.getNodeMany(Array.from({ length: 5000 }, (_, i) => `s${i}`)));
    for (const n of names) if (ring.points(n) > 0) assert.ok(owners.has(n), `${layout}: ${n} owns nothing`);
    ring.removeNode('__proto__');
    assert.ok(!Object.hasOwn(ring.nodes, '__proto__'));
    // The object form: a "__proto__" key in JSON is an own property, and becomes a node.
    const parsed = new HashRing(JSON.parse('{"__proto__": 2, "b": 1}'), { layout });
    assert.deepEqual(Object.entries(parsed.nodes), [['__proto__', 2], ['b', 1]]);
  }
});

test('core errors are Errors with the core message', () => {
  throwsError(() => new HashRing(['a', 'a']), Error, /node "a" is already on the ring/);
  throwsError(() => new HashRing(['']), Error, /node name must not be empty/);
  throwsError(() => new HashRing({ a: 0 }), Error, /node "a" has weight 0/);
  throwsError(() => new HashRing(['a'], { layout: 'ketama2' }), Error, /unknown layout "ketama2"/);
  throwsError(() => new HashRing({ a: 0xffffffff }, { layout: 'uhashring' }), Error, /at most \d+ are allowed/);
  const ring = new HashRing(['a']);
  throwsError(() => ring.removeNode('b'), Error, /node "b" is not on the ring/);
  throwsError(() => ring.points('b'), Error, /node "b" is not on the ring/);
  throwsError(() => ring.addNode('a'), Error, /node "a" is already on the ring/);
  throwsError(() => ring.addNode('b', 0), Error, /node "b" has weight 0/);
  // A failed change leaves the ring as it was, and usable.
  assert.deepEqual(ring.nodes, { a: 1 });
  assert.equal(ring.getNode('k'), 'a');
});

test('malformed arguments are TypeErrors/RangeErrors that name the problem', () => {
  throwsError(() => new HashRing(), TypeError, /^nodes must be an array .* got undefined$/);
  throwsError(() => new HashRing('a'), TypeError, /^nodes must be .* got string "a"$/);
  throwsError(() => new HashRing(new Map([['a', 1]])), TypeError, /got Map$/);
  throwsError(() => new HashRing([1]), TypeError, /^nodes\[0\] must be a node name .* got number 1$/);
  throwsError(() => new HashRing(['a', null]), TypeError, /^nodes\[1\] must be .* got null$/);
  throwsError(() => new HashRing([{ weight: 2 }]), TypeError, /^nodes\[0\]\.host must be a string .* got undefined$/);
  throwsError(() => new HashRing([{ host: 'a', weight: '2' }]), TypeError, /^weight of node "a" must be an integer .* got string "2"$/);
  throwsError(() => new HashRing({ a: 1.5 }), RangeError, /^weight of node "a" must be an integer from 1 to 4294967295, got number 1.5$/);
  throwsError(() => new HashRing({ a: -1 }), RangeError, /got number -1$/);
  throwsError(() => new HashRing({ a: 2 ** 32 }), RangeError, /got number 4294967296$/);
  throwsError(() => new HashRing({ a: NaN }), RangeError, /got number NaN$/);
  throwsError(() => new HashRing({ a: undefined }), TypeError, /got undefined$/);
  throwsError(() => new HashRing({ a: 1n }), TypeError, /got bigint 1$/);
  throwsError(() => new HashRing(['a'], 'ketama'), TypeError, /^options must be an object .* got string "ketama"$/);
  throwsError(() => new HashRing(['a'], { layuot: 'ketama' }), TypeError, /^unknown option "layuot"/);
  throwsError(() => new HashRing(['a'], { layout: 1 }), TypeError, /^options\.layout must be a string, got number 1$/);

  const ring = new HashRing(['a', 'b']);
  for (const bad of [undefined, null, 1, {}, [], new Uint16Array(2), Symbol('k')]) {
    throwsError(() => ring.getNode(bad), TypeError, /^key must be a string or a Uint8Array, got /);
    throwsError(() => ring.getNodes(bad, 1), TypeError, /^key must be a string or a Uint8Array/);
  }
  throwsError(() => ring.getNodeMany('ab'), TypeError, /^keys must be an array .* got string "ab"$/);
  throwsError(() => ring.getNodeMany(['a', 'b', 3]), TypeError, /^keys\[2\] must be a string or a Uint8Array, got number 3$/);
  const many = Array.from({ length: 10000 }, (_, i) => `k${i}`);
  many[9000] = null;
  throwsError(() => ring.getNodeMany(many), TypeError, /^keys\[9000\] must be .* got null$/);
  throwsError(() => ring.getNodes('k', -1), RangeError, /^n must be an integer >= 0, got number -1$/);
  throwsError(() => ring.getNodes('k', 1.5), RangeError, /got number 1.5$/);
  throwsError(() => ring.getNodes('k', '2'), TypeError, /got string "2"$/);
  throwsError(() => ring.getNodes('k'), TypeError, /got undefined$/);
  throwsError(() => ring.addNode(1), TypeError, /^node must be a name \(string\) or a \{host, weight\} object, got number 1$/);
  throwsError(() => ring.addNode('c', 1.5), RangeError, /^weight of node "c" must be an integer/);
  throwsError(() => ring.addNode({ host: 'c', weight: 2 }, 2), TypeError, /not both$/);
  throwsError(() => ring.removeNode(1), TypeError, /^node name must be a string, got number 1$/);
  throwsError(() => ring.points(undefined), TypeError, /^node name must be a string, got undefined$/);
  // After all that, the ring is unchanged and usable.
  assert.deepEqual(ring.nodes, { a: 1, b: 1 });
  assert.deepEqual(ring.getNodeMany(['x', 'y']), [ring.getNode('x'), ring.getNode('y')]);
});

test('exceptions of user code pass through and leave the ring usable', () => {
  const ring = new HashRing(['a', 'b']);
  const boom = new Error('boom');
  const throwing = new Proxy(['x', 'y'], {
    get(target, prop) {
      if (prop === '1') throw boom;
      return Reflect.get(target, prop);
    },
  });
  assert.throws(() => ring.getNodeMany(throwing), (e) => e === boom);
  const { proxy, revoke } = Proxy.revocable([], {});
  revoke();
  assert.throws(() => ring.getNodeMany(proxy), TypeError);
  const hostile = new Proxy({}, {
    getPrototypeOf() {
      throw boom;
    },
  });
  assert.throws(() => ring.getNode(hostile), (e) => e === boom);
  assert.throws(() => new HashRing({ get a() { throw boom; } }), (e) => e === boom);
  assert.throws(() => ring.addNode({ get host() { throw boom; } }), (e) => e === boom);
  // Nothing is left borrowed: every method still works.
  ring.addNode('c');
  ring.removeNode('c');
  assert.deepEqual(ring.getNodeMany(['x', 'y']), [ring.getNode('x'), ring.getNode('y')]);
  assert.deepEqual(ring.nodes, { a: 1, b: 1 });
});

test('large batches: getNodeMany == getNode across chunk boundaries', () => {
  const ring = new HashRing({ a: 1, b: 2, c: 3, d: 4 }, { layout: 'md5_128' });
  const keys = Array.from({ length: 20000 }, (_, i) => (i % 3 ? `${i}`.repeat(i % 20) : `ü${i}`));
  keys[4095] = 'z'.repeat(5000); // one long key at the end of the first chunk
  assert.deepEqual(ring.getNodeMany(keys), keys.map((k) => ring.getNode(k)));
});

test('free() releases a ring; using it afterwards throws an Error', () => {
  const ring = new HashRing(['a']);
  ring.free();
  assert.throws(() => ring.getNode('k'), Error);
});

test('doc examples in the .d.ts hold', () => {
  const ring = new HashRing({ 'redis-a:6379': 1, 'redis-b:6379': 2 });
  assert.equal(ring.size, 2);
  assert.equal(ring.layout, 'ketama');
  assert.deepEqual(ring.nodes, { 'redis-a:6379': 1, 'redis-b:6379': 2 });
  assert.equal(ring.getNode('3f1c0a9e2b7d4c6f8a0b1c2d3e4f5a6b'), 'redis-b:6379');
  assert.deepEqual(ring.getNodes('user:42', 2), ['redis-a:6379', 'redis-b:6379']);
  assert.deepEqual(ring.getNodeMany(['a', 'b', 'c']), ['redis-a:6379', 'redis-b:6379', 'redis-a:6379']);
  assert.equal(ring.points('redis-a:6379'), 104);
});
