/**
 * Strided vector reads on x86 (the input of a stride-2 convolution moves by 2 elements along the
 * output's unit-stride variable): a differential fuzz of stride-2 convolutions on guarded buffers
 * (a PROT_NONE page right after each tensor, so a permute's second load reading one element too far
 * crashes), covering every lane count of a strided operand (each has its own load sequence in
 * emit.ts loadStrided), on one thread and on two, and through LLVM (those two on the host's best
 * ISA); and the emitted code's shape. Where the host lacks AVX-512, the avx512 fuzz cases are
 * compiled and a spread of them decoded (tests/host.ts fuzzOrCheck).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, randomSchedule } from '../../../ir/random.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { Schedule } from '../../../ir/schedule.ts';
import type { Problem } from '../../../ir/problem.ts';
import { lower } from '../../../loopnest/lower.ts';
import { walkProgram, type LoopProgram } from '../../../loopnest/program.ts';
import { fuzzTarget, type FuzzReport } from '../../../targets/fuzz.ts';
import { llvmAvailable } from '../../../targets/llvm/index.ts';
import { workerRunner } from '../../../targets/native-runner.ts';
import type { Backend } from '../../../targets/backend.ts';
import type { Kernel } from '../../../targets/kernel.ts';
import { backend } from '../../../targets/registry.ts';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { RUN_TARGET, fuzzOrCheck, assertFuzzClean } from '../../host.ts';

const pool = new MeasurementPool({ timeoutSeconds: 20 });

test.after(async () => {
  await pool.close();
});

/** A stride-2 convolution with output widths 1..36 (several vectors and every tail length). */
function stridedConv(rng: Rng, op: string): Problem {
  const n = (max: number) => rng.int(1, max);
  const s = n(3);
  const w = s + 2 * (n(36) - 1) + rng.int(0, 1);
  if (op === 'conv1d') return parseProblem(`conv1d n${n(2)} c${n(5)} w${w} k${n(6)} s${s} stride2`);
  if (op === 'conv2d') {
    const r = n(3);
    return parseProblem(`conv2d n1 c${n(4)} h${r + n(5)} w${w} k${n(5)} r${r} s${s} stride2`);
  }
  const t = n(2), r = n(2);
  return parseProblem(`conv3d n1 c${n(2)} d${t + n(3)} h${r + n(3)} w${w} k${n(3)} t${t} r${r} s${s} stride2`);
}

/** Lane counts of the strided operands in a program. */
function stridedCounts(p: LoopProgram): number[] {
  const counts: number[] = [];
  walkProgram(p.body, (n) => {
    if (n.kind !== 'compute') return;
    for (const g of n.groups) for (const op of g) for (const x of op.inputs) if (x.stride === 2) counts.push(x.count);
  });
  return counts;
}

const assertClean = assertFuzzClean;

const SEEDS = { avx512: 20261231, avx2: 20261232 } as const;

for (const target of ['avx512', 'avx2'] as const) {
  test(`${target}: 300 stride-2 convolutions x random schedules on guarded buffers, zero mismatches, every lane count read strided`, async () => {
    const caps = backend(target).caps;
    const seen = new Set<number>();
    let strided = 0;
    const r = await fuzzOrCheck({
      target, cases: 300, seed: SEEDS[target], runner: workerRunner(pool), ops: ['conv1d', 'conv2d', 'conv3d'],
      problemFor: stridedConv,
      scheduleFor: (p, rng) => {
        const s = randomSchedule(p, rng, rng.int(0, 20));
        const counts = stridedCounts(lower(s, caps));
        if (counts.length > 0) strided++;
        for (const c of counts) seen.add(c);
        return s;
      },
    });
    assertClean(r, 300);
    assert.ok(strided >= 200, `only ${strided} of 300 kernels read their input strided`);
    const lanes = caps.vectorLanes;
    const missing = Array.from({ length: lanes }, (_, i) => i + 1).filter((c) => !seen.has(c));
    assert.equal(missing, [], `lane counts never read strided: ${missing.join(', ')}`);
  });
}

test(`${RUN_TARGET}: 100 stride-2 convolutions with random bands on 2 threads, zero mismatches`, async () => {
  const r = await fuzzTarget({
    target: RUN_TARGET, cases: 100, seed: 20261233, threads: [2], runner: workerRunner(pool), ops: ['conv2d'],
    problemFor: stridedConv, scheduleFor: (p, rng) => randomSchedule(p, rng, rng.int(0, 20)),
  });
  assertClean(r, 100);
  assert.ok((r.parallelByThreads?.['2'] ?? 0) >= 30, `only ${JSON.stringify(r.parallelByThreads)} parallel kernels`);
});

function disassembly(b: Backend, k: Kernel): string {
  if (!b.disassemble) throw new Error(`${b.name} has no disassembler`);
  return b.disassemble(k);
}

test(`llvm-${RUN_TARGET}: 30 stride-2 convolutions (the same strided programs, lane i at offset + 2i), zero mismatches`, async () => {
  const available = llvmAvailable();
  if (!available.ok) assert.unreachable(`the LLVM targets must be available on the test machine: ${available.reason}`);
  const target = `llvm-${RUN_TARGET}` as const;
  const caps = backend(target).caps;
  let strided = 0;
  const r = await fuzzTarget({
    target, cases: 30, seed: 20261234, runner: workerRunner(pool), ops: ['conv1d', 'conv2d'],
    problemFor: stridedConv,
    scheduleFor: (p, rng) => {
      const s = randomSchedule(p, rng, rng.int(0, 12));
      if (stridedCounts(lower(s, caps)).length > 0) strided++;
      return s;
    },
  });
  assertClean(r, 30);
  assert.ok(strided >= 20, `only ${strided} of 30 programs read their input strided`);
});

const CONV = parseProblem('conv2d n1 c4 h9 w41 k8 r3 s3 stride2');
const SCHEDULE = 'n:1 h:4 c:4 r:3 s:3 k:8 w:20';

test('avx512: a strided operand is two loads and a vpermt2ps by the index register, never an FMA memory operand', () => {
  const b = backend('avx512');
  const k = b.compile(Schedule.parse(CONV, SCHEDULE));
  assert.is(k.program.decision.indexRegister, true);
  const text = disassembly(b, k);
  // w = 20: a 16-lane vector (vpermt2ps) and a 4-lane one (vpermps), for each of the 9 unrolled (r, s) points (c loops)
  assert.is(text.split('\n').filter((l) => /\bvpermt2ps\b/.test(l)).length, 9, text);
  assert.is(text.split('\n').filter((l) => /\bvpermps\b/.test(l)).length, 9, text);
  // their element masks (15 and 7 lanes) stay in two opmasks: loaded once per iteration of c, not per point
  assert.is(text.split('\n').filter((l) => /\bkmovw\s+k[2-7]\b/.test(l)).length, 2, text);
  assert.not.match(text, /vgatherdps/);
  // FMA memory operands are the weights' broadcasts only: the input's vectors are in registers
  const fmaMem = text.split('\n').filter((l) => /\bvfmadd231ps\b.*ptr/.test(l));
  assert.ok(fmaMem.every((l) => l.includes('{1to16}')), fmaMem.join('\n'));
  // zmm31 holds the index (loaded once, rip-relative) and no accumulator or operand uses it otherwise
  assert.is(text.split('\n').filter((l) => /zmm31\b/.test(l) && !/vpermt2ps|vpermps/.test(l)).length, 1, text);
});

test('avx2: a strided operand is a load, a vshufps and a vpermpd (full) or masked loads (tails), never an FMA memory operand', () => {
  const b = backend('avx2');
  const k = b.compile(Schedule.parse(CONV, SCHEDULE));
  assert.is(k.program.decision.indexRegister, undefined);
  const text = disassembly(b, k);
  // w = 20: vectors of 8, 8 and 4 lanes (16 registers leave room for w alone in the tile: k, r, s loop)
  assert.is(text.split('\n').filter((l) => /\bvshufps\b/.test(l)).length, 3, text);
  assert.is(text.split('\n').filter((l) => /\bvpermpd\b/.test(l)).length, 3, text);
  // AVX2 broadcasts weights into registers (no embedded broadcast) and the input is strided: no FMA reads memory
  assert.equal(text.split('\n').filter((l) => /\bvfmadd231ps\b.*ptr/.test(l)), []);
  assert.is(text.split('\n').filter((l) => /\bvmaskmovps\b/.test(l) && !l.includes('[rdi')).length > 0, true, 'the 4-lane tail reads through vmaskmovps');
});

test('neon keeps refusing stride 2: the lowering takes the scalar path there', () => {
  const p = lower(Schedule.parse(CONV, SCHEDULE), backend('neon').caps);
  assert.is(p.decision.lanes, 1);
  assert.is(p.decision.scalarReason, 'I moves by 2 elements along w');
  assert.equal(stridedCounts(p), []);
});

test.run();
