/**
 * PTX of a tensor-core matmul (loopnest/gpu-mma.ts's GpuMmaPlan): C[M,N] += A[M,K] · B[K,N], A and B
 * row-major in bf16 / f16 (2-byte storage) or fp32 (tf32 math), C in fp32.
 *
 *  - copies: every thread moves 16-byte chunks global -> shared with `cp.async.cg.shared.global`
 *    (L2 only, no register round trip), into the XOR-swizzled layout of the plan; its chunks are a
 *    fixed number of rows apart, so one address register per tensor and immediates cover them;
 *  - pipeline: `stages` shared buffers; the prologue puts stages - 1 k-tiles in flight (one
 *    commit_group each), then every iteration waits until its tile has landed
 *    (`cp.async.wait_group stages-2`), passes one barrier (which also tells every warp that the
 *    buffer read in the previous iteration is free), issues the copy of the tile stages - 1 ahead
 *    into that buffer, and computes on its own;
 *  - fragments: A by `ldmatrix.sync.aligned.m8n8.x4.shared.b16` (a 16 x 16 bf16 block, or 16 x 8
 *    tf32, per instruction), B by `ldmatrix ... .x4.trans` (16 k x 16 n: two n8 fragments) for the
 *    16-bit types and by `ld.shared.b32` for tf32 (ldmatrix transposes 16-bit elements only); tf32
 *    fragments are rounded with `cvt.rna.tf32.f32`;
 *  - math: `mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32` (m16n8k8 .tf32), the
 *    warp's (WM/16) x (WN/8) accumulator fragments in registers for the whole k loop;
 *  - epilogue (the problem's ops, in order, at the store): bias pairs loaded once per n fragment,
 *    residual pairs like C, the ops as ptx.ts writes them (emitEpilogueOp);
 *  - C: each lane's accumulators start from its pairs of C (ld.global.v2.f32 before the pipeline,
 *    overlapping the prologue: beta = 1, as every looptune kernel accumulates into its output) and
 *    are stored back at the end;
 *  - an m tail (plan.mTail): A's rows read through one clamped base register each (row-copies.ts),
 *    C's rows past M predicated off; a channels-last conv (plan.gather) reads A's rows from the
 *    input's pixels the same way (implicit-gemm.ts).
 * The shared buffers are dynamic shared memory (`.extern .shared`): the launch passes their size,
 * and the runner opts the function into more than 48 KiB.
 */
import type { GpuMmaPlan } from '../../loopnest/gpu-mma.ts';
import { swizzleOf } from '../../loopnest/gpu-mma.ts';
import { CpAsyncPipeline } from './cp-async-pipeline.ts';
import { rowCopies } from './row-copies.ts';
import { loadAccumulatorPair, loadMatmulParams, epilogueOperandAddresses, storePair, tailRowGuards, tensorCoreModule } from './tensor-core-kernel.ts';
import { PtxBuilder, addr } from './ptx-builder.ts';
import { PTX_TARGET, type PrintedPtx } from './ptx.ts';

export function printMmaPtx(plan: GpuMmaPlan, entry = 'looptune_mma'): PrintedPtx {
  const b = new PtxBuilder();
  const { M, N, K, block, warps, warpTile, stages, threads: T, elementBytes: eb, chunksA, chunksB, stageBytes } = plan;
  const BM = block.m, BN = block.n, BK = block.k;
  const KT = K / BK;
  const tf32 = plan.dtype === 'tf32';
  const atomK = plan.atom.k;
  const fragsM = warpTile.m / 16, fragsN = warpTile.n / 8;
  const aBytes = BM * BK * eb; // A's tile comes first in a stage, B's after it

  b.comment(`tensor cores: ${plan.dtype} ${M}x${N}x${K}, block ${BM}x${BN}x${BK}, warps ${warps.m}x${warps.n} of ${warpTile.m}x${warpTile.n}, ${stages} stages`);
  // the epilogue's tensors (bias, residual) follow A and B, in the problem's order
  const params = loadMatmulParams(b, plan.epilogue);
  const { pC, pA, pB, operandOps } = params;
  const tid = b.r(), bx = b.r(), by = b.r(), warp = b.r(), lane = b.r(), wm = b.r(), wn = b.r(), sbase = b.r();
  b.emit(`mov.u32 ${tid}, %tid.x`);
  b.emit(`mov.u32 ${bx}, %ctaid.x`);
  b.emit(`mov.u32 ${by}, %ctaid.y`);
  b.emit(`shr.u32 ${warp}, ${tid}, 5`);
  b.emit(`and.b32 ${lane}, ${tid}, 31`);
  b.emit(`div.u32 ${wm}, ${warp}, ${warps.n}`);
  b.emit(`rem.u32 ${wn}, ${warp}, ${warps.n}`);
  b.emit(`mov.u32 ${sbase}, smem`);

  /** r = (x / div) % mod for powers of two (shifts and masks) */
  const swizzleReg = (row: string, chunks: number): string => {
    const rowsPerLine = Math.max(1, 8 / chunks);
    const out = b.r();
    b.emit(`shr.u32 ${out}, ${row}, ${Math.log2(rowsPerLine)}`);
    b.emit(`and.b32 ${out}, ${out}, ${Math.min(chunks, 8) - 1}`);
    return out;
  };
  /** a global pointer plus elements * eb bytes (u32 element offset) */
  const globalAt = (base: string, elements: string): string => {
    const w = b.rd(), out = b.rd();
    b.emit(`mul.wide.u32 ${w}, ${elements}, ${eb}`);
    b.emit(`add.s64 ${out}, ${base}, ${w}`);
    return out;
  };
  const perChunk = 16 / eb;

  // ---- copy assignments: this thread's first chunk of A's and B's tiles; the others are rows apart
  const copy = (what: 'A' | 'B') => {
    const chunks = what === 'A' ? chunksA : chunksB;
    const rowElems = what === 'A' ? BK : BN;
    const rows = what === 'A' ? BM : BK;
    const ld = what === 'A' ? K : N;
    const row = b.r(), col = b.r(), t = b.r(), soff = b.r(), goff = b.r();
    b.emit(`shr.u32 ${row}, ${tid}, ${Math.log2(chunks)}`);
    b.emit(`and.b32 ${col}, ${tid}, ${chunks - 1}`);
    const sw = swizzleReg(row, chunks);
    b.emit(`xor.b32 ${t}, ${col}, ${sw}`);
    b.emit(`shl.b32 ${t}, ${t}, 4`);
    b.emit(`mad.lo.u32 ${soff}, ${row}, ${rowElems * eb}, ${t}`);
    b.emit(`add.u32 ${soff}, ${soff}, ${sbase}`);
    if (what === 'B') b.emit(`add.u32 ${soff}, ${soff}, ${aBytes}`);
    // global element offset of the chunk in k-tile 0
    if (what === 'A') {
      b.emit(`mad.lo.u32 ${goff}, ${by}, ${BM}, ${row}`);
      b.emit(`mul.lo.u32 ${goff}, ${goff}, ${ld}`);
    } else {
      b.emit(`mul.lo.u32 ${goff}, ${row}, ${ld}`);
      b.emit(`mad.lo.u32 ${goff}, ${bx}, ${BN}, ${goff}`);
    }
    b.emit(`mad.lo.u32 ${goff}, ${col}, ${perChunk}, ${goff}`);
    const g = globalAt(what === 'A' ? pA : pB, goff);
    const rowsApart = T / chunks;
    const items = (chunks * rows) / T;
    const sStep = rowsApart * rowElems * eb, gStep = rowsApart * ld * eb;
    // an m tail or a conv's gather: A's rows one base register each (row-copies.ts)
    const gathered = what === 'A' && (plan.mTail || plan.gather)
      ? rowCopies(b, { pA, by, BM, M, K, BK, eb, firstRow: row, rowsApart, rows: items, rowOf: (i) => i, chunkElements: col, chunkWidth: perChunk, ...(plan.gather ? { gather: plan.gather } : {}) })
      : undefined;
    return {
      s: soff, g, items, sItem: (i: number) => i * sStep, gItem: gathered ? () => 0 : (i: number) => i * gStep,
      gTile: what === 'A' ? BK * eb : BK * N * eb,
      ...(gathered ? { gathered } : {}),
    };
  };
  const cA = copy('A'), cB = copy('B');
  const pipeline = new CpAsyncPipeline(b, [cA, cB], { stages, stageBytes, tiles: KT, ahead: stages - 1 });

  // ---- fragment addresses (per lane; the stage's offset is added per iteration)
  const l16 = b.r(), half = b.r();
  b.emit(`and.b32 ${l16}, ${lane}, 15`);
  b.emit(`shr.u32 ${half}, ${lane}, 4`);
  // A: row wm*WM + lane%16 of the tile, chunk 2*kk + lane/16, swizzled by the row
  const aRow = b.r(), aX = b.r();
  b.emit(`mad.lo.u32 ${aRow}, ${wm}, ${warpTile.m}, ${l16}`);
  b.emit(`mul.lo.u32 ${aRow}, ${aRow}, ${BK * eb}`);
  b.emit(`xor.b32 ${aX}, ${half}, ${swizzleReg(l16, chunksA)}`);
  const aCol: string[] = [];
  for (let kk = 0; kk < BK / atomK; kk++) {
    const r = b.r();
    b.emit(`xor.b32 ${r}, ${aX}, ${2 * kk}`);
    b.emit(`shl.b32 ${r}, ${r}, 4`);
    b.emit(`add.u32 ${r}, ${r}, ${aRow}`);
    b.emit(`add.u32 ${r}, ${r}, ${sbase}`);
    aCol.push(r);
  }
  // B (16-bit types): k row lane%16 of the kk block, chunk (wn*WN + j2*16)/8 + lane/16, swizzled by the k row
  const bAddr: string[] = [];
  if (!tf32) {
    const bBase = b.r(), bX = b.r(), nChunk = b.r();
    b.emit(`mul.lo.u32 ${bBase}, ${l16}, ${BN * eb}`);
    b.emit(`add.u32 ${bBase}, ${bBase}, ${sbase}`);
    b.emit(`add.u32 ${bBase}, ${bBase}, ${aBytes}`);
    b.emit(`xor.b32 ${bX}, ${half}, ${swizzleReg(l16, chunksB)}`);
    b.emit(`mul.lo.u32 ${nChunk}, ${wn}, ${warpTile.n / perChunk}`);
    for (let j2 = 0; j2 < warpTile.n / 16; j2++) {
      const r = b.r();
      b.emit(`add.u32 ${r}, ${nChunk}, ${j2 * 2}`);
      b.emit(`xor.b32 ${r}, ${r}, ${bX}`);
      b.emit(`shl.b32 ${r}, ${r}, 4`);
      b.emit(`add.u32 ${r}, ${r}, ${bBase}`);
      bAddr.push(r);
    }
  } else {
    // tf32 B: b0 = B[k0 + t][n0 + g], b1 = B[k0 + t + 4][n0 + g] (g = lane/4, t = lane%4), one word each
    const g = b.r(), t = b.r(), t4 = b.r(), nBase = b.r();
    b.emit(`shr.u32 ${g}, ${lane}, 2`);
    b.emit(`and.b32 ${t}, ${lane}, 3`);
    b.emit(`add.u32 ${t4}, ${t}, 4`);
    b.emit(`mad.lo.u32 ${nBase}, ${wn}, ${warpTile.n}, ${g}`); // n within the block tile
    for (let j = 0; j < fragsN; j++) {
      for (const row of [t, t4]) {
        const n = b.r(), c = b.r(), r = b.r();
        b.emit(`add.u32 ${n}, ${nBase}, ${j * 8}`);
        b.emit(`shr.u32 ${c}, ${n}, 2`);
        b.emit(`xor.b32 ${c}, ${c}, ${swizzleReg(row, chunksB)}`);
        b.emit(`shl.b32 ${c}, ${c}, 4`);
        b.emit(`and.b32 ${n}, ${n}, 3`);
        b.emit(`mad.lo.u32 ${c}, ${n}, 4, ${c}`);
        b.emit(`mad.lo.u32 ${r}, ${row}, ${BN * eb}, ${c}`);
        b.emit(`add.u32 ${r}, ${r}, ${sbase}`);
        b.emit(`add.u32 ${r}, ${r}, ${aBytes}`);
        bAddr.push(r);
      }
    }
  }

  // ---- accumulators start from C (beta = 1): C[row][col..col+1], row = block + warp + 16i + g (+8),
  // col = 8j + 2t. Loading them here overlaps their latency with the pipeline's prologue (a
  // short-K problem is dominated by C's traffic), and the end is a plain store.
  const g = b.r(), t = b.r(), rowC = b.r(), colC = b.r(), offC = b.r();
  b.emit(`shr.u32 ${g}, ${lane}, 2`);
  b.emit(`and.b32 ${t}, ${lane}, 3`);
  b.emit(`mad.lo.u32 ${rowC}, ${by}, ${BM}, ${g}`);
  b.emit(`mad.lo.u32 ${rowC}, ${wm}, ${warpTile.m}, ${rowC}`);
  b.emit(`shl.b32 ${colC}, ${t}, 1`);
  b.emit(`mad.lo.u32 ${colC}, ${bx}, ${BN}, ${colC}`);
  b.emit(`mad.lo.u32 ${colC}, ${wn}, ${warpTile.n}, ${colC}`);
  b.emit(`mad.lo.u32 ${offC}, ${rowC}, ${N}, ${colC}`);
  const cAt = b.rd(), wide = b.rd();
  b.emit(`mul.wide.u32 ${wide}, ${offC}, 4`);
  b.emit(`add.s64 ${cAt}, ${pC}, ${wide}`);
  const cImm = (i: number, j: number, h: number) => ((i * 16 + h * 8) * N + j * 8) * 4;
  // an m tail: rows past M start from 0 and are not stored
  const rowOn = tailRowGuards(b, plan.mTail, rowC, M, fragsM, 16);
  const acc: string[][] = [];
  for (let i = 0; i < fragsM; i++) {
    for (let j = 0; j < fragsN; j++) {
      const regs = [b.f(), b.f(), b.f(), b.f()];
      for (const h of [0, 1]) loadAccumulatorPair(b, [regs[2 * h]!, regs[2 * h + 1]!], addr(cAt, cImm(i, j, h)), rowOn(i, h), plan.overwrite);
      acc.push(regs);
    }
  }

  // ---- prologue: stages - 1 tiles in flight
  pipeline.prologue();

  // ---- main loop over k-tiles
  const loop = pipeline.startLoop();
  const comp = loop.comp;
  b.emit(`cp.async.wait_group ${stages - 2}`);
  b.emit('bar.sync 0');
  pipeline.issueNext(loop);
  for (let kk = 0; kk < BK / atomK; kk++) {
    const aFr: string[][] = [];
    const aAt = b.r();
    b.emit(`add.u32 ${aAt}, ${aCol[kk]}, ${comp}`);
    for (let i = 0; i < fragsM; i++) {
      const regs = [b.r(), b.r(), b.r(), b.r()];
      b.emit(`ldmatrix.sync.aligned.m8n8.x4.shared.b16 {${regs.join(', ')}}, ${addr(aAt, i * 16 * BK * eb)}`);
      if (tf32) for (const r of regs) b.emit(`cvt.rna.tf32.f32 ${r}, ${r}`);
      aFr.push(regs);
    }
    const bFr: string[][] = []; // per n8 fragment: its two registers
    if (!tf32) {
      for (let j2 = 0; j2 < warpTile.n / 16; j2++) {
        const at = b.r();
        b.emit(`add.u32 ${at}, ${bAddr[j2]}, ${comp}`);
        const regs = [b.r(), b.r(), b.r(), b.r()];
        b.emit(`ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {${regs.join(', ')}}, ${addr(at, kk * 16 * BN * eb)}`);
        bFr.push([regs[0]!, regs[1]!], [regs[2]!, regs[3]!]);
      }
    } else {
      for (let j = 0; j < fragsN; j++) {
        const pair: string[] = [];
        for (const h of [0, 1]) {
          const at = b.r(), r = b.r();
          b.emit(`add.u32 ${at}, ${bAddr[2 * j + h]}, ${comp}`);
          b.emit(`ld.shared.b32 ${r}, ${addr(at, kk * 8 * BN * eb)}`);
          b.emit(`cvt.rna.tf32.f32 ${r}, ${r}`);
          pair.push(r);
        }
        bFr.push(pair);
      }
    }
    const kind = tf32 ? 'm16n8k8.row.col.f32.tf32.tf32.f32' : `m16n8k16.row.col.f32.${plan.dtype}.${plan.dtype}.f32`;
    for (let i = 0; i < fragsM; i++) {
      for (let j = 0; j < fragsN; j++) {
        const d = acc[i * fragsN + j]!;
        b.emit(`mma.sync.aligned.${kind} {${d.join(', ')}}, {${aFr[i]!.join(', ')}}, {${bFr[j]!.join(', ')}}, {${d.join(', ')}}`);
      }
    }
  }
  // next buffers, cyclically
  pipeline.endLoop(loop);
  b.emit('cp.async.wait_group 0');

  // ---- epilogue operands: bias[col..col+1] per n fragment (the same for every row), residual like C
  const opAt = epilogueOperandAddresses(b, params, colC, offC);
  const biasPairs = operandOps.map((e, i) => (e.kind !== 'bias' ? [] : Array.from({ length: fragsN }, (_, j) => {
    const pair = [b.f(), b.f()];
    b.emit(`ld.global.v2.f32 {${pair.join(', ')}}, ${addr(opAt[i]!, j * 8 * 4)}`);
    return pair;
  })));

  // ---- store: the accumulators (which started from C), through the epilogue, back to C
  for (let i = 0; i < fragsM; i++) {
    for (let j = 0; j < fragsN; j++) {
      const d = acc[i * fragsN + j]!;
      for (const h of [0, 1]) {
        storePair(b, plan.epilogue, [d[2 * h]!, d[2 * h + 1]!], addr(cAt, cImm(i, j, h)), (k) => biasPairs[k]![j]!, (k) => addr(opAt[k]!, cImm(i, j, h)), rowOn(i, h));
      }
    }
  }
  b.emit('ret');

  return tensorCoreModule(b, params, { entry, target: PTX_TARGET, sharedAlign: 128, threads: T, grid: plan.grid, dynamicSharedBytes: plan.sharedBytes });
}

/** The swizzled byte offset of element (row, col) in a shared tile of `rowElems` elements of `eb` bytes a row (for tests and the simulator's checks). */
export function swizzledOffset(row: number, col: number, rowElems: number, eb: number): number {
  const chunks = (rowElems * eb) / 16;
  const perChunk = 16 / eb;
  const c = Math.floor(col / perChunk);
  return row * rowElems * eb + ((c ^ swizzleOf(row, chunks)) * 16) + (col % perChunk) * eb;
}
