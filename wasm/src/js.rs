//! The JavaScript functions the bindings call: a few built-ins, declared here rather than
//! pulling in `js-sys`, and the glue in `glue.js` (hot-path copying, argument checks).

use alloc::string::String;

use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// A JavaScript array.
    #[wasm_bindgen(js_name = Array)]
    pub type Array;

    #[wasm_bindgen(constructor, js_class = Array)]
    pub fn new() -> Array;

    #[wasm_bindgen(method, getter, structural)]
    pub fn length(this: &Array) -> u32;

    #[wasm_bindgen(method, structural, indexing_getter)]
    pub fn get(this: &Array, index: u32) -> JsValue;

    #[wasm_bindgen(method, js_name = push)]
    pub fn push(this: &Array, value: &JsValue) -> u32;

    /// The constructor's `nodes` argument.
    #[wasm_bindgen(typescript_type = "NodeList")]
    pub type NodeList;

    /// The constructor's `options` argument.
    #[wasm_bindgen(typescript_type = "HashRingOptions")]
    pub type Options;

    /// A key: a string or a `Uint8Array`.
    #[wasm_bindgen(typescript_type = "Key")]
    pub type Key;

    /// An array of keys.
    #[wasm_bindgen(typescript_type = "Key[]")]
    pub type Keys;

    /// `addNode`'s first argument: a name or a `{host, weight}` object.
    #[wasm_bindgen(typescript_type = "string | NodeSpec")]
    pub type NodeArg;

    /// A weight, or `n` of `getNodes`: an integer.
    #[wasm_bindgen(typescript_type = "number")]
    pub type Number;

    /// A node name.
    #[wasm_bindgen(typescript_type = "string")]
    pub type Name;
}

#[wasm_bindgen(module = "/src/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = setMemory)]
    pub fn set_memory(memory: &JsValue);

    #[wasm_bindgen(js_name = encodeKey)]
    pub fn encode_key(key: &JsValue, ptr: usize, cap: usize) -> f64;

    #[wasm_bindgen(js_name = keysLength)]
    pub fn keys_length(keys: &JsValue) -> f64;

    #[wasm_bindgen(js_name = takeError)]
    pub fn take_error() -> JsValue;

    #[wasm_bindgen(js_name = encodeMany)]
    pub fn encode_many(
        keys: &JsValue,
        start: u32,
        end: u32,
        ptr: usize,
        cap: usize,
        offs_ptr: usize,
    ) -> f64;

    #[wasm_bindgen(js_name = ownersArray)]
    pub fn owners_array(names: &Array, idx: &[u32]) -> JsValue;

    #[wasm_bindgen(js_name = nodesObject)]
    pub fn nodes_object(names: &Array, weights: &[u32]) -> JsValue;

    #[wasm_bindgen(js_name = nodeList, catch)]
    pub fn node_list(nodes: &JsValue) -> Result<Array, JsValue>;

    #[wasm_bindgen(js_name = nodeArg, catch)]
    pub fn node_arg(node: &JsValue, weight: &JsValue) -> Result<Array, JsValue>;

    #[wasm_bindgen(js_name = layoutOption, catch)]
    pub fn layout_option(options: &JsValue) -> Result<Option<String>, JsValue>;

    #[wasm_bindgen(js_name = countArg, catch)]
    pub fn count_arg(n: &JsValue) -> Result<f64, JsValue>;

    #[wasm_bindgen(js_name = typeError)]
    pub fn type_error(what: &str, expected: &str, value: &JsValue) -> JsValue;

    #[wasm_bindgen(js_name = keyError)]
    pub fn key_error(key: &JsValue, keys: &JsValue, index: u32) -> JsValue;
}
