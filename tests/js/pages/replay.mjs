// Replays a vector file (tests/vectors/*.json) against a HashRing class and counts what it
// checked and what failed. No Node or DOM APIs: the browser test runs it in Chromium against the
// web build, and browser.test.mjs runs it in Node to know what the page must report.

/** Replays `data` (a parsed vector file); returns {checked, failures}. */
export function replay(HashRing, data) {
  const out = { checked: 0, failures: [] };
  const check = (ok, what) => {
    out.checked += 1;
    if (!ok && out.failures.length < 20) out.failures.push(`${data.layout}: ${what}`);
  };
  for (const c of data.cases) {
    let list = [];
    let ring;
    c.states.forEach((state, s) => {
      const where = `${c.name} state ${s} (${state.op})`;
      if (state.op === 'build') {
        list = c.nodes.map(([name, weight]) => [name, weight]);
        ring = new HashRing(list.map(([host, weight]) => ({ host, weight })), { layout: data.layout });
      } else if (state.op === 'remove') {
        list = list.filter(([name]) => name !== state.node);
        ring.removeNode(state.node);
      } else {
        list.push([state.node, state.weight]);
        ring.addNode(state.node, state.weight);
      }
      for (const [name] of list) {
        check(ring.points(name) === state.points[name], `${where}: points of ${name}`);
      }
      const many = ring.getNodeMany(c.keys);
      c.keys.forEach((key, i) => {
        const want = state.owners[i] ?? undefined;
        check(ring.getNode(key) === want, `${where}: owner of ${JSON.stringify(key)}`);
        check(many[i] === want, `${where}: getNodeMany owner of ${JSON.stringify(key)}`);
      });
      for (const q of (c.get_nodes ?? []).filter((q) => q.state === s)) {
        const got = ring.getNodes(q.key, q.n);
        check(
          got.length === q.expect.length && got.every((n, i) => n === q.expect[i]),
          `${where}: getNodes(${JSON.stringify(q.key)}, ${q.n}) = ${JSON.stringify(got)}`,
        );
      }
    });
    ring.free();
  }
  return out;
}
