/** A growable little-endian byte buffer: the code the Assembler writes. */
export class CodeBuffer {
  private data = new Uint8Array(512);
  private view = new DataView(this.data.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.data.length) return;
    let cap = this.data.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.data.subarray(0, this.length));
    this.data = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.reserve(1);
    this.data[this.length++] = v & 0xff;
  }
  u16(v: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, v & 0xffff, true);
    this.length += 2;
  }
  /** 32-bit value, signed or unsigned (the low 32 bits are written) */
  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v >>> 0, true);
    this.length += 4;
  }
  u64(v: bigint): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt.asUintN(64, v), true);
    this.length += 8;
  }
  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  f64(v: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }
  bytes(b: ArrayLike<number>): void {
    this.reserve(b.length);
    for (let i = 0; i < b.length; i++) this.data[this.length++] = b[i]! & 0xff;
  }
  /** overwrite a 32-bit value at an earlier position (label fixups) */
  patch32(at: number, v: number): void {
    this.view.setInt32(at, v, true);
  }
  at(i: number): number {
    return this.data[i]!;
  }
  /** a copy of the bytes written so far */
  toBytes(): Uint8Array {
    return this.data.slice(0, this.length);
  }
}
