// The ring page (ring.py): builds the store's ring with the ringsession WebAssembly package, asks
// it for the shard of the session's stand-in key, and draws the ring as SVG arcs.
// When done it sets document.body.dataset.ring to "ready" (or "error") and window.ringView to
// what it found, for people and for tests alike.

const SVG = 'http://www.w3.org/2000/svg';
const R = 120; // radius of the ring's centre line, in viewBox units
const WIDTH = 26; // width of the ring
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
  '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#ad494a'];

const data = JSON.parse(document.getElementById('ring-data').textContent);
const status = document.getElementById('status');

function colour(i) {
  return i < PALETTE.length ? PALETTE[i] : `hsl(${(i * 137.508) % 360} 65% 45%)`;
}

// A point on a circle of radius r at `turn` (a fraction of the circle, clockwise from 12 o'clock).
function at(turn, r) {
  const a = turn * 2 * Math.PI;
  return [r * Math.sin(a), -r * Math.cos(a)];
}

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function draw(svg, share) {
  const arcs = el('g', { fill: 'none', 'stroke-width': WIDTH }, svg);
  if (data.arcs.length && data.arcs.every((a) => a[2] === data.arcs[0][2])) {
    el('circle', { r: R, stroke: colour(data.arcs[0][2]) }, arcs);
  } else {
    for (const [start, end, node] of data.arcs) {
      const [x0, y0] = at(start, R);
      const [x1, y1] = at(end, R);
      const large = end - start > 0.5 ? 1 : 0;
      el('path', { d: `M${x0} ${y0}A${R} ${R} 0 ${large} 1 ${x1} ${y1}`, stroke: colour(node) }, arcs);
    }
  }
  // Tick marks every eighth of the circle, and the centre text.
  for (let i = 0; i < 8; i++) {
    const [x0, y0] = at(i / 8, R - WIDTH / 2 - 2);
    const [x1, y1] = at(i / 8, R - WIDTH / 2 - 8);
    el('line', { x1: x0, y1: y0, x2: x1, y2: y1, stroke: '#999', 'stroke-width': 1 }, svg);
  }
  const text = el('text', { 'text-anchor': 'middle', 'font-size': 13, fill: '#333' }, svg);
  text.textContent = `${data.layout} · ${data.nodes.length} node${data.nodes.length === 1 ? '' : 's'}`;
  el('text', { y: 18, 'text-anchor': 'middle', 'font-size': 11, fill: '#777' }, svg).textContent =
    `${data.nodes.reduce((s, n) => s + n.points, 0)} points`;

  const body = document.querySelector('#legend tbody');
  data.nodes.forEach((n, i) => {
    const row = body.insertRow();
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = colour(i);
    const name = row.insertCell();
    name.append(swatch, ' ', n.name);
    row.insertCell().textContent = String(n.weight);
    row.insertCell().textContent = String(n.points);
    row.insertCell().textContent = `${(100 * share[i]).toFixed(1)} %`;
    for (const c of [...row.cells].slice(1)) c.className = 'num';
  });
}

function mark(svg, turn, label) {
  const [x0, y0] = at(turn, R + WIDTH / 2 + 16);
  const [x1, y1] = at(turn, R - WIDTH / 2 - 4);
  el('line', { x1: x0, y1: y0, x2: x1, y2: y1, stroke: '#111', 'stroke-width': 2.5 }, svg);
  el('circle', { cx: x0, cy: y0, r: 4, fill: '#111' }, svg);
  const [tx, ty] = at(turn, R + WIDTH / 2 + 24);
  const anchor = tx > 5 ? 'start' : tx < -5 ? 'end' : 'middle';
  const text = el('text', { x: tx, y: ty + 4, 'text-anchor': anchor, 'font-size': 12, 'font-weight': 600 }, svg);
  text.textContent = label;
}

/** The arcs within `half` of `turn`, enlarged into the strip #closeup, with the marker. */
function closeup(turn, half) {
  const svg = document.getElementById('closeup');
  const W = 470;
  const x = (t) => ((t - (turn - half)) / (2 * half)) * W;
  for (const shift of [-1, 0, 1]) {
    for (const [start, end, node] of data.arcs) {
      const s = Math.max(start + shift, turn - half);
      const e = Math.min(end + shift, turn + half);
      if (e <= s) continue;
      el('rect', { x: x(s), y: 8, width: Math.max(x(e) - x(s), 0.5), height: 30, fill: colour(node) }, svg);
    }
  }
  el('line', { x1: W / 2, y1: 2, x2: W / 2, y2: 44, stroke: '#111', 'stroke-width': 2.5 }, svg);
  el('text', { x: W / 2, y: 58, 'text-anchor': 'middle', 'font-size': 12, 'font-weight': 600 }, svg)
    .textContent = 'your session';
}

/** The node owning the arc that contains `turn` (a fraction), from the drawn arcs. */
function arcOwner(turn) {
  for (const [start, end, node] of data.arcs) if (turn > start && turn <= end) return node;
  return data.arcs.length ? data.arcs[0][2] : -1;
}

async function main() {
  const svg = document.getElementById('ring');
  const share = data.nodes.map(() => 0);
  for (const [start, end, node] of data.arcs) share[node] += end - start;
  draw(svg, share);
  if (!data.wasm) {
    throw new Error('the WebAssembly build is missing on the server: run make build-wasm');
  }
  const { default: init, HashRing } = await import(data.wasm);
  await init();
  const ring = new HashRing(
    data.nodes.map((n) => ({ host: n.name, weight: n.weight })),
    { layout: data.layout },
  );
  // The browser's ring is the server's: same nodes, same point counts.
  const samePoints = data.nodes.every((n) => ring.points(n.name) === n.points);
  const view = { layout: ring.layout, size: ring.size, samePoints };
  if (data.session) {
    const wasmNode = ring.getNode(data.session.standIn);
    const index = data.nodes.findIndex((n) => n.name === wasmNode);
    mark(svg, data.session.position, 'your session');
    closeup(data.session.position, 0.015);
    Object.assign(view, {
      wasmNode,
      serverNode: data.session.server,
      markerNode: data.nodes[arcOwner(data.session.position)]?.name,
    });
    view.agree = wasmNode === data.session.server;
    const wasmEl = document.getElementById('wasm-node');
    wasmEl.textContent = wasmNode ?? '(none)';
    if (index >= 0) wasmEl.style.color = colour(index);
    const verdict = document.getElementById('verdict');
    verdict.textContent = view.agree
      ? '✓ the browser and the server agree'
      : '✗ the browser and the server disagree';
    verdict.classList.add(view.agree ? 'agree' : 'differ');
  }
  ring.free();
  status.textContent = samePoints
    ? `WebAssembly ring ready: ${view.size} node${view.size === 1 ? '' : 's'}, the same points as the server's.`
    : 'WebAssembly ring ready, but its points differ from the server’s!';
  window.ringView = view;
  document.body.dataset.ring = 'ready';
}

main().catch((e) => {
  status.textContent = `Error: ${e.message}`;
  status.classList.add('differ');
  window.ringView = { error: String(e.message) };
  document.body.dataset.ring = 'error';
});
