// bench.mjs - times one model in node: the lmc wasm32 web package (lmc_model.js) against
// onnxruntime-web (its wasm backend, one thread) on the same inputs, runs interleaved.
// Usage: node bench.mjs config.json; prints one JSON line. The config (benchmarks/wasm.py):
//   { lmc_web, onnx, ort_prefix, inputs: [{name, dtype, shape, file}], reps, warmup, out_dir }
// Inputs are raw little-endian files; the last run's outputs are written to out_dir as
// lmc_<i>.bin / ort_<i>.bin for the Python side to check against PyTorch.
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(await readFile(process.argv[2], 'utf8'));
const ARRAYS = { f32: Float32Array, f64: Float64Array, i64: BigInt64Array, i32: Int32Array };
const ORT_TYPES = { f32: 'float32', f64: 'float64', i64: 'int64', i32: 'int32' };

async function tensor(spec) {
  const bytes = await readFile(spec.file);
  const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  return { data: new ARRAYS[spec.dtype](copy), shape: spec.shape };
}
const inputs = await Promise.all(config.inputs.map(tensor));

const now = () => performance.now();
const result = { node: process.version, lmc: { times: [] }, ort: { times: [] } };

// lmc
const { loadModel } = await import(pathToFileURL(path.join(config.lmc_web, 'lmc_model.js')).href);
let t0 = now();
const model = await loadModel(
  path.join(config.lmc_web, 'lmc_model.wasm'),
  path.join(config.lmc_web, 'weights.safetensors'),
);
result.lmc.load_ms = now() - t0;
const lmcInputs = Object.fromEntries(model.inputs.map((s, i) => [s.name, inputs[i]]));
const runLmc = () => model.run(lmcInputs);

// onnxruntime-web, wasm backend, 1 thread
const require = createRequire(path.join(path.resolve(config.ort_prefix), 'package.json'));
const ort = require('onnxruntime-web');
ort.env.wasm.numThreads = 1;
ort.env.wasm.simd = true;
result.ort.version = ort.env.versions ? ort.env.versions.web || ort.env.versions.common : '?';
t0 = now();
const session = await ort.InferenceSession.create(config.onnx, {
  executionProviders: ['wasm'],
  graphOptimizationLevel: 'all',
});
result.ort.load_ms = now() - t0;
const feeds = {};
session.inputNames.forEach((name, i) => {
  const j = config.inputs.findIndex((s) => s.name === name);
  const spec = config.inputs[j >= 0 ? j : i];
  const t = inputs[j >= 0 ? j : i];
  feeds[name] = new ort.Tensor(ORT_TYPES[spec.dtype], t.data, spec.shape);
});
const runOrt = () => session.run(feeds);

let lastLmc;
let lastOrt;
for (let i = 0; i < config.warmup; i++) {
  lastLmc = runLmc();
  lastOrt = await runOrt();
}
for (let i = 0; i < config.reps; i++) {
  t0 = now();
  lastLmc = runLmc();
  result.lmc.times.push(now() - t0);
  t0 = now();
  lastOrt = await runOrt();
  result.ort.times.push(now() - t0);
}

async function dump(prefix, tensors) {
  const out = [];
  for (const [i, t] of tensors.entries()) {
    const file = path.join(config.out_dir, `${prefix}_${i}.bin`);
    await writeFile(file, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    out.push({ file, shape: Array.from(t.shape || t.dims), type: t.dtype || t.type });
  }
  return out;
}
result.lmc.outputs = await dump('lmc', Object.values(lastLmc));
result.ort.outputs = await dump(
  'ort',
  session.outputNames.map((n) => lastOrt[n]),
);
model.dispose();
await session.release();
console.log(JSON.stringify(result));
