/**
 * ONNX Runtime's own per-node profile of a model, the figures to hold beside
 * `looptune run-model M.onnx --tuned T --profile`:
 *
 *   npx tsx bench/peers/onnxruntime-profile.ts bench/models/onnx/resnet18.onnx 1x3x224x224 [threads] [runs]
 *
 * The session is the benchmark's (bench/peers/onnxruntime.ts: same threads, graph optimizations
 * on) with ORT's profiler on; per node, the best kernel time over the runs, in graph order, and
 * their sum. The profile file ORT writes goes to the system's temporary folder and is removed.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { onnxRuntimeSessionOptions } from './onnxruntime.ts';

interface ProfileEvent {
  readonly name: string;
  readonly cat: string;
  readonly dur: number;
  readonly args?: { readonly op_name?: string };
}

const [file, shapeText, threadsText = '1', runsText = '30'] = process.argv.slice(2);
if (!file || !shapeText) {
  console.error('usage: onnxruntime-profile.ts MODEL.onnx DIMS (e.g. 1x3x224x224) [threads] [runs]');
  process.exit(2);
}
const shape = shapeText.split('x').map(Number);
const dir = mkdtempSync(join(tmpdir(), 'looptune-ort-profile-'));
try {
  const session = await ort.InferenceSession.create(file, { ...onnxRuntimeSessionOptions(Number(threadsText)), enableProfiling: true, profileFilePrefix: join(dir, 'ort') });
  const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.random() - 0.5);
  const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', data, shape) };
  for (let i = 0; i < Number(runsText); i++) await session.run(feeds);
  session.endProfiling();
  await session.release();
  const events = JSON.parse(readFileSync(join(dir, readdirSync(dir)[0]!), 'utf8')) as ProfileEvent[];
  const best = new Map<string, number>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const key = `${e.name.replace(/_kernel_time$/, '')} (${e.args?.op_name ?? '?'})`;
    best.set(key, Math.min(best.get(key) ?? Infinity, e.dur));
  }
  let total = 0;
  for (const [node, us] of best) {
    total += us;
    console.log(`${(us / 1000).toFixed(3).padStart(9)} ms  ${node}`);
  }
  console.log(`${(total / 1000).toFixed(3).padStart(9)} ms  sum of the best per node`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
