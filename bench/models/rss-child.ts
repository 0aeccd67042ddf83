/**
 * One runtime's peak memory on one model, in a process of its own (bench/models.ts spawns it):
 * `rss-child.ts looptune|onnxruntime MODEL.onnx TUNED.json THREADS SHAPES-JSON` loads the model, runs it five
 * times on random inputs and prints one JSON line: its RSS before loading (Node.js and the
 * runtime's code), after the runs with the model loaded and a garbage collection (node --expose-gc),
 * and the maximum (load transients included), in bytes.
 */
import { readFileSync } from 'node:fs';
import { randomArray } from '../../ir/interpret.ts';

const RUNS = 5;
const [runtime, modelPath, tunedPath, threadsText, shapesText] = process.argv.slice(2);
const threads = Number(threadsText);
if ((runtime !== 'looptune' && runtime !== 'onnxruntime') || !modelPath || !tunedPath || !(threads >= 1) || !shapesText) {
  console.error('usage: rss-child.ts looptune|onnxruntime MODEL.onnx TUNED.json THREADS SHAPES-JSON');
  process.exit(2);
}
// the inputs' shapes come from the command line: importing the model here would put the
// importer's own peak (the decoded protobuf beside the weights) into both runtimes' figures
const shapes = JSON.parse(shapesText) as Record<string, number[]>;
const inputs: Record<string, Float32Array> = {};
Object.entries(shapes).forEach(([name, dims], k) => { inputs[name] = randomArray(dims.reduce((a, b) => a * b, 1), 1 + k); });
const bytes = new Uint8Array(readFileSync(modelPath));
const startRssBytes = process.memoryUsage().rss;
/** the resident set after the runs, model still loaded (maxRSS also holds load-time transients) */
let steady = 0;
/** garbage of the load (the decoded protobuf, arrays copied elsewhere) collected before reading the RSS: both runtimes alike */
const collect = (): void => (globalThis as { gc?: () => void }).gc?.();
if (runtime === 'looptune') {
  const { loadModel } = await import('../../agent/compiled-model.ts');
  const m = await loadModel(bytes, { tuned: tunedPath, threads });
  for (let i = 0; i < RUNS; i++) m.run(inputs);
  collect();
  steady = process.memoryUsage().rss;
  m.dispose();
} else {
  const ort = await import('onnxruntime-node');
  const { onnxRuntimeSessionOptions } = await import('../peers/onnxruntime.ts');
  const session = await ort.InferenceSession.create(bytes, onnxRuntimeSessionOptions(threads));
  const feeds = Object.fromEntries(Object.entries(shapes).map(([name, dims]) => [name, new ort.Tensor('float32', inputs[name]!, dims)]));
  for (let i = 0; i < RUNS; i++) await session.run(feeds);
  collect();
  steady = process.memoryUsage().rss;
  await session.release();
}
// maxRSS is in KiB on Linux
console.log(JSON.stringify({ startRssBytes, steadyRssBytes: steady, maxRssBytes: process.resourceUsage().maxRSS * 1024 }));
