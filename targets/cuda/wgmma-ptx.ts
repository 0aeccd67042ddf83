/**
 * PTX of a warpgroup tensor-core matmul (loopnest/gpu-wgmma.ts's GpuWgmmaPlan) for sm_90a:
 * C[M,N] += A[M,K] · B[K,N], A and B row-major bf16 / f16, C fp32.
 *
 *  - copies: every thread moves 16-byte chunks global -> shared with `cp.async.cg.shared.global`
 *    into the plan's 128-byte-swizzled panels (no TMA yet: each chunk's address carries the
 *    swizzle), 8 threads per 128-byte row segment;
 *  - pipeline: `stages` buffers, `ahead` = stages - 1 - inFlight k-tiles in flight (gpu-wgmma.ts). Each
 *    iteration waits for its tile (`cp.async.wait_group ahead-1`), makes its own copies visible to the async
 *    proxy (`fence.proxy.async.shared::cta`: wgmma reads shared memory through it, cp.async writes
 *    through the generic proxy), passes one barrier (every thread's tile has landed and been
 *    fenced; every warpgroup finished reading the buffer the next copy overwrites), then
 *    `wgmma.fence`, the BK/16 x (WM/64) x (WN/NA) `wgmma.mma_async` of its warpgroup tile and
 *    `wgmma.commit_group`; the copy of the tile `ahead` k-tiles on is issued while the tensor cores
 *    run, and `wgmma.wait_group inFlight` closes the iteration: with 1, the group keeps running
 *    through the next barrier and its buffer is refilled one iteration later;
 *  - descriptors (PTX ISA 9.7.15.5.1.2.2): a 64-bit register built as {lo, hi} by `mov.b64`;
 *    lo = (start address >> 4) in bits 0-13 | (leading byte offset >> 4) << 16, hi = (stride byte
 *    offset >> 4) in bits 32-45 | swizzle mode 1 (128 B) in bits 62-63; base offset 0 (every
 *    stage is 1024-aligned). A is K-major (imm-trans-a 0), B N-major (imm-trans-b 1); the
 *    per-step starts are gpu-wgmma.ts's;
 *  - accumulators (PTX ISA figure "WGMMA .m64nNk16 register fragment layout for accumulator
 *    matrix D", CUTLASS's CLayout_64xN): thread l of the warpgroup, w = l / 32, g = (l % 32) / 4,
 *    t = l % 4, holds for its m64 x NA atom d[4q + 2h + e] = D[16w + g + 8h][8q + 2t + e]: the
 *    mma.sync m16n8 C fragment of warp w, repeated over the NA/8 column groups q;
 *  - blocks: the launch order is regrouped (plan.groupRows block rows at a time) for L2 reuse;
 *  - C: the accumulators start from C (beta = 1) with `ld.global.v2.f32` before the pipeline, the
 *    epilogue (bias, residual, relu, ...) runs at the store, like mma-ptx.ts (emitEpilogueOp);
 *  - rows: with an m tail, each A row's base register is clamped to row M-1 (the copy stays
 *    inside A), and C's loads and stores of rows past M are predicated off; a channels-last conv
 *    (plan.gather) reads A's rows from the input's pixels (implicit-gemm.ts): one base register per
 *    row this thread copies, at the k-tile's tap offset, kept by counters the loop advances (row-copies.ts).
 * The shared buffers are dynamic shared memory: the launch passes their size plus 1 KiB, the kernel
 * rounds the base up to 1024 bytes.
 */
import type { GpuWgmmaPlan } from '../../loopnest/gpu-wgmma.ts';
import { SWIZZLE_ROW_BYTES, WARPGROUP_THREADS, WGMMA_ALIGN_SLACK } from '../../loopnest/gpu-wgmma.ts';
import { rowCopies } from './row-copies.ts';
import { CpAsyncPipeline } from './cp-async-pipeline.ts';
import { loadAccumulatorPair, loadMatmulParams, epilogueOperandAddresses, reducePair, storePair, tailRowGuards, tensorCoreModule, tensorCorePtxVersion } from './tensor-core-kernel.ts';
import { PtxBuilder, addr } from './ptx-builder.ts';
import type { PrintedPtx } from './ptx.ts';

/** wgmma and its async proxy exist on sm_90a only (the `a`: not forward-compatible). */
export const WGMMA_PTX_TARGET = 'sm_90a';
/** Descriptor swizzle modes (bits 62-63): 0 none, 1 128 B, 2 64 B, 3 32 B. */
export const SWIZZLE_128B = 1;
/** The 128-byte swizzle's repeating pattern: 8 rows of 128 bytes; the stride of 8-row groups. */
const ATOM_BYTES = 8 * SWIZZLE_ROW_BYTES;

/** The high word of a descriptor: the stride byte offset (bits 32-45) and the swizzle mode (62-63). */
export function descriptorHigh(strideBytes: number, swizzle = SWIZZLE_128B): number {
  return ((swizzle << 30) | (strideBytes >> 4)) >>> 0;
}

export function printWgmmaPtx(plan: GpuWgmmaPlan, entry = 'looptune_wgmma'): PrintedPtx {
  const b = new PtxBuilder();
  const { M, N, K, block, warpgroups, groupTile, atomN: NA, stages, inFlight, threads: T, aBytes, stageBytes } = plan;
  const ahead = stages - 1 - inFlight; // k-tiles prefetched
  const BM = block.m, BN = block.n, BK = block.k, WM = groupTile.m, WN = groupTile.n;
  const G = plan.splitK;
  const KT = K / G / BK; // k-tiles of this block's share
  const fragsM = WM / 64, fragsN = WN / NA;
  const eb = 2;

  b.comment(`wgmma: ${plan.dtype} ${M}x${N}x${K}, block ${BM}x${BN}x${BK}, warpgroups ${warpgroups.m}x${warpgroups.n} of ${WM}x${WN}, atom m64n${NA}k16, ${stages} stages`);
  // the epilogue's tensors (bias, residual) follow A and B, in the problem's order
  const params = loadMatmulParams(b, plan.epilogue);
  const { pC, operandOps } = params;
  let { pA, pB } = params;
  if (G > 1) {
    // split-k: this block's share starts K / G columns of A and K / G rows of B further per ctaid.z
    const kz = b.r(), wa = b.rd(), wb = b.rd(), sa = b.rd(), sb = b.rd();
    b.emit(`mov.u32 ${kz}, %ctaid.z`);
    b.emit(`mul.wide.u32 ${wa}, ${kz}, ${(K / G) * eb}`);
    b.emit(`mul.wide.u32 ${wb}, ${kz}, ${(K / G) * N * eb}`);
    b.emit(`add.s64 ${sa}, ${pA}, ${wa}`);
    b.emit(`add.s64 ${sb}, ${pB}, ${wb}`);
    [pA, pB] = [sa, sb];
  }
  const tid = b.r(), bx = b.r(), by = b.r(), wg = b.r(), wgm = b.r(), wgn = b.r(), warp = b.r(), lane = b.r(), sbase = b.r();
  b.emit(`mov.u32 ${tid}, %tid.x`);
  // grouped block order: block pid (launch order) -> tile (by, bx), groupRows block rows at a time
  const [gridX, gridY] = plan.grid;
  const GR = plan.groupRows;
  const pid = b.r(), group = b.r(), firstM = b.r(), rows = b.r(), inGroup = b.r();
  b.emit(`mov.u32 ${bx}, %ctaid.x`);
  b.emit(`mov.u32 ${by}, %ctaid.y`);
  b.emit(`mad.lo.u32 ${pid}, ${by}, ${gridX}, ${bx}`);
  b.emit(`div.u32 ${group}, ${pid}, ${GR * gridX}`);
  b.emit(`mul.lo.u32 ${firstM}, ${group}, ${GR}`);
  b.emit(`sub.u32 ${rows}, ${gridY}, ${firstM}`);
  b.emit(`min.u32 ${rows}, ${rows}, ${GR}`);
  b.emit(`rem.u32 ${inGroup}, ${pid}, ${GR * gridX}`);
  b.emit(`rem.u32 ${by}, ${inGroup}, ${rows}`);
  b.emit(`add.u32 ${by}, ${by}, ${firstM}`);
  b.emit(`div.u32 ${bx}, ${inGroup}, ${rows}`);
  b.emit(`shr.u32 ${wg}, ${tid}, ${Math.log2(WARPGROUP_THREADS)}`);
  b.emit(`div.u32 ${wgm}, ${wg}, ${warpgroups.n}`);
  b.emit(`rem.u32 ${wgn}, ${wg}, ${warpgroups.n}`);
  b.emit(`shr.u32 ${warp}, ${tid}, 5`);
  b.emit(`and.b32 ${warp}, ${warp}, 3`);
  b.emit(`and.b32 ${lane}, ${tid}, 31`);
  // the swizzle is a function of the address: round the buffers' base up to the 1024-byte pattern
  b.emit(`mov.u32 ${sbase}, smem`);
  b.emit(`add.u32 ${sbase}, ${sbase}, ${WGMMA_ALIGN_SLACK - 1}`);
  b.emit(`and.b32 ${sbase}, ${sbase}, ${(~(WGMMA_ALIGN_SLACK - 1)) >>> 0}`);

  /** a global pointer plus elements * eb bytes (u32 element offset) */
  const globalAt = (base: string, elements: string): string => {
    const w = b.rd(), out = b.rd();
    b.emit(`mul.wide.u32 ${w}, ${elements}, ${eb}`);
    b.emit(`add.s64 ${out}, ${base}, ${w}`);
    return out;
  };

  // ---- copy assignments, in panel-major chunk order: chunk L of a tile is 16-byte chunk L % 8 of
  // row (L / 8) % rows of panel L / (8 rows), so its shared offset is L * 16 with the swizzle applied
  // inside each 128-byte row. Thread tid copies chunks tid + j * T: their rows are T / 8 apart (a
  // multiple of 8, so one swizzle), their offsets immediates.
  const q0 = b.r(), cc = b.r(), x = b.r(), sRow = b.r();
  b.emit(`shr.u32 ${q0}, ${tid}, 3`);
  b.emit(`and.b32 ${cc}, ${tid}, 7`);
  b.emit(`and.b32 ${x}, ${q0}, 7`);
  b.emit(`xor.b32 ${x}, ${x}, ${cc}`);
  b.emit(`shl.b32 ${x}, ${x}, 4`);
  b.emit(`mad.lo.u32 ${sRow}, ${q0}, ${SWIZZLE_ROW_BYTES}, ${x}`);
  b.emit(`add.u32 ${sRow}, ${sRow}, ${sbase}`);
  const copy = (what: 'A' | 'B') => {
    const rows = what === 'A' ? BM : BK;
    const ld = what === 'A' ? K : N;
    const soff = b.r(), goff = b.r();
    b.emit(what === 'A' ? `mov.u32 ${soff}, ${sRow}` : `add.u32 ${soff}, ${sRow}, ${aBytes}`);
    // global element offset of chunk tid in k-tile 0: row q0 of the block's tile, column 8 * cc
    if (what === 'A') {
      b.emit(`mad.lo.u32 ${goff}, ${by}, ${BM}, ${q0}`);
      b.emit(`mul.lo.u32 ${goff}, ${goff}, ${ld}`);
    } else {
      b.emit(`mul.lo.u32 ${goff}, ${q0}, ${ld}`);
      b.emit(`mad.lo.u32 ${goff}, ${bx}, ${BN}, ${goff}`);
    }
    b.emit(`mad.lo.u32 ${goff}, ${cc}, 8, ${goff}`);
    const g = globalAt(what === 'A' ? pA : pB, goff);
    const items = ((what === 'A' ? BM * BK : BK * BN) / 8) / T;
    /** item j's row and panel move by j * T / 8 rows, panel-major */
    const gItem = (j: number) => {
      const q = (j * T) / 8;
      return ((q % rows) * ld + Math.floor(q / rows) * 64) * eb;
    };
    // rows read one by one: T / 8 rows a round of the panel, round j of item j (panel-major items)
    const rounds = BM / (T / 8);
    const gathered = what === 'A' && (plan.gather || plan.mTail)
      ? rowCopies(b, { pA, by, BM, M, K, BK, eb, firstRow: q0, rowsApart: T / 8, rows: Math.min(rounds, items), rowOf: (j) => j % rounds, chunkElements: cc, chunkWidth: 8, ...(plan.gather ? { gather: plan.gather } : {}) })
      : undefined;
    return {
      s: soff, g, items, sItem: (j: number) => j * T * 16, gItem: gathered ? (j: number) => Math.floor((j * T) / 8 / rows) * 64 * eb : gItem,
      gTile: what === 'A' ? BK * eb : BK * N * eb,
      ...(gathered ? { gathered } : {}),
    };
  };
  const cA = copy('A'), cB = copy('B');
  const pipeline = new CpAsyncPipeline(b, [cA, cB], { stages, stageBytes, tiles: KT, ahead });

  // ---- accumulators start from C (beta = 1): D[16w + g + 8h][8q + 2t + e] of each m64 x NA atom
  const g = b.r(), t = b.r(), rowC = b.r(), colC = b.r(), offC = b.r();
  b.emit(`shr.u32 ${g}, ${lane}, 2`);
  b.emit(`and.b32 ${t}, ${lane}, 3`);
  b.emit(`mad.lo.u32 ${rowC}, ${by}, ${BM}, ${g}`);
  b.emit(`mad.lo.u32 ${rowC}, ${wgm}, ${WM}, ${rowC}`);
  b.emit(`mad.lo.u32 ${rowC}, ${warp}, 16, ${rowC}`);
  b.emit(`shl.b32 ${colC}, ${t}, 1`);
  b.emit(`mad.lo.u32 ${colC}, ${bx}, ${BN}, ${colC}`);
  b.emit(`mad.lo.u32 ${colC}, ${wgn}, ${WN}, ${colC}`);
  b.emit(`mad.lo.u32 ${offC}, ${rowC}, ${N}, ${colC}`);
  const cAt = b.rd(), wide = b.rd();
  b.emit(`mul.wide.u32 ${wide}, ${offC}, 4`);
  b.emit(`add.s64 ${cAt}, ${pC}, ${wide}`);
  /** byte offset from cAt of atom (i, j)'s pair (q, h) */
  const cImm = (i: number, j: number, q: number, h: number) => ((i * 64 + h * 8) * N + j * NA + q * 8) * 4;
  // rows past M (an m tail): not loaded (the accumulators start from 0) and not stored
  const rowOn = tailRowGuards(b, plan.mTail, rowC, M, fragsM, 64);
  const acc: string[][][] = []; // [i][j] -> the atom's NA/2 registers
  for (let i = 0; i < fragsM; i++) {
    const row: string[][] = [];
    for (let j = 0; j < fragsN; j++) {
      const regs = Array.from({ length: NA / 2 }, () => b.f());
      for (let q = 0; q < NA / 8; q++) {
        // a share of a split k starts from zero: C is added to by the atomics at the end
        for (const h of [0, 1]) loadAccumulatorPair(b, [regs[4 * q + 2 * h]!, regs[4 * q + 2 * h + 1]!], addr(cAt, cImm(i, j, q, h)), rowOn(i, h), plan.overwrite || G > 1);
      }
      row.push(regs);
    }
    acc.push(row);
  }

  // ---- descriptor bases (low words, without the stage offset): A's m64 rows of this warpgroup,
  // LBO unused (1); B's 64-column panels of this warpgroup, LBO = the panel stride BK * 128
  const hi = b.r(), aBase = b.r(), bBase = b.r(), scaleD = b.p();
  b.emit(`mov.u32 ${hi}, ${descriptorHigh(ATOM_BYTES)}`);
  b.emit(`mad.lo.u32 ${aBase}, ${wgm}, ${WM * SWIZZLE_ROW_BYTES}, ${sbase}`);
  // matrix-descriptor-encode(x) = (x & 0x3FFFF) >> 4; the stage and step offsets added later stay below 2^18
  b.emit(`shr.u32 ${aBase}, ${aBase}, 4`);
  b.emit(`and.b32 ${aBase}, ${aBase}, 16383`);
  b.emit(`add.u32 ${aBase}, ${aBase}, ${1 << 16}`);
  const panelB = BK * SWIZZLE_ROW_BYTES;
  b.emit(`mad.lo.u32 ${bBase}, ${wgn}, ${(WN / 64) * panelB}, ${sbase}`);
  b.emit(`add.u32 ${bBase}, ${bBase}, ${aBytes}`);
  b.emit(`shr.u32 ${bBase}, ${bBase}, 4`);
  b.emit(`and.b32 ${bBase}, ${bBase}, 16383`);
  b.emit(`add.u32 ${bBase}, ${bBase}, ${(panelB >> 4) * 65536}`);
  b.emit(`mov.pred ${scaleD}, 1`); // D = A·B + D: the accumulators hold C
  /** A's start for atom row i at k16 step kk: panel kk/4, 64 rows per i, 32 bytes per step inside the row */
  const aStep = (i: number, kk: number) => ((Math.floor(kk / 4) * BM * SWIZZLE_ROW_BYTES + i * 64 * SWIZZLE_ROW_BYTES + (kk % 4) * 32) >> 4);
  /** B's start for atom column j at step kk: NA/64 panels per j, 16 rows of 128 bytes per step */
  const bStep = (j: number, kk: number) => (((j * NA) / 64) * panelB + kk * 16 * SWIZZLE_ROW_BYTES) >> 4;

  // ---- prologue: `ahead` tiles in flight
  pipeline.prologue();

  // ---- main loop over k-tiles
  const loop = pipeline.startLoop();
  const comp = loop.comp;
  b.emit(`cp.async.wait_group ${ahead - 1}`);
  b.emit('fence.proxy.async.shared::cta');
  b.emit('bar.sync 0');
  const compLo = b.r(), aTile = b.r(), bTile = b.r();
  b.emit(`shr.u32 ${compLo}, ${comp}, 4`);
  b.emit(`add.u32 ${aTile}, ${aBase}, ${compLo}`);
  b.emit(`add.u32 ${bTile}, ${bBase}, ${compLo}`);
  b.emit('wgmma.fence.sync.aligned');
  const kind = `m64n${NA}k16.f32.${plan.dtype}.${plan.dtype}`;
  for (let kk = 0; kk < BK / 16; kk++) {
    const descriptor = (base: string, step: number): string => {
      const lo = b.r(), d = b.rd();
      b.emit(`add.u32 ${lo}, ${base}, ${step}`);
      b.emit(`mov.b64 ${d}, {${lo}, ${hi}}`);
      return d;
    };
    const aDesc = Array.from({ length: fragsM }, (_, i) => descriptor(aTile, aStep(i, kk)));
    const bDesc = Array.from({ length: fragsN }, (_, j) => descriptor(bTile, bStep(j, kk)));
    for (let i = 0; i < fragsM; i++) {
      for (let j = 0; j < fragsN; j++) {
        b.emit(`wgmma.mma_async.sync.aligned.${kind} {${acc[i]![j]!.join(', ')}}, ${aDesc[i]}, ${bDesc[j]}, ${scaleD}, 1, 1, 0, 1`);
      }
    }
  }
  b.emit('wgmma.commit_group.sync.aligned');
  // the next copy overlaps the tensor cores; its buffer is one no wgmma group still reads (the
  // barrier saw every warpgroup retire it)
  pipeline.issueNext(loop);
  b.emit(`wgmma.wait_group.sync.aligned ${inFlight}`);
  pipeline.endLoop(loop);
  if (inFlight > 0) b.emit('wgmma.wait_group.sync.aligned 0');
  b.emit('cp.async.wait_group 0');

  // ---- store: the accumulators (which started from C), through the epilogue, back to C; bias
  // pairs are loaded once per column pair, residual pairs like C
  const opAt = epilogueOperandAddresses(b, params, colC, offC);
  for (let j = 0; j < fragsN; j++) {
    for (let q = 0; q < NA / 8; q++) {
      const bias = operandOps.map((e, k) => {
        if (e.kind !== 'bias') return [];
        const pair = [b.f(), b.f()];
        b.emit(`ld.global.v2.f32 {${pair.join(', ')}}, ${addr(opAt[k]!, (j * NA + q * 8) * 4)}`);
        return pair;
      });
      for (let i = 0; i < fragsM; i++) {
        for (const h of [0, 1]) {
          const d = acc[i]![j]!;
          const pair = [d[4 * q + 2 * h]!, d[4 * q + 2 * h + 1]!];
          if (G > 1) reducePair(b, pair, addr(cAt, cImm(i, j, q, h)), rowOn(i, h));
          else storePair(b, plan.epilogue, pair, addr(cAt, cImm(i, j, q, h)), (k) => bias[k]!, (k) => addr(opAt[k]!, cImm(i, j, q, h)), rowOn(i, h));
        }
      }
    }
  }
  b.emit('ret');

  return tensorCoreModule(b, params, {
    entry, target: WGMMA_PTX_TARGET, sharedAlign: WGMMA_ALIGN_SLACK, threads: T, grid: plan.grid, dynamicSharedBytes: plan.sharedBytes,
    version: tensorCorePtxVersion(G > 1),
  });
}
