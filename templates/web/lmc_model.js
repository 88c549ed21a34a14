/* lmc_model.js - runs an lmc wasm32 artifact (lmc_model.wasm plus its weights file) in a browser
 * or in node, through the C API of lmc_model.h that the module exports.
 *
 *   import { loadModel } from './lmc_model.js';
 *   const model = await loadModel('lmc_model.wasm', 'weights.safetensors');
 *   const out = model.run({ x: { data: new Float32Array(16), shape: [2, 8] } });
 *   console.log(out.output0.data, out.output0.shape);
 *   model.dispose();
 *
 * Copied verbatim into every wasm32 artifact's web/ folder. No global state: every loadModel
 * call gets its own WebAssembly instance and memory, so a page may hold many models at once.
 * Inputs are checked here first (typed array type, rank, dims, symbol bounds) and a wrong one
 * throws an Error naming the input with the expected and the given value; the C runtime checks
 * them again. */

/* lmc_dtype codes (lmc_model.h: appended, never renumbered): name, bytes, typed array. Raw bits
 * for f16 and bf16 (Uint16Array); one value per byte for i4, u4 and bool. */
const DTYPES = [
  ['f64', 8, Float64Array],
  ['f32', 4, Float32Array],
  ['f16', 2, Uint16Array],
  ['bf16', 2, Uint16Array],
  ['i64', 8, BigInt64Array],
  ['i32', 4, Int32Array],
  ['i16', 2, Int16Array],
  ['i8', 1, Int8Array],
  ['u8', 1, Uint8Array],
  ['i4', 1, Int8Array],
  ['u4', 1, Uint8Array],
  ['bool', 1, Uint8Array],
  ['u16', 2, Uint16Array],
  ['u32', 4, Uint32Array],
  ['u64', 8, BigUint64Array],
].map(([name, size, array], code) => Object.freeze({ name, size, array, code }));

const ERR_LEN = 1024;
const ALIGN = 64; /* the weights data region must be this aligned to be used in place */
/* scratch layout (bytes): error text, then out-parameters (8-aligned) */
const S_ERR = 0;
const S_OUT = ERR_LEN; /* 64 bytes of out-parameters */
const SCRATCH = ERR_LEN + 64;

const isNode = typeof process !== 'undefined' && !!(process.versions && process.versions.node);

function describe(x) {
  if (x === null) return 'null';
  if (x === undefined) return 'undefined';
  if (Array.isArray(x)) return `an Array of ${x.length}`;
  if (typeof x === 'object') return (x.constructor && x.constructor.name) || 'an object';
  return `${typeof x} ${String(x).slice(0, 40)}`;
}

async function toBytes(src, what) {
  if (src instanceof Uint8Array) return src;
  if (src instanceof ArrayBuffer) return new Uint8Array(src);
  if (ArrayBuffer.isView(src)) return new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  if (typeof src === 'string' || src instanceof URL) {
    const text = String(src);
    if (isNode && !/^(https?|data|blob):/i.test(text)) {
      const fs = await import('node:fs/promises');
      const path = text.startsWith('file:') ? new URL(text) : text;
      return new Uint8Array(await fs.readFile(path));
    }
    const res = await fetch(src);
    if (!res.ok)
      throw new Error(`lmc: fetching the ${what} from ${text} failed: HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  }
  throw new TypeError(
    `lmc: the ${what} must be a URL, a path (node), an ArrayBuffer or a Uint8Array; ` +
      `got ${describe(src)}`,
  );
}

/* Stubs for any WASI import (the module normally has none): calls fail with ENOSYS. */
function importsFor(module) {
  const imports = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.kind !== 'function') {
      throw new Error(`lmc: the module imports ${imp.module}.${imp.name} (a ${imp.kind})`);
    }
    const table = imports[imp.module] || (imports[imp.module] = {});
    table[imp.name] =
      imp.name === 'proc_exit'
        ? (code) => {
            throw new Error(`lmc: the module called proc_exit(${code})`);
          }
        : () => 52;
  }
  return imports;
}

/** Load a model: `wasm` is the .wasm (URL, path in node, bytes or a WebAssembly.Module),
 * `weights` its weights file (URL, path in node or bytes). */
export async function loadModel(wasm, weights) {
  const modulePromise =
    wasm instanceof WebAssembly.Module
      ? Promise.resolve(wasm)
      : toBytes(wasm, 'wasm module').then((b) => WebAssembly.compile(b));
  const [module, bytes] = await Promise.all([modulePromise, toBytes(weights, 'weights')]);
  const instance = await WebAssembly.instantiate(module, importsFor(module));
  return new LmcModel(instance.exports, bytes);
}

class LmcModel {
  #ex;
  #handle = 0;
  #scratch = 0;
  #weights = 0;
  #buffers = []; /* per input: [pointer, bytes] of its data copy, and its shape */

  constructor(exports, bytes) {
    this.#ex = exports;
    if (typeof exports._initialize === 'function') exports._initialize();
    this.#scratch = this.#malloc(SCRATCH);
    try {
      this.#load(bytes);
      const h = this.#handle;
      this.symbols = {};
      for (let i = 0; i < exports.lmc_num_symbols(h); i++) {
        const [name, lo, hi] = this.#symbol(i);
        this.symbols[name] = [lo, hi];
      }
      this.inputs = Array.from({ length: exports.lmc_num_inputs(h) }, (_, i) =>
        this.#info(i, false),
      );
      this.outputs = Array.from({ length: exports.lmc_num_outputs(h) }, (_, i) =>
        this.#info(i, true),
      );
      Object.freeze(this.symbols);
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** Bytes of intermediate values the model uses (its arena). */
  get arenaBytes() {
    this.#alive();
    return this.#ex.lmc_arena_bytes(this.#handle) >>> 0;
  }

  /** Run on inputs `{name: {data, shape}}` or `[{data, shape}, ...]` in the model's input
   * order; returns `{outputName: {data, shape, dtype}}` (copies, owned by the caller). */
  run(inputs) {
    this.#alive();
    const list = this.#arrange(inputs);
    const bound = new Map();
    list.forEach((t, i) => this.#check(this.inputs[i], t, bound));
    list.forEach((t, i) => this.#set(i, t));
    const ex = this.#ex;
    if (ex.lmc_run(this.#handle) !== 0) throw new Error(`lmc: run failed: ${this.#lastError()}`);
    const out = {};
    this.outputs.forEach((spec, i) => {
      out[spec.name] = this.#output(i, spec);
    });
    return out;
  }

  /** Free the model and its memory (idempotent); run() afterwards throws. */
  dispose() {
    const ex = this.#ex;
    if (!ex) return;
    if (this.#handle) ex.lmc_model_free(this.#handle);
    for (const b of this.#buffers) if (b) (ex.free(b.data), ex.free(b.shape));
    if (this.#weights) ex.free(this.#weights);
    if (this.#scratch) ex.free(this.#scratch);
    this.#handle = this.#weights = this.#scratch = 0;
    this.#buffers = [];
    this.#ex = null;
  }

  // ---- memory ---------------------------------------------------------------------------

  #u8() {
    return new Uint8Array(this.#ex.memory.buffer);
  }

  #view() {
    return new DataView(this.#ex.memory.buffer);
  }

  #malloc(n) {
    const p = this.#ex.malloc(Math.max(1, n)) >>> 0;
    if (!p) throw new Error(`lmc: out of WebAssembly memory allocating ${n} bytes`);
    return p;
  }

  #cstr(p) {
    if (!p) return '';
    const u8 = this.#u8();
    let end = p;
    while (u8[end] !== 0) end++;
    return new TextDecoder().decode(u8.subarray(p, end));
  }

  #load(bytes) {
    const ex = this.#ex;
    const n = bytes.byteLength;
    this.#weights = this.#malloc(n + ALIGN);
    const at = Math.ceil(this.#weights / ALIGN) * ALIGN;
    this.#u8().set(bytes, at);
    const out = this.#scratch + S_OUT;
    const st = ex.lmc_model_load_memory(at, n, 1, out, this.#scratch + S_ERR, ERR_LEN);
    if (st !== 0) throw new Error(`lmc: loading the weights failed: ${this.#cstr(this.#scratch)}`);
    this.#handle = this.#view().getUint32(out, true);
  }

  #alive() {
    if (!this.#handle) throw new Error('lmc: the model was disposed');
  }

  #lastError() {
    return this.#cstr(this.#ex.lmc_last_error(this.#handle) >>> 0);
  }

  #status(st, what) {
    if (st !== 0) throw new Error(`lmc: ${what} failed: ${this.#lastError()}`);
  }

  #symbol(i) {
    const o = this.#scratch + S_OUT;
    this.#status(this.#ex.lmc_symbol_info(this.#handle, i, o, o + 8, o + 16), 'lmc_symbol_info');
    const v = this.#view();
    const name = this.#cstr(v.getUint32(o, true));
    return [name, Number(v.getBigInt64(o + 8, true)), Number(v.getBigInt64(o + 16, true))];
  }

  /* lmc_tensor_info on wasm32: name, dtype, rank, dims, dim_text (4 bytes each). */
  #info(i, output) {
    const o = this.#scratch + S_OUT;
    const fn = output ? this.#ex.lmc_output_info : this.#ex.lmc_input_info;
    this.#status(fn(this.#handle, i, o), output ? 'lmc_output_info' : 'lmc_input_info');
    const v = this.#view();
    const rank = v.getInt32(o + 8, true);
    const dims = v.getUint32(o + 12, true);
    const text = v.getUint32(o + 16, true);
    const shape = [];
    for (let k = 0; k < rank; k++) {
      const d = Number(v.getBigInt64(dims + 8 * k, true));
      shape.push(d >= 0 ? d : this.#cstr(v.getUint32(text + 4 * k, true)));
    }
    const dtype = DTYPES[v.getInt32(o + 4, true)];
    return Object.freeze({
      name: this.#cstr(v.getUint32(o, true)),
      dtype: dtype.name,
      shape: Object.freeze(shape),
      array: dtype.array.name,
    });
  }

  // ---- inputs ---------------------------------------------------------------------------

  #arrange(inputs) {
    const names = this.inputs.map((s) => s.name);
    if (Array.isArray(inputs)) {
      if (inputs.length !== names.length) {
        throw new Error(
          `lmc: expected ${names.length} input(s) (${names.join(', ')}), got ${inputs.length}`,
        );
      }
      return inputs;
    }
    if (inputs === null || typeof inputs !== 'object') {
      throw new TypeError(
        `lmc: inputs must be an object by name or an array; got ${describe(inputs)}`,
      );
    }
    const unknown = Object.keys(inputs).filter((k) => !names.includes(k));
    if (unknown.length) {
      throw new Error(
        `lmc: unknown input(s) ${unknown.map((k) => `'${k}'`).join(', ')}; ` +
          `the model's inputs are ${names.join(', ')}`,
      );
    }
    const missing = names.filter((k) => !(k in inputs));
    if (missing.length)
      throw new Error(`lmc: missing input(s) ${missing.map((k) => `'${k}'`).join(', ')}`);
    return names.map((k) => inputs[k]);
  }

  #check(spec, t, bound) {
    const where = `input '${spec.name}' (${spec.dtype}[${spec.shape.join(', ')}])`;
    if (t === null || typeof t !== 'object' || !('data' in t) || !('shape' in t)) {
      throw new TypeError(
        `lmc: ${where}: expected {data: ${spec.array}, shape: number[]}, got ${describe(t)}`,
      );
    }
    const dtype = DTYPES.find((d) => d.name === spec.dtype);
    if (!(t.data instanceof dtype.array)) {
      throw new TypeError(
        `lmc: ${where}: dtype: expected ${spec.dtype} (${spec.array}), got ${describe(t.data)}`,
      );
    }
    if (!Array.isArray(t.shape) && !ArrayBuffer.isView(t.shape)) {
      throw new TypeError(
        `lmc: ${where}: shape must be an array of dims, got ${describe(t.shape)}`,
      );
    }
    const shape = Array.from(t.shape);
    if (shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new Error(
        `lmc: ${where}: shape [${shape.join(', ')}] has a dim that is not an integer >= 0`,
      );
    }
    if (shape.length !== spec.shape.length) {
      throw new Error(
        `lmc: ${where}: rank: expected ${spec.shape.length}, got ${shape.length} ` +
          `(shape [${shape.join(', ')}])`,
      );
    }
    spec.shape.forEach((want, k) => {
      const got = shape[k];
      if (typeof want === 'number') {
        if (got !== want) throw new Error(`lmc: ${where} axis ${k}: expected ${want}, got ${got}`);
        return;
      }
      const bounds = this.symbols[want];
      if (!bounds) return; /* an expression of symbols: the C runtime checks it */
      if (got < bounds[0] || got > bounds[1]) {
        throw new Error(
          `lmc: ${where} axis ${k}: ${want} = ${got} is outside its bounds ` +
            `${bounds[0]}..${bounds[1]}`,
        );
      }
      const prev = bound.get(want);
      if (prev && prev.value !== got) {
        throw new Error(
          `lmc: ${where} axis ${k}: ${want} = ${got}, but input '${prev.input}' ` +
            `axis ${prev.axis} has ${want} = ${prev.value}`,
        );
      }
      if (!prev) bound.set(want, { value: got, input: spec.name, axis: k });
    });
    const count = shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== count) {
      throw new Error(
        `lmc: ${where}: data has ${t.data.length} element(s), ` +
          `shape [${shape.join(', ')}] needs ${count}`,
      );
    }
  }

  #set(i, t) {
    const ex = this.#ex;
    const spec = this.inputs[i];
    const dtype = DTYPES.find((d) => d.name === spec.dtype);
    const nbytes = t.data.byteLength;
    let b = this.#buffers[i];
    if (!b || b.bytes < nbytes) {
      if (b) ex.free(b.data);
      const data = this.#malloc(nbytes);
      b = this.#buffers[i] = {
        data,
        bytes: nbytes,
        shape: b ? b.shape : this.#malloc(8 * 16),
        rank: 16,
      };
    }
    const rank = t.shape.length;
    if (rank > b.rank) {
      ex.free(b.shape);
      b.shape = this.#malloc(8 * rank);
      b.rank = rank;
    }
    this.#u8().set(new Uint8Array(t.data.buffer, t.data.byteOffset, nbytes), b.data);
    const v = this.#view();
    for (let k = 0; k < rank; k++) v.setBigInt64(b.shape + 8 * k, BigInt(t.shape[k]), true);
    this.#status(
      ex.lmc_set_input(this.#handle, i, b.data, b.shape, rank, dtype.code),
      `input '${spec.name}'`,
    );
  }

  #output(i, spec) {
    const o = this.#scratch + S_OUT;
    this.#status(
      this.#ex.lmc_get_output(this.#handle, i, o, o + 4, o + 8),
      `output '${spec.name}'`,
    );
    const v = this.#view();
    const data = v.getUint32(o, true);
    const dims = v.getUint32(o + 4, true);
    const rank = v.getInt32(o + 8, true);
    const shape = [];
    for (let k = 0; k < rank; k++) shape.push(Number(v.getBigInt64(dims + 8 * k, true)));
    const dtype = DTYPES.find((d) => d.name === spec.dtype);
    const count = shape.reduce((a, b) => a * b, 1);
    const bytes = new Uint8Array(count * dtype.size); /* TypedArray.set: a plain memcpy */
    bytes.set(new Uint8Array(this.#ex.memory.buffer, data, bytes.length));
    return { data: new dtype.array(bytes.buffer), shape, dtype: spec.dtype };
  }
}

/** Deterministic example inputs for `model` at the given shapes (one per input, in order):
 * floats sin(0.37 i + k), integers (7 i + 3 k) mod 11, bool every other element, f16 / bf16
 * the bits of 1 + small steps. The example page and the tests use it. */
export function exampleInputs(model, shapes) {
  const out = {};
  model.inputs.forEach((spec, k) => {
    const shape = shapes[k];
    const dtype = DTYPES.find((d) => d.name === spec.dtype);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new dtype.array(n);
    for (let i = 0; i < n; i++) {
      const small = (7 * i + 3 * k) % 11;
      if (spec.dtype === 'f32' || spec.dtype === 'f64') data[i] = Math.sin(0.37 * i + k);
      else if (spec.dtype === 'f16') data[i] = 0x3c00 + small;
      else if (spec.dtype === 'bf16') data[i] = 0x3f80 + small;
      else if (spec.dtype === 'bool') data[i] = i % 2;
      else if (spec.dtype === 'i64' || spec.dtype === 'u64') data[i] = BigInt(small);
      else if (spec.dtype === 'i4') data[i] = small - 5;
      else if (spec.dtype === 'u4') data[i] = small;
      else data[i] = small;
    }
    out[spec.name] = { data, shape: Array.from(shape) };
  });
  return out;
}

export const dtypes = Object.freeze(Object.fromEntries(DTYPES.map((d) => [d.name, d.array])));
