/**
 * Softmax and layer normalization over contiguous rows of fp32, as native AVX-512 or AVX2 code
 * emitted with the project's assembler (no compiler): the host ops of targets/runtime/host-ops.ts
 * for a row length fixed at emission (loop bounds, tail masks and 1/length are constants).
 * targets/runtime/native-host-ops.ts maps and calls them.
 *
 * Calling convention (System V; the runtime's kernel prototype, targets/runtime/executable-memory.ts,
 * with the row count where that prototype has reps; its tid and threads arguments are ignored):
 *   softmax:   void f(const float *x, float *y, int64_t rows)                               rdi rsi rdx
 *   layernorm: void f(const float *x, const float *gamma, const float *beta, float *y, int64_t rows)
 *                                                                                  rdi rsi rdx rcx r8
 * Row r is x[r*length .. r*length + length); y may be x itself (every element is read before
 * it is written). Only caller-saved registers are touched; vzeroupper runs before ret.
 *
 * Per row, the same passes and formulas as the JavaScript kernels, in fp32 vectors with four
 * independent accumulators per reduction (summed pairwise, then across lanes):
 *   softmax:   max; e = exp(x - max) stored, sum += e; y = e * (1 / sum)
 *   layernorm: m = sum(x) / length; d = x - m; c = sum(d) / length (the part of the mean that
 *              m's fp32 rounding lost); var = max(0, sum(d^2) / length - c^2);
 *              y = (d - c) * (1 / sqrt(var + epsilon)) * gamma + beta
 * The layer norm's correction term c (the "corrected two-pass" variance of Chan, Golub and
 * LeVeque) keeps rows with a large common offset (x = 1e4 + noise) as accurate as the float64
 * mean of the JS kernel: without it, m's rounding error (half an ulp of 1e4) would shift every
 * output by that much over the noise's deviation.
 * The length % lanes elements past the last full vector are one masked vector (never read or
 * written past the row); lanes outside the row are made neutral: -Infinity for the max and
 * the exponentials (e^-inf = 0 here, see row-exp.ts), 0 for the sums.
 */
import { fail } from '../../ir/errors.ts';
import { r8, rcx, rdi, rdx, rsi, type Gp64, type Label, type Mem } from './registers.ts';
import { EXP_FLOOR, emitExp } from './row-exp.ts';
import { RowEmitter, type RowAddress, type RowIsa, type RowVec } from './row-vector.ts';

export interface RowCode {
  code: Uint8Array;
  /** bytes of instructions; the constant pool follows */
  codeSize: number;
}

/** Independent accumulators per reduction: covers the FP add latency at two adds per cycle. */
const ACCUMULATORS = 4;
/** Longest row: its byte length must fit the imm32 of the pointer steps. */
const MAX_ROW = Math.floor(0x7fff_ffff / 4);

function checkLength(kind: string, length: number): void {
  if (!Number.isInteger(length) || length < 1 || length > MAX_ROW) fail(`native ${kind} rows: the row length must be an integer 1..${MAX_ROW}, got ${length}`);
}

/** The accumulators a pass over `length` floats writes (slot 0 always, through the tail at least). */
function accumulatorsUsed(e: RowEmitter, length: number): number {
  return Math.min(ACCUMULATORS, Math.max(1, Math.floor(length / e.lanes)));
}

/** acc[0] = the pairwise reduction of acc[0..used-1] by `op`, then the same value in every lane. */
function reduceAccumulators(e: RowEmitter, op: 'add' | 'max', acc: readonly RowVec[], used: number, scratch: RowVec): void {
  const combine = (x: RowVec, y: RowVec): void => (op === 'add' ? e.a.vaddps(x, x, y) : e.a.vmaxps(x, x, y));
  if (used >= 4) combine(acc[2]!, acc[3]!);
  if (used >= 2) combine(acc[0]!, acc[1]!);
  if (used >= 3) combine(acc[0]!, acc[2]!);
  e.allLanes(op, acc[0]!, scratch);
}

/** Softmax over each row of `length` contiguous floats (see the header for the call). */
/** The end of a row loop: both row pointers advanced, the next row, then the return. */
function endRows(e: RowEmitter, r: { x: Gp64; y: Gp64; rows: Gp64; row: Label; done: Label; length: number }): RowCode {
  const a = e.a;
  a.add(r.x, r.length * 4);
  a.add(r.y, r.length * 4);
  a.dec(r.rows);
  a.jnz(r.row);
  a.bind(r.done);
  a.vzeroupper();
  a.ret();
  return e.finish();
}

export function softmaxRowsCode(isa: RowIsa, length: number): RowCode {
  checkLength('softmax', length);
  const e = new RowEmitter(isa);
  const a = e.a;
  const acc = [0, 1, 2, 3].map((i) => e.v(i));
  const [d, n, p, max, floor, scratch] = [4, 5, 6, 7, 8, 9].map((i) => e.v(i)) as [RowVec, RowVec, RowVec, RowVec, RowVec, RowVec];
  const tail = length % e.lanes;
  const used = accumulatorsUsed(e, length);
  const x = rdi, y = rsi, rows = rdx;

  const done = a.newLabel();
  a.test(rows, rows);
  a.jle(done);
  e.prepareAllLanes();
  if (tail) e.setTail(tail);
  a.vmovups(floor, e.constant(EXP_FLOOR[isa]));
  // outside the row: 0 loaded + (-inf) = -inf; inside: x + 0 = x
  const outsideToMinusInf = (v: RowVec): void => a.vaddps(v, v, e.tailConstant(tail, 0, -Infinity));

  const row = a.newLabel();
  a.align(16);
  a.bind(row);
  // max
  for (let i = 0; i < used; i++) a.vmovups(acc[i]!, e.constant(-Infinity));
  e.pass(length, ACCUMULATORS, (at, slot) => a.vmaxps(acc[slot]!, acc[slot]!, at(x)), (at) => {
    e.loadTail(d, at(x));
    outsideToMinusInf(d);
    a.vmaxps(acc[0]!, acc[0]!, d);
  });
  reduceAccumulators(e, 'max', acc, used, scratch);
  a.vmovaps(max, acc[0]!);
  // e = exp(x - max), stored; sum of e
  for (let i = 0; i < used; i++) e.zero(acc[i]!);
  e.pass(length, ACCUMULATORS, (at, slot) => {
    a.vmovups(d, at(x));
    a.vsubps(d, d, max);
    emitExp(e, d, n, p, floor);
    a.vmovups(at(y), p);
    a.vaddps(acc[slot]!, acc[slot]!, p);
  }, (at) => {
    e.loadTail(d, at(x));
    outsideToMinusInf(d);
    a.vsubps(d, d, max);
    emitExp(e, d, n, p, floor);
    e.storeTail(at(y), p);
    a.vaddps(acc[0]!, acc[0]!, p);
  });
  reduceAccumulators(e, 'add', acc, used, scratch);
  const scale = max; // the max is no longer needed: 1 / sum takes its register
  a.vmovups(scale, e.constant(1));
  a.vdivps(scale, scale, acc[0]!);
  // y = e * (1 / sum)
  e.pass(length, ACCUMULATORS, (at) => {
    a.vmulps(d, scale, at(y));
    a.vmovups(at(y), d);
  }, (at) => {
    e.loadTail(d, at(y));
    a.vmulps(d, d, scale);
    e.storeTail(at(y), d);
  });
  return endRows(e, { x, y, rows, row, done, length });
}

/** Layer normalization over each row of `length` contiguous floats with gamma, beta of `length` (see the header). */
export function layerNormRowsCode(isa: RowIsa, length: number, epsilon: number): RowCode {
  checkLength('layernorm', length);
  if (!Number.isFinite(epsilon)) fail(`native layernorm rows: epsilon must be a finite number, got ${epsilon}`);
  const e = new RowEmitter(isa);
  const a = e.a;
  const acc = [0, 1, 2, 3].map((i) => e.v(i));
  const dsum = [10, 11, 12, 13].map((i) => e.v(i)); // sum(d) beside acc's sum(d^2)
  const [d, g, mean, inv, b, scratch] = [4, 5, 6, 7, 8, 9].map((i) => e.v(i)) as [RowVec, RowVec, RowVec, RowVec, RowVec, RowVec];
  const shift = e.v(14); // c: the correction to the mean
  const tail = length % e.lanes;
  const used = accumulatorsUsed(e, length);
  const x = rdi, gamma = rsi, beta = rdx, y = rcx, rows = r8;

  const done = a.newLabel();
  a.test(rows, rows);
  a.jle(done);
  e.prepareAllLanes();
  if (tail) e.setTail(tail);

  const row = a.newLabel();
  a.align(16);
  a.bind(row);
  // m
  for (let i = 0; i < used; i++) e.zero(acc[i]!);
  e.pass(length, ACCUMULATORS, (at, slot) => a.vaddps(acc[slot]!, acc[slot]!, at(x)), (at) => {
    e.loadTail(d, at(x)); // 0 outside the row
    a.vaddps(acc[0]!, acc[0]!, d);
  });
  reduceAccumulators(e, 'add', acc, used, scratch);
  a.vdivps(mean, acc[0]!, e.constant(length));
  // sum(d^2) and sum(d), then c and 1 / sqrt(var + epsilon)
  for (let i = 0; i < used; i++) {
    e.zero(acc[i]!);
    e.zero(dsum[i]!);
  }
  e.pass(length, ACCUMULATORS, (at, slot) => {
    a.vmovups(d, at(x));
    a.vsubps(d, d, mean);
    a.vfmadd231ps(acc[slot]!, d, d);
    a.vaddps(dsum[slot]!, dsum[slot]!, d);
  }, (at) => {
    e.loadTail(d, at(x));
    a.vsubps(d, d, mean);
    a.vmulps(d, d, e.tailConstant(tail, 1, 0)); // -m outside the row: 0
    a.vfmadd231ps(acc[0]!, d, d);
    a.vaddps(dsum[0]!, dsum[0]!, d);
  });
  reduceAccumulators(e, 'add', acc, used, scratch);
  reduceAccumulators(e, 'add', dsum, used, scratch);
  a.vdivps(shift, dsum[0]!, e.constant(length));
  a.vdivps(acc[0]!, acc[0]!, e.constant(length));
  a.vfnmadd231ps(acc[0]!, shift, shift); // var = sum(d^2) / length - c^2
  e.zero(scratch);
  a.vmaxps(acc[0]!, acc[0]!, scratch); // rounding may leave a constant row's var a hair below 0
  a.vaddps(acc[0]!, acc[0]!, e.constant(epsilon));
  e.vsqrtps(acc[0]!, acc[0]!);
  a.vmovups(inv, e.constant(1));
  a.vdivps(inv, inv, acc[0]!);
  // y = (d - c) * inv * gamma + beta
  const normalized = (at: RowAddress, load: (dst: RowVec, src: Mem) => void): void => {
    load(d, at(x));
    a.vsubps(d, d, mean);
    a.vsubps(d, d, shift);
    a.vmulps(d, d, inv);
  };
  e.pass(length, ACCUMULATORS, (at) => {
    normalized(at, (dst, src) => a.vmovups(dst, src));
    a.vmovups(g, at(gamma));
    a.vfmadd213ps(d, g, at(beta));
    a.vmovups(at(y), d);
  }, (at) => {
    normalized(at, (dst, src) => e.loadTail(dst, src));
    e.loadTail(g, at(gamma));
    e.loadTail(b, at(beta));
    a.vfmadd213ps(d, g, b);
    e.storeTail(at(y), d);
  });
  return endRows(e, { x, y, rows, row, done, length });
}
