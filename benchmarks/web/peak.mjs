// peak.mjs - node harness of peak.c: median seconds of `peak(iters)` over 7 calls -> GFLOP/s
// (16 chains x 4 lanes x 2 flops per iteration), printed as one JSON line.
import { readFileSync } from "node:fs";

const { instance } = await WebAssembly.instantiate(readFileSync(process.argv[2]));
const peak = instance.exports.peak;
peak(100000); // compile tiers up
const iters = 20000000;
const runs = [];
for (let r = 0; r < 7; r++) {
  const t0 = performance.now();
  peak(iters);
  runs.push(performance.now() - t0);
}
runs.sort((a, b) => a - b);
console.log(JSON.stringify({ gflops: (iters * 16 * 4 * 2) / (runs[3] * 1e6) }));
