/**
 * Fused epilogues in the x86 printer (avx2, avx512 and their scalar path): random problems with
 * epilogue chains (matmul, conv2d with pad/outpad/groups/stride 2, avg and global pools,
 * elementwise ops, reduce) under schedules that apply the epilogue inside the tile and ones that
 * split a reduction above it (the separate pass), on partial vectors, the scalar path, parallel
 * bands on 2 and 3 threads and overwriting kernels, each run on guarded buffers in a measurement
 * worker and checked against the interpreter; then sigmoid and gelu element by element on
 * [-20, 20] against applyEpilogueOp, and the structure of the emitted code. Where the host lacks
 * AVX-512, the avx512 kernels are compiled and (a spread of them) decoded instead (tests/host.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, randomBand, randomSchedule } from '../../../ir/random.ts';
import { applyEpilogueOp, isReduction, type EpilogueKind, type Problem } from '../../../ir/problem.ts';
import { Schedule, type Loop } from '../../../ir/schedule.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { walkProgram, type LoopProgram } from '../../../loopnest/program.ts';
import type { TargetCaps } from '../../../loopnest/caps.ts';
import { lower } from '../../../loopnest/lower.ts';
import type { Kernel } from '../../../targets/kernel.ts';
import { workerRunner } from '../../../targets/native-runner.ts';
import { backend } from '../../../targets/registry.ts';
import { MeasurementPool } from '../../../targets/runtime/measure.ts';
import { X86_EPILOGUE_SCRATCH } from '../../../targets/x86/emit.ts';
import { checkWithoutRunning, hostRunsTarget, kernelCheck } from '../../host.ts';

const pool = new MeasurementPool({ timeoutSeconds: 20 });
const run = workerRunner(pool);

test.after(async () => {
  await pool.close();
});

// ---- random problems with epilogue chains ------------------------------------------------------

/** chains for any op (no channel needed) and for ops with a channel (+bias) */
const CHAINS = [
  '+relu', '+sigmoid', '+gelu', '+scale0.5', '+clip-1,2.5', '+relu6', '+residual +relu', '+clip-1,2.5 +sigmoid',
  '+residual +gelu', '+scale-1.5 +sigmoid +residual', '+gelu +scale2 +clip-0.25,0.75', '+residual +sigmoid +gelu',
];
const BIAS_CHAINS = ['+bias +relu', '+bias +gelu', '+bias', '+bias +residual +relu', '+bias +sigmoid', '+residual +bias +clip-0.5,0.5', '+bias +relu6'];

const FAMILIES = ['matmul', 'conv2d', 'avgpool2d', 'globalavgpool', 'add', 'relu', 'copy', 'reduce'] as const;
type Family = typeof FAMILIES[number];

/** `scale` multiplies the largest extents, not windows or options (the pass modes need nests too big to unroll whole) */
function randomSpec(rng: Rng, family: Family, scale = 1): string {
  const n = (lo: number, hi: number): number => rng.int(lo, hi);
  const d = (lo: number, hi: number): number => rng.int(lo, Math.round(hi * scale));
  const chain = (withBias: boolean): string => (withBias && rng.next() < 0.6 ? rng.pick(BIAS_CHAINS) : rng.pick(CHAINS));
  switch (family) {
    case 'matmul': return `matmul ${d(1, 40)}x${d(1, 40)}x${d(1, 24)} ${chain(true)}`;
    case 'conv2d': {
      const groups = rng.pick([1, 1, 2, 3]);
      const c = groups * d(1, 3), k = groups * d(1, 3);
      // a pad must stay below the window
      const r = n(1, 3), s = n(1, 3), stride = rng.pick([1, 2]), pad = Math.min(r, s) > 1 ? n(0, 1) : 0, outpad = n(0, 1);
      return `conv2d n1 c${c} h${r + d(0, 7)} w${s + d(0, 19)} k${k} r${r} s${s} stride${stride} pad${pad}`
        + `${outpad ? ` outpad${outpad}` : ''}${groups > 1 ? ` groups${groups}` : ''} ${chain(true)}`;
    }
    case 'avgpool2d': {
      const r = n(1, 3), s = n(1, 3), outpad = n(0, 1);
      return `avgpool2d n${n(1, 2)} c${d(1, 5)} h${r + d(0, 7)} w${s + d(0, 19)} r${r} s${s} stride${n(1, 2)}${outpad ? ` outpad${outpad}` : ''} ${chain(false)}`;
    }
    case 'globalavgpool': return `globalavgpool n${n(1, 2)} c${d(1, 40)} h${n(1, 7)} w${n(1, 7)} ${chain(false)}`;
    case 'reduce': return `reduce ${d(1, 20)}x${d(1, 30)} axis${n(0, 1)} ${chain(false)}`;
    default: return `${family} ${d(1, 12)}x${d(1, 40)} ${chain(false)}`;
  }
}

// ---- schedules that place the epilogue in the tile or in the pass ------------------------------

/** The initial schedule with loop `from` moved to position `to`. */
function moved(p: Problem, from: number, to: number): Schedule {
  const loops: Loop[] = [...Schedule.initial(p).loops];
  const [l] = loops.splice(from, 1);
  loops.splice(to, 0, l!);
  return new Schedule(p, loops);
}

/**
 * A schedule whose tiles hold only part of each output's reduction, so the epilogue runs as the
 * separate pass: a reduction loop of a random schedule moved outermost (with `band`, below a
 * parallel output loop: the pass then runs inside the band). Null when a few draws find none
 * (no reduction, or a nest so small that it unrolls whole).
 */
function withPass(p: Problem, rng: Rng, caps: TargetCaps, band: boolean): Schedule | null {
  for (let attempt = 0; attempt < 48; attempt++) {
    const loops: Loop[] = [...randomSchedule(p, rng, rng.int(0, 12)).loops];
    const red = loops.flatMap((l, i) => (isReduction(p, l.var) && l.size > 1 ? [i] : []));
    if (red.length === 0) return null;
    const [r] = loops.splice(rng.pick(red), 1);
    const order: Loop[] = [r!];
    if (band) {
      const out = loops.flatMap((l, i) => (!isReduction(p, l.var) && l.size > 1 ? [i] : []));
      if (out.length === 0) return null;
      const [o] = loops.splice(rng.pick(out), 1);
      order.unshift({ ...o!, parallel: true });
    }
    let s: Schedule;
    try {
      s = new Schedule(p, [...order, ...loops]);
    } catch {
      continue; // moving a split loop above its variable's outer loop can break the split
    }
    if (placements(lower(s, caps)).pass) return s;
  }
  return null;
}

/** The vector variable's loop moved outermost, which usually leaves its innermost loop outside the unrolled tile: the scalar path. */
function vectorOutermost(p: Problem): Schedule {
  const last = p.output.index[p.output.index.length - 1]!.terms[0]!.var;
  const i = Schedule.initial(p).loops.findIndex((l) => l.var === last);
  return moved(p, i, 0);
}

type Mode = 'initial' | 'random' | 'pass' | 'scalar' | 'band' | 'band-pass';
/** one mode per round of FAMILIES cases; the pass modes twice (three families of eight have no reduction) */
const MODES: Mode[] = ['initial', 'pass', 'band-pass', 'random', 'scalar', 'pass', 'band', 'band-pass'];

function scheduleFor(p: Problem, mode: Mode, rng: Rng, caps: TargetCaps): Schedule {
  switch (mode) {
    case 'initial': return Schedule.initial(p);
    case 'random': return randomSchedule(p, rng, rng.int(1, 16));
    case 'pass': return withPass(p, rng, caps, false) ?? randomSchedule(p, rng, 8);
    case 'scalar': return vectorOutermost(p);
    case 'band': return randomBand(randomSchedule(p, rng, rng.int(0, 12)), rng);
    case 'band-pass': return withPass(p, rng, caps, true) ?? randomBand(Schedule.initial(p), rng);
  }
}

/** Where a program applies its epilogue: tiles with a body (in the tile) and body-less tiles (the pass). */
function placements(program: LoopProgram): { tile: boolean; pass: boolean; partial: boolean } {
  let tile = false, pass = false, partial = false;
  walkProgram(program.body, (n) => {
    if (n.kind !== 'tile' || !n.epilogue) return;
    if (n.body.length > 0) tile = true;
    else pass = true;
    if (program.decision.lanes > 1 && n.accumulators.some((a) => a.count < program.decision.lanes)) partial = true;
  });
  return { tile, pass, partial };
}

const SEEDS = { avx512: 20270101, avx2: 20270102 } as const;
const CASES = 150;

for (const target of ['avx512', 'avx2'] as const) {
  test(`${target}: ${CASES} random epilogue kernels (in-tile and pass, partial, scalar, bands on 2-3 threads, overwriting) match the interpreter`, async () => {
    const b = backend(target);
    const check = kernelCheck(target, run);
    const seen = {
      tile: 0, pass: 0, partial: 0, scalar: 0, overwriting: 0, fivePointers: 0,
      bandTile: { 2: 0, 3: 0 } as Record<number, number>, bandPass: { 2: 0, 3: 0 } as Record<number, number>,
      kinds: {} as Partial<Record<EpilogueKind, number>>, families: {} as Partial<Record<Family, number>>,
    };
    const failures: string[] = [];
    for (let i = 0; i < CASES; i++) {
      const rng = new Rng(SEEDS[target] * 1009 + i);
      const family = FAMILIES[i % FAMILIES.length]!;
      const mode = MODES[Math.floor(i / FAMILIES.length) % MODES.length]!;
      const p = parseProblem(randomSpec(rng, family, mode === 'pass' || mode === 'band-pass' ? 2 : 1));
      const schedule = scheduleFor(p, mode, rng, b.caps);
      const threads = rng.pick([2, 3]);
      // (not with a padded output: verifyKernel expects an overwriting kernel's whole buffer, border included, to start at zero)
      const overwrite = rng.next() < 0.5 && !p.tensors[0]!.pad;
      let kernel;
      try {
        kernel = b.compile(schedule, { overwrite });
      } catch (e) {
        failures.push(`${p.spec} | ${schedule.text()}: codegen: ${(e as Error).message}`);
        continue;
      }
      const error = await check.verify(kernel, schedule, { seed: i + 1, guard: true, threads });
      if (error !== undefined) failures.push(`${p.spec} | ${schedule.text()} | ${threads} threads${kernel.abi.overwrites ? ', overwriting' : ''}: ${error}`);
      const at = placements(kernel.program);
      if (at.tile) seen.tile++;
      if (at.pass) seen.pass++;
      if (at.partial) seen.partial++;
      if (kernel.program.decision.lanes === 1) seen.scalar++;
      if (kernel.abi.overwrites) seen.overwriting++;
      if (p.tensors.length === 5) seen.fivePointers++;
      if (kernel.abi.parallel) {
        if (at.tile) seen.bandTile[threads]!++;
        if (at.pass) seen.bandPass[threads]!++;
      }
      for (const e of p.epilogue ?? []) seen.kinds[e.kind] = (seen.kinds[e.kind] ?? 0) + 1;
      seen.families[family] = (seen.families[family] ?? 0) + 1;
    }
    assert.equal(failures, [], failures.slice(0, 3).join('\n'));
    check.finish();
    const report = JSON.stringify(seen);
    assert.ok(seen.tile >= 60 && seen.pass >= 25, `placements: ${report}`);
    assert.ok(seen.partial >= 50 && seen.scalar >= 15 && seen.overwriting >= 12 && seen.fivePointers >= 3, report);
    for (const t of [2, 3]) assert.ok(seen.bandTile[t]! >= 8 && seen.bandPass[t]! >= 5, `bands: ${report}`);
    for (const k of Object.keys(X86_EPILOGUE_SCRATCH) as EpilogueKind[]) assert.ok((seen.kinds[k] ?? 0) >= 5, `kinds: ${report}`);
  });
}

// ---- fixed cases: the layer shapes the brief names, each placement ----------------------------

const FIXED: [string, string | null][] = [
  ['conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 outpad1 +bias +relu', null],
  ['conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 outpad1 +bias +relu', 'c:8 n:1 k:8 h:9 w:9 r:3 s:3'],
  ['conv2d n1 c6 h11 w13 k6 r3 s3 stride2 pad1 groups3 +bias +gelu', null],
  ['conv2d n1 c4 h7 w20 k4 r3 s3 stride1 pad1 groups4 +residual +relu', 'r:3 n:1 g:4 k:1 h:7 w:20 c:1 s:3'],
  ['conv2d n1 c8 h9 w9 k8 r3 s3 stride1 pad1 outpad1 +bias +sigmoid', 'k:8p c:8 n:1 h:9 w:9 r:3 s:3'],
  ['matmul 33x17x9 +bias +gelu', null],
  ['matmul 33x17x9 +bias +gelu', 'k:9 m:33 n:17'],
  ['matmul 33x40x9 +bias +residual +relu', 'm:3p k:9 m:11 n:40'],
  ['matmul 17x33x5 +bias +residual +sigmoid', 'n:33 m:17 k:5'],
  ['add 7x13 +residual +sigmoid', null],
  ['relu 9x31 +clip-1,2.5 +sigmoid', 'i:9p j:31'],
  ['copy 5x19 +scale0.5 +gelu', 'j:19 i:5'],
  ['avgpool2d n1 c4 h9 w9 r3 s3 stride2', null],
  ['avgpool2d n1 c4 h9 w9 r3 s3 stride2 outpad1 +relu', 'r:3 n:1 c:4 h:4 w:4 s:3'],
  ['globalavgpool n1 c16 h7 w7', null],
  ['globalavgpool n1 c35 h7 w7 +sigmoid', 'r:7 n:1 c:35 h:1 w:1 s:7'],
  ['reduce 13x21 axis1 +residual +gelu', null],
  ['reduce 13x21 axis0 +relu6', 'i:13 j:21'],
];

for (const target of ['avx512', 'avx2'] as const) {
  test(`${target}: named layer shapes, each schedule on 1 and 3 threads, accumulating and overwriting`, async () => {
    const b = backend(target);
    const check = kernelCheck(target, run);
    const failures: string[] = [];
    for (const [spec, text] of FIXED) {
      const p = parseProblem(spec);
      const schedule = text ? Schedule.parse(p, text) : Schedule.initial(p);
      for (const [threads, overwrite] of [[1, false], [3, true]] as const) {
        const kernel = b.compile(schedule, { overwrite: overwrite && !p.tensors[0]!.pad });
        const error = await check.verify(kernel, schedule, { seed: 7, guard: true, threads });
        if (error !== undefined) failures.push(`${spec} | ${schedule.text()} | ${threads} threads: ${error}`);
      }
    }
    assert.equal(failures, []);
    check.finish();
  });
}

// ---- sigmoid and gelu, element by element --------------------------------------------------------

const POINTS = 4001;

for (const target of ['avx512', 'avx2'] as const) {
  for (const kind of ['sigmoid', 'gelu'] as const) {
    test(`${target}: ${kind} on [-20, 20] within a few ulps of applyEpilogueOp (vector and scalar path)`, async () => {
      const p = parseProblem(`copy 2x${POINTS} +${kind}`);
      const input = Float32Array.from({ length: 2 * POINTS }, (_, i) => -20 + (40 * (i % POINTS)) / (POINTS - 1) + (i < POINTS ? 0 : 1e-3));
      // j innermost: vectors (a partial one at the end); j outermost: its innermost loop leaves the unrolled tile, the scalar path
      const kernels = ([['i:2 j:250r1 j:16', target === 'avx512' ? 16 : 8], ['j:4001 i:2', 1]] as const).map(([text, lanes]) => {
        const kernel = backend(target).compile(Schedule.parse(p, text));
        assert.is(kernel.program.decision.lanes, lanes, text);
        return { text, kernel };
      });
      if (!hostRunsTarget(target)) {
        checkWithoutRunning(target, kernels.map((k) => k.kernel));
        return;
      }
      for (const { text, kernel } of kernels) {
        const r = await pool.run(kernel, [new Float32Array(2 * POINTS), input], { guard: true });
        assert.ok(r.ok, r.ok ? '' : r.error);
        let worst = 0, at = 0;
        input.forEach((x, i) => {
          const want = applyEpilogueOp({ kind }, x, 0);
          const ulps = Math.abs(r.output[i]! - want) / (Math.max(1, Math.abs(want)) * 2 ** -23);
          if (ulps > worst) [worst, at] = [ulps, x];
        });
        // sigmoid measured about 1 ulp, gelu 8 (erf's rational approximation near its clamp at |u| = 4)
        assert.ok(worst <= (kind === 'sigmoid' ? 2 : 12), `${text}: ${worst.toFixed(2)} ulps at x = ${at}`);
      }
    });
  }
}

// ---- structure of the emitted code ---------------------------------------------------------------

/** The printer's listing of a kernel: its constant pool is listed as data, so every other line is an instruction. */
function listing(kernel: Kernel): string {
  const b = backend(kernel.target);
  if (!b.disassemble) throw new Error(`${kernel.target} has no disassembler`);
  return b.disassemble(kernel);
}

test('caps declare every epilogue kind with the scratch the emitter uses; the lowering leaves it free', () => {
  for (const target of ['avx512', 'avx2'] as const) {
    const caps = backend(target).caps;
    assert.equal(caps.epilogueScratch, { ...X86_EPILOGUE_SCRATCH });
    // gelu needs 3 scratch registers above the accumulators, below the registers set aside
    const p = parseProblem('matmul 64x61x32 +bias +gelu');
    const rng = new Rng(5);
    let tiles = 0;
    for (let i = 0; i < 40; i++) {
      const prog = lower(randomSchedule(p, rng, 10), caps);
      const d = prog.decision;
      const registers = (d.lanes === 1 ? caps.scalarRegisters : caps.vectorRegisters) - [d.zeroRegister, d.maskRegister, d.indexRegister].filter(Boolean).length;
      walkProgram(prog.body, (n) => {
        if (n.kind !== 'tile' || !n.epilogue) return;
        tiles++;
        assert.ok(n.accumulators.length + X86_EPILOGUE_SCRATCH.gelu <= registers, `${n.accumulators.length} accumulators of ${registers} registers`);
      });
    }
    assert.ok(tiles > 40);
  }
});

test('constants come from a RIP-relative pool: AVX-512 {1to16} operands, AVX2 full vectors, no immediates in vector registers', () => {
  const p = parseProblem('matmul 16x32x8 +bias +sigmoid +clip-1,2.5');
  const s = Schedule.parse(p, 'm:16 n:32 k:8');
  const z = listing(backend('avx512').compile(s));
  assert.match(z, /vmaxps\s+zmm\d+, zmm\d+, dword ptr \[rip \+ \d+\]\{1to16\}/);
  assert.match(z, /vfmadd213ps\s+zmm\d+, zmm\d+, dword ptr \[rip \+ \d+\]\{1to16\}/);
  assert.match(z, /vrndscaleps\s+zmm\d+, zmm\d+, 0/);
  assert.match(z, /vpslld\s+zmm\d+, zmm\d+, 23/);
  const y = listing(backend('avx2').compile(s));
  assert.match(y, /vminps\s+ymm\d+, ymm\d+, ymmword ptr \[rip \+ \d+\]/);
  assert.match(y, /vroundps\s+ymm\d+, ymm\d+, 0/);
  assert.match(y, /vbroadcastss\s+ymm\d+, dword ptr \[rip \+ \d+\]/);
  // no constant reaches a vector register through a general-purpose one
  assert.not.match(y, /vmovd|vpinsrd|movabs/);
});

test('a five-tensor kernel (matmul +bias +residual) keeps its pointers in rdi..r8, reps in r9, tid and threads from the stack', () => {
  const p = parseProblem('matmul 9x20x4 +bias +residual +relu');
  assert.is(p.tensors.length, 5);
  const k = backend('avx2').compile(Schedule.parse(p, 'm:9p n:20 k:4'));
  assert.ok(k.abi.parallel);
  const asm = listing(k);
  // the 7th and 8th integer arguments: above the saved registers and the return address
  assert.match(asm, /mov\s+r11, qword ptr \[rsp \+ 104\]\n.*mov\s+qword ptr \[rsp\], r11\n.*mov\s+r11, qword ptr \[rsp \+ 112\]/);
  assert.match(asm, /mov\s+rax, r9\n/);
  assert.not.match(asm, /(inc|dec|mov)\s+(rcx|r8)\b/, 'rcx and r8 hold pointers, not counters');
});

test.run();
