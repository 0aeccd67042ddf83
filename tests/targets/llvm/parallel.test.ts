/**
 * Parallel bands through the LLVM path: a kernel runs only thread `tid`'s chunks of its band, so
 * calling it for tid = 0..T-1 one after another on the same output computes the whole nest exactly
 * once (accumulating problems show a chunk run twice or never). Checked against the reference
 * interpreter for T = 1..4 and against the direct x86 emitter.
 *
 * Kernels run in this process with the full ABI (pointers, reps, tid, threads) on guarded buffers
 * (a read or write past a tensor faults at once); one test runs them on real threads (libgomp, in
 * a measurement worker). The per-ISA tests decode the llvm-avx512 kernels on a host without AVX-512
 * (tests/host.ts); the others run on the host's best ISA.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkAgainstOracle, maxRelativeError, randomArray } from '../../../ir/interpret.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { lower } from '../../../loopnest/lower.ts';
import { chunkCount, type ParallelNode, walkProgram } from '../../../loopnest/program.ts';
import type { Kernel } from '../../../targets/kernel.ts';
import { llvmAvailable, llvmIr, llvmTarget } from '../../../targets/llvm/index.ts';
import { backend } from '../../../targets/registry.ts';
import { NativeFloat32Buffer } from '../../../targets/runtime/buffers.ts';
import { ExecutableCode } from '../../../targets/runtime/executable-memory.ts';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { RUN_TARGET, checkWithoutRunning, hostRunsTarget } from '../../host.ts';

const pool = new MeasurementPool({ timeoutSeconds: 20 });
const availability = llvmAvailable();
/** the LLVM target of the host's best ISA, for the tests whose point is not one ISA */
const RUN_LLVM = `llvm-${RUN_TARGET}` as const;

function requireLlvm(): void {
  if (!availability.ok) assert.unreachable(`the LLVM targets must be available on the test machine: ${availability.reason}`);
}

/**
 * Runs `kernel` once per tid = 0..threads-1, one call after another, on guarded copies of
 * `initial` (output first, then the inputs); returns the output.
 */
function runThreads(kernel: Kernel, initial: readonly Float32Array[], threads: number, tids?: readonly number[]): Float32Array {
  const buffers = initial.map((a) => NativeFloat32Buffer.alloc(a.length, { guard: true }));
  const code = new ExecutableCode(kernel.code, buffers.length);
  try {
    buffers.forEach((b, i) => b.array.set(initial[i]!));
    for (const tid of tids ?? Array.from({ length: threads }, (_, t) => t)) code.fn(...buffers.map((b) => b.address), 1, tid, threads);
    return Float32Array.from(buffers[0]!.array);
  } finally {
    code.free();
    for (const b of buffers) b.free();
  }
}

/** Random output (accumulating combines add into it) and inputs for the schedule's problem. */
function randomTensors(schedule: Schedule, seed: number): Float32Array[] {
  return schedule.problem.tensors.map((t, i) => randomArray(t.shape.reduce((a, d) => a * d, 1), seed + 7919 * i));
}

function band(kernel: Kernel): ParallelNode {
  const found: ParallelNode[] = [];
  walkProgram(kernel.program.body, (n) => {
    if (n.kind === 'parallel') found.push(n);
  });
  assert.is(found.length > 0, true, `${kernel.program.schedule}: the program has no parallel band`);
  return found[0]!;
}

/** problem, schedule, and what it covers */
const cases: [string, string, string][] = [
  // collapsed 2-loop band, tails in both dims: 6 x 4 chunks, four bodies
  ['matmul 23x55x16', 'm:5r3p n:3r7p k:16 n:16 m:4', 'two-dim band, tails in both'],
  // one-dim band without a tail, 2 chunks: threads 3 and 4 leave some threads with nothing
  ['matmul 10x16x8', 'm:2p m:5 n:16 k:8', 'fewer chunks than threads'],
  // the band below a serial loop: every instance of the node splits its own chunks
  ['matmul 7x32x8', 'n:2 m:3r1p k:8 n:16 m:2', 'band below a serial loop'],
  // in the outer m loop's tail instance (one row left), the band's m dim is all tail (count 0)
  ['matmul 6x40x12', 'm:1r1 m:2r1p n:2r8p k:12 n:16 m:2', 'a band dim with only a tail'],
  // conv2d, three-dim band over n, h and k with tails in h and k
  ['conv2d n2 c4 h10 w10 k13 r3 s3', 'n:2p h:2r2p k:3r1p c:4 r:3 s:3 h:3 k:4 w:8', 'conv2d, three-dim band'],
  // conv2d, band over the output rows only, reductions below it
  ['conv2d n1 c3 h9 w12 k8 r3 s3', 'n:1 h:3r1p k:8 c:3 r:3 s:3 h:2 w:10', 'conv2d, one-dim band with a tail'],
  // an assigning combine (overwrites the output): a chunk run twice still looks right, never run does not
  ['add 37x50', 'i:4r5p j:3r2p i:8 j:16', 'elementwise add, two-dim band'],
];

/** The case's kernel for `target`: it takes tid and threads, and its program has a band. */
function compileCase(target: string, spec: string, text: string): { schedule: Schedule; kernel: Kernel } {
  const schedule = Schedule.parse(parseProblem(spec), text);
  const kernel = backend(target).compile(schedule);
  assert.is(kernel.abi.parallel, true);
  band(kernel);
  return { schedule, kernel };
}

for (const target of ['llvm-avx512', 'llvm-avx2'] as const) {
  if (!hostRunsTarget(target)) {
    // one test for all the cases, so that the host's lack is said once
    test(`${target}: the ${cases.length} cases compile to banded kernels, checked without running`, () => {
      requireLlvm();
      checkWithoutRunning(target, cases.map(([spec, text]) => compileCase(target, spec, text).kernel));
    });
    continue;
  }
  for (const [spec, text, what] of cases) {
    test(`${target} ${what} (${spec}, ${text}): tid = 0..T-1 in turn equal the interpreter for T = 1..4`, () => {
      requireLlvm();
      const { schedule, kernel } = compileCase(target, spec, text);
      const [output, ...inputs] = randomTensors(schedule, 20261201);
      for (let threads = 1; threads <= 4; threads++) {
        const got = runThreads(kernel, [output!, ...inputs], threads);
        const check = checkAgainstOracle(schedule, inputs, output!, got);
        assert.ok(check.ok, `T=${threads}: error ${check.maxError} > ${check.tolerance}`);
      }
    });
  }
}

test(`each thread writes only its own chunks (${RUN_LLVM}): the outputs of tid = 0..T-1 alone are disjoint and cover the output`, () => {
  requireLlvm();
  const schedule = Schedule.parse(parseProblem('matmul 23x55x16'), 'm:5r3p n:3r7p k:16 n:16 m:4');
  const kernel = backend(RUN_LLVM).compile(schedule);
  assert.is(chunkCount(band(kernel).dims), 24);
  const [, ...inputs] = randomTensors(schedule, 5);
  const elements = schedule.problem.tensors[0]!.shape.reduce((a, d) => a * d, 1);
  // from a zero output, what a thread wrote is nonzero (random inputs: a sum of 16 products)
  const untouched = new Float32Array(elements);
  const owner = new Int32Array(elements).fill(-1);
  const threads = 5;
  for (let tid = 0; tid < threads; tid++) {
    const got = runThreads(kernel, [untouched, ...inputs], threads, [tid]);
    let written = 0;
    got.forEach((x, i) => {
      if (x === 0) return;
      assert.is(owner[i], -1, `element ${i} written by tids ${owner[i]} and ${tid}`);
      owner[i] = tid;
      written++;
    });
    assert.ok(written > 0, `tid ${tid} of ${threads} wrote nothing (24 chunks: each thread has 4 or 5)`);
  }
  assert.is(owner.indexOf(-1), -1, 'every output element is written by some thread');
});

test('the LLVM and direct x86 kernels of a parallel schedule agree on random inputs, split over 3 threads', () => {
  requireLlvm();
  // kernels of an ISA the host cannot run: both printers' kernels are compiled and decoded instead
  const unrun = { direct: [] as Kernel[], llvm: [] as Kernel[] };
  for (const [spec, text] of [cases[0]!, cases[4]!]) {
    const schedule = Schedule.parse(parseProblem(spec), text);
    const tensors = randomTensors(schedule, 77);
    for (const isaName of ['avx512', 'avx2'] as const) {
      const direct = backend(isaName).compile(schedule);
      const llvm = backend(`llvm-${isaName}`).compile(schedule);
      if (!hostRunsTarget(isaName)) {
        assert.is(isaName, 'avx512');
        unrun.direct.push(direct);
        unrun.llvm.push(llvm);
        continue;
      }
      const err = maxRelativeError(runThreads(llvm, tensors, 3), runThreads(direct, tensors, 3));
      assert.ok(err < 1e-5, `${isaName} ${text}: LLVM and direct kernels differ by ${err}`);
    }
  }
  if (unrun.direct.length) {
    checkWithoutRunning('avx512', unrun.direct);
    checkWithoutRunning('llvm-avx512', unrun.llvm);
  }
});

test('the IR takes tid and threads after reps and splits the chunks with udiv; the caps say threads', () => {
  requireLlvm();
  for (const isaName of ['avx512', 'avx2'] as const) assert.is(llvmTarget(isaName).caps.threads, true);
  const schedule = Schedule.parse(parseProblem('matmul 23x55x16'), 'm:5r3p n:3r7p k:16 n:16 m:4');
  const ir = llvmIr(lower(schedule, llvmTarget('avx512').caps));
  assert.match(ir, /define void @kernel\(float\* %0, float\* %1, float\* %2, i64 %3, i64 %4, i64 %5\)/);
  assert.match(ir, /%chunk\.begin = udiv i64 %\d+, %5/);
  assert.match(ir, /%chunk\.end = udiv i64 %\d+, %5/);
  // 4 = n's 3 full iterations + its tail
  assert.match(ir, /urem i64 %chunk, 4/);
});

test(`on real threads (libgomp in a measurement worker) the ${RUN_LLVM} kernel equals the interpreter for T = 2 and 3`, async () => {
  requireLlvm();
  for (const [spec, text] of [cases[0]!, cases[4]!]) {
    const schedule = Schedule.parse(parseProblem(spec), text);
    const kernel = backend(RUN_LLVM).compile(schedule);
    const [output, ...inputs] = randomTensors(schedule, 31);
    for (const threads of [2, 3]) {
      const r = await pool.run(kernel, [output!, ...inputs], { threads, guard: true });
      if (!r.ok) assert.unreachable(`${text} on ${threads} threads: ${r.error}`);
      else {
        const check = checkAgainstOracle(schedule, inputs, output!, r.output);
        assert.ok(check.ok, `${text} on ${threads} threads: error ${check.maxError} > ${check.tolerance}`);
      }
    }
  }
});

test.after(async () => {
  await pool.close();
});

test.run();
