/**
 * Fused epilogues in the neon emitter, run under qemu-aarch64 on guarded buffers and checked
 * against the interpreter (checkAgainstOracle, through verifyKernel): every epilogue kind and
 * chains of them on matmul, bmm, conv2d (pad, outpad, groups, stride 2), avg and global pools,
 * elementwise ops, reduce and transpose; schedules that apply the epilogue in the tile and ones
 * that move a reduction loop above it (the separate pass, at the root or inside loops), partial
 * vectors and the scalar path; then sigmoid and gelu element by element over [-100, 100] and past
 * their clamps, five tensor pointers with reps, and the shape of the code (constant pool, cached
 * constants and operands, callee-saved and relu's zero register). Kernels are batched: one qemu
 * process runs many of them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkAgainstOracle, interpret, randomArray } from '../../../ir/interpret.ts';
import { EPILOGUE_KINDS, elementCount, isReduction, type EpilogueKind, type Problem } from '../../../ir/problem.ts';
import { Rng, randomSchedule } from '../../../ir/random.ts';
import { Schedule, type Loop } from '../../../ir/schedule.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { walkProgram, type LoopProgram, type TileNode } from '../../../loopnest/program.ts';
import { lower } from '../../../loopnest/lower.ts';
import { backend, compileSchedule } from '../../../targets/registry.ts';
import { verifyKernel } from '../../../targets/verify.ts';
import type { Kernel } from '../../../targets/kernel.ts';
import { disassembleArm64Words } from '../../../targets/arm64/disassemble.ts';
import { emitArm64 } from '../../../targets/arm64/emit.ts';
import { NEON_EPILOGUE_SCRATCH, f32Bits } from '../../../targets/arm64/epilogue.ts';
import { arm64Available, runArm64Batch } from '../../../targets/arm64/qemu-runner.ts';
import { Arm64BatchRunner } from '../../../targets/arm64/runner.ts';
import { arm64Caps } from '../../../targets/arm64/target.ts';

const avail = arm64Available();
const requireArm64 = () => {
  if (!avail.ok) assert.unreachable(avail.reason); // names the Debian packages to install
};
const runner = new Arm64BatchRunner({ batchSize: 100 });
const caps = arm64Caps();

interface Case {
  spec: string;
  schedule: Schedule;
  kernel: Kernel;
}

function compileCase(spec: string, schedule?: string): Case {
  const p = parseProblem(spec);
  const s = schedule ? Schedule.parse(p, schedule) : Schedule.initial(p);
  return { spec, schedule: s, kernel: compileSchedule(s, 'neon') };
}

/** Verifies all cases together (the runner batches them into few qemu processes); failures name the case. */
async function verifyAll(cases: readonly Case[], seeds: readonly number[] = [1]): Promise<void> {
  requireArm64();
  const results = await Promise.all(cases.flatMap((c) => seeds.map(async (seed) => ({
    c, v: await verifyKernel(c.kernel, c.schedule, runner.run, { seed, guard: true }),
  }))));
  const bad = results.filter((r) => !r.v.verified).map((r) => `${r.c.spec} | ${r.c.schedule.text()}: ${r.v.error}`);
  assert.equal(bad, [], bad.slice(0, 5).join('\n'));
}

/** Where a program applies its epilogue: tiles with a body (in the tile), body-less ones (the pass), partial vectors among them. */
function placements(program: LoopProgram): { tile: number; pass: number; partial: boolean } {
  let tile = 0, pass = 0, partial = false;
  walkProgram(program.body, (n) => {
    if (n.kind !== 'tile' || !n.epilogue) return;
    if (n.body.length > 0) tile++;
    else pass++;
    if (program.decision.lanes > 1 && n.accumulators.some((a) => a.count < program.decision.lanes)) partial = true;
  });
  return { tile, pass, partial };
}

const listing = (code: Uint8Array) => disassembleArm64Words(code).map((w) => w.text ?? '.inst');
const count = (text: string[], re: RegExp) => text.filter((t) => re.test(t)).length;

// ---- caps --------------------------------------------------------------------------------------

test('caps: scratch for all seven kinds; the backend takes every epilogue', () => {
  assert.equal(Object.keys(caps.epilogueScratch ?? {}).sort(), [...EPILOGUE_KINDS].sort());
  assert.equal(caps.epilogueScratch, { ...NEON_EPILOGUE_SCRATCH });
  const neon = backend('neon');
  for (const chain of ['+bias +residual +relu', '+scale0.5 +clip-1,2.5', '+sigmoid', '+gelu', '+relu6']) {
    const p = parseProblem(`conv2d n1 c2 h5 w6 k3 r3 s3 stride1 ${chain}`);
    assert.is(neon.validate!(Schedule.initial(p)), undefined, chain);
  }
  // the tile leaves gelu its 4 registers: at most 28 accumulators (30 without an epilogue)
  const mm = (spec: string) => lower(Schedule.parse(parseProblem(spec), 'm:10 n:12 k:2'), caps).decision.accumulators;
  assert.is(mm('matmul 10x12x2'), 30);
  assert.ok(mm('matmul 10x12x2 +gelu') <= 28);
  assert.ok(mm('matmul 10x12x2 +sigmoid') <= 29);
});

// ---- hand-picked kernels -----------------------------------------------------------------------

test('every kind and chains, in the tile and in the pass, partial vectors and the scalar path', async () => {
  const cases: [string, string?][] = [
    // matmul: tails of 1, 2 and 3 lanes (n = 17, 6, 7); the k loop outermost puts the epilogue in the pass
    ['matmul 33x17x9 +bias +gelu'],
    ['matmul 5x6x9 +bias +residual +sigmoid'],
    ['matmul 5x7x9 +scale-1.5 +clip-0.5,0.75'],
    ['matmul 16x12x64 +bias +relu', 'm:2 k:64 m:8 n:12'],
    ['matmul 16x12x64 +bias +relu6', 'k:64 m:16 n:12'],
    ['matmul 5x17x9 +bias +residual +gelu', 'k:9 m:5 n:17'],
    ['matmul 5x7x9 +residual +scale2 +sigmoid', 'k:3 m:5 k:3 n:7'],
    ['matmul 3x40x64 +bias +gelu', 'm:3 n:40 k:64'], // scalar path (n outside the unrolled tile)
    ['matmul 3x40x64 +bias +sigmoid', 'k:64 m:3 n:40'],
    ['bmm b2 m5 n9 k7 +residual +gelu'],
    // convolutions: padded input, output written inside its padding (Access.offset), groups, stride 2 (scalar path)
    ['conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 outpad1 +bias +relu'],
    ['conv2d n1 c4 h6 w11 k4 r3 s3 stride1 pad1 outpad2 groups2 +bias +sigmoid'],
    ['conv2d n2 c6 h7 w13 k6 r3 s3 stride2 pad1 outpad1 groups3 +bias +residual +gelu'],
    ['conv2d n1 c3 h6 w9 k2 r3 s3 stride1 outpad1 +residual +clip-0.25,0.25', 'c:3 n:1 k:2 h:4 r:3 w:7 s:3'],
    // pools: the average pool's own scale, then more
    ['avgpool2d n1 c4 h9 w9 r3 s3 stride2'],
    ['avgpool2d n2 c3 h9 w13 r3 s2 stride1 outpad1 +residual +relu'],
    ['avgpool2d n2 c3 h9 w13 r3 s2 stride1 outpad1 +gelu', 'r:3 n:2 c:3 h:7 w:12 s:2'],
    ['globalavgpool n1 c16 h7 w7 +sigmoid'],
    ['globalavgpool n2 c9 h3 w5 +residual +relu', 'r:3 n:2 c:9 h:1 w:1 s:5'],
    // elementwise and the rest
    ['add 7x13 +residual +sigmoid'],
    ['mul 3x6 +scale20 +gelu'],
    ['copy 3x7 +scale30 +sigmoid'],
    ['relu 5x11 +residual +gelu'],
    ['add 1x1 +residual +relu6'],
    ['reduce 7x9 axis1 +relu +gelu'],
    ['reduce 7x9 axis0 +sigmoid', 'i:7 j:9'],
    ['transpose 7x9 +residual +gelu'],
  ];
  const compiled = cases.map(([spec, schedule]) => compileCase(spec, schedule));
  const where = compiled.map((c) => placements(c.kernel.program));
  assert.ok(where.some((w) => w.tile > 0) && where.some((w) => w.pass > 0), 'both placements');
  assert.ok(where.some((w) => w.partial), 'partial vectors');
  assert.ok(compiled.some((c) => c.kernel.program.decision.lanes === 1), 'the scalar path');
  assert.ok(compiled.some((c) => c.kernel.abi.tensors.length === 5), 'five tensor pointers');
  await verifyAll(compiled, [1, 2]);
});

// ---- random problems with epilogue chains -------------------------------------------------------

const CHAINS = [
  '+relu', '+sigmoid', '+gelu', '+scale0.25', '+clip-1,0.5', '+relu6', '+residual', '+residual +relu', '+scale-3 +sigmoid',
  '+residual +gelu +clip-0.5,0.5', '+gelu +sigmoid', '+scale4 +gelu +residual', '+clip0,0 +sigmoid',
];
const BIAS_CHAINS = ['+bias', '+bias +relu', '+bias +gelu', '+bias +residual +sigmoid', '+residual +bias +relu6', '+bias +scale-2 +gelu'];
const FAMILIES = ['matmul', 'bmm', 'conv2d', 'avgpool2d', 'globalavgpool', 'add', 'mul', 'relu', 'copy', 'reduce', 'transpose'] as const;

function randomSpec(rng: Rng, family: typeof FAMILIES[number]): string {
  const n = (lo: number, hi: number) => rng.int(lo, hi);
  const chain = (bias: boolean) => (bias && rng.next() < 0.5 ? rng.pick(BIAS_CHAINS) : rng.pick(CHAINS));
  switch (family) {
    case 'matmul': return `matmul ${n(1, 30)}x${n(1, 30)}x${n(1, 20)} ${chain(true)}`;
    case 'bmm': return `bmm b${n(1, 3)} m${n(1, 9)} n${n(1, 13)} k${n(1, 9)} ${chain(false)}`;
    case 'conv2d': {
      const groups = rng.pick([1, 1, 2]);
      const r = n(1, 3), s = n(1, 3);
      const pad = Math.min(r, s) > 1 ? n(0, 1) : 0;
      const outpad = n(0, 1);
      return `conv2d n${n(1, 2)} c${groups * n(1, 3)} h${r + n(0, 6)} w${s + n(0, 14)} k${groups * n(1, 3)} r${r} s${s} stride${n(1, 2)} pad${pad}`
        + `${outpad ? ` outpad${outpad}` : ''}${groups > 1 ? ` groups${groups}` : ''} ${chain(true)}`;
    }
    case 'avgpool2d': {
      const r = n(1, 3), s = n(1, 3);
      return `avgpool2d n${n(1, 2)} c${n(1, 4)} h${r + n(0, 6)} w${s + n(0, 14)} r${r} s${s} stride${n(1, 2)}${rng.next() < 0.5 ? ' outpad1' : ''} ${chain(false)}`;
    }
    case 'globalavgpool': return `globalavgpool n${n(1, 2)} c${n(1, 30)} h${n(1, 5)} w${n(1, 5)} ${chain(false)}`;
    case 'reduce': return `reduce ${n(1, 12)}x${n(1, 20)} axis${n(0, 1)} ${chain(false)}`;
    default: return `${family} ${n(1, 9)}x${n(1, 30)} ${chain(false)}`;
  }
}

/** A random schedule with a reduction loop moved outermost (the epilogue then runs as the pass), or null. */
function withPass(p: Problem, rng: Rng): Schedule | null {
  for (let attempt = 0; attempt < 12; attempt++) {
    const loops: Loop[] = [...randomSchedule(p, rng, rng.int(0, 10)).loops];
    const red = loops.flatMap((l, i) => (isReduction(p, l.var) && l.size > 1 ? [i] : []));
    if (red.length === 0) return null;
    const [r] = loops.splice(rng.pick(red), 1);
    let s: Schedule;
    try {
      s = new Schedule(p, [r!, ...loops]);
    } catch {
      continue; // a split loop moved above its outer part
    }
    if (placements(lower(s, caps)).pass > 0) return s;
  }
  return null;
}

/** The vector variable's loop outermost: its innermost loop usually leaves the unrolled tile (the scalar path). */
function vectorOutermost(p: Problem): Schedule {
  const last = p.output.index[p.output.index.length - 1]!.terms[0]!.var;
  const loops: Loop[] = [...Schedule.initial(p).loops];
  const i = loops.findIndex((l) => l.var === last);
  const [l] = loops.splice(i, 1);
  return new Schedule(p, [l!, ...loops]);
}

test('random problems x epilogue chains x schedules (initial, random, pass, scalar)', async () => {
  const rng = new Rng(20260501);
  const modes = ['initial', 'random', 'pass', 'scalar', 'pass', 'pass'] as const;
  const cases: Case[] = [];
  const kinds = new Set<EpilogueKind>();
  const seen = { tile: 0, pass: 0, partial: 0, scalar: 0 };
  for (const mode of modes) {
    for (const family of FAMILIES) {
      const spec = randomSpec(rng, family);
      const p = parseProblem(spec);
      const s = mode === 'initial' ? Schedule.initial(p)
        : mode === 'random' ? randomSchedule(p, rng, rng.int(1, 14))
          : mode === 'pass' ? withPass(p, rng) ?? randomSchedule(p, rng, 8)
            : vectorOutermost(p);
      const kernel = compileSchedule(s, 'neon');
      const w = placements(kernel.program);
      if (w.tile > 0) seen.tile++;
      if (w.pass > 0) seen.pass++;
      if (w.partial) seen.partial++;
      if (kernel.program.decision.lanes === 1) seen.scalar++;
      for (const e of p.epilogue ?? []) kinds.add(e.kind);
      cases.push({ spec, schedule: s, kernel });
    }
  }
  assert.equal([...kinds].sort(), [...EPILOGUE_KINDS].sort(), 'every kind drawn');
  for (const [what, n] of Object.entries(seen)) assert.ok(n >= 5, `${what}: ${n} cases`);
  console.log(`  neon epilogues: ${cases.length} random cases, ${JSON.stringify(seen)}`);
  await verifyAll(cases);
});

// ---- sigmoid and gelu element by element --------------------------------------------------------

test('sigmoid and gelu on [-100, 100] and past their clamps: within 2 and 3 ulps of max(1, |x|)', async () => {
  requireArm64();
  const values: number[] = [];
  for (let i = -6400; i <= 6400; i++) values.push(i / 64 + (i % 7) / 4096);
  values.push(0, -0, 1e-30, -1e-30, 87.3, -88, 88.5, -88.5, 5.65, -5.66, 1e3, -1e3, 1e6, -1e6, 1e30, -1e30, 3e38, -3e38);
  while (values.length % 32 !== 0) values.push(values.length / 1000);
  const x = Float32Array.from(values);
  const runs: { spec: string; s: Schedule; code: Uint8Array; ulps: number }[] = [];
  for (const [fn, ulps] of [['sigmoid', 2], ['gelu', 3]] as const) {
    // vectors (copy along j) and the scalar path (a transpose reads its input with a stride)
    const kernels: [string, string | null][] = [[`copy 1x${x.length} +${fn}`, `i:1 j:${x.length / 32} j:32`], [`transpose ${x.length}x1 +${fn}`, null]];
    for (const [spec, schedule] of kernels) {
      const p = parseProblem(spec);
      const s = schedule ? Schedule.parse(p, schedule) : Schedule.initial(p);
      const kernel = compileSchedule(s, 'neon');
      assert.is(kernel.program.decision.lanes, schedule ? 4 : 1, spec);
      runs.push({ spec, s, code: kernel.code, ulps });
    }
  }
  const results = await runArm64Batch(runs.map((r) => ({ code: r.code, tensors: [new Float32Array(x.length).fill(7), x], guard: true })));
  runs.forEach((r, k) => {
    const got = results[k]!;
    if (!got.ok) return assert.unreachable(`${r.spec}: ${got.error}`);
    const want = interpret(r.s, [x]);
    let worst = 0, at = 0;
    for (let i = 0; i < x.length; i++) {
      const ulps = Math.abs(got.output[i]! - want[i]!) / (Math.max(1, Math.abs(x[i]!), Math.abs(want[i]!)) * 2 ** -23);
      if (!(ulps <= worst)) [worst, at] = [ulps, i];
    }
    console.log(`  ${r.spec}: worst ${worst.toFixed(3)} ulps`);
    assert.ok(worst <= r.ulps, `${r.spec}: ${worst.toFixed(2)} ulps at x = ${x[at]} (got ${got.output[at]}, want ${want[at]})`);
  });
});

// ---- five tensors and reps ---------------------------------------------------------------------

test('five tensor pointers (x0..x4), reps in x5: the nest and its epilogue run twice', async () => {
  requireArm64();
  const cases = [
    compileCase('conv2d n1 c3 h6 w9 k4 r3 s3 stride1 pad1 outpad1 +bias +residual +gelu'),
    compileCase('matmul 9x13x5 +bias +residual +sigmoid', 'k:5 m:9 n:13'), // the pass at the root
  ];
  const data = cases.map((c) => c.schedule.problem.tensors.map((t, i) => randomArray(elementCount(t), 40 + i)));
  for (const c of cases) assert.is(c.kernel.abi.tensors.length, 5);
  const results = await runArm64Batch(cases.map((c, k) => ({ code: c.kernel.code, tensors: data[k]!.map((t) => t.slice()), reps: 2, guard: true })));
  cases.forEach((c, k) => {
    const r = results[k]!;
    if (!r.ok) return assert.unreachable(`${c.spec}: ${r.error}`);
    const [init, ...inputs] = data[k]!;
    const once = Float32Array.from(interpret(c.schedule, inputs, init));
    const check = checkAgainstOracle(c.schedule, inputs, once, r.output);
    assert.ok(check.ok, `${c.spec}: error ${check.maxError} > ${check.tolerance}`);
  });
});

// ---- the code ----------------------------------------------------------------------------------

test('constants: PC-relative ldr q from a 16-byte aligned pool after ret, each entry one value in 4 lanes', () => {
  const { kernel } = compileCase('matmul 4x8x2 +bias +sigmoid +gelu');
  const words = disassembleArm64Words(kernel.code);
  const ret = words.findIndex((w) => w.text === 'ret');
  const view = new DataView(kernel.code.buffer, kernel.code.byteOffset, kernel.code.byteLength);
  const pool = new Set<number>();
  for (const w of words.slice(0, ret)) {
    const m = /^ldr q\d+, #(-?\d+)$/.exec(w.text ?? '');
    if (!m) continue;
    const at = w.offset + Number(m[1]);
    assert.ok(at > words[ret]!.offset && at % 16 === 0, `entry at ${at}`);
    const lanes = [0, 4, 8, 12].map((o) => view.getUint32(at + o, true));
    assert.ok(lanes.every((b) => b === lanes[0]), 'one value in every lane');
    pool.add(lanes[0]!);
  }
  for (const c of [-Math.LOG2E, 0.693359375, -1.9875691500e-4, -2.72614225801306e-10, Math.SQRT1_2]) assert.ok(pool.has(f32Bits(c)), `${c} in the pool`);
  assert.ok(!pool.has(f32Bits(1)) && !pool.has(f32Bits(0.5)), '1 and 0.5 are fmov immediates');
});

test('cached values: relu zero once per tile, a conv bias broadcast once per tile, clamp bounds hoisted', () => {
  const relu = compileCase('matmul 8x12x8 +relu', 'm:8 n:12 k:8');
  assert.is(relu.kernel.program.decision.accumulators, 24);
  const r = listing(relu.kernel.code);
  assert.is(count(r, /^movi v\d+\.2d, #0+$/), 1);
  assert.is(count(r, /^fmax v\d+\.4s, v\d+\.4s, v\d+\.4s$/), 24);
  const conv = compileCase('conv2d n1 c3 h6 w9 k2 r3 s3 stride1 +bias +relu');
  // the tiles of k:2 (unrolled) h:4 x w:7 hold 2 x 4 x 2 accumulators: bias[k] for k = 0, 1
  let biases = 0, accumulators = 0;
  walkProgram(conv.kernel.program.body, (n) => {
    if (n.kind !== 'tile') return;
    biases += new Set(n.accumulators.map((a) => a.operands![0]!.offset)).size;
    accumulators += n.accumulators.length;
  });
  assert.ok(accumulators >= 4 * biases);
  const c = listing(conv.kernel.code);
  assert.is(count(c, /^ldr s\d+, \[x3/), biases, 'each bias[k] loaded once per tile');
  assert.is(count(c, /^dup v\d+\.4s, v\d+\.s\[0\]$/), biases);
  assert.is(count(c, /^fadd v\d+\.4s, v\d+\.4s, v\d+\.4s$/), accumulators);
  const sig = listing(compileCase('matmul 4x8x2 +sigmoid').kernel.code);
  assert.is(count(sig, /^frintn v\d+\.4s, v\d+\.4s$/), 8);
  assert.is(count(sig, /^fmax v\d+\.4s, v\d+\.4s, v\d+\.4s$/), 8);
  assert.ok(count(sig, /^ldr q\d+, #/) < 8 * 8, 'the clamp and range-reduction constants load once');
});

test('tight tiles: 28 accumulators + gelu reach v8-v15 (saved) and v31; a relu combine zeroes v31 again', async () => {
  const mm = compileCase('matmul 14x8x2 +gelu', 'm:14 n:8 k:2');
  assert.is(mm.kernel.program.decision.accumulators, 28);
  assert.ok(listing(mm.kernel.code).some((t) => /^stp d8, d9, \[sp/.test(t)));
  // relu's zero register v31 holds zero for the body; the epilogue of the first tile borrows it
  const relu = compileCase('relu 28x8 +gelu', 'i:2 i:14 j:8');
  const tile = (relu.kernel.program.body[0] as { body: TileNode[] }).body[0]!;
  assert.is(tile.accumulators.length, 28);
  assert.is(count(listing(relu.kernel.code), /^movi v31\.2d, #0+$/), 2);
  await verifyAll([mm, relu], [1, 2]); // the harness checks d8-d15 after the call
});

test('a tile that leaves too few registers is an error, not bad code', () => {
  const { kernel } = compileCase('matmul 10x12x2', 'm:10 n:12 k:2');
  const program: LoopProgram = {
    ...kernel.program,
    epilogue: [{ kind: 'gelu' }],
    body: kernel.program.body.map((n) => (n.kind === 'tile' ? { ...n, epilogue: true } : n)),
  };
  assert.throws(() => emitArm64(program), /needs 4 free vector registers, the tile leaves 2/);
});

test.run();
