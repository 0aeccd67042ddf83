/**
 * Fused epilogues through the LLVM path (targets/llvm/epilogue.ts): every op kind and chains of
 * them on matmul, padded/outpadded/grouped convs, average pools and elementwise ops; in the tile
 * (the tile holds each output's whole reduction) and in the separate pass (a reduction loop above
 * the tile); partial vectors, the scalar path, overwriting kernels and parallel bands.
 *
 * Kernels run in this process on guarded buffers (a read or write past a tensor faults at once),
 * once per tid = 0..threads-1, and are checked against the float64 oracle. Inputs reach well
 * beyond [-1, 1] (and a few elements are +-60 to +-200), so sigmoid and gelu see their clamped
 * ranges too. Each kernel costs about 100 ms to build: about 50 here. On a host without AVX-512
 * the llvm-avx512 kernels are compiled, lowered as each case expects and decoded, not run
 * (tests/host.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkAgainstOracle, randomArray } from '../../../ir/interpret.ts';
import { EPILOGUE_KINDS, elementCount, type Problem } from '../../../ir/problem.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { lower } from '../../../loopnest/lower.ts';
import { walkProgram, type LoopProgram, type TileNode } from '../../../loopnest/program.ts';
import type { Kernel } from '../../../targets/kernel.ts';
import { llvmAvailable, llvmIr, llvmTarget } from '../../../targets/llvm/index.ts';
import { backend } from '../../../targets/registry.ts';
import { NativeFloat32Buffer } from '../../../targets/runtime/buffers.ts';
import { ExecutableCode } from '../../../targets/runtime/executable-memory.ts';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { checkWithoutRunning, hostRunsTarget } from '../../host.ts';

type Target = 'llvm-avx2' | 'llvm-avx512';
const BOTH: readonly Target[] = ['llvm-avx2', 'llvm-avx512'];
const AVX2: readonly Target[] = ['llvm-avx2'];
const AVX512: readonly Target[] = ['llvm-avx512'];

const pool = new MeasurementPool({ timeoutSeconds: 20 });
const availability = llvmAvailable();

function requireLlvm(): void {
  if (!availability.ok) assert.unreachable(`the LLVM targets must be available on the test machine: ${availability.reason}`);
}

/**
 * Seeded tensors (output first): the output's initial values in [-24, 24), the inputs in [-2, 2),
 * and in each tensor a few large elements, so accumulated values reach the exp and erf clamps.
 */
function tensorsFor(problem: Problem, seed: number): Float32Array[] {
  return problem.tensors.map((t, i) => {
    const n = elementCount(t);
    const a = randomArray(n, seed + 7919 * i).map((x) => x * (i === 0 ? 24 : 2));
    const big = i === 0 ? [200, -200, 95] : [60, -60, 31];
    [0, Math.floor(n / 3), n - 1].forEach((at, j) => (a[at] = big[j]!));
    return a;
  });
}

/** The output after running `kernel` for tid = 0..threads-1 in turn on guarded copies of `initial`. */
function run(kernel: Kernel, initial: readonly Float32Array[], threads = 1): Float32Array {
  const buffers = initial.map((a) => NativeFloat32Buffer.alloc(a.length, { guard: true }));
  const code = new ExecutableCode(kernel.code, buffers.length);
  try {
    buffers.forEach((b, i) => b.array.set(initial[i]!));
    for (let tid = 0; tid < threads; tid++) code.fn(...buffers.map((b) => b.address), 1, tid, threads);
    return Float32Array.from(buffers[0]!.array);
  } finally {
    code.free();
    for (const b of buffers) b.free();
  }
}

function tiles(program: LoopProgram): TileNode[] {
  const found: TileNode[] = [];
  walkProgram(program.body, (n) => {
    if (n.kind === 'tile') found.push(n);
  });
  return found;
}

type Placement = 'tile' | 'pass';

/** Where the program applies its epilogue: in tiles with a body, or in the separate pass's empty tiles. */
function placement(program: LoopProgram): Placement {
  const withEpilogue = tiles(program).filter((t) => t.epilogue);
  assert.ok(withEpilogue.length > 0, `${program.schedule}: no tile applies the epilogue`);
  const pass = withEpilogue.every((t) => t.body.length === 0 && t.loadOutput);
  assert.ok(pass || withEpilogue.every((t) => t.body.length > 0), `${program.schedule}: a mix of epilogue placements`);
  return pass ? 'pass' : 'tile';
}

interface Case {
  spec: string;
  /** '' = the problem's initial schedule */
  schedule: string;
  place: Placement;
  targets: readonly Target[];
  /** what the lowered program must show */
  expect?: { lanes1?: boolean; partial?: boolean; threads?: number; overwrite?: boolean; rootOffset?: boolean };
}

// m:5 k:7 n:19: one row per tile, n = 2x8 + 3 (avx2) or 16 + 3 (avx512) lanes: partial vectors
const kinds: Case[] = ['+bias', '+residual', '+scale0.5', '+relu', '+clip-1,2.5', '+sigmoid', '+gelu'].map((e) => ({
  spec: `matmul 5x19x7 ${e}`, schedule: 'm:5 k:7 n:19', place: 'tile', targets: BOTH, expect: { partial: true },
}));

const cases: Case[] = [
  ...kinds,
  // chains on matmul: a 4x3-vector (avx2) or 4x(16+8)-lane (avx512) tile around a k loop (phis), k:4 unrolled in it
  { spec: 'matmul 12x24x80 +bias +residual +relu', schedule: 'm:3 k:20 m:4 n:24 k:4', place: 'tile', targets: BOTH },
  { spec: 'matmul 12x24x80 +bias +gelu', schedule: 'm:3 k:20 m:4 n:24 k:4', place: 'tile', targets: BOTH },
  { spec: 'matmul 12x24x80 +scale0.25 +clip-1,2.5 +sigmoid', schedule: 'm:3 k:20 m:4 n:24 k:4', place: 'tile', targets: BOTH },
  { spec: 'matmul 12x24x80 +residual +sigmoid +scale3 +relu6', schedule: 'm:3 k:20 m:4 n:24 k:4', place: 'tile', targets: AVX2 },
  // convs: input padding, output inside its border (a root offset), groups, stride 2 (strided vector reads), depthwise
  {
    spec: 'conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 outpad1 groups2 +bias +residual +relu', schedule: '', place: 'tile', targets: BOTH,
    expect: { rootOffset: true, partial: true },
  },
  { spec: 'conv2d n1 c2 h11 w11 k4 r3 s3 stride2 pad1 outpad2 +bias +gelu', schedule: '', place: 'tile', targets: BOTH, expect: { rootOffset: true } },
  { spec: 'conv2d n1 c8 h8 w8 k8 r3 s3 stride1 pad1 groups8 +bias +relu6', schedule: '', place: 'tile', targets: AVX2 },
  // average pools: the sum then the pool's own scale, with more ops after it
  { spec: 'avgpool2d n1 c4 h9 w9 r3 s3 stride2 pad1 +relu', schedule: '', place: 'tile', targets: BOTH },
  { spec: 'globalavgpool n1 c16 h7 w7 +sigmoid', schedule: '', place: 'tile', targets: AVX2 },
  // elementwise (assigning combines: no initial output)
  { spec: 'add 7x13 +residual +sigmoid', schedule: '', place: 'tile', targets: BOTH, expect: { partial: true } },
  { spec: 'mul 5x21 +gelu', schedule: '', place: 'tile', targets: AVX2 },
  { spec: 'relu 9x10 +scale2 +clip-1,1', schedule: '', place: 'tile', targets: AVX2 },
  // the separate pass: a reduction loop above the tile
  { spec: 'matmul 33x17x9 +bias +gelu', schedule: 'k:3 m:33 n:17 k:3', place: 'pass', targets: BOTH, expect: { partial: true } },
  { spec: 'conv2d n1 c2 h11 w11 k4 r3 s3 stride2 pad1 outpad2 +bias +gelu', schedule: 'c:2 n:1 k:4 h:6 w:6 c:1 r:3 s:3', place: 'pass', targets: AVX2, expect: { rootOffset: true } },
  { spec: 'avgpool2d n1 c4 h9 w9 r3 s3 stride2 pad1 +relu', schedule: 'r:3 n:1 c:4 h:5 w:5 s:3', place: 'pass', targets: AVX2 },
  // the scalar path (n's innermost loop outside the unrolled tile): broadcast operands, one lane each
  // (33 rows: AVX-512's 32 registers cannot hold the whole m x n nest as vectors either)
  { spec: 'matmul 33x11x5 +bias +sigmoid', schedule: 'n:11 m:33 k:5', place: 'tile', targets: BOTH, expect: { lanes1: true } },
  { spec: 'matmul 9x11x5 +residual +gelu', schedule: 'k:5 n:11 m:9', place: 'pass', targets: AVX2, expect: { lanes1: true } },
  { spec: 'transpose 7x13 +residual +clip-0.5,0.5', schedule: '', place: 'tile', targets: AVX2, expect: { lanes1: true } },
  // parallel bands, run as 2 threads: the tile's epilogue in each chunk, and the pass inside each chunk
  { spec: 'matmul 11x39x8 +bias +gelu', schedule: 'm:2r3p n:2r7p k:8 n:16 m:4', place: 'tile', targets: BOTH, expect: { threads: 2, partial: true } },
  { spec: 'matmul 23x40x16 +residual +sigmoid', schedule: 'm:5r3p k:2 m:4 n:40 k:8', place: 'pass', targets: AVX2, expect: { threads: 2 } },
  // (AVX-512's 32 registers hold that 4x40 tile with k:2 in it: 8 vectors of n there keep m:4 and k:2 out)
  { spec: 'matmul 23x128x16 +residual +sigmoid', schedule: 'm:5r3p k:2 m:4 n:128 k:8', place: 'pass', targets: AVX512, expect: { threads: 2 } },
  // an overwriting kernel (tiles start at zero): the epilogue of c = a.b + bias
  { spec: 'matmul 12x24x80 +bias +sigmoid', schedule: 'm:3 k:20 m:4 n:24 k:4', place: 'tile', targets: AVX2, expect: { overwrite: true } },
];

interface Compiled {
  problem: Problem;
  schedule: Schedule;
  kernel: Kernel;
  threads: number;
  overwrite: boolean;
}

/** The case's kernel for `target`, its program checked against what the case expects (no running). */
function compileCase(c: Case, target: Target): Compiled {
  const threads = c.expect?.threads ?? 1;
  const problem = parseProblem(c.spec);
  const schedule = c.schedule ? Schedule.parse(problem, c.schedule) : Schedule.initial(problem);
  const overwrite = c.expect?.overwrite === true;
  const kernel = backend(target).compile(schedule, overwrite ? { overwrite: true } : {});
  const program = kernel.program;
  // the case in each message: one test checks all of a target's cases where the host cannot run them
  const what = `${target} ${c.spec} (${c.schedule || 'initial schedule'})`;
  assert.is(placement(program), c.place, `${what}: the epilogue's placement`);
  if (c.expect?.lanes1) assert.is(program.decision.lanes, 1, `${what}: scalar`);
  else assert.ok(program.decision.lanes > 1, `${what}: vectorized`);
  if (c.expect?.partial) {
    assert.ok(tiles(program).some((t) => t.epilogue && t.accumulators.some((a) => a.count < program.decision.lanes)), `${what}: a partial vector gets the epilogue`);
  }
  if (c.expect?.rootOffset) assert.ok((problem.output.offset ?? 0) > 0, `${what}: the output lies inside its border`);
  if (overwrite) {
    assert.is(kernel.abi.overwrites, true, `${what}: overwrites`);
    assert.ok(tiles(program).every((t) => t.zeroOutput), `${what}: tiles start at zero`);
  }
  assert.is(kernel.abi.parallel === true, threads > 1, `${what}: parallel iff run on threads`);
  return { problem, schedule, kernel, threads, overwrite };
}

for (const target of BOTH) {
  const targetCases = cases.filter((c) => c.targets.includes(target));
  if (!hostRunsTarget(target)) {
    // one test for all of the target's cases, so that the host's lack is said once
    test(`${target}: the ${targetCases.length} epilogue cases lower as expected and compile, checked without running`, () => {
      requireLlvm();
      checkWithoutRunning(target, targetCases.map((c) => compileCase(c, target).kernel));
    });
    continue;
  }
  for (const c of targetCases) {
    test(`${target} ${c.spec} (${c.schedule || 'initial schedule'}): epilogue in the ${c.place}, equals the oracle`, () => {
      requireLlvm();
      const { problem, schedule, kernel, threads, overwrite } = compileCase(c, target);
      const [output, ...inputs] = tensorsFor(problem, 20261215);
      const got = run(kernel, [output!, ...inputs], threads);
      const check = checkAgainstOracle(schedule, inputs, overwrite ? new Float32Array(output!.length) : output!, got);
      assert.ok(check.ok, `error ${check.maxError} > ${check.tolerance}`);
    });
  }
}

for (const target of BOTH) {
  test(`${target} sigmoid and gelu over [-100, 100] (dense in [-10, 10]): within 4 ulps, far inside the oracle's 16`, () => {
    requireLlvm();
    const compiled = ['sigmoid', 'gelu'].map((op) => {
      const schedule = Schedule.initial(parseProblem(`add 32x256 +${op}`));
      return { op, schedule, kernel: backend(target).compile(schedule) };
    });
    if (!hostRunsTarget(target)) {
      checkWithoutRunning(target, compiled.map((k) => k.kernel));
      return;
    }
    for (const { op, schedule, kernel } of compiled) {
      // add with b = 0: the epilogue sees exactly a's values
      const n = 32 * 256;
      const a = Float32Array.from({ length: n }, (_, i) => (i % 2 === 0 ? -100 + (200 * i) / n : -10 + (20 * i) / n));
      const b = new Float32Array(n);
      const got = run(kernel, [new Float32Array(n), a, b]);
      const check = checkAgainstOracle(schedule, [a, b], new Float32Array(n), got);
      assert.ok(check.ok && check.maxError < 4 * 2 ** -23, `${op}: error ${check.maxError / 2 ** -23} ulps`);
    }
  });
}

test('on real threads (libgomp in a measurement worker), epilogue kernels equal the oracle for T = 2', async () => {
  // llvm-avx2: every x86 host runs it
  requireLlvm();
  for (const c of cases.filter((x) => x.expect?.threads && x.targets.includes('llvm-avx2'))) {
    const problem = parseProblem(c.spec);
    const schedule = Schedule.parse(problem, c.schedule);
    const kernel = backend('llvm-avx2').compile(schedule);
    const [output, ...inputs] = tensorsFor(problem, 41);
    const r = await pool.run(kernel, [output!, ...inputs], { threads: 2, guard: true });
    if (!r.ok) assert.unreachable(`${c.spec} on 2 threads: ${r.error}`);
    else {
      const check = checkAgainstOracle(schedule, inputs, output!, r.output);
      assert.ok(check.ok, `${c.spec} on 2 threads: error ${check.maxError} > ${check.tolerance}`);
    }
  }
});

test('the caps declare a scratch count for every epilogue kind, more for sigmoid and gelu', () => {
  for (const isaName of ['avx2', 'avx512'] as const) {
    const scratch = llvmTarget(isaName).caps.epilogueScratch;
    for (const kind of EPILOGUE_KINDS) assert.ok((scratch?.[kind] ?? 0) >= 2, `${isaName}: ${kind}`);
    assert.ok(scratch!.sigmoid! > scratch!.relu! && scratch!.gelu! > scratch!.bias!);
  }
});

test('the IR: five tensor pointers before reps, tid, threads; exp and erf as plain arithmetic, no libm', () => {
  requireLlvm();
  const conv = Schedule.initial(parseProblem('conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 outpad1 +bias +residual +relu'));
  assert.match(llvmIr(lower(conv, llvmTarget('avx2').caps)),
    /define void @kernel\(float\* %0, float\* %1, float\* %2, float\* %3, float\* %4, i64 %5, i64 %6, i64 %7\)/);
  const mm = Schedule.parse(parseProblem('matmul 4x8x3 +sigmoid +gelu'), 'm:4 k:3 n:8');
  const ir = llvmIr(lower(mm, llvmTarget('avx2').caps));
  for (const re of [/call float @llvm\.rint\.f32/, /call float @llvm\.fma\.f32/, /fptosi float .* to i32/, /shl i32 .*, 23/, /bitcast i32 .* to float/, /fdiv float/]) {
    assert.match(ir, re);
  }
  assert.not.match(ir, /@(expf?|erff?|exp2f?)\(/);
});

test('the machine code is vector code with no calls: vroundps/vdivps on ymm (avx2), zmm (avx512)', () => {
  requireLlvm();
  // compiling needs no AVX-512 on this host: only running does
  const schedule = Schedule.parse(parseProblem('matmul 12x24x80 +bias +sigmoid'), 'm:3 k:20 m:4 n:24 k:4');
  for (const [target, reg] of [['llvm-avx2', 'ymm'], ['llvm-avx512', 'zmm']] as const) {
    const b = backend(target);
    const listing = b.disassemble!(b.compile(schedule));
    assert.not.match(listing, /\bcall\b/);
    assert.match(listing, new RegExp(`vdivps\\s+${reg}`));
    assert.match(listing, new RegExp(`vcvttps2dq\\s+${reg}`));
    assert.match(listing, new RegExp(`vpslld\\s+${reg}`));
    // AVX-512 rounds with vrndscaleps
    assert.match(listing, new RegExp(`(vroundps|vrndscaleps)\\s+${reg}`));
    // the 4-wide pieces LLVM's default SLP depth left behind (slpRecursionDepth) are gone
    assert.not.match(listing, /vfmadd\d+ps\s+xmm/);
  }
});

test.after(async () => {
  await pool.close();
});

test.run();
