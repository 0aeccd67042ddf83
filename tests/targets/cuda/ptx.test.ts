/**
 * Generated PTX without a GPU: every kernel of a few hundred random problem x schedule cases (the
 * fuzz's problems, some padded, some with fused epilogues) is accepted by `ptxas -arch=sm_90`
 * (a failure where ptxas is not installed), the text is deterministic, and the differential fuzz passes in the PTX simulator (sim.ts), which also
 * checks every global/shared access for bounds and alignment and shared memory for races.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertPtxasFound, oneModule, PTXAS } from '../../helpers/ptxas.ts';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseProblem, Rng, Schedule } from '../../../ir/index.ts';
import { CUDA_FUZZ_OPS, fuzzCuda, randomCudaProblem, randomCudaSchedule } from '../../../targets/cuda/fuzz.ts';
import { simRunner } from '../../../targets/cuda/sim-runner.ts';
import { SimError, simulate } from '../../../targets/cuda/sim.ts';
import { compileCuda, type CudaKernel } from '../../../targets/cuda/target.ts';
import { compileSchedule } from '../../../targets/registry.ts';
import { verifyKernel } from '../../../targets/verify.ts';


function randomCases(n: number, seed: number): { spec: string; kernel: CudaKernel; schedule: Schedule }[] {
  const out = [];
  for (let i = 0; i < n; i++) {
    const rng = new Rng(seed + i);
    const op = CUDA_FUZZ_OPS[i % CUDA_FUZZ_OPS.length]!;
    const r = rng.next();
    const p = randomCudaProblem(rng, op, r < 0.35 ? 2.5 : 1);
    const { schedule } = randomCudaSchedule(p, rng, r);
    out.push({ spec: p.spec, schedule, kernel: compileCuda(schedule) });
  }
  return out;
}

function ptxas(file: string): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(PTXAS, [`-arch=sm_90`, file, '-o', `${file}.cubin`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (status) => resolve({ status, stderr }));
  });
}

test('ptxas -arch=sm_90 accepts the kernels of 300 random problem x schedule cases', async () => {
  assertPtxasFound();
  const cases = randomCases(300, 9001);
  const dir = mkdtempSync(join(tmpdir(), 'looptune-ptx-'));
  try {
    const batches = 6;
    const files = Array.from({ length: batches }, (_, b) => {
      const f = join(dir, `batch${b}.ptx`);
      writeFileSync(f, oneModule(cases.filter((_, i) => i % batches === b).map((c) => c.kernel)).text);
      return f;
    });
    // two ptxas at a time (a small machine shared with others)
    const results: { status: number | null; stderr: string }[] = [];
    for (let i = 0; i < files.length; i += 2) results.push(...await Promise.all(files.slice(i, i + 2).map(ptxas)));
    results.forEach((r, b) => assert.is(r.status, 0, `batch ${b}: ${r.stderr.slice(0, 2000)}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the PTX is deterministic: same schedule, same text', () => {
  for (const { schedule, kernel } of randomCases(40, 77)) {
    const again = compileCuda(Schedule.parse(schedule.problem, schedule.text()));
    assert.is(again.text, kernel.text, schedule.text());
  }
  const p = parseProblem('matmul 1024x1024x1024');
  const text = 'm:8b n:8b k:128s m:2 n:2 m:16t n:16t k:8 m:4 n:4';
  const viaRegistry = compileSchedule(Schedule.parse(p, text), 'cuda');
  assert.is(viaRegistry.text, compileCuda(Schedule.parse(p, text)).text);
  assert.ok(viaRegistry.text!.startsWith('//\n// looptune cuda kernel for matmul 1024x1024x1024'));
  assert.match(viaRegistry.text!, /\.reqntid 16, 16, 1/);
  assert.match(viaRegistry.text!, /ld\.shared\.v4\.f32/);
  assert.match(viaRegistry.text!, /ld\.global\.nc\.v4\.f32/);
  assert.match(viaRegistry.text!, /bar\.sync 0/);
});

test('differential fuzz in the PTX simulator: 250 random cases, zero mismatches', async () => {
  const r = await fuzzCuda({ cases: 250, seed: 4242, runner: simRunner() });
  assert.equal(r.failures, [], JSON.stringify(r.failures.slice(0, 3)));
  assert.is(r.mismatches + r.crashes + r.codegenErrors, 0);
  assert.is(Object.keys(r.perOp).length, CUDA_FUZZ_OPS.length);
  assert.ok(r.staged > 10, `only ${r.staged} staged kernels`);
  // block loops with tails: interior and boundary bodies (rule 9 of loopnest/gpu.ts)
  assert.ok(r.edgeSplit > 15, `only ${r.edgeSplit} kernels with an edge split`);
  // the layer parts: fused epilogues and padded tensors are in the mix
  assert.ok(r.epilogueAtStore > 50 && r.padded > 5, `${r.epilogueAtStore} epilogue kernels, ${r.padded} padded problems`);
});

test('tails, dynamic ranges and single-buffered staging, in the simulator', async () => {
  const run = simRunner();
  const cases: [string, string][] = [
    ['matmul 130x131x67', 'm:1r2b n:1r3b k:2r3s m:2 n:2 m:16t n:16t k:32 m:4 n:4'],
    ['matmul 130x131x67', 'm:1r2b n:1r3b k:8r3s m:2 n:2 m:16t n:16t k:8 m:4 n:4'],
    ['bmm b3 m37 n29 k19', 'b:3b m:2r5b n:1r13b k:4r3s m:2 m:4t n:8t k:4 m:2 n:2'],
    ['conv2d n2 c5 h13 w17 k6 r3 s3 stride2', 'n:2b k:1r2b h:1r2b w:2b c:2r1s c:2 r:3 s:3 k:2t h:2t w:2t k:2 h:2 w:2'],
    ['matmul 45x33x20', 'm:5r5t n:2r1b m:2r2 m:3t n:16t k:3r2 k:6'],
  ];
  for (const [spec, text] of cases) {
    const s = Schedule.parse(parseProblem(spec), text);
    const v = await verifyKernel(compileCuda(s), s, run, { seed: 5 });
    assert.ok(v.verified, `${spec} | ${text}: ${v.error}`);
  }
  assert.match(compileCuda(Schedule.parse(parseProblem(cases[0]![0]), cases[0]![1])).text!, /\$STAGED/);
});

test('the simulator reports races, out-of-bounds and misaligned accesses', () => {
  const p = parseProblem('matmul 64x64x32');
  const k = compileCuda(Schedule.parse(p, 'm:2b n:2b k:4s m:2 n:2 m:8t n:8t k:8 m:2 n:2'));
  const tensors = () => p.tensors.map((t) => new Float32Array(t.shape.reduce((a, b) => a * b, 1)));
  const run = (text: string) => simulate(text, k.launch, tensors());
  run(k.text!);
  const noBarrier = k.text!.replace(/bar\.sync 0;/, '');
  assert.throws(() => run(noBarrier), (e: unknown) => e instanceof SimError && /race/.test((e as Error).message));
  const oob = k.text!.replace(/(ld\.global\.nc\.v4\.f32 \{[^}]*\}, \[%rd\d+)\]/, '$1+1048576]');
  assert.throws(() => run(oob), (e: unknown) => e instanceof SimError && /out-of-bounds/.test((e as Error).message));
  const mis = k.text!.replace(/(ld\.global\.nc\.v4\.f32 \{[^}]*\}, \[%rd\d+)\]/, '$1+4]');
  assert.throws(() => run(mis), (e: unknown) => e instanceof SimError && /misaligned/.test((e as Error).message));
});

test.run();
