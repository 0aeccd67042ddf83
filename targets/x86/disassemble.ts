/**
 * Disassembly of x86-64 machine code through LLVM's `llvm-mc-14 --disassemble` (Debian package
 * llvm-14). Used by `looptune show --asm` and by the encoder tests as their oracle.
 */
import { runTool } from '../runtime/child-tool.ts';
import { NOPS } from './opcodes.ts';

/** the llvm-mc executable: $LLVM_MC, else llvm-mc-14 on PATH */
export const LLVM_MC = process.env.LLVM_MC || 'llvm-mc-14';
/** every ISA extension the encoder can emit */
export const X86_MATTR = '+avx2,+fma,+avx512f';

export interface DisassembleOptions {
  /** 'intel' (default) or 'att' */
  syntax?: 'intel' | 'att';
  /** prefix each line with its byte offset (default true) */
  offsets?: boolean;
  /** show each instruction's bytes in hex (default false) */
  bytes?: boolean;
  /** bytes from here on are data (e.g. `Assembler.codeSize`): listed as `.byte`, not decoded */
  codeSize?: number;
  /** llvm-mc -mattr (default X86_MATTR) */
  mattr?: string;
  /** llvm-mc executable (default LLVM_MC) */
  llvmMc?: string;
}

/** one decoded instruction of an llvm-mc `--show-encoding` listing */
export interface McInstruction {
  /** mnemonic and operands, whitespace normalized (`vaddps zmm0, zmm1, zmm2`) */
  text: string;
  /** encoded bytes; null where llvm-mc prints a fixup placeholder (a branch displacement) */
  encoding: (number | null)[];
}

/**
 * Runs llvm-mc with `args` on `input`, under the tool time limit (runtime/child-tool.ts). Throws
 * one line naming the Debian package when the tool is missing, and one line when it fails or
 * hangs. Returns stdout and stderr: llvm-mc exits 0 on undecodable bytes (1 inside an atomic
 * block) and only warns on stderr, so callers must look at stderr.
 */
export function runLlvmMc(input: string, args: readonly string[], exe: string = LLVM_MC): { stdout: string; stderr: string } {
  // status 1: an atomic block `[...]` did not decode (reported by warnings like any bad bytes)
  const r = runTool(exe, args, {
    input, maxBuffer: 1 << 28, okStatuses: [0, 1],
    installHint: 'install the Debian package llvm-14 (apt-get install llvm-14), or set LLVM_MC',
  });
  return { stdout: r.stdout, stderr: r.stderr };
}

/** llvm-mc arguments to disassemble x86-64 with `--show-encoding` */
export function llvmMcArgs(syntax: 'intel' | 'att' = 'intel', mattr: string = X86_MATTR): string[] {
  const args = ['--disassemble', '--show-encoding', '-triple=x86_64', `-mattr=${mattr}`];
  if (syntax === 'intel') args.push('-output-asm-variant=1');
  return args;
}

/**
 * Instructions of an llvm-mc `--show-encoding` listing, in order. Note that the encoding shown is
 * llvm-mc's own re-encoding of the decoded instruction (canonical: shortest displacement, ...),
 * not necessarily the input bytes.
 */
export function parseMcListing(stdout: string): McInstruction[] {
  const out: McInstruction[] = [];
  for (const line of stdout.split('\n')) {
    const at = line.indexOf('# encoding: [');
    if (at < 0) continue; // `.text`, and comment lines such as `# zmm0 = (zmm1 * mem) + zmm0`
    const text = line.slice(0, at).replace(/\s+/g, ' ').trim();
    const list = line.slice(at + '# encoding: ['.length, line.indexOf(']', at));
    const encoding = list.split(',').map((t) => (/^0x[0-9a-f]+$/i.test(t.trim()) ? parseInt(t, 16) : null));
    out.push({ text, encoding });
  }
  return out;
}

/** line numbers (1-based) llvm-mc warned about: any warning, invalid or "potentially undefined" */
function warnedLines(stderr: string): number[] {
  const out: number[] = [];
  for (const m of stderr.matchAll(/<stdin>:(\d+):\d+: warning: /g)) out.push(Number(m[1]));
  return [...new Set(out)].sort((a, b) => a - b);
}

function matchesAt(code: Uint8Array, pos: number, enc: readonly (number | null)[]): boolean {
  if (pos + enc.length > code.length) return false;
  return enc.every((b, i) => b === null || code[pos + i] === b);
}

/**
 * True length of the instruction at `pos` whose text llvm-mc printed as `text`, when its
 * re-encoding (which is canonical: shortest displacement...) differs from the bytes. Each
 * candidate length is decoded as its own atomic block `[...]` (followed by a `hlt` separator);
 * the shortest that decodes to that one instruction without a warning is it.
 */
function probeLength(code: Uint8Array, pos: number, text: string, args: readonly string[], exe?: string): number | null {
  const max = Math.min(15, code.length - pos);
  const lines: string[] = [];
  for (let len = 1; len <= max; len++) {
    lines.push(`[${Array.from(code.subarray(pos, pos + len), (b) => `0x${hex(b)}`).join(' ')}]`, '[0xf4]');
  }
  const { stdout, stderr } = runLlvmMc(lines.join('\n') + '\n', args, exe);
  const warned = new Set(warnedLines(stderr));
  const segments: string[][] = [[]];
  for (const ins of parseMcListing(stdout)) {
    if (ins.text === 'hlt') segments.push([]);
    else segments[segments.length - 1]!.push(ins.text);
  }
  for (let len = 1; len <= max; len++) {
    const seg = segments[len - 1];
    if (!warned.has(2 * len - 1) && seg?.length === 1 && seg[0] === text) return len;
  }
  return null;
}

/** the recommended multi-byte NOP that `Assembler.align` emits at pos, if any (longest first) */
function nopAt(code: Uint8Array, pos: number): number {
  for (let k = NOPS.length - 1; k > 0; k--) if (matchesAt(code, pos, NOPS[k]!)) return k;
  return 0;
}

interface Row {
  offset: number;
  bytes: Uint8Array;
  text: string;
}

const hex = (b: number): string => b.toString(16).padStart(2, '0');

/**
 * Disassembles x86-64 machine code, one instruction per line:
 *
 *   0000:  vpxord      zmm0, zmm0, zmm0
 *   0006:  dec         rax
 *   0009:  jne         -11                     # -> 0000
 *
 * Bytes llvm-mc cannot decode are listed as `.byte` lines (as is everything from `codeSize` on).
 */
export function disassembleX86(code: Uint8Array, opts: DisassembleOptions = {}): string {
  const codeSize = Math.min(opts.codeSize ?? code.length, code.length);
  const text = code.subarray(0, codeSize);
  const rows: Row[] = [];
  if (text.length > 0) {
    // One byte per input line: llvm-mc reports undecodable bytes by line, i.e. by offset.
    const input = Array.from(text, (b) => `0x${hex(b)}`).join('\n') + '\n';
    const args = llvmMcArgs(opts.syntax, opts.mattr);
    const { stdout, stderr } = runLlvmMc(input, args, opts.llvmMc);
    const insts = parseMcListing(stdout);
    const bad = warnedLines(stderr).map((line) => line - 1);
    let pos = 0;
    let i = 0;
    let w = 0;
    while (pos < text.length) {
      while (w < bad.length && bad[w]! < pos) w++;
      if (w < bad.length && bad[w] === pos) {
        // llvm-mc skipped an undecodable stretch: it ends where the next decoded instruction's
        // bytes are (or at the next undecodable byte)
        const limit = w + 1 < bad.length ? bad[w + 1]! : text.length;
        let end = limit;
        if (i < insts.length) {
          for (let q = pos + 1; q < limit; q++) {
            if (matchesAt(text, q, insts[i]!.encoding)) {
              end = q;
              break;
            }
          }
        }
        rows.push({ offset: pos, bytes: text.subarray(pos, end), text: '(bad)' });
        pos = end;
        w++;
        continue;
      }
      const ins = insts[i];
      // llvm-mc shows a canonical re-encoding, not the input bytes: where they agree that is
      // the length (x86 decoding is prefix-free); otherwise find the length by probing
      let len: number | null = null;
      if (ins) {
        if (matchesAt(text, pos, ins.encoding)) len = ins.encoding.length;
        else if (ins.text.startsWith('nop') || ins.text === 'xchg ax, ax') len = nopAt(text, pos) || null;
        if (len === null) len = probeLength(text, pos, ins.text, args, opts.llvmMc);
      }
      if (!ins || len === null) {
        // out of step with llvm-mc (should not happen): list the rest as raw bytes
        rows.push({ offset: pos, bytes: text.subarray(pos), text: '(bad)' });
        break;
      }
      i++;
      rows.push({ offset: pos, bytes: text.subarray(pos, pos + len), text: ins.text });
      pos += len;
    }
  }
  for (let p = codeSize; p < code.length; p += 16) {
    const chunk = code.subarray(p, Math.min(p + 16, code.length));
    rows.push({ offset: p, bytes: chunk, text: `.byte ${Array.from(chunk, (b) => `0x${hex(b)}`).join(', ')}` });
  }
  return format(rows, code.length, opts);
}

function format(rows: Row[], total: number, opts: DisassembleOptions): string {
  const width = Math.max(4, total.toString(16).length);
  const byteCol = opts.bytes ? Math.max(0, ...rows.map((r) => (r.text.startsWith('.byte') ? 0 : r.bytes.length * 3))) : 0;
  const lines: string[] = [];
  for (const r of rows) {
    let body = r.text;
    const sp = body.indexOf(' ');
    if (sp > 0 && !body.startsWith('.')) body = body.slice(0, sp).padEnd(11) + ' ' + body.slice(sp + 1);
    if (r.text === '(bad)') body = `(bad) .byte ${Array.from(r.bytes, (b) => `0x${hex(b)}`).join(', ')}`;
    // branches print their displacement; add the target offset
    const br = /^(j[a-z]+|jmp|call)\s+(-?\d+)$/.exec(r.text);
    if (br) body = body.padEnd(40) + `# -> ${(r.offset + r.bytes.length + Number(br[2])).toString(16).padStart(width, '0')}`;
    let line = body;
    if (opts.bytes && !r.text.startsWith('.byte') && r.text !== '(bad)') {
      line = Array.from(r.bytes, hex).join(' ').padEnd(byteCol) + ' ' + line;
    }
    if (opts.offsets ?? true) line = `${r.offset.toString(16).padStart(width, '0')}:  ${line}`;
    lines.push(line.trimEnd());
  }
  return lines.join('\n') + (lines.length ? '\n' : '');
}
