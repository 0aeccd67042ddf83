/**
 * The blocked NCHWc layout (`layout<B>`) on x86: blocked convs (dense, depthwise, pointwise,
 * padded, stride 2, outpad, B = 4 on wider vectors, conv1d/3d), max pools and the layout
 * conversions, compiled for avx512 and avx2 under the initial schedule, schedules with ki innermost
 * (the brief's "n:1 kb:4 h:7 w:7 cb:4 ci:16 r:3 s:3 ki:16" style), register-blocked ones (w and
 * k-blocks in the tile, the reductions around them), random ones and a parallel band, each run on
 * guarded buffers in a measurement worker and checked against the interpreter (verifyKernel ->
 * checkAgainstOracle); the vectors run along ki (input broadcast, weights and output contiguous);
 * and +bias +relu (and the average pool's scale) where the printer has fused epilogues. Where the
 * host lacks AVX-512, the avx512 kernels are compiled and (a spread of them) decoded instead
 * (tests/host.ts kernelCheck).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromBlocked, toBlocked } from '../../../ir/layout.ts';
import { isReduction, type Problem, varIndex } from '../../../ir/problem.ts';
import { randomSchedule, Rng } from '../../../ir/random.ts';
import { Schedule, type Loop } from '../../../ir/schedule.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { lower } from '../../../loopnest/lower.ts';
import { walkProgram, type LoopProgram } from '../../../loopnest/program.ts';
import { workerRunner } from '../../../targets/native-runner.ts';
import { backend } from '../../../targets/registry.ts';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { kernelCheck } from '../../host.ts';

const pool = new MeasurementPool({ timeoutSeconds: 20 });
const run = workerRunner(pool);

test.after(async () => {
  await pool.close();
});

const TARGETS = ['avx512', 'avx2'] as const;

/** A loop over all of variable `name`, or `count` iterations of it (the inner loop of a split covering the rest). */
function loop(p: Problem, name: string, count?: number): Loop {
  const extent = p.vars[varIndex(p, name)]!.extent;
  return { var: varIndex(p, name), size: count ?? extent, tail: 0 };
}

/** The initial schedule with ki moved innermost: output variables, then the reductions, then ki. */
function kiInnermost(p: Problem, lane: string): Schedule {
  const loops = Schedule.initial(p).loops.filter((l) => p.vars[l.var]!.name !== lane);
  return new Schedule(p, [...loops, loop(p, lane)]);
}

/**
 * The register-blocked order: the block and spatial loops but the innermost spatial one, the
 * reductions but the lane one, then [lane reduction] w [kb:split] ki: a tile of w x split vectors
 * that holds each output's whole reduction (MLAS's NCHWc kernel shape). `split` k-blocks per tile
 * (1: none); the kb loop then has extent/split full iterations and a tail.
 */
function registerBlocked(p: Problem, block: string, lane: string, innerReduction: string | null, split = 1): Schedule {
  const inner = p.output.index[p.output.index.length - 2]!.terms[0]!.var;
  const innerName = p.vars[inner]!.name;
  const kbExtent = p.vars[varIndex(p, block)]!.extent;
  const outer = Schedule.initial(p).loops.filter((l) => {
    const name = p.vars[l.var]!.name;
    return name !== lane && name !== innerName && name !== innerReduction && name !== block;
  });
  const outerKb: Loop = { var: varIndex(p, block), size: Math.floor(kbExtent / split), tail: kbExtent % split };
  const [first, ...rest] = outer;
  return new Schedule(p, [
    first!, outerKb, ...rest,
    ...(innerReduction ? [loop(p, innerReduction)] : []),
    loop(p, innerName), ...(split > 1 ? [loop(p, block, split)] : []), loop(p, lane),
  ]);
}

interface Case {
  spec: string;
  /** the block variable and the lane variable of the output */
  block: string;
  lane: string;
  /** the reduction over the input channel's lane (dense convs), kept inside the register-blocked tile */
  innerReduction: string | null;
}

const CONVS: Case[] = [
  { spec: 'conv2d n1 c32 h7 w7 k32 r3 s3 stride1 pad1 layout16', block: 'kb', lane: 'ki', innerReduction: 'ci' },
  { spec: 'conv2d n1 c64 h7 w7 k64 r3 s3 stride1 pad1 layout16', block: 'kb', lane: 'ki', innerReduction: 'ci' },
  { spec: 'conv2d n1 c16 h9 w9 k32 r3 s3 stride2 pad1 layout8', block: 'kb', lane: 'ki', innerReduction: 'ci' },
  { spec: 'conv2d n1 c32 h14 w14 k16 r1 s1 stride1 layout16', block: 'kb', lane: 'ki', innerReduction: 'ci' },
  { spec: 'conv2d n1 c8 h6 w6 k8 r3 s3 stride1 pad1 outpad1 layout4', block: 'kb', lane: 'ki', innerReduction: 'ci' },
  { spec: 'conv2d n2 c16 h7 w7 k16 r3 s3 stride1 dilation2 pad2 layout8', block: 'kb', lane: 'ki', innerReduction: 'ci' },
  { spec: 'conv2d n1 c32 h14 w14 k32 r3 s3 stride1 groups32 pad1 layout16', block: 'kb', lane: 'ki', innerReduction: null },
  { spec: 'conv2d n1 c32 h14 w14 k32 r3 s3 stride2 groups32 pad1 outpad1 layout8', block: 'kb', lane: 'ki', innerReduction: null },
  { spec: 'conv1d n1 c16 w20 k32 s3 stride1 pad1 layout16', block: 'kb', lane: 'ki', innerReduction: 'ci' },
  { spec: 'conv3d n1 c8 d4 h5 w5 k16 t2 r2 s2 stride1 pad1 layout8', block: 'kb', lane: 'ki', innerReduction: 'ci' },
  { spec: 'maxpool2d n1 c32 h9 w9 r3 s3 stride2 pad1 layout16', block: 'cb', lane: 'ci', innerReduction: null },
  { spec: 'maxpool2d n1 c16 h8 w8 r2 s2 stride2 outpad1 layout8', block: 'cb', lane: 'ci', innerReduction: null },
];

/** The schedules each case runs under, by name. */
function schedulesOf(c: Case, rng: Rng): [string, Schedule][] {
  const p = parseProblem(c.spec);
  const kb = p.vars[varIndex(p, c.block)]!.extent;
  const out: [string, Schedule][] = [
    ['initial', Schedule.initial(p)],
    ['ki innermost', kiInnermost(p, c.lane)],
    ['register-blocked', registerBlocked(p, c.block, c.lane, c.innerReduction)],
  ];
  // two k-blocks per tile (and a kb tail where kb is odd)
  if (kb >= 2) out.push(['two k-blocks', registerBlocked(p, c.block, c.lane, c.innerReduction, 2)]);
  if (kb >= 3) out.push(['three k-blocks', registerBlocked(p, c.block, c.lane, c.innerReduction, 3)]);
  for (let i = 0; i < 2; i++) out.push([`random ${i}`, randomSchedule(p, rng, rng.int(4, 16))]);
  return out;
}

for (const target of TARGETS) {
  test(`${target}: blocked convs and max pools under initial, ki-innermost, register-blocked and random schedules match the interpreter`, async () => {
    const b = backend(target);
    const check = kernelCheck(target, run);
    const rng = new Rng(target === 'avx512' ? 20270301 : 20270302);
    const failures: string[] = [];
    let vectorized = 0, total = 0;
    for (const c of CONVS) {
      for (const [name, schedule] of schedulesOf(c, rng)) {
        total++;
        const kernel = b.compile(schedule);
        const decision = kernel.program.decision;
        if (decision.lanes > 1) {
          vectorized++;
          // whenever it vectorizes, it is along the lane variable
          assert.is(schedule.problem.vars[decision.vectorVar!]!.name, c.lane, `${c.spec} | ${schedule.text()}`);
        }
        const error = await check.verify(kernel, schedule, { seed: total, guard: true });
        if (error !== undefined) failures.push(`${c.spec} | ${name}: ${schedule.text()}: ${error}`);
      }
    }
    assert.equal(failures, [], failures.slice(0, 3).join('\n'));
    check.finish();
    // every schedule but the initial one and some random ones has the lane loop innermost in the tile
    assert.ok(vectorized >= total / 2, `only ${vectorized} of ${total} kernels vectorized`);
  });

  test(`${target}: register-blocked blocked convs on a parallel band of kb on 2 and 3 threads, overwriting where the tile holds the reduction`, async () => {
    const b = backend(target);
    const check = kernelCheck(target, run);
    const failures: string[] = [];
    for (const spec of ['conv2d n1 c32 h7 w7 k64 r3 s3 stride1 pad1 layout16', 'conv2d n1 c32 h14 w14 k32 r3 s3 stride1 groups32 pad1 layout8']) {
      const p = parseProblem(spec);
      const dense = p.vars.some((v) => v.name === 'cb');
      // avx512: 7 x 2 k-blocks = 14 zmm accumulators; avx2: 7 x the two ymm halves of a 16-block = 14 of its 16 registers
      const base = registerBlocked(p, 'kb', 'ki', dense ? 'ci' : null, dense && target === 'avx512' ? 2 : 1);
      // the outer kb loop (after n) runs in parallel
      const schedule = base.withLoops(base.loops.map((l, i) => (i === 1 ? { ...l, parallel: true } : l)), 0);
      for (const threads of [2, 3]) {
        const kernel = b.compile(schedule, { overwrite: true });
        assert.ok(kernel.abi.parallel, `${spec}: not parallel`);
        assert.ok(kernel.abi.overwrites, `${spec}: does not overwrite`);
        const error = await check.verify(kernel, schedule, { seed: threads, guard: true, threads });
        if (error !== undefined) failures.push(`${spec} | ${schedule.text()} | ${threads} threads: ${error}`);
      }
    }
    assert.equal(failures, []);
    check.finish();
  });

  test(`${target}: the layout conversions toBlocked and fromBlocked match the interpreter`, async () => {
    const b = backend(target);
    const check = kernelCheck(target, run);
    const rng = new Rng(target === 'avx512' ? 20270303 : 20270304);
    const failures: string[] = [];
    for (const [shape, B] of [[[1, 32, 7, 7], 16], [[2, 16, 5, 9], 8], [[1, 8, 3, 4, 5], 4]] as [number[], number][]) {
      for (const p of [toBlocked(shape, B), fromBlocked(shape, B)]) {
        for (const schedule of [Schedule.initial(p), randomSchedule(p, rng, 8)]) {
          const error = await check.verify(b.compile(schedule), schedule, { seed: 3, guard: true });
          if (error !== undefined) failures.push(`${p.spec} | ${schedule.text()}: ${error}`);
        }
      }
    }
    assert.equal(failures, []);
    check.finish();
  });
}

/** Operand modes per tensor of the compute ops and the accumulator counts of a program. */
function operandShapes(program: LoopProgram): { modes: Map<number, Set<string>>; accumulators: number[] } {
  const modes = new Map<number, Set<string>>();
  const accumulators: number[] = [];
  walkProgram(program.body, (n) => {
    if (n.kind === 'tile' && n.body.length > 0) accumulators.push(n.accumulators.length);
    if (n.kind !== 'compute') return;
    for (const g of n.groups) {
      for (const op of g) {
        for (const x of op.inputs) {
          if (!modes.has(x.tensor)) modes.set(x.tensor, new Set());
          modes.get(x.tensor)!.add(`${x.mode}${x.count}${x.stride ? `/${x.stride}` : ''}`);
        }
      }
    }
  });
  return { modes, accumulators };
}

test('the 3x3 7x7 c512 layer blocked by 16: ki is the vector variable, the input a broadcast, the weights full vectors, 28 accumulators (w:7 x 4 k-blocks) on avx512', () => {
  const p = parseProblem('conv2d n1 c512 h7 w7 k512 r3 s3 stride1 pad1 layout16');
  for (const text of ['n:1 kb:8 h:7 cb:32 r:3 s:3 ci:16 w:7 kb:4 ki:16', 'n:1 kb:8 cb:32 h:7 r:3 s:3 ci:16 w:7 kb:4 ki:16']) {
    const program = lower(Schedule.parse(p, text), backend('avx512').caps);
    assert.is(program.decision.lanes, 16, text);
    assert.is(p.vars[program.decision.vectorVar!]!.name, 'ki', text);
    assert.not.ok(program.decision.maskRegister, text);
    const { modes, accumulators } = operandShapes(program);
    assert.equal([...modes.get(1)!], ['broadcast1'], text);
    assert.equal([...modes.get(2)!], ['vector16'], text);
    assert.ok(accumulators.length > 0 && accumulators.every((a) => a === 28), `${text}: ${accumulators.join(' ')}`);
  }
  // NCHW's vectors along w = 7 are 7 of 16 lanes
  const nchw = lower(Schedule.parse(parseProblem('conv2d n1 c512 h7 w7 k512 r3 s3 stride1 pad1'), 'n:1 k:128 h:7 c:512 r:3 s:3 k:4 w:7'), backend('avx512').caps);
  assert.ok(nchw.decision.lanes === 16 && nchw.decision.maskRegister === false);
  const partial = operandShapes(nchw).modes.get(1)!;
  assert.ok([...partial].every((m) => m.endsWith('7')), [...partial].join(' '));
});

// ---- fused epilogues in the blocked layout: only where the printer has them -------------------

const EPILOGUES: [string, string | null][] = [
  ['conv2d n1 c32 h7 w7 k32 r3 s3 stride1 pad1 outpad1 layout16 +bias +relu', null],
  ['conv2d n1 c32 h7 w7 k32 r3 s3 stride1 pad1 outpad1 layout16 +bias +relu', 'n:1 kb:1 h:7 cb:2 r:3 s:3 ci:16 w:7 kb:2 ki:16'],
  ['conv2d n1 c16 h9 w9 k16 r3 s3 stride2 groups16 pad1 layout8 +bias +relu', 'n:1 kb:2 h:5 r:3 s:3 w:5 ki:8'],
  ['conv2d n1 c16 h7 w7 k16 r1 s1 stride1 layout8 +bias +residual +relu', 'n:1 kb:2 h:7 cb:2 r:1 s:1 ci:8 w:7 ki:8'],
  ['avgpool2d n1 c16 h9 w9 r3 s3 stride2 pad1 layout8', null],
  ['globalavgpool n1 c32 h7 w7 layout16', null],
];

/** The schedule with its first output loop of more than one iteration parallel, if no reduction loop runs above it. */
function withBand(s: Schedule): Schedule | null {
  const p = s.problem;
  const at = s.loops.findIndex((l) => l.size > 1);
  if (at < 0 || at === s.loops.length - 1 || isReduction(p, s.loops[at]!.var) || s.loops.slice(0, at).some((l) => isReduction(p, l.var))) return null;
  return s.withLoops(s.loops.map((l, i) => (i === at ? { ...l, parallel: true } : l)), 0);
}

for (const target of TARGETS) {
  test(`${target}: blocked convs with +bias +relu (+residual) and blocked average pools match the interpreter, or are refused with one line`, async () => {
    const b = backend(target);
    const check = kernelCheck(target, run);
    const failures: string[] = [];
    for (const [spec, text] of EPILOGUES) {
      const p = parseProblem(spec);
      const schedule = text ? Schedule.parse(p, text) : Schedule.initial(p);
      if (!backend('avx512').caps.epilogueScratch) {
        // no fused epilogues yet: the backend refuses the problem with one line
        const why = b.validate?.(schedule);
        assert.ok(why && !why.includes('\n'), `${spec}: ${why}`);
        assert.match(why!, /no fused \w+ epilogue/);
        assert.throws(() => b.compile(schedule), (e: unknown) => e instanceof Error && e.message === why);
        continue;
      }
      const banded = withBand(schedule);
      for (const [threads, overwrite] of [[1, false], [2, true]] as const) {
        if (threads > 1 && !banded) continue;
        const s = threads > 1 ? banded! : schedule;
        const kernel = b.compile(s, { overwrite: overwrite && !p.tensors[0]!.pad });
        const error = await check.verify(kernel, s, { seed: 5, guard: true, threads });
        if (error !== undefined) failures.push(`${spec} | ${s.text()} | ${threads} threads: ${error}`);
      }
    }
    assert.equal(failures, []);
    check.finish();
  });
}

test.run();
