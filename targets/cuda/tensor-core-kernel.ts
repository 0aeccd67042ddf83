/**
 * What both tensor-core printers (mma-ptx.ts, wgmma-ptx.ts) print alike around their main loops:
 * the kernel parameters (C, A, B, then the epilogue's bias / residual tensors in the problem's
 * order), the epilogue applied to a pair of accumulators at the store, and the module around the
 * body (dynamic shared memory, one entry of `threads` threads).
 */
import type { EpilogueOp } from '../../ir/problem.ts';
import type { PtxBuilder } from './ptx-builder.ts';
import { emitEpilogueOp, PTX_VERSION, type PrintedPtx } from './ptx.ts';

export interface MatmulParams {
  readonly pC: string;
  readonly pA: string;
  readonly pB: string;
  /** the epilogue ops that read a tensor (bias, residual), and their global pointers */
  readonly operandOps: readonly EpilogueOp[];
  readonly pE: readonly string[];
}

/** The parameters loaded and turned into global addresses. */
export function loadMatmulParams(b: PtxBuilder, epilogue: readonly EpilogueOp[]): MatmulParams {
  const [pC, pA, pB] = [b.rd(), b.rd(), b.rd()];
  b.emit(`ld.param.u64 ${pC}, [C]`);
  b.emit(`ld.param.u64 ${pA}, [A]`);
  b.emit(`ld.param.u64 ${pB}, [B]`);
  for (const r of [pC, pA, pB]) b.emit(`cvta.to.global.u64 ${r}, ${r}`);
  const operandOps = epilogue.filter((e) => e.kind === 'bias' || e.kind === 'residual');
  const pE = operandOps.map((_, i) => {
    const r = b.rd();
    b.emit(`ld.param.u64 ${r}, [E${i}]`);
    b.emit(`cvta.to.global.u64 ${r}, ${r}`);
    return r;
  });
  return { pC, pA, pB, operandOps, pE };
}

/**
 * The row guards of an m tail: `fragments` accumulator fragments of `fragmentRows` rows a thread
 * holds rows rowC + i * fragmentRows (+ 8) of; guard(i, h) is true where that row is inside M
 * (null where there is no tail: nothing is guarded).
 */
export function tailRowGuards(b: PtxBuilder, tail: boolean, rowC: string, M: number, fragments: number, fragmentRows: number): (i: number, h: number) => string | null {
  if (!tail) return () => null;
  const guards = Array.from({ length: 2 * fragments }, (_, k) => {
    const on = b.p();
    b.emit(`setp.lt.u32 ${on}, ${rowC}, ${Math.max(0, M - Math.floor(k / 2) * fragmentRows - (k % 2) * 8)}`);
    return on;
  });
  return (i, h) => guards[2 * i + h]!;
}

/**
 * A pair of accumulators starts from its pair of C (beta = 1), or from zero where the kernel
 * overwrites its output (nothing read) or the row is past M (its guard off: not loaded either).
 */
export function loadAccumulatorPair(b: PtxBuilder, pair: readonly string[], cAddress: string, guard: string | null, overwrite: boolean): void {
  if (guard || overwrite) for (const r of pair) b.emit(`mov.f32 ${r}, 0f00000000`);
  if (!overwrite) b.emit(`${guard ? `@${guard} ` : ''}ld.global.v2.f32 {${pair.join(', ')}}, ${cAddress}`);
}

/** Each epilogue tensor's address at this thread's first output: a bias at its column `colC`, a residual at its element `offC`. */
export function epilogueOperandAddresses(b: PtxBuilder, p: MatmulParams, colC: string, offC: string): string[] {
  return p.operandOps.map((e, i) => {
    const w = b.rd(), at = b.rd();
    b.emit(`mul.wide.u32 ${w}, ${e.kind === 'bias' ? colC : offC}, 4`);
    b.emit(`add.s64 ${at}, ${p.pE[i]}, ${w}`);
    return at;
  });
}

/**
 * A pair of accumulators (consecutive columns) through the epilogue and stored at `cAddress`:
 * `biasPair(k)` is the loaded bias pair of operand k, a residual pair is loaded at `residualAddress(k)`.
 */
export function storePair(
  b: PtxBuilder, epilogue: readonly EpilogueOp[], pair: readonly string[], cAddress: string,
  biasPair: (k: number) => readonly string[], residualAddress: (k: number) => string, guard: string | null = null,
): void {
  // a guarded pair (a row past M) neither reads its residual nor stores
  const on = guard ? `@${guard} ` : '';
  let k = 0;
  for (const e of epilogue) {
    let operand: readonly string[] = ['', ''];
    if (e.kind === 'bias') operand = biasPair(k++);
    else if (e.kind === 'residual') {
      operand = [b.f(), b.f()];
      b.emit(`${on}ld.global.v2.f32 {${operand.join(', ')}}, ${residualAddress(k++)}`);
    }
    pair.forEach((x, lane) => emitEpilogueOp(b, e, x, operand[lane]!));
  }
  b.emit(`${on}st.global.v2.f32 ${cAddress}, {${pair.join(', ')}}`);
}

/** A pair of partial sums added into C by one vector atomic (split-k: other blocks add their shares). */
export function reducePair(b: PtxBuilder, pair: readonly string[], cAddress: string, guard: string | null = null): void {
  b.emit(`${guard ? `@${guard} ` : ''}red.global.add.v2.f32 ${cAddress}, {${pair.join(', ')}}`);
}

/** PTX ISA version of a module: vector atomics (`red` .v2.f32) need 8.1, the rest 8.0 (ptx.ts). */
export function tensorCorePtxVersion(vectorAtomics: boolean): string {
  return vectorAtomics ? '8.1' : PTX_VERSION;
}

export interface TensorCoreModule {
  readonly entry: string;
  readonly target: string;
  /** alignment of the dynamic shared buffer's declaration */
  readonly sharedAlign: number;
  readonly threads: number;
  readonly grid: [number, number, number];
  readonly dynamicSharedBytes: number;
  /** the module's PTX ISA version (default PTX_VERSION) */
  readonly version?: string;
}

/** The module text around the builder's body, and its launch. */
export function tensorCoreModule(b: PtxBuilder, p: MatmulParams, m: TensorCoreModule): PrintedPtx {
  const head = [
    `.version ${m.version ?? PTX_VERSION}`,
    `.target ${m.target}`,
    '.address_size 64',
    `.extern .shared .align ${m.sharedAlign} .b8 smem[];`,
    '',
    `.visible .entry ${m.entry}(${['C', 'A', 'B', ...p.pE.map((_, i) => `E${i}`)].map((x) => `.param .u64 ${x}`).join(', ')})`,
    `.reqntid ${m.threads}, 1, 1`,
    '{',
  ];
  const ptx = [...head, ...b.declarations(), ...b.lines, '}', ''].join('\n');
  return {
    ptx,
    launch: { entry: m.entry, grid: m.grid, block: [m.threads, 1, 1], sharedBytes: 0, maxRegisters: null, dynamicSharedBytes: m.dynamicSharedBytes },
  };
}
