/**
 * The cost of calling a deployed kernel (issue #16, compileKernel): microseconds per `run` on the
 * caller's Float32Arrays against the kernel's own time (its timing loop inside one native call), on
 * 1 thread and on 2 (a libgomp fork-join per call), on a 64^3 matmul, a 256^3 one and a padded
 * depthwise layer with its fused epilogue; and whether `run`'s output is bit for bit the output
 * of the same kernel run in a measurement worker. Writes bench/results/kernel-call.json.
 *
 *   npm run bench -- kernel-call
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { compileKernel } from '../agent/compile-kernel.ts';
import { randomArray } from '../ir/interpret.ts';
import { elementCount } from '../ir/problem.ts';
import { parseProblem } from '../ir/spec.ts';
import { hostTarget } from '../targets/runtime/host.ts';
import { timeInProcess } from '../targets/runtime/in-process.ts';
import { backend } from '../targets/registry.ts';
import { bestMicrosPerCall } from './micros-per-call.ts';

const CASES = [
  // a kernel of a few nanoseconds: its run time is the call's own cost
  { spec: 'matmul 1x1x1', schedule: 'm:1 n:1 k:1', banded: 'm:1p n:1 k:1' },
  { spec: 'matmul 64x64x64', schedule: 'm:16 k:4 k:16 m:4 n:64', banded: 'm:16p k:4 k:16 m:4 n:64' },
  { spec: 'matmul 256x256x256', schedule: 'm:42r4 n:5r16 k:32 n:3 k:8 n:16 m:6', banded: 'm:42r4p n:5r16 k:32 n:3 k:8 n:16 m:6' },
  {
    spec: 'conv2d n1 c144 h56 w56 k144 r3 s3 stride1 groups144 pad1 +bias +relu6',
    schedule: 'n:1 g:144 k:1 h:56 w:56 c:1 r:3 s:3', banded: 'n:1 g:144p k:1 h:56 w:56 c:1 r:3 s:3',
  },
];

export async function benchKernelCall(): Promise<object> {
  const target = hostTarget();
  const rows = [];
  for (const c of CASES) {
    const p = parseProblem(c.spec);
    const inputs = p.tensors.slice(1).map((t, i) => Float32Array.from(randomArray(elementCount(t), i + 1)));
    const output = new Float32Array(elementCount(p.tensors[0]!));
    for (const [threads, schedule] of [[1, c.schedule], [2, c.banded]] as const) {
      const k = await compileKernel(p, { target, schedule, threads });
      const best = bestMicrosPerCall(() => k.run(inputs, output), { warmup: 200, rounds: 5, calls: 2000 });
      const own = timeInProcess(k.kernel, { minSeconds: 0.2, threads }).bestSeconds * 1e6;
      // the same kernel once in a measurement worker, on the same inputs, from a cleared output
      const device = await backend(target).open({ threads });
      let identical = false;
      try {
        const mine = new Float32Array(output.length);
        k.run(inputs, mine);
        const r = await device.run(k.kernel, [new Float32Array(output.length).fill(k.kernel.abi.overwrites ? NaN : 0), ...inputs], { guard: false, threads });
        identical = r.ok && r.output.length === mine.length && r.output.every((x, i) => Object.is(x, mine[i]));
      } finally {
        await device.close();
      }
      rows.push({ problem: c.spec, schedule, threads, overwrites: Boolean(k.kernel.abi.overwrites), runMicros: best, kernelMicros: own, overheadMicros: best - own, identicalToWorker: identical });
      console.log(`${c.spec.padEnd(20)} ${threads} thread(s): run ${best.toFixed(2)} us, the kernel alone ${own.toFixed(2)} us -> ${(best - own).toFixed(2)} us per call; identical to the worker's output: ${identical}`);
      k.dispose();
    }
  }
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/kernel-call.json', JSON.stringify({ target, date: new Date().toISOString(), rows }, null, 2) + '\n');
  return rows;
}
