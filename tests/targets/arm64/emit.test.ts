/**
 * The neon emitter on hand-picked kernels, run under qemu-aarch64 on guarded buffers (one element
 * past any tensor faults) and compared with the interpreter; the code shape of the important
 * cases is checked on the disassembly (llvm-mc-14).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomArray } from '../../../ir/interpret.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { Schedule } from '../../../ir/schedule.ts';
import type { Combine } from '../../../ir/problem.ts';
import type { ComputeNode, ComputeOp, LoopNode, LoopProgram, Operand, ProgramNode, TileNode } from '../../../loopnest/program.ts';
import { compileSchedule, backend } from '../../../targets/registry.ts';
import { verifyKernel } from '../../../targets/verify.ts';
import type { Kernel } from '../../../targets/kernel.ts';
import { disassembleArm64Words } from '../../../targets/arm64/disassemble.ts';
import { emitArm64 } from '../../../targets/arm64/emit.ts';
import { arm64Available, runArm64Batch, runArm64Kernel } from '../../../targets/arm64/qemu-runner.ts';
import { Arm64BatchRunner } from '../../../targets/arm64/runner.ts';
import { arm64Target } from '../../../targets/arm64/target.ts';

const avail = arm64Available();
const requireArm64 = () => {
  if (!avail.ok) assert.unreachable(avail.reason); // names the Debian packages to install
};
const runner = new Arm64BatchRunner();

function compile(spec: string, schedule: string): { kernel: Kernel; schedule: Schedule } {
  const s = Schedule.parse(parseProblem(spec), schedule);
  return { kernel: compileSchedule(s, 'neon'), schedule: s };
}

/** Compiles, runs on guarded buffers and checks against the interpreter; returns the listing. */
async function check(spec: string, schedule: string): Promise<{ kernel: Kernel; text: string[] }> {
  requireArm64();
  const { kernel, schedule: s } = compile(spec, schedule);
  for (const seed of [1, 2]) {
    const v = await verifyKernel(kernel, s, runner.run, { seed, guard: true });
    assert.ok(v.verified, `${spec} | ${schedule}: ${v.error}`);
  }
  return { kernel, text: disassembleArm64Words(kernel.code).map((w) => w.text ?? '.inst') };
}

/** The innermost backward loop with the most FMAs: its instructions, label to branch. */
function innerLoop(text: string[]): string[] {
  let best: string[] = [];
  const loops: [number, number][] = [];
  text.forEach((t, i) => {
    const m = /^b\.ne #(-\d+)$/.exec(t);
    if (m) loops.push([i + Number(m[1]) / 4, i]);
  });
  for (const [from, to] of loops) {
    if (loops.some(([f, t]) => f >= from && t < to)) continue; // not innermost
    const body = text.slice(from, to + 1);
    if (body.filter((t) => t.startsWith('fmla')).length > best.filter((t) => t.startsWith('fmla')).length) best = body;
  }
  return best;
}

const count = (text: string[], re: RegExp) => text.filter((t) => re.test(t)).length;

test('target: caps, abi, disassembly', () => {
  const t = backend('neon');
  assert.equal(t.caps, arm64Target().caps);
  assert.is(t.caps.vectorLanes, 4);
  assert.is(t.caps.vectorRegisters, 32);
  assert.is(t.caps.hasMaskedTails, false);
  const { kernel } = compile('matmul 16x12x8', 'm:2 k:8 m:8 n:12');
  assert.is(kernel.target, 'neon');
  assert.is(kernel.abi.kind, 'aapcs64');
  assert.equal(kernel.abi.tensors.map((x) => x.elements), [16 * 12, 16 * 8, 8 * 12]);
  assert.is(kernel.flops, 2 * 16 * 12 * 8);
  assert.match(t.disassemble!(kernel), /fmla v0\.4s, v\d+\.4s, v\d+\.s\[0\]/);
});

test('matmul 16x12x8, 8x12 register tile (BLIS), k fully unrolled: matches', async () => {
  const { kernel, text } = await check('matmul 16x12x8', 'm:2 k:8 m:8 n:12');
  const d = kernel.program.decision;
  assert.is(d.lanes, 4);
  assert.is(d.accumulators, 24);
  assert.is(d.unrolledOps, 192);
  const inner = innerLoop(text); // the m:2 loop around the unrolled tile
  assert.is(count(inner, /^fmla v\d+\.4s, v\d+\.4s, v\d+\.s\[[0-3]\]$/), 192, 'all by element');
  assert.is(count(inner, /^(dup|ld1r)/), 0, 'no broadcasts');
});

test('matmul 16x12x64, 8x12 tile around the k loop: 11 loads per 24 FMAs, 39 instructions', async () => {
  const { kernel, text } = await check('matmul 16x12x64', 'm:2 k:64 m:8 n:12');
  assert.is(kernel.program.decision.accumulators, 24);
  const inner = innerLoop(text);
  assert.is(count(inner, /^fmla v\d+\.4s, v\d+\.4s, v\d+\.s\[0\]$/), 24);
  assert.is(count(inner, /^ldr q/), 3, 'the 3 B vectors');
  assert.is(count(inner, /^ldr s/), 8, 'the 8 A scalars, used by element (no dup, no ld1r)');
  assert.is(inner.length, 39, inner.join('\n')); // + 2 pointer adds, subs, b.ne
  // 24 accumulators + 4 operand registers reach v8-v15: their low halves are saved (the harness
  // checks d8-d15 after the call, so `check` passing proves the save/restore)
  assert.ok(text.some((t) => /^stp d8, d9, \[sp/.test(t)));
});

test('matmul with reps: the whole nest runs reps times (C += A*B, 3 times)', async () => {
  requireArm64();
  const { kernel } = compile('matmul 16x12x8', 'm:2 k:8 m:8 n:12');
  const a = randomArray(16 * 8, 5);
  const b = randomArray(8 * 12, 6);
  const c = randomArray(16 * 12, 7);
  const r = await runArm64Kernel(kernel.code, [c, a, b], { reps: 3, guard: true });
  if (!r.ok) return assert.unreachable(r.error);
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 12; j++) {
      let s = 0;
      for (let k = 0; k < 8; k++) s += a[i * 8 + k]! * b[k * 12 + j]!;
      assert.ok(Math.abs(r.output[i * 12 + j]! - (c[i * 12 + j]! + 3 * s)) < 1e-4, `C[${i},${j}]`);
    }
  }
});

test('k unrolled by 4: A values are loaded 4 at a time (ldr q) and used lane by lane', async () => {
  const { kernel, text } = await check('matmul 64x64x64', 'm:16 n:4 k:16 m:4 n:16 k:4');
  assert.is(kernel.program.decision.accumulators, 16);
  const inner = innerLoop(text);
  assert.is(count(inner, /^fmla/), 64);
  assert.is(count(inner, /^ldr q/), 16 + 4, '16 B vectors + 4 packs of A');
  for (const lane of [0, 1, 2, 3]) assert.is(count(inner, new RegExp(`^fmla .*\\.s\\[${lane}\\]$`)), 16);
});

test('elementwise add with tails of 1, 2 and 3 lanes: never past the buffers', async () => {
  for (const n of [5, 6, 7]) {
    const { text } = await check(`add 3x${n}`, `i:3 j:${n}`);
    if (n === 5) assert.ok(count(text, /^ldr s\d+, \[x[12], #16\]$/) >= 1, 'a 1-lane tail is one ldr s');
    if (n === 6) assert.ok(count(text, /^str d\d+, \[x0, #16\]$/) >= 1, 'a 2-lane tail is one str d');
    if (n === 7) {
      assert.ok(count(text, /^ld1 \{ v\d+\.s \}\[2\], \[x17\]$/) >= 2, 'the third lane of a 3-lane tail: ld1 lane');
      assert.ok(count(text, /^st1 \{ v\d+\.s \}\[2\], \[x17\]$/) >= 1);
      assert.is(count(text, /^ldr q\d+, \[x[12], #16\]/), 0, 'no full load over a tail');
    }
  }
  // tails inside loops, and a tail on the outer variable
  await check('add 37x7', 'i:37 j:7');
  await check('add 13x30', 'j:2r6 i:4r1 i:3 j:12');
  await check('mul 2x3x5', 'i:2 j:3 l:5');
});

test('relu: fmax with a zero register; a 30-accumulator tile still has an operand register', async () => {
  const { text } = await check('relu 5x11', 'i:5 j:11');
  assert.ok(text.includes('movi v31.2d, #0000000000000000'));
  assert.ok(count(text, /^fmax v\d+\.4s, v\d+\.4s, v31\.4s$/) >= 15);
  const big = await check('relu 10x12', 'i:10 j:12');
  assert.is(big.kernel.program.decision.accumulators, 30);
  await check('relu 1x1', 'i:1 j:1');
});

test('reductions and broadcasts: sum, max, conv, bmm, transpose (scalar path)', async () => {
  await check('reduce 7x9 axis1', 'i:7 j:9');
  await check('reduce 7x9 axis0', 'j:9 i:7');
  await check('reduce 5x6x7 axis1', 'i:5 j:6 l:7');
  await check('conv2d n1 c3 h6 w9 k2 r3 s3 stride1', 'n:1 k:2 h:4 c:3 r:3 w:7 s:3');
  await check('conv1d n2 c3 w20 k4 s3 stride2', 'n:2 k:4 w:9 c:3 s:3');
  await check('bmm b2 m5 n9 k7', 'b:2 m:5 k:7 n:9');
  const t = await check('transpose 7x9', 'i:7 j:9');
  assert.is(t.kernel.program.decision.lanes, 1);
});

test('scalar path: fmla s, s, v.s[i] with one input packed 4 at a time', async () => {
  const { kernel, text } = await check('matmul 3x40x64', 'm:3 n:40 k:64');
  assert.is(kernel.program.decision.lanes, 1);
  assert.ok(count(text, /^fmla s\d+, s\d+, v\d+\.s\[3\]$/) >= 16, 'A[m, k..k+3] packs used lane by lane');
  assert.ok(count(text, /^ldr q/) >= 16);
  await check('matmul 7x9x5', 'm:7 n:9 k:5'); // everything unrolled: vector path
  await check('matmul 5x33x9', 'n:33 m:5 k:9');
});

test('register pressure: operands evicted by furthest next use', async () => {
  const r = await check('matmul 10x12x2', 'm:10 n:12 k:2');
  assert.is(r.kernel.program.decision.accumulators, 30);
  await check('matmul 6x16x4', 'm:6 n:16 k:4');
  await check('matmul 12x24x8', 'm:2 n:2 m:6 n:12 k:8');
  await check('matmul 24x64x64', 'm:4 n:4 k:16 m:6 n:16 k:4');
});

test('offsets beyond the load immediates: through x16 (and x17 for tail lanes)', async () => {
  // rows 16400 bytes apart: ldr q reaches 65520 bytes, so rows 4..7 go through x16
  const big = await check('add 8x4100', 'j:1025 i:8 j:4');
  assert.ok(count(big.text, /^add x16, x[0-2], #\d+, lsl #12/) >= 1);
  await check('add 8x4099', 'j:1024r3 i:8 j:4'); // 3-lane tails at large offsets
  await check('matmul 4x8x5000', 'k:5000 m:4 n:8'); // ldr s beyond 16380 bytes
  await check('copy 3x70000', 'i:3 j:17500 j:4'); // pointer steps of 280000 bytes: add #hi, lsl #12 + add #lo
});

/**
 * A program with `depth` nested loops around a sum tile: out[0..3] += in[0..3] at every point.
 * Loops of one iteration advance both pointers by more than 2^24 bytes (mov + add), which is only
 * harmless if the pointers are restored exactly after the loop.
 */
function deepProgram(depth: number, counts: (d: number) => number): LoopProgram {
  const { kernel } = compile('add 1x4', 'i:1 j:4');
  let body: ProgramNode[] = [{
    kind: 'tile', accumulators: [{ offset: 0, count: 4 }], loadOutput: true,
    body: [{ kind: 'compute', groups: [[{ acc: 0, inputs: [{ tensor: 1, offset: 0, mode: 'vector', count: 4 }] }]] }],
  }];
  for (let d = depth - 1; d >= 0; d--) {
    const huge = counts(d) === 1 ? [3 << 23, -(1 << 25) - 12345] : [0, 0];
    const loop: LoopNode = { kind: 'loop', var: 0, count: counts(d), offsets: [0, 0], advance: huge, body };
    body = [loop];
  }
  return {
    ...kernel.program,
    combine: 'sum',
    tensors: [{ name: 'out', elements: 4 }, { name: 'in', elements: 4 }],
    decision: { ...kernel.program.decision, lanes: 4 },
    body,
  };
}

test('deep nests: counters in x9-x15, x3-x7, x19-x28 (saved) and then on the stack', async () => {
  requireArm64();
  const depth = 26; // 7 + 5 + 10 registers, then 4 stack slots
  const counts = (d: number) => (d % 5 === 0 ? 2 : d % 7 === 1 ? 3 : 1);
  let points = 1;
  for (let d = 0; d < depth; d++) points *= counts(d);
  const code = emitArm64(deepProgram(depth, counts));
  const text = disassembleArm64Words(code).map((w) => w.text ?? '');
  assert.ok(text.some((t) => /^stp x19, x20, \[sp/.test(t)));
  assert.ok(text.some((t) => /^str x17, \[sp, #24\]$/.test(t)), 'the fourth stack counter');
  assert.ok(text.some((t) => /^add x1, x1, x16$/.test(t)), 'a pointer step beyond 2^24 bytes');
  const out = new Float32Array([1, 2, 3, 4]);
  const inp = new Float32Array([0.5, -1, 2, 0.25]);
  const r = await runArm64Kernel(code, [out, inp], { reps: 2, guard: true });
  if (!r.ok) return assert.unreachable(r.error); // an ABI violation (x19-x28, sp) would show here
  assert.equal(Array.from(r.output), Array.from(out, (o, i) => o + 2 * points * inp[i]!));
});

/**
 * Broadcast operands next to vectors and to each other, for every combine (the lowering of the
 * built-in problems never broadcasts into fadd/fmax, but the contract allows it): one tile with a
 * full and a 3-lane accumulator, checked against a direct reading of the program.
 */
test('broadcasts into every combine (synthetic programs): dup where a whole register is needed', async () => {
  requireArm64();
  const base = compile('add 1x4', 'i:1 j:4').kernel.program;
  const V = (tensor: number, offset: number, count: number): Operand => ({ tensor, offset, mode: 'vector', count });
  const B = (tensor: number, offset: number): Operand => ({ tensor, offset, mode: 'broadcast', count: 1 });
  const combines: Combine[] = ['fma', 'mul', 'add', 'sum', 'max', 'relu', 'copy'];
  const programs = combines.map((combine): LoopProgram => {
    const two = combine === 'fma' || combine === 'mul' || combine === 'add';
    const groups: ComputeOp[][] = two
      ? [[{ acc: 0, inputs: [B(1, 2), V(2, 0, 4)] }, { acc: 1, inputs: [B(1, 5), B(2, 4)] }],
        [{ acc: 0, inputs: [V(1, 1, 4), B(2, 6)] }, { acc: 1, inputs: [B(1, 2), V(2, 3, 3)] }]]
      : [[{ acc: 0, inputs: [B(1, 3)] }, { acc: 1, inputs: [B(1, 3)] }], [{ acc: 1, inputs: [V(1, 4, 3)] }, { acc: 0, inputs: [B(1, 7)] }]];
    return {
      ...base, combine,
      tensors: [{ name: 'out', elements: 8 }, { name: 'a', elements: 8 }, { name: 'b', elements: 8 }].slice(0, two ? 3 : 2),
      decision: { ...base.decision, lanes: 4 },
      body: [{ kind: 'tile', accumulators: [{ offset: 0, count: 4 }, { offset: 4, count: 3 }], loadOutput: ['fma', 'sum', 'max'].includes(combine), body: [{ kind: 'compute', groups }] }],
    };
  });
  const data = [randomArray(8, 1), randomArray(8, 2), randomArray(8, 3)];
  const results = await runArm64Batch(programs.map((p) => ({ code: emitArm64(p), tensors: data.slice(0, p.tensors.length), guard: true })));
  programs.forEach((p, n) => {
    const r = results[n]!;
    if (!r.ok) return assert.unreachable(`${p.combine}: ${r.error}`);
    const want = Array.from(data[0]!);
    const tile = p.body[0] as TileNode;
    const val = (x: Operand, lane: number) => data[x.tensor]![x.offset + (x.mode === 'vector' ? lane : 0)]!;
    for (const op of (tile.body[0] as ComputeNode).groups.flat()) {
      const acc = tile.accumulators[op.acc]!;
      for (let l = 0; l < acc.count; l++) {
        const o = acc.offset + l;
        const [x, y] = op.inputs.map((i) => val(i, l));
        want[o] = Math.fround({
          fma: want[o]! + x! * y!, mul: x! * y!, add: x! + y!, sum: want[o]! + x!, max: Math.max(want[o]!, x!), relu: Math.max(x!, 0), copy: x!,
        }[p.combine]);
      }
    }
    Array.from(r.output).forEach((got, i) => assert.ok(Math.abs(got - want[i]!) < 1e-6, `${p.combine}: out[${i}] = ${got}, want ${want[i]}`));
    const text = disassembleArm64Words(emitArm64(p)).map((w) => w.text ?? '');
    if (!['fma', 'mul'].includes(p.combine)) assert.ok(text.some((t) => /^dup v\d+\.4s, v\d+\.s\[0\]$/.test(t)), `${p.combine} broadcasts with dup`);
  });
});

test('programs the emitter cannot take are errors, not bad code', () => {
  const { kernel } = compile('add 1x4', 'i:1 j:4');
  assert.throws(() => emitArm64({ ...kernel.program, decision: { ...kernel.program.decision, lanes: 8 } }), /8 lanes/);
});

test.run();
