/**
 * A's copies read row by row, for both tensor-core printers (mma-ptx.ts, wgmma-ptx.ts): one base
 * register per row of the block tile this thread copies, where one register plus immediates
 * cannot cover them:
 *  - an m tail: each row is clamped to row M-1, so the copy stays inside A (the rows past M are
 *    computed on a repeated row and never stored);
 *  - a channels-last conv (implicit-gemm.ts): a row is an output pixel, its base the pixel's window
 *    origin in the padded input, and a k-tile (BK channels of one filter tap) lies at its tap's
 *    offset from it, kept by counters the loop advances (divisions per k-tile cost ptxas seconds).
 * The result is the pipeline's GatheredRows (cp-async-pipeline.ts).
 */
import { gatherTileOffset, type ConvGather } from '../../loopnest/implicit-gemm.ts';
import type { GatheredRows } from './cp-async-pipeline.ts';
import type { PtxBuilder } from './ptx-builder.ts';

export interface RowCopyShape {
  /** A's global pointer and the block's row index (register) */
  readonly pA: string;
  readonly by: string;
  readonly BM: number;
  readonly M: number;
  readonly K: number;
  readonly BK: number;
  /** bytes of an element */
  readonly eb: number;
  /** the thread's first row inside the block tile (register), its rows `rowsApart` apart, `rows` of them */
  readonly firstRow: string;
  readonly rowsApart: number;
  readonly rows: number;
  /** copy item -> which of the rows it reads */
  readonly rowOf: (item: number) => number;
  /** the thread's 16-byte chunk within its row (register), `chunkWidth` elements each */
  readonly chunkElements: string;
  readonly chunkWidth: number;
  readonly gather?: ConvGather;
}

export function rowCopies(b: PtxBuilder, o: RowCopyShape): GatheredRows {
  const { M, K, BK, eb } = o;
  const g = o.gather;
  const bases: string[] = [];
  for (let j = 0; j < o.rows; j++) {
    const row = b.r(), el = b.r(), wide = b.rd(), base = b.rd();
    b.emit(`mad.lo.u32 ${row}, ${o.by}, ${o.BM}, ${o.firstRow}`);
    if (j > 0) b.emit(`add.u32 ${row}, ${row}, ${j * o.rowsApart}`);
    b.emit(`min.u32 ${row}, ${row}, ${M - 1}`);
    if (g) pixelOrigin(b, g, row, el);
    else b.emit(`mul.lo.u32 ${el}, ${row}, ${K}`);
    b.emit(`mad.lo.u32 ${el}, ${o.chunkElements}, ${o.chunkWidth}, ${el}`);
    b.emit(`mul.wide.u32 ${wide}, ${el}, ${eb}`);
    b.emit(`add.s64 ${base}, ${o.pA}, ${wide}`);
    bases.push(base);
  }
  const tileBytes = (tile: number) => (g ? gatherTileOffset(g, BK, tile) : tile * BK) * eb;
  let off = '';
  let tap: TapCounters | undefined;
  return {
    base: (i) => bases[o.rowOf(i)]!,
    tileBytes,
    start(bb, tile) {
      off = bb.rd();
      bb.emit(`mov.u64 ${off}, ${tileBytes(tile)}`);
      if (g) tap = tapCounters(bb, g, BK, tile);
      return off;
    },
    advance(bb) {
      bb.emit(`add.s64 ${off}, ${off}, ${BK * eb}`);
      if (!g) return;
      // past the tap's last channels, the next tap s (dilation columns on); past the last s, the
      // next filter row r (dilation input rows on, back to s = 0)
      const { c, s, wrapC, wrapS } = tap!;
      bb.emit(`add.u32 ${c}, ${c}, 1`);
      bb.emit(`setp.eq.u32 ${wrapC}, ${c}, ${g.C / BK}`);
      bb.emit(`@${wrapC} mov.u32 ${c}, 0`);
      bb.emit(`@${wrapC} add.u32 ${s}, ${s}, 1`);
      bb.emit(`@${wrapC} add.s64 ${off}, ${off}, ${(g.dilation - 1) * g.C * eb}`);
      // s reaches S only on the step that wrapped c
      bb.emit(`setp.eq.u32 ${wrapS}, ${s}, ${g.S}`);
      bb.emit(`@${wrapS} mov.u32 ${s}, 0`);
      bb.emit(`@${wrapS} add.s64 ${off}, ${off}, ${(g.dilation * g.W - g.S * g.dilation) * g.C * eb}`);
    },
  };
}

/** el = the input element of output pixel `m`'s window origin: ((n * H + oh * stride) * W + ow * stride) * C. */
function pixelOrigin(b: PtxBuilder, g: ConvGather, m: string, el: string): void {
  const n = b.r(), rest = b.r(), oh = b.r(), ow = b.r();
  b.emit(`div.u32 ${n}, ${m}, ${g.OH * g.OW}`);
  b.emit(`rem.u32 ${rest}, ${m}, ${g.OH * g.OW}`);
  b.emit(`div.u32 ${oh}, ${rest}, ${g.OW}`);
  b.emit(`rem.u32 ${ow}, ${rest}, ${g.OW}`);
  b.emit(`mul.lo.u32 ${el}, ${n}, ${g.H}`);
  b.emit(`mad.lo.u32 ${el}, ${oh}, ${g.stride}, ${el}`);
  b.emit(`mul.lo.u32 ${el}, ${el}, ${g.W}`);
  b.emit(`mad.lo.u32 ${el}, ${ow}, ${g.stride}, ${el}`);
  b.emit(`mul.lo.u32 ${el}, ${el}, ${g.C}`);
}

interface TapCounters { c: string; s: string; wrapC: string; wrapS: string }

/** The counters of the tile loaded next: its channel chunk within the tap and its tap's s, at k-tile `tile`. */
function tapCounters(b: PtxBuilder, g: ConvGather, BK: number, tile: number): TapCounters {
  const c = b.r(), s = b.r();
  const perTap = g.C / BK;
  b.emit(`mov.u32 ${c}, ${tile % perTap}`);
  b.emit(`mov.u32 ${s}, ${Math.floor(tile / perTap) % g.S}`);
  return { c, s, wrapC: b.p(), wrapS: b.p() };
}
