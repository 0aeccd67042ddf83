/**
 * Just enough of ELF64 (little-endian) to take a function's bytes out of `llc`'s relocatable
 * object: the section headers, their names, sizes and types.
 */

export interface ElfSection {
  name: string;
  /** SHT_*: 1 PROGBITS, 4 RELA, 8 NOBITS, ... */
  type: number;
  flags: bigint;
  offset: number;
  size: number;
  /** for RELA sections: the section the relocations apply to */
  info: number;
}

export const SHT_RELA = 4;
export const SHT_REL = 9;
export const SHF_ALLOC = 2n;

export function elfSections(file: Uint8Array): ElfSection[] {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (file.length < 64 || v.getUint32(0) !== 0x7f454c46 || file[4] !== 2 || file[5] !== 1) {
    throw new Error('not a little-endian ELF64 object');
  }
  const shoff = Number(v.getBigUint64(0x28, true));
  const shentsize = v.getUint16(0x3a, true);
  const shnum = v.getUint16(0x3c, true);
  const shstrndx = v.getUint16(0x3e, true);
  const raw = Array.from({ length: shnum }, (_, i) => {
    const at = shoff + i * shentsize;
    return {
      nameOffset: v.getUint32(at, true),
      type: v.getUint32(at + 4, true),
      flags: v.getBigUint64(at + 8, true),
      offset: Number(v.getBigUint64(at + 24, true)),
      size: Number(v.getBigUint64(at + 32, true)),
      info: v.getUint32(at + 44, true),
    };
  });
  const strtab = raw[shstrndx]!;
  const name = (off: number): string => {
    let end = strtab.offset + off;
    while (file[end] !== 0) end++;
    return new TextDecoder().decode(file.subarray(strtab.offset + off, end));
  };
  return raw.map((s) => ({ name: name(s.nameOffset), type: s.type, flags: s.flags, offset: s.offset, size: s.size, info: s.info }));
}
