/**
 * A64 disassembly through `llvm-mc-14 --disassemble` (for `looptune show --asm --target neon` and
 * as the encoder's test oracle).
 *
 * llvm-mc prints one line per decodable word and nothing for an invalid one; it reports problems
 * only as warnings on stderr (its exit code stays 0). So every word goes on its own input line and
 * the warnings' line numbers say which words were invalid ("invalid instruction encoding": no
 * output line) or unpredictable ("potentially undefined instruction encoding": printed and
 * warned). That keeps the listing aligned with the code even when some words are bad.
 */
import { runTool } from '../runtime/child-tool.ts';
import { requireTool } from './tools.ts';

export interface DisasmWord {
  /** byte offset in the code */
  offset: number;
  word: number;
  /** normalized text (`fmla v0.4s, v1.4s, v2.s[1]`), or null when llvm-mc cannot decode the word */
  text: string | null;
  /** llvm-mc's warning for this word, if any */
  warning?: string;
}

/** Decode every 32-bit word of `bytes` (one llvm-mc process for all of them). */
export function disassembleArm64Words(bytes: Uint8Array): DisasmWord[] {
  if (bytes.length % 4 !== 0) throw new Error(`disassembleArm64: ${bytes.length} bytes is not a whole number of instructions`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const words: number[] = [];
  for (let i = 0; i < bytes.length; i += 4) words.push(view.getUint32(i, true));
  if (words.length === 0) return [];
  const input = words.map((w) => [0, 8, 16, 24].map((s) => `0x${((w >>> s) & 0xff).toString(16).padStart(2, '0')}`).join(' ')).join('\n') + '\n';
  const mc = requireTool('llvm-mc-14');
  // under the tool time limit; a failure is one line (runtime/child-tool.ts)
  const { stdout, stderr } = runTool(mc, ['--disassemble', '-triple=aarch64', '-mattr=+neon'], { input, maxBuffer: 256 << 20 });
  const warnings = new Map<number, string>();
  for (const line of stderr.split('\n')) {
    const m = /^<stdin>:(\d+):\d+: (warning|error): (.*)$/.exec(line);
    if (m) warnings.set(Number(m[1]) - 1, m[3]!);
    else if (/\b(warning|error)\b/.test(line)) throw new Error(`llvm-mc-14: unexpected diagnostic: ${line}`);
  }
  const lines = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && l !== '.text');
  let next = 0;
  return words.map((w, i) => {
    const warning = warnings.get(i);
    const decoded = warning?.startsWith('invalid instruction encoding') ? null : normalize(lines[next++] ?? '');
    return { offset: i * 4, word: w, text: decoded, ...(warning ? { warning } : {}) };
  });
}

/** llvm-mc's "\tmnemonic\top, op" as "mnemonic op, op" (runs of blanks become one space). */
function normalize(line: string): string {
  return line.replace(/\t+/g, ' ').replace(/ +/g, ' ').trim();
}

/**
 * A readable listing: offset, word, instruction; branch targets get labels (`.L40:`) and
 * branches a `// -> .L40` comment.
 */
export function disassembleArm64(bytes: Uint8Array, opts: { words?: boolean } = {}): string {
  return formatListing(disassembleArm64Words(bytes), opts);
}

/** The listing of already decoded words (see disassembleArm64). */
export function formatListing(decoded: DisasmWord[], opts: { words?: boolean } = {}): string {
  const end = decoded.length * 4;
  const targets = new Map<number, number>();
  for (const d of decoded) {
    const t = d.text === null ? null : branchTarget(d.text, d.offset);
    if (t !== null) targets.set(d.offset, t);
  }
  const labelled = new Set(targets.values());
  const out: string[] = [];
  for (const d of decoded) {
    if (labelled.has(d.offset)) out.push(`.L${d.offset.toString(16)}:`);
    const hex = d.word.toString(16).padStart(8, '0');
    let text = d.text ?? `.inst 0x${hex}  // invalid`;
    const t = targets.get(d.offset);
    if (t !== undefined) text += `  // -> .L${t.toString(16)}`;
    if (d.warning && d.text) text += `  // warning: ${d.warning}`;
    out.push(`  ${d.offset.toString(16).padStart(4, '0')}:${opts.words === false ? '' : `  ${hex}`}  ${text}`);
  }
  for (const t of labelled) if (t >= end) out.push(`.L${t.toString(16)}:  // end of code`);
  return out.join('\n');
}

/** Absolute target of a PC-relative branch as llvm-mc prints it (`b.ne #-16`, `cbz x0, #8`). */
function branchTarget(text: string, offset: number): number | null {
  const m = /^(?:b|bl|b\.\w+|cbz|cbnz|tbz|tbnz)\s.*#(-?\d+)$/.exec(text);
  return m ? offset + Number(m[1]) : null;
}
