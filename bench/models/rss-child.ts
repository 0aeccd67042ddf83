/**
 * One runtime's peak memory on one model, in a process of its own (bench/models.ts spawns it):
 * `rss-child.ts looptune|onnxruntime MODEL.onnx TUNED.json THREADS SHAPES-JSON` loads the model, runs it five
 * times on random inputs and prints one JSON line: the process's maximum RSS and its RSS before
 * loading (Node.js and the runtime's own code), in bytes.
 */
import { readFileSync } from 'node:fs';
import { randomArray } from '../../ir/interpret.ts';
import { importOnnx } from '../../ir/model/onnx-import.ts';

const RUNS = 5;
const [runtime, modelPath, tunedPath, threadsText, shapesText] = process.argv.slice(2);
const threads = Number(threadsText);
if ((runtime !== 'looptune' && runtime !== 'onnxruntime') || !modelPath || !tunedPath || !(threads >= 1)) {
  console.error('usage: rss-child.ts looptune|onnxruntime MODEL.onnx TUNED.json THREADS [SHAPES-JSON]');
  process.exit(2);
}
const bytes = new Uint8Array(readFileSync(modelPath));
const inputShapes = JSON.parse(shapesText ?? '{}') as Record<string, number[]>;
const graph = importOnnx(bytes, { inputShapes });
const inputs: Record<string, Float32Array> = {};
graph.inputs.forEach((v, k) => { inputs[v.name] = randomArray(v.shape.reduce((a, b) => a * b, 1), 1 + k); });
// the graph and the bytes stay alive in both cases, so the start figure counts them for both
const startRssBytes = process.memoryUsage().rss;
if (runtime === 'looptune') {
  const { loadModel } = await import('../../agent/compiled-model.ts');
  const m = await loadModel(bytes, { tuned: tunedPath, threads });
  for (let i = 0; i < RUNS; i++) m.run(inputs);
  m.dispose();
} else {
  const ort = await import('onnxruntime-node');
  const { onnxRuntimeSessionOptions } = await import('../peers/onnxruntime.ts');
  const session = await ort.InferenceSession.create(bytes, onnxRuntimeSessionOptions(threads));
  const feeds = Object.fromEntries(graph.inputs.map((v) => [v.name, new ort.Tensor('float32', inputs[v.name]!, [...v.shape])]));
  for (let i = 0; i < RUNS; i++) await session.run(feeds);
  await session.release();
}
// maxRSS is in KiB on Linux
console.log(JSON.stringify({ startRssBytes, maxRssBytes: process.resourceUsage().maxRSS * 1024 }));
