//! `ringsession-wasm`: the JavaScript face of [`ringsession_core`], built with wasm-bindgen into
//! the npm package `ringsession`.
//!
//! A Node service or a web page computes exactly the placements that the Rust core (and so the
//! Python package) computes. This crate only converts: JS values in, JS values out, core errors
//! to `Error`s; every rule about the ring lives in the core.
//!
//! # Features
//! None.
//
// ---- crossing the boundary ---------------------------------------------------------------------
//
// A lookup costs about one MD5, so moving the key in and the name out must stay cheap. Measured
// side by side in one process (Node 20, 10 nodes, 100 000 random 32-hex keys, ns per getNode on a
// busy 2-core machine; medians of 9 interleaved passes):
//
//   key in                                   name out                     ns/key
//   `JsValue` + glue.js encodeKey (this)     cached JS string, Result       513
//   `&str` (wasm-bindgen's glue)             cached JS string, Result       554
//   `JsValue` + `as_string()`                cached JS string               589
//   `&str`                                   `String` (TextDecoder)         837
//   for scale: the same without `Result`: encodeKey 450, `&str` 430.
//
// - Key in: `&str` makes the generated glue call `__wbindgen_malloc` (one more call into wasm),
//   copy the string there and free it after the call, and cannot take a `Uint8Array`; reading a
//   `JsValue` with `as_string()` does the same through one more call out. `getNode` takes the key
//   as a `JsValue` and makes one call out to glue.js, which writes the bytes straight into a
//   buffer that the ring owns and reuses (`buf`): ASCII with a plain loop, anything else with
//   `TextEncoder.encodeInto`, a `Uint8Array` with `set`. No allocation per call.
// - Name out: a `String` costs an allocation, a copy and a TextDecoder call per key. Node names
//   become JS strings once per ring change (`names`); a lookup returns a clone of the reference.
// - `Result`: about 60 ns per call (the answer comes back through the externref table). It stays:
//   a bad key must throw, and throwing from JS through the wasm frames would leave the ring
//   borrowed for good.
// - `getNodeMany` copies a chunk of keys with one call out (all-ASCII strings: one `join` and one
//   `encodeInto`), hashes eight at a time in the core's lane-parallel MD5 (simd128 in this
//   build), and builds the answer array from the cached names with one more call.

//
// ---- errors and size --------------------------------------------------------------------------
//
// Every misuse throws an `Error`: the core's errors as `Error` with the core's message
// (`JsError`), wrong argument types and shapes as `TypeError`/`RangeError` made by `glue.js`.
// That is why the methods return `Result<_, JsValue>` rather than `Result<_, JsError>` (a
// `JsError` can only be made from a message): checking JS shapes and writing messages in JS keeps
// them out of the .wasm, whose size is dominated by the core, the allocator and `fmt`.
//
// On wasm32 the crate is `no_std`: std's panic machinery (the hook and message formatting) would
// be a good part of the module, yet a panic on wasm32-unknown-unknown can only trap. The panic
// handler below traps at once, and the global allocator is dlmalloc, the one std uses there.
// Nothing here panics on a caller's input.
#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use ringsession_core::{HashRing as Ring, Layout};
use wasm_bindgen::prelude::*;

mod js;

#[cfg(all(target_arch = "wasm32", not(test)))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** A key: a string (hashed as its UTF-8 bytes) or raw bytes. */
export type Key = string | Uint8Array;

/** A node with its weight (an integer >= 1; 1 if left out). */
export interface NodeSpec {
  host: string;
  weight?: number;
}

/** Node names (weight 1 each), `{host, weight}` objects, or an object name -> weight. */
export type NodeList = Array<string | NodeSpec> | Record<string, number>;

/** How points are placed: one layout per peer library (see the package README). */
export type Layout = "ketama" | "hash_ring" | "md5_128" | "uhashring";

/** Options of `new HashRing`. */
export interface HashRingOptions {
  /** The layout; `"ketama"` if left out. */
  layout?: Layout;
}
"#;

/// Keys of `getNodeMany` encoded per call out to JS: bounds the buffer, not the batch.
const CHUNK: usize = 4096;

/// No owner, in the index array handed to `glue.js`.
const NO_OWNER: u32 = u32::MAX;

/// glue.js's copying functions: a key is neither a string nor a `Uint8Array`. (Codes from -3 down
/// ask for room: -3 - n for n bytes.)
const BAD_TYPE: f64 = -1.0;
/// glue.js's copying functions: user code threw, and `takeError()` holds the exception.
const THREW: f64 = -2.0;

/// A core error as a JS `Error` carrying the core's message.
fn core_error(e: ringsession_core::Error) -> JsValue {
    // Not `JsError::from(e)`: its `to_string()` `expect`s the write to succeed, and that panic
    // message's formatting (`Formatter::pad`, about 1.4 KB) would stay in the .wasm for good.
    let mut message = String::new();
    let _ = write!(message, "{e}");
    JsError::new(&message).into()
}

/// A weighted consistent hash ring over named nodes.
///
/// The same nodes (in the same order) always give the same ring, in every language that
/// ringsession supports; `addNode` and `removeNode` give exactly the ring that building from
/// the new list gives.
///
/// ```js
/// const ring = new HashRing({ 'redis-a:6379': 1, 'redis-b:6379': 2 });
/// ring.getNode('3f1c0a9e2b7d4c6f8a0b1c2d3e4f5a6b'); // 'redis-b:6379'
/// ```
#[wasm_bindgen]
pub struct HashRing {
    ring: Ring,
    /// Node names as JS strings, by insertion index (answers reuse them).
    names: Vec<JsValue>,
    /// The same names as one JS array, for `getNodeMany` and `nodes`.
    names_array: js::Array,
    /// Key bytes, written by `glue.js` and reused from call to call.
    buf: Vec<u8>,
    /// `getNodeMany`: key offsets into `buf`, owners, and owners as `u32` for JS.
    offs: Vec<u32>,
    owners: Vec<Option<usize>>,
    idx: Vec<u32>,
}

#[wasm_bindgen]
impl HashRing {
    /// Builds a ring.
    ///
    /// `nodes` is an array of names (weight 1 each) and/or `{host, weight}` objects, or an
    /// object name -> weight. Weights are integers >= 1. `options.layout` is one of `"ketama"`
    /// (the default), `"hash_ring"`, `"md5_128"`, `"uhashring"`.
    ///
    /// Throws a `TypeError` or `RangeError` for a malformed argument, and an `Error` for an
    /// unknown layout, an empty or duplicate name, weight 0, or a ring too large.
    ///
    /// ```js
    /// new HashRing(['10.0.0.1:6379', '10.0.0.2:6379']);
    /// new HashRing([{ host: 'a:6379', weight: 2 }, { host: 'b:6379' }], { layout: 'uhashring' });
    /// new HashRing({ 'a:6379': 2, 'b:6379': 1 }, { layout: 'hash_ring' });
    /// ```
    #[wasm_bindgen(constructor)]
    pub fn new(nodes: &js::NodeList, options: Option<js::Options>) -> Result<HashRing, JsValue> {
        // Cheap, and it keeps glue.js independent of how and when the module was initialised.
        js::set_memory(&wasm_bindgen::memory());
        let layout = match js::layout_option(options.as_deref().unwrap_or(&JsValue::UNDEFINED))? {
            Some(name) => name.parse::<Layout>().map_err(core_error)?,
            None => Layout::default(),
        };
        // [name, weight, name, weight, ...], types checked by glue.js.
        let flat = js::node_list(nodes)?;
        let list: Vec<(String, u32)> = (0..flat.length() / 2)
            .map(|i| {
                let name = flat.get(2 * i).as_string().unwrap_or_default();
                (
                    name,
                    flat.get(2 * i + 1).as_f64().unwrap_or_default() as u32,
                )
            })
            .collect();
        let ring = Ring::new(layout, list.iter().map(|(n, w)| (n, *w))).map_err(core_error)?;
        let mut this = HashRing {
            ring,
            names: Vec::new(),
            names_array: js::Array::new(),
            buf: vec![0; 256],
            offs: Vec::new(),
            owners: Vec::new(),
            idx: Vec::new(),
        };
        this.refresh_names();
        Ok(this)
    }

    /// The node that owns `key`, or `undefined` if the ring has no nodes.
    ///
    /// `key` is a string (hashed as UTF-8) or a `Uint8Array`; anything else throws a
    /// `TypeError`.
    ///
    /// ```js
    /// ring.getNode('3f1c0a9e2b7d4c6f8a0b1c2d3e4f5a6b'); // 'redis-b:6379'
    /// ring.getNode(new Uint8Array([1, 2, 3]));
    /// ```
    #[wasm_bindgen(js_name = getNode, unchecked_return_type = "string | undefined")]
    pub fn get_node(&mut self, key: &js::Key) -> Result<JsValue, JsValue> {
        let len = self.load_key(key)?;
        let owner = self.buf.get(..len).and_then(|k| self.ring.get_index(k));
        Ok(self.name(owner))
    }

    /// Up to `n` distinct nodes for `key`: its owner first, then the next distinct nodes
    /// clockwise (the failover order).
    ///
    /// ```js
    /// ring.getNodes('user:42', 2); // ['redis-a:6379', 'redis-b:6379']
    /// ```
    #[wasm_bindgen(js_name = getNodes, unchecked_return_type = "string[]")]
    pub fn get_nodes(&mut self, key: &js::Key, n: &js::Number) -> Result<JsValue, JsValue> {
        let n = js::count_arg(n)? as usize;
        let len = self.load_key(key)?;
        let order: Vec<u32> = match self.buf.get(..len) {
            Some(k) => self
                .ring
                .get_n_indices(k, n)
                .into_iter()
                .map(|i| i as u32)
                .collect(),
            None => Vec::new(),
        };
        Ok(js::owners_array(&self.names_array, &order))
    }

    /// The owners of many keys at once: `keys.map(k => ring.getNode(k))`, several times faster.
    ///
    /// ```js
    /// ring.getNodeMany(['a', 'b', 'c']); // ['redis-a:6379', 'redis-b:6379', 'redis-a:6379']
    /// ```
    #[wasm_bindgen(js_name = getNodeMany, unchecked_return_type = "(string | undefined)[]")]
    pub fn get_node_many(&mut self, keys: &js::Keys) -> Result<JsValue, JsValue> {
        let total = js::keys_length(keys);
        if total == BAD_TYPE {
            return Err(js::type_error(
                "keys",
                "an array of strings or Uint8Arrays",
                keys,
            ));
        }
        if total < 0.0 {
            return Err(js::take_error());
        }
        let total = total as usize;
        self.idx.clear();
        self.idx.reserve(total);
        let mut start = 0;
        while start < total {
            let end = total.min(start + CHUNK);
            let bytes = self.load_many(keys, start, end)?;
            let buf = self.buf.get(..bytes).unwrap_or_default();
            let batch: Vec<&[u8]> = self
                .offs
                .windows(2)
                .map(|w| buf.get(w[0] as usize..w[1] as usize).unwrap_or_default())
                .collect();
            self.ring.get_many_indices(&batch, &mut self.owners);
            self.idx
                .extend(self.owners.iter().map(|o| o.map_or(NO_OWNER, |i| i as u32)));
            start = end;
        }
        Ok(js::owners_array(&self.names_array, &self.idx))
    }

    /// Adds a node at the end of the list; `weight` defaults to 1.
    ///
    /// `node` is a name or a `{host, weight}` object (then leave `weight` out). Throws if the
    /// name is empty or already on the ring, or the weight is not an integer >= 1.
    ///
    /// ```js
    /// ring.addNode('redis-c:6379', 2);
    /// ring.addNode({ host: 'redis-d:6379', weight: 1 });
    /// ```
    #[wasm_bindgen(js_name = addNode)]
    pub fn add_node(
        &mut self,
        node: &js::NodeArg,
        weight: Option<js::Number>,
    ) -> Result<(), JsValue> {
        let pair = js::node_arg(node, weight.as_deref().unwrap_or(&JsValue::UNDEFINED))?;
        let name = pair.get(0).as_string().unwrap_or_default();
        let weight = pair.get(1).as_f64().unwrap_or_default() as u32;
        self.ring.add(&name, weight).map_err(core_error)?;
        self.refresh_names();
        Ok(())
    }

    /// Removes a node. Throws if no node of this name is on the ring.
    ///
    /// ```js
    /// ring.removeNode('redis-a:6379');
    /// ```
    #[wasm_bindgen(js_name = removeNode)]
    pub fn remove_node(&mut self, name: &js::Name) -> Result<(), JsValue> {
        self.ring.remove(&name_arg(name)?).map_err(core_error)?;
        self.refresh_names();
        Ok(())
    }

    /// How many points the node has on the ring (0 if its weight is too small to get any).
    /// Throws if no node of this name is on the ring.
    ///
    /// ```js
    /// ring.points('redis-a:6379'); // 104 (26 digests of 4 points)
    /// ```
    pub fn points(&self, name: &js::Name) -> Result<f64, JsValue> {
        // At most MAX_POINTS (2^23): exact as a JS number.
        let points = self.ring.points(&name_arg(name)?).map_err(core_error)?;
        Ok(points as f64)
    }

    /// The nodes and their weights as a fresh plain object name -> weight (a node named
    /// `__proto__` is an own property like any other).
    ///
    /// ```js
    /// ring.nodes; // { 'redis-a:6379': 1, 'redis-b:6379': 2 }
    /// ```
    #[wasm_bindgen(getter, unchecked_return_type = "Record<string, number>")]
    pub fn nodes(&self) -> JsValue {
        let weights: Vec<u32> = self.ring.nodes().map(|(_, w)| w).collect();
        js::nodes_object(&self.names_array, &weights)
    }

    /// The number of nodes.
    ///
    /// ```js
    /// ring.size; // 2
    /// ```
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        self.ring.len() as u32
    }

    /// The ring's layout: `"ketama"`, `"hash_ring"`, `"md5_128"` or `"uhashring"`.
    ///
    /// ```js
    /// ring.layout; // 'ketama'
    /// ```
    #[wasm_bindgen(getter, unchecked_return_type = "Layout")]
    pub fn layout(&self) -> String {
        self.ring.layout().name().into()
    }
}

impl HashRing {
    /// Rebuilds the cached JS names after a change of the node list.
    fn refresh_names(&mut self) {
        self.names = self
            .ring
            .nodes()
            .map(|(n, _)| JsValue::from_str(n))
            .collect();
        self.names_array = js::Array::new();
        for name in &self.names {
            self.names_array.push(name);
        }
    }

    fn name(&self, index: Option<usize>) -> JsValue {
        index
            .and_then(|i| self.names.get(i))
            .cloned()
            .unwrap_or(JsValue::UNDEFINED)
    }

    /// Has JS write `key` into `buf` (growing it if needed); returns its length in bytes.
    fn load_key(&mut self, key: &JsValue) -> Result<usize, JsValue> {
        loop {
            let r = js::encode_key(key, self.buf.as_mut_ptr() as usize, self.buf.len());
            if r >= 0.0 {
                return Ok(r as usize);
            }
            if r == BAD_TYPE {
                return Err(js::key_error(key, &JsValue::UNDEFINED, 0));
            }
            self.grow(r)?;
        }
    }

    /// Grows `buf` as a "too small" code of glue.js asks; any other code is an exception of
    /// user code that glue.js caught, rethrown here.
    fn grow(&mut self, code: f64) -> Result<(), JsValue> {
        // THREW, or anything else that is not a size request (NaN included).
        if code.is_nan() || code > THREW - 1.0 {
            return Err(js::take_error());
        }
        // At least double, so that the loops around this always end.
        let need = ((-code - 3.0) as usize).max(2 * self.buf.len());
        self.buf.resize(need, 0);
        Ok(())
    }

    /// Has JS write `keys[start..end]` into `buf` and their offsets into `offs`; returns the
    /// bytes written.
    fn load_many(&mut self, keys: &JsValue, start: usize, end: usize) -> Result<usize, JsValue> {
        self.offs.clear();
        self.offs.resize(end - start + 1, 0);
        loop {
            let r = js::encode_many(
                keys,
                start as u32,
                end as u32,
                self.buf.as_mut_ptr() as usize,
                self.buf.len(),
                self.offs.as_mut_ptr() as usize,
            );
            if r >= 0.0 {
                return Ok(r as usize);
            }
            if r == BAD_TYPE {
                let i = self.offs.first().copied().unwrap_or_default();
                return Err(js::key_error(&JsValue::UNDEFINED, keys, i));
            }
            self.grow(r)?;
        }
    }
}

fn name_arg(name: &JsValue) -> Result<String, JsValue> {
    name.as_string()
        .ok_or_else(|| js::type_error("node name", "a string", name))
}
