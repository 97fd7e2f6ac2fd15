// Hot-path glue of ringsession-wasm, imported by src/js.rs (wasm-bindgen copies it into the
// package as a snippet). It only moves bytes and values across the boundary; every decision about
// the ring is made in Rust.
//
// Why this file exists: wasm-bindgen passes a `&str` argument by allocating it in wasm memory
// (`__wbindgen_malloc`, an extra call into wasm) and freeing it after the call, and returns a
// `String` by decoding UTF-8 with TextDecoder. A lookup is cheap enough that both show. Here the
// key is written straight into a buffer that the ring owns and reuses (ASCII with a plain loop,
// anything else with TextEncoder.encodeInto), and answers are node names that were turned into
// JS strings once per ring change.

let memory = null;
let bytes = new Uint8Array(0);
const encoder = new TextEncoder();

/** Called once at start-up with the module's WebAssembly.Memory. */
export function setMemory(m) {
  memory = m;
  bytes = new Uint8Array(m.buffer);
}

// A grown memory detaches the old ArrayBuffer (byteLength 0): take a fresh view then.
function view() {
  if (bytes.byteLength === 0) bytes = new Uint8Array(memory.buffer);
  return bytes;
}

// Return codes of the copying functions, besides a byte count (>= 0):
const BAD_TYPE = -1; // a key is neither a string nor a Uint8Array
const THREW = -2; // user code (a Proxy, a getter) threw: takeError() has the exception
// -3 - need: the buffer is too small; `need` bytes are enough.
const tooSmall = (need) => -3 - need;

// An exception of user code, caught so that it does not unwind through wasm (which would leave
// the ring borrowed for good) and handed back to Rust, which rethrows it.
let pending;

/** The exception that the last THREW stands for. */
export function takeError() {
  const e = pending;
  pending = undefined;
  return e;
}

// Writes `key` at `ptr` (at most `cap` bytes) and returns the number of bytes written, or
// BAD_TYPE, or tooSmall(room enough for this key).
function put(key, u8, ptr, cap) {
  if (typeof key === 'string') {
    const n = key.length;
    if (n > cap) return tooSmall(3 * n);
    let i = 0;
    for (; i < n; i++) {
      const c = key.charCodeAt(i);
      if (c > 0x7f) break;
      u8[ptr + i] = c;
    }
    if (i === n) return n;
    // UTF-8 takes at most 3 bytes per UTF-16 unit; lone surrogates become U+FFFD.
    if (i + 3 * (n - i) > cap) return tooSmall(3 * n);
    return i + encoder.encodeInto(key.substring(i), u8.subarray(ptr + i, ptr + cap)).written;
  }
  if (key instanceof Uint8Array) {
    const n = key.length;
    if (n > cap) return tooSmall(n);
    u8.set(key, ptr);
    return n;
  }
  return BAD_TYPE;
}

/** One key into the buffer at `ptr` (see `put`; THREW if the key's own code threw). */
export function encodeKey(key, ptr, cap) {
  try {
    return put(key, view(), ptr, cap);
  } catch (e) {
    pending = e;
    return THREW;
  }
}

/** `keys.length`, or BAD_TYPE if `keys` is not an array, or THREW. */
export function keysLength(keys) {
  try {
    return Array.isArray(keys) ? keys.length : BAD_TYPE;
  } catch (e) {
    pending = e;
    return THREW;
  }
}

/**
 * keys[start..end] into the buffer at `ptr`, back to back; offsets (relative to `ptr`) into the
 * u32 array at `offsPtr`, end - start + 1 of them. Returns the total length; or BAD_TYPE with the
 * key's index in offs[0]; or THREW; or tooSmall(room enough for the whole range).
 */
export function encodeMany(keys, start, end, ptr, cap, offsPtr) {
  try {
    return copyMany(keys, start, end, ptr, cap, offsPtr);
  } catch (e) {
    pending = e;
    return THREW;
  }
}

function copyMany(keys, start, end, ptr, cap, offsPtr) {
  const u8 = view();
  const offs = new Uint32Array(u8.buffer, offsPtr, end - start + 1);
  offs[0] = 0;
  // The common case, ASCII strings (session ids): one join and one encodeInto for the range,
  // which beats a charCodeAt loop per key; the offsets are then the running string lengths.
  let at = 0;
  let i = start;
  for (; i < end; i++) {
    const k = keys[i];
    if (typeof k !== 'string') break;
    at += k.length;
    offs[i - start + 1] = at;
  }
  if (i === end && at <= cap) {
    const all = (start === 0 && end === keys.length ? keys : keys.slice(start, end)).join('');
    const r = encoder.encodeInto(all, u8.subarray(ptr, ptr + at));
    if (r.read === at && r.written === at) return at;
  }
  at = 0;
  for (let i = start; i < end; i++) {
    const n = put(keys[i], u8, ptr + at, cap - at);
    if (n === BAD_TYPE) {
      offs[0] = i;
      return BAD_TYPE;
    }
    if (n < 0) {
      let need = at;
      for (let j = i; j < end; j++) {
        const k = keys[j];
        need += typeof k === 'string' ? 3 * k.length : k instanceof Uint8Array ? k.length : 0;
      }
      return tooSmall(need);
    }
    at += n;
    offs[i - start + 1] = at;
  }
  return at;
}

/** The answer of getNodeMany: names[idx[i]], or undefined where idx[i] is 0xffffffff. */
export function ownersArray(names, idx) {
  const n = idx.length;
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const j = idx[i];
    out[i] = j === 0xffffffff ? undefined : names[j];
  }
  return out;
}

/** A plain object name -> weight; defineProperty, so a node named "__proto__" is an own key. */
export function nodesObject(names, weights) {
  const out = {};
  for (let i = 0; i < names.length; i++) {
    Object.defineProperty(out, names[i], {
      value: weights[i],
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

// ---- arguments (cold paths: building a ring, changing it, and errors) ----------------------------
//
// Argument checks that are only about JS types and shapes live here, which keeps the .wasm small;
// every rule about rings (empty or duplicate names, weight 0, layout names, ring size) is the
// core's, and its errors reach JS with the core's messages.

/** Whether `v` is a plain object: {...}, Object.create(null) or a JSON object. */
function isPlainObject(v) {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === null || proto === Object.prototype;
}

/** A short description of a value for error messages: `number -1`, `string "x"`, `Map`. */
function describe(v) {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'undefined':
      return 'undefined';
    case 'string':
      return 'string ' + JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
    case 'number':
    case 'bigint':
    case 'boolean':
      return typeof v + ' ' + String(v);
    case 'object': {
      if (Array.isArray(v)) return 'array';
      const proto = Object.getPrototypeOf(v);
      if (proto === null || proto === Object.prototype) return 'object';
      const name = proto.constructor && proto.constructor.name;
      return typeof name === 'string' && name ? name : 'object';
    }
    default:
      return typeof v;
  }
}

/** A TypeError "`what` must be `expected`, got ...". */
export function typeError(what, expected, value) {
  return new TypeError(`${what} must be ${expected}, got ${describe(value)}`);
}

// A weight: an integer from 0 to 2^32 - 1 (0 goes on to the core, which refuses it with its own
// message); `undefined` or `null` is 1 where the weight may be left out (wasm-bindgen passes an
// optional argument given as null on as left out, so {host, weight: null} means the same).
function weight(w, name, optional) {
  if ((w === undefined || w === null) && optional) return 1;
  if (Number.isInteger(w) && w >= 0 && w <= 0xffffffff) return w;
  const what = `weight of node ${JSON.stringify(name)}`;
  if (typeof w !== 'number') throw typeError(what, 'an integer from 1 to 4294967295', w);
  throw new RangeError(`${what} must be an integer from 1 to 4294967295, got ${describe(w)}`);
}

// A {host, weight} object, pushed onto `out` as name, weight.
function spec(obj, what, out) {
  const host = obj.host;
  if (typeof host !== 'string') throw typeError(`${what}.host`, 'a string (the node name)', host);
  out.push(host, weight(obj.weight, host, true));
}

/** The constructor's `nodes` as [name, weight, name, weight, ...]; throws on a bad entry. */
export function nodeList(nodes) {
  const out = [];
  if (Array.isArray(nodes)) {
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i];
      if (typeof node === 'string') out.push(node, 1);
      else if (isPlainObject(node)) spec(node, `nodes[${i}]`, out);
      else throw typeError(`nodes[${i}]`, 'a node name (string) or a {host, weight} object', node);
    }
  } else if (isPlainObject(nodes)) {
    for (const [name, w] of Object.entries(nodes)) out.push(name, weight(w, name, false));
  } else {
    throw typeError(
      'nodes',
      'an array of names, an array of {host, weight} objects, or an object name -> weight',
      nodes,
    );
  }
  return out;
}

/** `addNode`'s arguments as [name, weight]; throws on bad ones. */
export function nodeArg(node, w) {
  if (typeof node === 'string') return [node, weight(w, node, true)];
  if (isPlainObject(node)) {
    if (w !== undefined) {
      throw new TypeError(
        'give the weight either in the {host, weight} object or as the second argument, not both',
      );
    }
    const out = [];
    spec(node, 'node', out);
    return out;
  }
  throw typeError('node', 'a name (string) or a {host, weight} object', node);
}

/** `options.layout` (undefined for the default); throws on anything but {layout: string}. */
export function layoutOption(options) {
  if (options === undefined || options === null) return undefined;
  if (!isPlainObject(options)) throw typeError('options', 'an object such as { layout: "ketama" }', options);
  for (const key of Object.keys(options)) {
    if (key !== 'layout') throw new TypeError(`unknown option ${JSON.stringify(key)}; the only option is "layout"`);
  }
  const layout = options.layout;
  if (layout !== undefined && typeof layout !== 'string') throw typeError('options.layout', 'a string', layout);
  return layout;
}

/** `n` of getNodes: a non-negative integer; throws otherwise. */
export function countArg(n) {
  if (Number.isInteger(n) && n >= 0) return Math.min(n, 0xffffffff);
  if (typeof n !== 'number') throw typeError('n', 'an integer >= 0', n);
  throw new RangeError(`n must be an integer >= 0, got ${describe(n)}`);
}

/** The TypeError of a key that is neither a string nor a Uint8Array (`keys[i]`, or `key`). */
export function keyError(key, keys, i) {
  return keys === undefined
    ? typeError('key', 'a string or a Uint8Array', key)
    : typeError(`keys[${i}]`, 'a string or a Uint8Array', keys[i]);
}
