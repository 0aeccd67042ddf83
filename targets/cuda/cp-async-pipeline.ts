/**
 * The multistage cp.async ring both tensor-core printers run (mma-ptx.ts, wgmma-ptx.ts): `stages`
 * shared buffers of `stageBytes`, `ahead` k-tiles in flight. The printers keep what differs (where
 * each thread's 16-byte chunks sit, what the loop body computes and where it waits); this prints
 * the copies of a k-tile, the prologue, and the ring's registers and loop control:
 *
 *   prologue()                 the first `ahead` tiles issued (one commit group each)
 *   const l = startLoop()      kt / comp / load registers, the loop label placed
 *   ... wait, compute on the stage at l.comp ...
 *   issueNext(l)               the tile `ahead` further into the buffer at l.load (none past the end)
 *   endLoop(l)                 both ring offsets advanced (wrapping), kt + 1, the back branch
 */
import { addr, type PtxBuilder } from './ptx-builder.ts';

/**
 * Copies whose items read from their own base registers (rows clamped at a tail, a conv's
 * gathered pixels): item i at base(i) + gItem(i) + the k-tile's byte offset, which is an immediate
 * for a tile the prologue names, and in the loop a register the rows keep for the tile loaded next
 * (`start` sets it before the loop, `advance` moves it one k-tile on after each issue: counters,
 * not divisions, which cost ptxas seconds). Their `g` is unused and never advanced.
 */
export interface GatheredRows {
  readonly base: (i: number) => string;
  readonly tileBytes: (tile: number) => number;
  /** the byte offset register of the tile loaded next, set to k-tile `tile` */
  start(b: PtxBuilder, tile: number): string;
  advance(b: PtxBuilder): void;
}

/** One tensor's share of a k-tile's copies, for this thread. */
export interface TileCopy {
  /** shared byte offset of its first chunk in stage 0 */
  readonly s: string;
  /** global address of its first chunk in the current k-tile (advanced a tile at a time) */
  readonly g: string;
  /** chunks per thread and k-tile, and each one's byte offsets from `s` and `g` */
  readonly items: number;
  readonly sItem: (i: number) => number;
  readonly gItem: (i: number) => number;
  /** global bytes from one k-tile to the next */
  readonly gTile: number;
  readonly gathered?: GatheredRows;
}

export interface PipelineShape {
  readonly stages: number;
  readonly stageBytes: number;
  /** k-tiles of the problem */
  readonly tiles: number;
  /** k-tiles in flight ahead of the one computed */
  readonly ahead: number;
}

export interface PipelineLoop {
  readonly kt: string;
  /** shared byte offsets of the stage computed and of the stage loaded next */
  readonly comp: string;
  readonly load: string;
  readonly label: string;
}

export class CpAsyncPipeline {
  readonly #b: PtxBuilder;
  readonly #copies: readonly TileCopy[];
  readonly #shape: PipelineShape;
  /** each gathered copy's offset register of the tile loaded next (set by startLoop) */
  readonly #offsets = new Map<TileCopy, string>();

  constructor(b: PtxBuilder, copies: readonly TileCopy[], shape: PipelineShape) {
    this.#b = b;
    this.#copies = copies;
    this.#shape = shape;
  }

  /**
   * cp.async of one k-tile into the stage at `stageReg` + `stageConst` bytes, under `guard` when
   * given: k-tile `tile` of the problem (the prologue), or (`'next'`, the loop) the one the
   * pointers and offset registers stand at.
   */
  issue(stageReg: string | null, stageConst: number, guard: string | null, tile: number | 'next'): void {
    const b = this.#b;
    for (const c of this.#copies) {
      let s = c.s;
      if (stageReg) {
        s = b.r();
        b.emit(`add.u32 ${s}, ${c.s}, ${stageReg}`);
      }
      const on = guard ? `@${guard} ` : '';
      const rows = c.gathered;
      const tileReg = rows && typeof tile === 'string' ? this.#offsets.get(c)! : null;
      for (let i = 0; i < c.items; i++) {
        let g = c.g, imm = typeof tile === 'number' ? tile * c.gTile : 0;
        if (rows) {
          g = rows.base(i);
          if (tileReg) {
            g = b.rd();
            b.emit(`add.s64 ${g}, ${rows.base(i)}, ${tileReg}`);
            imm = 0;
          } else imm = rows.tileBytes(tile as number);
        }
        b.emit(`${on}cp.async.cg.shared.global ${addr(s, stageConst + c.sItem(i))}, ${addr(g, imm + c.gItem(i))}, 16`);
      }
    }
  }

  /** The first `ahead` k-tiles in flight (an empty commit group past the last tile), pointers moved past them. */
  prologue(): void {
    const { ahead, tiles, stageBytes } = this.#shape;
    for (let s = 0; s < ahead; s++) {
      if (s < tiles) this.issue(null, s * stageBytes, null, s);
      this.#b.emit('cp.async.commit_group');
    }
    for (const c of this.#copies) if (!c.gathered) this.#b.emit(`add.s64 ${c.g}, ${c.g}, ${ahead * c.gTile}`);
  }

  /** The loop's registers, and its label placed: the body follows. */
  startLoop(): PipelineLoop {
    const b = this.#b;
    const kt = b.r(), comp = b.r(), load = b.r();
    b.emit(`mov.u32 ${kt}, 0`);
    b.emit(`mov.u32 ${comp}, 0`);
    b.emit(`mov.u32 ${load}, ${this.#shape.ahead * this.#shape.stageBytes}`);
    for (const c of this.#copies) if (c.gathered) this.#offsets.set(c, c.gathered.start(b, this.#shape.ahead));
    const label = b.label('KTILE');
    b.place(label);
    return { kt, comp, load, label };
  }

  /** The copy of the tile `ahead` past this one into the stage at `load` (predicated off past the last tile), committed. */
  issueNext(l: PipelineLoop): void {
    const b = this.#b;
    const fill = b.p();
    b.emit(`setp.lt.s32 ${fill}, ${l.kt}, ${this.#shape.tiles - this.#shape.ahead}`);
    this.issue(l.load, 0, fill, this.#offsets.size > 0 ? 'next' : 0);
    b.emit('cp.async.commit_group');
    for (const c of this.#copies) {
      if (c.gathered) c.gathered.advance(b);
      else b.emit(`add.s64 ${c.g}, ${c.g}, ${c.gTile}`);
    }
  }

  /** Both stage offsets one buffer on (wrapping at `stages`), the next k-tile, the back branch. */
  endLoop(l: PipelineLoop): void {
    const b = this.#b;
    const { stages, stageBytes, tiles } = this.#shape;
    const wrap = b.p(), more = b.p();
    for (const r of [l.comp, l.load]) {
      b.emit(`add.u32 ${r}, ${r}, ${stageBytes}`);
      b.emit(`setp.ge.u32 ${wrap}, ${r}, ${stages * stageBytes}`);
      b.emit(`@${wrap} mov.u32 ${r}, 0`);
    }
    b.emit(`add.u32 ${l.kt}, ${l.kt}, 1`);
    b.emit(`setp.lt.u32 ${more}, ${l.kt}, ${tiles}`);
    b.emit(`@${more} bra ${l.label}`);
  }
}
