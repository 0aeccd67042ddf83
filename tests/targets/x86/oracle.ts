/**
 * Test oracle for the x86 encoder: LLVM's disassembler, `llvm-mc-14 --disassemble`, run once on
 * a whole table of cases.
 *
 * Each case's bytes go in an atomic block `[0x.. 0x..]` on its own line, followed by a `[0xf4]`
 * block (hlt) as a separator: a block is decoded on its own, so a case that is too short or too
 * long cannot swallow its neighbour, and the hlt lines split the listing back into cases. A case
 * passes when llvm-mc
 *   - prints no warning for it (llvm-mc exits 0 on invalid bytes and only warns on stderr),
 *   - decodes it as exactly one instruction,
 *   - prints the expected Intel-syntax text, and
 *   - re-encodes that instruction to the same bytes (`--show-encoding` shows llvm-mc's own,
 *     canonical encoding: this catches a longer form where a shorter one exists, e.g. disp32
 *     where disp8*N applies), unless the case says `canonical: false`.
 *
 * Expected texts are written from the operands (formatting helpers below), independently of
 * the encoder.
 */
import { spawnSync } from 'node:child_process';
import type { Gp, KReg, Mem, Vec } from '../../../targets/x86/registers.ts';

export const LLVM_MC = process.env.LLVM_MC || 'llvm-mc-14';
export const MATTR = '+avx2,+fma,+avx512f';

export interface OracleCase {
  /** group name, for reporting (one uvu test per family) */
  family: string;
  /** expected llvm-mc Intel text, e.g. `vaddps zmm0 {k1}, zmm1, zmmword ptr [rax + 64]` */
  expect: string;
  bytes: Uint8Array;
  /** false: the bytes are a valid but non-canonical encoding (long NOPs) */
  canonical?: boolean;
  /** expected length in bytes, when the case is about choosing a form (disp8*N, rel8) */
  len?: number;
}

export interface OracleResult {
  c: OracleCase;
  ok: boolean;
  /** what went wrong */
  why?: string;
}

const hex = (b: number): string => `0x${b.toString(16).padStart(2, '0')}`;
export const hexBytes = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
const norm = (s: string): string => s.replace(/\s+/g, ' ').trim();

function runLlvmMc(input: string): { stdout: string; stderr: string } {
  const r = spawnSync(LLVM_MC, ['--disassemble', '--show-encoding', '-triple=x86_64', `-mattr=${MATTR}`, '-output-asm-variant=1'], {
    input, encoding: 'utf8', maxBuffer: 1 << 28,
  });
  if (r.error) {
    if ((r.error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`${LLVM_MC} not found: the x86 encoder tests need LLVM's disassembler, install the Debian package llvm-14 (apt-get install llvm-14)`);
    }
    throw r.error;
  }
  // status 1 is how llvm-mc reports an atomic block that did not decode: the warnings say which
  if (r.status !== 0 && r.status !== 1) throw new Error(`${LLVM_MC} exited with status ${r.status}: ${r.stderr.slice(0, 2000)}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

interface Decoded {
  text: string;
  encoding: (number | null)[];
}

/** checks every case with one llvm-mc run */
export function runOracle(cases: readonly OracleCase[]): OracleResult[] {
  const lines: string[] = [];
  for (const c of cases) {
    if (c.bytes.length === 0) throw new Error(`case "${c.expect}" emitted no bytes`);
    lines.push(`[${Array.from(c.bytes, hex).join(' ')}]`, '[0xf4]');
  }
  const { stdout, stderr } = runLlvmMc(lines.join('\n') + '\n');

  // split the listing at the hlt separators: segment i belongs to case i
  const segments: Decoded[][] = [[]];
  for (const line of stdout.split('\n')) {
    const at = line.indexOf('# encoding: [');
    if (at < 0) continue;
    const text = norm(line.slice(0, at));
    if (text === 'hlt') {
      segments.push([]);
      continue;
    }
    const list = line.slice(at + '# encoding: ['.length, line.indexOf(']', at));
    const encoding = list.split(',').map((t) => (/^0x[0-9a-f]+$/i.test(t.trim()) ? parseInt(t, 16) : null));
    segments[segments.length - 1]!.push({ text, encoding });
  }
  if (segments.length !== cases.length + 1) {
    throw new Error(`llvm-mc listing has ${segments.length - 1} separators for ${cases.length} cases:\n${stderr.slice(0, 2000)}`);
  }

  // warnings name the input line: line 2i+1 is case i, line 2i+2 its separator
  const warnings = new Map<number, string>();
  for (const m of stderr.matchAll(/<stdin>:(\d+):\d+: (warning|error): (.*)/g)) {
    const line = Number(m[1]);
    if (line % 2 === 0) throw new Error(`llvm-mc warned about a separator line ${line}: ${m[3]}`);
    warnings.set((line - 1) / 2, m[3]!);
  }
  const unexplained = stderr.split('\n').filter((l) => l && !l.startsWith('<stdin>:') && !/^\s*(\^|\[)/.test(l));
  if (unexplained.length) throw new Error(`llvm-mc stderr: ${unexplained.join('\n')}`);

  return cases.map((c, i): OracleResult => {
    const fail = (why: string): OracleResult => ({ c, ok: false, why });
    const w = warnings.get(i);
    if (w !== undefined) return fail(`llvm-mc: ${w}`);
    let seg = segments[i]!;
    // llvm-mc prints a lock prefix as an instruction of its own: read it as part of the next one
    if (seg.length === 2 && seg[0]!.text === 'lock') seg = [{ ...seg[1]!, text: `lock ${seg[1]!.text}`, encoding: [...seg[0]!.encoding, ...seg[1]!.encoding] }];
    if (seg.length !== 1) return fail(`decodes as ${seg.length} instructions: ${seg.map((s) => s.text).join(' ; ')}`);
    const d = seg[0]!;
    if (d.text !== norm(c.expect)) return fail(`decodes as "${d.text}"`);
    if (c.len !== undefined && c.bytes.length !== c.len) return fail(`length ${c.bytes.length}, expected ${c.len}`);
    if (c.canonical !== false) {
      const same = d.encoding.length === c.bytes.length && d.encoding.every((b, k) => b === null || b === c.bytes[k]);
      if (!same) {
        return fail(`llvm-mc encodes it as [${d.encoding.map((b) => (b === null ? 'A' : b.toString(16).padStart(2, '0'))).join(' ')}]`);
      }
    }
    return { c, ok: true };
  });
}

export function describe(r: OracleResult): string {
  return `  ${r.c.expect}\n    bytes: ${hexBytes(r.c.bytes)}\n    ${r.why}`;
}

// ---- expected-text formatting (LLVM's Intel syntax) --------------------------------------------

export type PtrSize = 'byte' | 'word' | 'dword' | 'qword' | 'xmmword' | 'ymmword' | 'zmmword' | null;

/** `qword ptr [rbp + 4*r12 - 8]`, `dword ptr [rdi + 8]{1to16}`, `zmmword ptr [rsi] {k2}`; ptr null for lea */
export function fmtMem(m: Mem, ptr: PtrSize, ripDisp?: number): string {
  let inner: string;
  if (m.label) {
    if (ripDisp === undefined) throw new Error('fmtMem: RIP-relative operand needs its final displacement');
    inner = ripDisp < 0 ? `rip - ${-ripDisp}` : `rip + ${ripDisp}`;
    if (ripDisp === 0) inner = 'rip';
  } else {
    const parts: string[] = [];
    if (m.base) parts.push(m.base.name);
    if (m.index) parts.push(m.scale === 1 ? m.index.name : `${m.scale}*${m.index.name}`);
    inner = parts.join(' + ');
    if (parts.length === 0) inner = String(m.disp);
    else if (m.disp > 0) inner += ` + ${m.disp}`;
    else if (m.disp < 0) inner += ` - ${-m.disp}`;
  }
  let s = `${ptr ? `${ptr} ptr ` : ''}[${inner}]`;
  if (m.broadcast) s += '{1to16}';
  if (m.mask) s += ` {k${m.mask}}`;
  return s;
}

/** a vector register with its destination decorations: `zmm4 {k1} {z}` */
export function fmtVec(v: Vec): string {
  return `${v.kind}${v.id}${v.mask ? ` {k${v.mask}}` : ''}${v.zeroing ? ' {z}' : ''}`;
}

export function fmtReg(r: Gp | KReg | Vec): string {
  return 'bytes' in r ? fmtVec(r) : r.name;
}

/**
 * LLVM prints an immediate as the instruction reads it: imm8 and 64-bit-operand immediates
 * signed, a 32-bit immediate of a 32-bit operation unsigned.
 */
export function fmtImm(v: number, opBytes: 4 | 8, immBytes: 1 | 4): string {
  if (opBytes === 4 && immBytes === 4) return String(v >>> 0);
  return String(v | 0);
}
