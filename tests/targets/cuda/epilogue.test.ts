/**
 * Fused epilogues and padding on the cuda target, without a GPU: kernels run in the PTX simulator
 * (sim.ts, which also checks every access for bounds and alignment) and are checked against the
 * interpreter with checkAgainstOracle; ptxas -arch=sm_90 accepts them (a failure where it is not
 * installed). Covers the epilogue at the store (plain, staged, split reductions) and in the second
 * pass (a serial reduction loop above the register tile), outputs written inside a padding border
 * (the border left as it was), an input read at an offset, five-pointer kernels, the baselines'
 * refusals and the fuzz's layer problems.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertAssembles, oneModule } from '../../helpers/ptxas.ts';
import {
  checkAgainstOracle, elementCount, EPILOGUE_KINDS, LoopTuneError, makeProblem, parseProblem, randomArray, Rng, Schedule, type Problem,
} from '../../../ir/index.ts';
import { baselineObstacle, im2colFor } from '../../../targets/cuda/baselines.ts';
import { fuzzCuda, withRandomLayerParts } from '../../../targets/cuda/fuzz.ts';
import { simRunner } from '../../../targets/cuda/sim-runner.ts';
import { simulate } from '../../../targets/cuda/sim.ts';
import { compileCuda, cudaCaps, type CudaKernel } from '../../../targets/cuda/target.ts';


/** Every kernel compiled here, for the ptxas check at the end. */
const compiled: CudaKernel[] = [];

interface Run {
  kernel: CudaKernel;
  init: Float32Array;
  out: Float32Array;
  ok: boolean;
  error: string;
}

/**
 * Simulates the schedule on seeded inputs (scaled by `scale`, or given by `fill`) over a random
 * initial output, and checks the result against the oracle.
 */
function run(p: Problem, text: string | null, opts: { scale?: number; fill?: (t: number, n: number) => Float32Array; seed?: number } = {}): Run {
  const s = text === null ? Schedule.initial(p) : Schedule.parse(p, text);
  const kernel = compileCuda(s);
  compiled.push(kernel);
  const seed = opts.seed ?? 1;
  const inputs = p.tensors.slice(1).map((t, i) => opts.fill?.(i + 1, elementCount(t)) ?? randomArray(elementCount(t), seed * 31 + i).map((x) => x * (opts.scale ?? 1)));
  const init = randomArray(elementCount(p.tensors[0]!), seed * 31 + 99);
  const tensors = [init.slice(), ...inputs.map((a) => a.slice())];
  simulate(kernel.text!, kernel.launch, tensors);
  const c = checkAgainstOracle(s, inputs, init, tensors[0]!);
  return { kernel, init, out: tensors[0]!, ok: c.ok, error: `${p.spec} | ${s.text()}: error ${c.maxError.toExponential(2)} > ${c.tolerance.toExponential(2)}` };
}

const spec = (text: string) => parseProblem(text);

/** Whether flat element i of a padded tensor lies in its border. */
function inBorder(p: Problem, t: number, i: number): boolean {
  const { shape, pad } = p.tensors[t]!;
  if (!pad) return false;
  let rest = i;
  for (let d = shape.length - 1; d >= 0; d--) {
    const x = rest % shape[d]!;
    rest = Math.floor(rest / shape[d]!);
    if (x < pad.before[d]! || x >= shape[d]! - pad.after[d]!) return true;
  }
  return false;
}

test('the epilogue at the store: bias+relu, gelu, sigmoid, residual, clip, scale on matmul, elementwise and pools', () => {
  const cases: [string, string | null, number][] = [
    ['matmul 33x17x9 +bias +relu', null, 1],
    // staged, four outputs per .v4 store: the bias row is read as .v4 too
    ['matmul 64x64x64 +bias +relu', 'm:2b n:2b k:8s m:2 n:2 m:8t n:8t k:8 m:2 n:2', 1],
    // a split reduction: the threads with reduction index 0 apply it after adding the partial sums
    ['matmul 64x64x64 +bias +gelu', 'm:2b n:2b k:8s k:4t m:8t n:8t k:2 m:4 n:4', 1],
    ['matmul 33x17x9 +gelu', 'm:3b n:17t m:11 k:9', 2],
    ['matmul 45x33x20 +residual +sigmoid', 'm:5r5t n:2r1b m:2r2 m:3t n:16t k:3r2 k:6', 3],
    ['matmul 33x17x9 +clip-1,2.5', null, 2],
    ['matmul 33x17x9 +relu6 +scale0.5', null, 4],
    ['bmm b3 m7 n5 k6 +bias +residual +gelu', null, 1],
    ['add 7x13 +residual +sigmoid', null, 8],
    ['relu 5x6x7 +residual +clip-1,2.5', 'i:5b j:6t l:7', 2],
    ['transpose 9x14 +scale-1.25 +gelu', null, 3],
    ['reduce 6x40 axis1 +sigmoid', null, 1],
    ['avgpool2d n1 c4 h9 w9 r3 s3 stride2', null, 1],
    ['globalavgpool n1 c16 h7 w7 +relu', null, 1],
    ['maxpool2d n1 c3 h8 w8 r2 s2 stride2 +residual +relu', null, 1],
  ];
  for (const [text, schedule, scale] of cases) {
    const r = run(spec(text), schedule, { scale });
    assert.ok(r.ok, r.error);
    assert.is(r.kernel.gpu.epilogue?.place, 'store', text);
  }
  const staged = compiled.find((k) => k.gpu.problem.spec === 'matmul 64x64x64 +bias +relu')!;
  // the bias is a fourth pointer, read once per tile as vectors; no staging region for it
  assert.match(staged.text!, /\.param \.u64 \w+_param_3\n\)/);
  assert.is(staged.gpu.staging!.tensors.length, 2);
  assert.ok((staged.text!.match(/ld\.global\.nc\.v4\.f32/g) ?? []).length >= 2);
  assert.match(compiled.find((k) => k.gpu.problem.spec === 'add 7x13 +residual +sigmoid')!.text!, /ex2\.approx\.ftz\.f32[\s\S]*rcp\.rn\.f32/);
  assert.match(compiled.find((k) => k.gpu.problem.spec === 'matmul 33x17x9 +gelu')!.text!, /div\.rn\.f32/);
});

test('sigmoid and gelu over their whole range: within the oracle\'s 16 ulps of max(1, |x|)', () => {
  const n = 4096;
  const line = (lo: number, hi: number) => () => Float32Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));
  // copy: the value is the input itself, so these are the epilogue functions on a fine grid
  for (const [text, lo, hi] of [['copy 4096 +sigmoid', -100, 100], ['copy 4096 +sigmoid', -12, 12], ['copy 4096 +gelu', -10, 10], ['copy 4096 +gelu', -3, 3]] as const) {
    const r = run(spec(text), null, { fill: line(lo, hi) });
    assert.ok(r.ok, `[${lo}, ${hi}] ${r.error}`);
  }
});

test('padding: convolutions and pools read padded storage and write inside the output border, leaving it as it was', () => {
  const cases: [string, string | null][] = [
    ['conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 outpad1 +bias +relu', null],
    ['conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 outpad1 +bias +relu', 'n:1b k:2b h:9t w:9t c:8 k:4 r:3 s:3'],
    ['conv2d n1 c4 h9 w9 k8 r3 s3 stride2 pad1 +residual +gelu', 'n:1b k:8t h:5t w:5 c:4 r:3 s:3'],
    ['conv2d n2 c5 h13 w17 k6 r3 s3 stride2 pad2 outpad1 +bias +sigmoid', 'n:2b k:1r2b h:2b w:2r2b c:2r1s c:2 r:3 s:3 k:2t h:2t w:2t k:2 h:2 w:2'],
    ['conv1d n1 c3 w20 k4 s3 stride2 pad2 outpad2 +bias +clip-1,2.5', null],
    ['avgpool2d n1 c4 h9 w9 r3 s3 stride2 pad1 outpad1', 'n:1b c:4b h:5t w:5t r:3 s:3'],
    ['maxpool2d n1 c2 h7 w7 r3 s3 stride2 pad1 outpad1 +relu', null],
  ];
  for (const [text, schedule] of cases) {
    const p = spec(text);
    const r = run(p, schedule);
    assert.ok(r.ok, r.error);
    if (!p.tensors[0]!.pad) continue;
    assert.ok((p.output.offset ?? 0) > 0, text);
    let border = 0;
    r.out.forEach((x, i) => {
      if (!inBorder(p, 0, i)) return;
      border++;
      if (!Object.is(x, r.init[i])) assert.unreachable(`${text}: border element ${i} changed from ${r.init[i]} to ${x}`);
    });
    assert.ok(border > 0);
  }
});

test('an input read at a constant offset (Access.offset), staged: the copy plans are made for that offset', () => {
  const base = spec('matmul 8x8x8');
  // A one row down in a 9-row tensor
  const p = makeProblem({
    ...base, spec: 'matmul 8x8x8 (A at row 1)',
    tensors: [base.tensors[0]!, { name: 'A', shape: [9, 8] }, base.tensors[2]!],
    inputs: [{ ...base.inputs[0]!, offset: 8 }, base.inputs[1]!],
  });
  for (const text of ['m:8 n:8 k:8', 'm:1b n:1b k:2s m:8t n:8t k:4']) {
    const r = run(p, text);
    assert.ok(r.ok, r.error);
  }
  const staged = compiled[compiled.length - 1]!;
  assert.equal(staged.gpu.staging!.instances.map((x) => x.key), ['8|8,0']);
});

test('the second pass: a serial reduction loop above the register tile (plain, staged, split, convolution)', () => {
  const cases: [string, string][] = [
    ['matmul 130x4x80 +bias +gelu', 'k:2 m:2 k:4 m:65 n:4t k:10'],
    ['matmul 130x4x80 +bias +residual +sigmoid', 'k:2s m:2 k:4 m:65 n:4t k:10'],
    ['matmul 130x4x80 +bias +relu', 'k:2 m:2 k:4t m:65 n:4t k:10'],
    ['conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 outpad1 +bias +relu', 'n:1 c:2 k:8 h:9 c:4 w:9t r:3 s:3'],
  ];
  for (const [text, schedule] of cases) {
    const r = run(spec(text), schedule);
    assert.ok(r.ok, r.error);
    const e = r.kernel.gpu.epilogue!;
    assert.is(e.place, 'pass', text);
    assert.match(e.note ?? '', /^the serial reduction loop (k:2|k:2s|c:2) runs above the register tile$/);
  }
  // the same problem with the reduction inside the tile: applied at the store, once
  const whole = run(spec('matmul 130x4x80 +bias +gelu'), 'm:2 m:65 n:4t k:80');
  assert.ok(whole.ok, whole.error);
  assert.is(whole.kernel.gpu.epilogue!.place, 'store');
});

test('five pointers: output, two inputs, bias, residual; the simulator runner takes them in ABI order', async () => {
  const p = spec('matmul 24x20x12 +bias +residual +relu');
  const k = run(p, 'm:2b n:20t m:12 k:12').kernel;
  assert.is((k.text!.match(/\.param \.u64/g) ?? []).length, 5);
  assert.equal(k.abi.tensors.map((t) => t.name), ['C', 'A', 'B', 'bias', 'R']);
  const tensors = p.tensors.map((t, i) => randomArray(elementCount(t), i + 3));
  const got = await simRunner()(k, tensors, { guard: true });
  assert.ok(got.ok);
});

test('the caps declare scratch for every epilogue kind', () => {
  const scratch = cudaCaps().epilogueScratch ?? {};
  assert.equal(EPILOGUE_KINDS.filter((k) => scratch[k] === undefined), []);
});

test('baselines refuse epilogues and padded outputs with one line; a padded input is planned', () => {
  assert.is(baselineObstacle(spec('conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1')), undefined);
  assert.ok(im2colFor(spec('conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1')).elements > 0);
  assert.match(baselineObstacle(spec('matmul 8x8x8 +bias +relu')) ?? '', /^the cuBLAS\/cuDNN comparison has no fused epilogue \(bias, relu\)/);
  assert.match(baselineObstacle(spec('conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 outpad1')) ?? '', /dense output.*outpad/);
  for (const text of ['conv2d n1 c8 h9 w9 k8 r3 s3 stride1 +bias', 'conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 outpad1']) {
    assert.throws(() => im2colFor(spec(text)), (e: unknown) => e instanceof LoopTuneError && /^im2col baseline: /.test((e as Error).message) && !(e as Error).message.includes('\n'));
  }
});

test('the fuzz dresses problems as layers (pads, epilogues) and they pass in the simulator', async () => {
  const rng = new Rng(5);
  const dressed = Array.from({ length: 200 }, () => withRandomLayerParts(spec('conv2d n1 c3 h8 w8 k4 r3 s3 stride1'), rng));
  assert.ok(dressed.some((p) => p.tensors[1]!.pad) && dressed.some((p) => p.tensors[0]!.pad));
  assert.ok(dressed.some((p) => p.epilogue?.some((e) => e.kind === 'bias')) && dressed.some((p) => p.epilogue?.some((e) => e.kind === 'gelu')));
  assert.ok(dressed.filter((p) => p.epilogue === undefined && !p.tensors[0]!.pad && !p.tensors[1]!.pad).length > 80);
  const r = await fuzzCuda({ cases: 120, seed: 99, runner: simRunner() });
  assert.equal(r.failures, [], JSON.stringify(r.failures.slice(0, 3)));
  assert.ok(r.epilogueAtStore > 20 && r.padded > 2, `${r.epilogueAtStore} epilogue kernels, ${r.padded} padded`);
});

test('ptxas -arch=sm_90 accepts every kernel above', () => {
  assertAssembles([oneModule(compiled).text], 'sm_90');
});

test.run();
