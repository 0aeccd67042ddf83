/**
 * A small PTX text builder: virtual registers of four classes (ptxas allocates the real ones),
 * labels, and instruction lines. Everything it produces is deterministic.
 */

export type RegClass = 'p' | 'r' | 'rd' | 'f';

const PREFIX: Record<RegClass, string> = { p: '%p', r: '%r', rd: '%rd', f: '%f' };
const DECL: Record<RegClass, string> = { p: '.pred', r: '.b32', rd: '.b64', f: '.f32' };

export class PtxBuilder {
  readonly lines: string[] = [];
  private readonly counts: Record<RegClass, number> = { p: 0, r: 0, rd: 0, f: 0 };
  private labels = 0;
  private readonly constants = new Map<string, string>();

  reg(c: RegClass): string {
    return `${PREFIX[c]}${++this.counts[c]}`;
  }
  r(): string { return this.reg('r'); }
  rd(): string { return this.reg('rd'); }
  f(): string { return this.reg('f'); }
  p(): string { return this.reg('p'); }

  label(prefix = 'L'): string {
    return `$${prefix}_${++this.labels}`;
  }

  emit(line: string): void {
    this.lines.push(`\t${line};`);
  }

  place(label: string): void {
    this.lines.push(`${label}:`);
  }

  comment(text: string): void {
    this.lines.push(`\t// ${text}`);
  }

  /** A b32 register holding an integer constant, materialized once (at the point of first use: call it in straight-line setup code only). */
  const32(value: number): string {
    const key = `r${value}`;
    let reg = this.constants.get(key);
    if (!reg) {
      reg = this.r();
      this.emit(`mov.u32 ${reg}, ${value}`);
      this.constants.set(key, reg);
    }
    return reg;
  }

  declarations(): string[] {
    return (Object.keys(this.counts) as RegClass[])
      .filter((c) => this.counts[c] > 0)
      .map((c) => `\t.reg ${DECL[c]} ${PREFIX[c]}<${this.counts[c] + 1}>;`);
  }
}

/** fp32 constant as a PTX hex immediate (0fXXXXXXXX). */
export function f32Hex(x: number): string {
  const b = new DataView(new ArrayBuffer(4));
  b.setFloat32(0, x);
  return `0f${b.getUint32(0).toString(16).toUpperCase().padStart(8, '0')}`;
}

/** `[reg+bytes]` address operand. */
export function addr(reg: string, bytes: number): string {
  return bytes === 0 ? `[${reg}]` : `[${reg}+${bytes}]`;
}

export function gcd(a: number, b: number): number {
  a = Math.abs(a);
  b = Math.abs(b);
  while (b) [a, b] = [b, a % b];
  return a;
}
