/**
 * Operands of the x86-64 encoder: registers as typed objects, memory operands and labels.
 *
 * Every register class has its own class with a literal `kind`, so the type checker rejects
 * `vaddps(ymm(0), zmm(1), ...)` and `mov(rax, ecx)`; the encoder re-checks at run time for values
 * typed as unions. Register objects are immutable: `zmm(4).k(1).z()` returns new objects.
 */

const GP64_NAMES = [
  'rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
] as const;
const GP32_NAMES = [
  'eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi',
  'r8d', 'r9d', 'r10d', 'r11d', 'r12d', 'r13d', 'r14d', 'r15d',
] as const;

function checkId(what: string, id: number, limit: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= limit) {
    throw new RangeError(`${what}: register number ${id} out of range 0..${limit - 1}`);
  }
}

/** 64-bit general-purpose register (rax..r15). */
export class Gp64 {
  readonly kind = 'gp64' as const;
  constructor(readonly id: number) {
    checkId('gp64', id, 16);
  }
  get name(): string {
    return GP64_NAMES[this.id]!;
  }
  /** the low 32 bits of this register (rax -> eax, r8 -> r8d). */
  get r32(): Gp32 {
    return GP32[this.id]!;
  }
  toString(): string {
    return this.name;
  }
}

/** 32-bit general-purpose register (eax..r15d). Writing one zero-extends into the 64-bit register. */
export class Gp32 {
  readonly kind = 'gp32' as const;
  constructor(readonly id: number) {
    checkId('gp32', id, 16);
  }
  get name(): string {
    return GP32_NAMES[this.id]!;
  }
  get r64(): Gp64 {
    return GP64[this.id]!;
  }
  toString(): string {
    return this.name;
  }
}

export type Gp = Gp64 | Gp32;

/** AVX-512 opmask register k0..k7. */
export class KReg {
  readonly kind = 'k' as const;
  constructor(readonly id: number) {
    checkId('k', id, 8);
  }
  get name(): string {
    return `k${this.id}`;
  }
  toString(): string {
    return this.name;
  }
}

function maskId(m: KReg | number): number {
  const id = typeof m === 'number' ? m : m.id;
  if (id === 0) {
    // EVEX.aaa = 000 is the encoding of "no masking": k0 can be read as a mask source
    // (kmovw, kxnorw) but never selects lanes of a write.
    throw new Error('k0 cannot be used as a write mask (mask field 0 means "no masking"); use k1..k7');
  }
  checkId('write mask', id, 8);
  return id;
}

/**
 * Common part of xmm/ymm/zmm. `mask` (1..7, 0 = none) and `zeroing` decorate a destination:
 * `zmm(4).k(1).z()` is `zmm4 {k1} {z}`. Decorations on a source operand are rejected by the encoder.
 */
abstract class VecRegBase {
  abstract readonly kind: 'xmm' | 'ymm' | 'zmm';
  /** vector length in bytes */
  abstract readonly bytes: 16 | 32 | 64;
  constructor(
    readonly id: number,
    readonly mask: number = 0,
    readonly zeroing: boolean = false,
  ) {
    checkId('vector', id, 32);
  }
  protected abstract withMask(mask: number, zeroing: boolean): this;
  /** merge-masking by opmask register k1..k7: `{k}` */
  k(m: KReg | number): this {
    return this.withMask(maskId(m), this.zeroing);
  }
  /** zeroing-masking `{z}` (needs a write mask as well) */
  z(): this {
    return this.withMask(this.mask, true);
  }
  get name(): string {
    return `${this.kind}${this.id}`;
  }
  /** the same register number viewed as xmm / ymm / zmm (decorations dropped). */
  get xmm(): Xmm {
    return xmm(this.id);
  }
  get ymm(): Ymm {
    return ymm(this.id);
  }
  get zmm(): Zmm {
    return zmm(this.id);
  }
  toString(): string {
    return this.name + (this.mask ? ` {k${this.mask}}` : '') + (this.zeroing ? ' {z}' : '');
  }
}

export class Xmm extends VecRegBase {
  readonly kind = 'xmm' as const;
  readonly bytes = 16 as const;
  protected withMask(mask: number, zeroing: boolean): this {
    return new Xmm(this.id, mask, zeroing) as this;
  }
}
export class Ymm extends VecRegBase {
  readonly kind = 'ymm' as const;
  readonly bytes = 32 as const;
  protected withMask(mask: number, zeroing: boolean): this {
    return new Ymm(this.id, mask, zeroing) as this;
  }
}
export class Zmm extends VecRegBase {
  readonly kind = 'zmm' as const;
  readonly bytes = 64 as const;
  protected withMask(mask: number, zeroing: boolean): this {
    return new Zmm(this.id, mask, zeroing) as this;
  }
}

export type Vec = Xmm | Ymm | Zmm;

const GP64 = GP64_NAMES.map((_, i) => new Gp64(i));
const GP32 = GP32_NAMES.map((_, i) => new Gp32(i));
const XMM = Array.from({ length: 32 }, (_, i) => new Xmm(i));
const YMM = Array.from({ length: 32 }, (_, i) => new Ymm(i));
const ZMM = Array.from({ length: 32 }, (_, i) => new Zmm(i));
const KREGS = Array.from({ length: 8 }, (_, i) => new KReg(i));

function pick<T>(table: T[], what: string, id: number, limit: number): T {
  checkId(what, id, limit);
  return table[id]!;
}

export const xmm = (id: number): Xmm => pick(XMM, 'xmm', id, 32);
export const ymm = (id: number): Ymm => pick(YMM, 'ymm', id, 32);
export const zmm = (id: number): Zmm => pick(ZMM, 'zmm', id, 32);
export const kreg = (id: number): KReg => pick(KREGS, 'k', id, 8);
export const gp64 = (id: number): Gp64 => pick(GP64, 'gp64', id, 16);
export const gp32 = (id: number): Gp32 => pick(GP32, 'gp32', id, 16);

export const [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15] =
  GP64 as [Gp64, Gp64, Gp64, Gp64, Gp64, Gp64, Gp64, Gp64, Gp64, Gp64, Gp64, Gp64, Gp64, Gp64, Gp64, Gp64];
export const [eax, ecx, edx, ebx, esp, ebp, esi, edi, r8d, r9d, r10d, r11d, r12d, r13d, r14d, r15d] =
  GP32 as [Gp32, Gp32, Gp32, Gp32, Gp32, Gp32, Gp32, Gp32, Gp32, Gp32, Gp32, Gp32, Gp32, Gp32, Gp32, Gp32];
export const [k0, k1, k2, k3, k4, k5, k6, k7] =
  KREGS as [KReg, KReg, KReg, KReg, KReg, KReg, KReg, KReg];

/** A position in the code buffer, created by `Assembler.newLabel()` and placed by `bind()`. */
export class Label {
  constructor(
    readonly id: number,
    /** the assembler that created it: labels are not portable between buffers */
    readonly owner: object,
  ) {}
  toString(): string {
    return `L${this.id}`;
  }
}

export type Scale = 1 | 2 | 4 | 8;
/** A Gp64 index is ordinary addressing; a vector index is VSIB (gathers only). */
export type MemIndex = Gp64 | Xmm | Ymm | Zmm;
/** operand size in bytes of a memory operand, for forms where no register tells it (0: unknown) */
export type MemSize = 0 | 4 | 8;

/**
 * A memory operand `[base + index*scale + disp]`, or `[rip + label + disp]`.
 * `.bcst()` asks for EVEX embedded broadcast of one 32-bit element (`{1to16}`);
 * `.k(n)` is the write mask of a masked store; `.qword()` / `.dword()` size it.
 */
export class Mem {
  readonly kind = 'mem' as const;
  constructor(
    readonly base: Gp64 | null,
    readonly disp: number,
    readonly index: MemIndex | null,
    readonly scale: Scale,
    readonly size: MemSize = 0,
    readonly broadcast: boolean = false,
    readonly mask: number = 0,
    /** RIP-relative target: the address is `label + disp` */
    readonly label: Label | null = null,
  ) {
    if (!Number.isInteger(disp) || disp < -0x8000_0000 || disp > 0x7fff_ffff) {
      throw new RangeError(`memory displacement ${disp} does not fit in a signed 32-bit integer`);
    }
    if (scale !== 1 && scale !== 2 && scale !== 4 && scale !== 8) {
      throw new RangeError(`memory scale ${String(scale)} must be 1, 2, 4 or 8`);
    }
    if (index instanceof Gp64 && index.id === 4) {
      // SIB.index = 100 means "no index"; rsp simply cannot be encoded there (r12 can, with REX.X).
      throw new Error('rsp cannot be an index register');
    }
    if (label !== null && (base !== null || index !== null)) {
      throw new Error('a RIP-relative operand has no base or index register');
    }
  }
  private derive(o: { size?: MemSize; broadcast?: boolean; mask?: number }): Mem {
    return new Mem(this.base, this.disp, this.index, this.scale, o.size ?? this.size,
      o.broadcast ?? this.broadcast, o.mask ?? this.mask, this.label);
  }
  /** EVEX embedded broadcast of one dword: `dword ptr [...]{1to16}` */
  bcst(): Mem {
    return this.derive({ broadcast: true });
  }
  /** write mask of a masked store: `zmmword ptr [...] {k2}` */
  k(m: KReg | number): Mem {
    return this.derive({ mask: maskId(m) });
  }
  qword(): Mem {
    return this.derive({ size: 8 });
  }
  dword(): Mem {
    return this.derive({ size: 4 });
  }
  toString(): string {
    const parts: string[] = [];
    if (this.label) parts.push('rip', String(this.label));
    if (this.base) parts.push(this.base.name);
    if (this.index) parts.push(this.scale === 1 ? this.index.name : `${this.scale}*${this.index.name}`);
    let s = parts.join(' + ');
    if (this.disp !== 0 || parts.length === 0) {
      s += parts.length === 0 ? String(this.disp) : this.disp < 0 ? ` - ${-this.disp}` : ` + ${this.disp}`;
    }
    return `[${s}]${this.broadcast ? '{1toN}' : ''}${this.mask ? ` {k${this.mask}}` : ''}`;
  }
}

/**
 * `[base + disp]` or `[base + index*scale + disp]`. `base` may be null for `[index*scale + disp32]`
 * (and for an absolute `[disp32]`). A vector index makes a VSIB operand for gathers.
 */
export function mem(base: Gp64 | null, disp = 0, index: MemIndex | null = null, scale: Scale = 1): Mem {
  return new Mem(base, disp, index, scale);
}
/** a 64-bit memory operand, for forms that have no register to size them (`dec qword [rsp+8]`) */
export function qword(base: Gp64 | null, disp = 0, index: MemIndex | null = null, scale: Scale = 1): Mem {
  return new Mem(base, disp, index, scale, 8);
}
/** a 32-bit memory operand */
export function dword(base: Gp64 | null, disp = 0, index: MemIndex | null = null, scale: Scale = 1): Mem {
  return new Mem(base, disp, index, scale, 4);
}
/** `[rip + label + disp]`: a reference to a label in the same buffer (e.g. a constant pool). */
export function memRip(target: Label, disp = 0): Mem {
  return new Mem(null, disp, null, 1, 0, false, 0, target);
}
