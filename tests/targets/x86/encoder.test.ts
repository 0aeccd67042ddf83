/**
 * x86-64 encoder tests. Every instruction form the Assembler emits is checked against LLVM's
 * disassembler (llvm-mc-14, one run for the whole table: see oracle.ts); then the error paths,
 * labels and data, the disassembly listing and the peak kernel.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { disassembleX86 } from '../../../targets/x86/disassemble.ts';
import { Assembler, type Cond } from '../../../targets/x86/encoder.ts';
import { NOPS } from '../../../targets/x86/opcodes.ts';
import { maxPeakChains, peakFlopsPerRep, peakKernel } from '../../../targets/x86/peak-kernel.ts';
import {
  Gp64, Mem, dword, eax, ebx, ecx, edi, esp, ebp, gp32, gp64, k0, k1, k2, k3, k7, kreg, mem, memRip, qword,
  r10d, r11, r12, r12d, r13, r13d, r14, r15, r15d, r8, r8d, r9, rax, rbp, rbx, rcx, rdi, rdx, rsi, rsp, xmm, ymm, zmm,
  type Gp, type Gp32, type Vec, type Xmm, type Ymm, type Zmm,
} from '../../../targets/x86/registers.ts';
import { describe, fmtImm, fmtMem, fmtReg, fmtVec, hexBytes, runOracle, type OracleCase, type OracleResult, type PtrSize } from './oracle.ts';

// =============================================================================================
// The case table
// =============================================================================================

const cases: OracleCase[] = [];

/** one case: a fresh Assembler, the instruction(s) `emit` writes, and the text llvm-mc should print */
function add(family: string, expect: string, emit: (a: Assembler) => void, extra: { canonical?: boolean; len?: number } = {}): void {
  const a = new Assembler();
  emit(a);
  cases.push({ family, expect, bytes: a.finish(), ...extra });
}

/** a case cut out of a larger buffer (branches, RIP-relative): `emit` returns the instruction's [from, to) */
function addSlice(family: string, expect: (from: number, to: number) => string, emit: (a: Assembler) => [number, number], len?: number): void {
  const a = new Assembler();
  const [from, to] = emit(a);
  cases.push({ family, expect: expect(from, to), bytes: a.finish().slice(from, to), len });
}

/** emits one instruction and returns its [from, to) */
function span(a: Assembler, emit: () => void): [number, number] {
  const from = a.offset;
  emit();
  return [from, a.offset];
}

const fits8 = (v: number): boolean => (v | 0) >= -128 && (v | 0) <= 127;
const G64 = Array.from({ length: 16 }, (_, i) => gp64(i));
const G32 = Array.from({ length: 16 }, (_, i) => gp32(i));
const GSRC = [rax, rcx, rbx, rsp, rbp, rsi, r8, r12, r13, r15];
const G32SRC = [eax, ecx, esp, ebp, edi, r8d, r12d, r13d, r15d];

/** general addressing: every special case of ModRM/SIB and all displacement sizes */
const MEMS: Mem[] = [
  mem(rax), mem(rcx, 8), mem(rsp), mem(rsp, 8), mem(rsp, -8), mem(rbp), mem(rbp, 16), mem(r12), mem(r12, 127),
  mem(r13), mem(r13, -128), mem(r8, 128), mem(r9, -129), mem(r15, 0x12345678), mem(rdi, -0x80000000), mem(rsi, 0x7fffffff),
  mem(rax, 0, rcx), mem(rax, 4, rcx, 2), mem(rbx, 64, rdx, 4), mem(rsp, -8, rax, 8), mem(rbp, 0, r12, 2),
  mem(r13, 256, r13, 8), mem(r12, -1024, r9, 4), mem(r11, 0, rbp), mem(rsi, 0, r12), mem(r8, 1000, r15, 8),
  mem(rdx, -1, r14, 1), mem(null, 16, rcx, 4), mem(null, -8, r9, 8), mem(null, 0, rbx, 2), mem(null, 0x1000),
];
/** a smaller set for the vector families */
const VMEMS: Mem[] = [
  mem(rax), mem(rsp, 8), mem(rbp), mem(r12, -32), mem(r13, 64), mem(r8, 4096), mem(r15, -129),
  mem(rax, 32, rcx, 4), mem(rbp, 0, r12, 8), mem(rsp, -4, r15, 2), mem(null, 64, r9, 4),
];

// ---- general-purpose ------------------------------------------------------------------------

type AluName = 'add' | 'or' | 'adc' | 'sbb' | 'and' | 'sub' | 'xor' | 'cmp';
const ALUS: AluName[] = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];
const IMMS = [0, 1, -1, 127, -128, 128, -129, 1000, 0x7fffffff, -0x80000000];
const size = (r: Gp): 4 | 8 => (r instanceof Gp64 ? 8 : 4);
const ptr = (bytes: 4 | 8): PtrSize => (bytes === 8 ? 'qword' : 'dword');

for (const d of G64) for (const s of GSRC) add('mov', `mov ${d}, ${s}`, (a) => a.mov(d, s));
for (const d of G32) for (const s of G32SRC) add('mov', `mov ${d}, ${s}`, (a) => a.mov(d, s));
MEMS.forEach((m, i) => {
  const r = G64[(i * 5) % 16]!;
  const r32 = G32[(i * 7) % 16]!;
  add('mov mem', `mov ${r}, ${fmtMem(m, 'qword')}`, (a) => a.mov(r, m));
  add('mov mem', `mov ${fmtMem(m, 'qword')}, ${r}`, (a) => a.mov(m, r));
  add('mov mem', `mov ${r32}, ${fmtMem(m, 'dword')}`, (a) => a.mov(r32, m));
  add('mov mem', `mov ${fmtMem(m, 'dword')}, ${r32}`, (a) => a.mov(m, r32));
  for (const v of [5, -5, 0x7fffffff]) {
    add('mov mem', `mov ${fmtMem(m, 'qword')}, ${fmtImm(v, 8, 4)}`, (a) => a.mov(m.qword(), v));
    add('mov mem', `mov ${fmtMem(m, 'dword')}, ${fmtImm(v, 4, 4)}`, (a) => a.mov(m.dword(), v));
  }
});
// mov r64, imm: sign-extended imm32 when it fits, movabs otherwise
const IMM64: [number | bigint, string][] = [
  [0, 'mov R, 0'], [1, 'mov R, 1'], [-1, 'mov R, -1'], [0x7fffffff, 'mov R, 2147483647'], [-0x80000000, 'mov R, -2147483648'],
  [0x80000000, 'movabs R, 2147483648'], [0xffffffff, 'movabs R, 4294967295'], [2 ** 40, 'movabs R, 1099511627776'],
  [-(2 ** 40), 'movabs R, -1099511627776'], [0x123456789abcdef0n, 'movabs R, 1311768467463790320'],
  [0xffffffffffffffffn, 'movabs R, -1'], [-0x8000000000000000n, 'movabs R, -9223372036854775808'], [5n, 'mov R, 5'],
];
for (const r of [rax, rcx, rsp, rbp, r8, r12, r15]) {
  for (const [v, t] of IMM64) add('mov imm', t.replace('R', r.name), (a) => a.mov(r, v));
  add('mov imm', `movabs ${r}, 5`, (a) => a.movabs(r, 5));
}
for (const r of [eax, ecx, esp, r8d, r15d]) {
  for (const v of [0, 1, -1, 0x7fffffff, 0xffffffff, 0x80000000]) add('mov imm', `mov ${r}, ${v >>> 0}`, (a) => a.mov(r, v));
}

for (const op of ALUS) {
  for (const d of G64) for (const s of [rax, rbx, rsp, rbp, r9, r12, r13, r15]) add('alu r,r', `${op} ${d}, ${s}`, (a) => a[op](d, s));
  for (const d of G32.filter((_, i) => i % 3 === 0)) for (const s of G32SRC) add('alu r,r', `${op} ${d}, ${s}`, (a) => a[op](d, s));
  for (const d of [rax, rcx, rsp, rbp, r8, r12, r15, eax, edi, r13d]) {
    for (const v of [...IMMS, ...(d instanceof Gp64 ? [] : [0xffffffff, 0x80000000])]) {
      add('alu r,imm', `${op} ${d}, ${fmtImm(v, size(d), fits8(v) ? 1 : 4)}`, (a) => (d instanceof Gp64 ? a[op](d, v) : a[op](d as Gp32, v)),
        { len: (d.id >= 8 || d instanceof Gp64 ? 1 : 0) + 2 + (fits8(v) ? 1 : 4) });
    }
  }
  MEMS.forEach((m, i) => {
    const r = G64[(i * 3) % 16]!;
    const r32 = G32[(i * 11) % 16]!;
    add('alu mem', `${op} ${r}, ${fmtMem(m, 'qword')}`, (a) => a[op](r, m));
    add('alu mem', `${op} ${fmtMem(m, 'qword')}, ${r}`, (a) => a[op](m, r));
    add('alu mem', `${op} ${r32}, ${fmtMem(m, 'dword')}`, (a) => a[op](r32, m));
    add('alu mem', `${op} ${fmtMem(m, 'dword')}, ${r32}`, (a) => a[op](m, r32));
    for (const v of [1, -1, 200, -0x80000000]) {
      add('alu mem', `${op} ${fmtMem(m, 'qword')}, ${fmtImm(v, 8, fits8(v) ? 1 : 4)}`, (a) => a[op](m.qword(), v));
      add('alu mem', `${op} ${fmtMem(m, 'dword')}, ${fmtImm(v, 4, fits8(v) ? 1 : 4)}`, (a) => a[op](dword(m.base, m.disp, m.index, m.scale), v));
    }
  });
}

for (const op of ['inc', 'dec', 'neg', 'not'] as const) {
  for (const r of [...G64, ...G32.filter((_, i) => i % 2 === 1)]) add('inc/dec/neg/not', `${op} ${r}`, (a) => a[op](r));
  for (const m of MEMS) {
    add('inc/dec/neg/not', `${op} ${fmtMem(m, 'qword')}`, (a) => a[op](m.qword()));
    add('inc/dec/neg/not', `${op} ${fmtMem(m, 'dword')}`, (a) => a[op](m.dword()));
  }
}
add('inc/dec/neg/not', 'dec qword ptr [rsp + 8]', (a) => a.dec(qword(rsp, 8)), { len: 5 });

// the parallel kernels' chunk arithmetic and the thread runtime's stubs (targets/runtime/threads.ts)
for (const r of [...G64, ...G32.filter((_, i) => i % 2 === 1)]) add('div', `div ${r}`, (a) => a.div(r));
for (const m of MEMS) add('div', `div ${fmtMem(m, 'qword')}`, (a) => a.div(m.qword()));
for (const r of G64) add('call', `call ${r}`, (a) => a.call(r));
for (const m of MEMS) add('call', `call ${fmtMem(m, 'qword')}`, (a) => a.call(m.qword()));
MEMS.forEach((m, i) => {
  const r = G64[(i * 5) % 16]!;
  add('lock xadd', `lock xadd ${fmtMem(m, 'qword')}, ${r}`, (a) => a.lockXadd(m.qword(), r));
});

for (const op of ['shl', 'shr', 'sar'] as const) {
  for (const r of [rax, rsp, r9, r15, eax, r12d]) {
    for (const c of [1, 2, 5, 31, 63]) {
      if (c >= size(r) * 8) continue;
      add('shift', `${op} ${r}, ${c}`, (a) => a[op](r, c));
    }
  }
}

for (const m of MEMS) {
  for (const r of [rax, r13]) add('lea', `lea ${r}, ${fmtMem(m, null)}`, (a) => a.lea(r, m));
  add('lea', `lea ${r10d}, ${fmtMem(m, null)}`, (a) => a.lea(r10d, m));
}

for (const d of [rax, rcx, rsp, rbp, r8, r13, r15]) {
  for (const s of GSRC) add('imul', `imul ${d}, ${s}`, (a) => a.imul(d, s));
  for (const v of IMMS) add('imul', `imul ${d}, ${rbx}, ${fmtImm(v, 8, fits8(v) ? 1 : 4)}`, (a) => a.imul(d, rbx, v));
}
for (const d of [eax, r12d]) {
  for (const v of [3, -3, 100000]) add('imul', `imul ${d}, ${ebp}, ${fmtImm(v, 4, fits8(v) ? 1 : 4)}`, (a) => a.imul(d, ebp, v));
  add('imul', `imul ${d}, ${r15d}`, (a) => a.imul(d, r15d));
}
VMEMS.forEach((m, i) => {
  const r = G64[(i * 5 + 3) % 16]!;
  add('imul', `imul ${r}, ${fmtMem(m, 'qword')}`, (a) => a.imul(r, m));
  add('imul', `imul ${r}, ${fmtMem(m, 'qword')}, 12`, (a) => a.imul(r, m, 12));
  add('imul', `imul ${r}, ${fmtMem(m, 'qword')}, 1200`, (a) => a.imul(r, m, 1200));
});

for (const d of G64) for (const s of [rax, rsp, rbp, r8, r13]) add('test', `test ${d}, ${s}`, (a) => a.test(d, s));
for (const d of [eax, ebx, r13d]) for (const s of [ecx, esp, r8d]) add('test', `test ${d}, ${s}`, (a) => a.test(d, s));
for (const v of [1, -1, 0x7fffffff, 256]) {
  for (const d of [rax, r12]) add('test', `test ${d}, ${fmtImm(v, 8, 4)}`, (a) => a.test(d, v));
  add('test', `test ${r8d}, ${fmtImm(v, 4, 4)}`, (a) => a.test(r8d, v));
}
for (const m of VMEMS) {
  add('test', `test ${fmtMem(m, 'qword')}, ${r9}`, (a) => a.test(m, r9));
  add('test', `test ${fmtMem(m, 'dword')}, 7`, (a) => a.test(m.dword(), 7));
}

for (const r of G64) {
  add('push/pop', `push ${r}`, (a) => a.push(r), { len: r.id >= 8 ? 2 : 1 });
  add('push/pop', `pop ${r}`, (a) => a.pop(r), { len: r.id >= 8 ? 2 : 1 });
}
add('misc', 'ret', (a) => a.ret());
add('misc', 'nop', (a) => a.nop());
add('misc', 'ud2', (a) => a.ud2());
add('misc', 'int3', (a) => a.int3());

// ---- branches ---------------------------------------------------------------------------------

const CONDS: Cond[] = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
const zeros = (n: number): number[] => new Array<number>(n).fill(0x90);
function branchCases(name: string, jump: (a: Assembler, l: ReturnType<Assembler['newLabel']>) => void, short: number, long: number): void {
  // backward: rel8 while the target is within -128 of the next instruction
  for (const dist of [0, 50, 126, 127, 1000, 70000]) {
    const len = dist <= 126 ? short : long;
    addSlice('branch', () => `${name} ${-(dist + len)}`, (a) => {
      const l = a.newLabel();
      a.bind(l);
      a.emitBytes(zeros(dist));
      return span(a, () => jump(a, l));
    }, len);
  }
  // forward: always rel32
  for (const dist of [0, 10, 300]) {
    addSlice('branch', () => `${name} ${dist}`, (a) => {
      const l = a.newLabel();
      const s = span(a, () => jump(a, l));
      a.emitBytes(zeros(dist));
      a.bind(l);
      return s;
    }, long);
  }
}
for (const cc of CONDS) branchCases(`j${cc}`, (a, l) => a.jcc(cc, l), 2, 6);
branchCases('jmp', (a, l) => a.jmp(l), 2, 5);
branchCases('jne', (a, l) => a.jnz(l), 2, 6);
branchCases('je', (a, l) => a.jz(l), 2, 6);
branchCases('jl', (a, l) => a.jl(l), 2, 6);
branchCases('jge', (a, l) => a.jge(l), 2, 6);
branchCases('jg', (a, l) => a.jg(l), 2, 6);
branchCases('jle', (a, l) => a.jle(l), 2, 6);
branchCases('jb', (a, l) => a.jb(l), 2, 6);
branchCases('jae', (a, l) => a.jae(l), 2, 6);

// ---- RIP-relative ----------------------------------------------------------------------------

/**
 * The displacement counts from the end of the instruction, after any immediate: each form is
 * emitted with the label before it (negative) and after it (positive), with and without an addend.
 */
function ripCases(text: (m: string) => string, emit: (a: Assembler, m: Mem) => void): void {
  for (const [before, addend] of [[true, 0], [false, 0], [false, 12], [true, -4]] as const) {
    let ripDisp = 0;
    addSlice('rip-relative', () => text(`[rip${ripDisp < 0 ? ` - ${-ripDisp}` : ripDisp > 0 ? ` + ${ripDisp}` : ''}]`), (a) => {
      const l = a.newLabel();
      if (before) {
        a.bind(l);
        a.emitBytes(zeros(20));
      }
      const s = span(a, () => emit(a, memRip(l, addend)));
      if (!before) {
        a.emitBytes(zeros(33));
        a.bind(l);
      }
      ripDisp = a.labelOffset(l) + addend - s[1];
      return s;
    });
  }
}
ripCases((m) => `lea rax, ${m}`, (a, m) => a.lea(rax, m));
ripCases((m) => `lea r13, ${m}`, (a, m) => a.lea(r13, m));
ripCases((m) => `mov r9, qword ptr ${m}`, (a, m) => a.mov(r9, m));
ripCases((m) => `mov qword ptr ${m}, -7`, (a, m) => a.mov(m.qword(), -7));
ripCases((m) => `cmp dword ptr ${m}, 5`, (a, m) => a.cmp(m.dword(), 5));
ripCases((m) => `add qword ptr ${m}, 100000`, (a, m) => a.add(m.qword(), 100000));
ripCases((m) => `imul rax, qword ptr ${m}, 3`, (a, m) => a.imul(rax, m, 3));
ripCases((m) => `vmovups ymm9, ymmword ptr ${m}`, (a, m) => a.vmovups(ymm(9), m));
ripCases((m) => `vbroadcastss zmm17, dword ptr ${m}`, (a, m) => a.vbroadcastss(zmm(17), m));
ripCases((m) => `vfmadd231ps zmm1, zmm2, dword ptr ${m}{1to16}`, (a, m) => a.vfmadd231ps(zmm(1), zmm(2), m.bcst()));
ripCases((m) => `vpternlogd zmm0, zmm0, zmmword ptr ${m}, 15`, (a, m) => a.vpternlogd(zmm(0), zmm(0), m, 15));
ripCases((m) => `kmovw k1, word ptr ${m}`, (a, m) => a.kmovw(k1, m));
// the epilogue's constant pool: broadcast loads, full-vector and {1to16} operands, and an imm8 after the disp32
ripCases((m) => `vbroadcastss ymm3, dword ptr ${m}`, (a, m) => a.vbroadcastss(ymm(3), m));
ripCases((m) => `vmulps ymm2, ymm5, ymmword ptr ${m}`, (a, m) => a.vmulps(ymm(2), ymm(5), m));
ripCases((m) => `vmaxps xmm1, xmm1, xmmword ptr ${m}`, (a, m) => a.vmaxps(xmm(1), xmm(1), m));
ripCases((m) => `vfmadd213ps zmm20, zmm3, dword ptr ${m}{1to16}`, (a, m) => a.vfmadd213ps(zmm(20), zmm(3), m.bcst()));
ripCases((m) => `vfnmsub231ps ymm4, ymm6, ymmword ptr ${m}`, (a, m) => a.vfnmsub231ps(ymm(4), ymm(6), m));
ripCases((m) => `vpaddd zmm9, zmm9, dword ptr ${m}{1to16}`, (a, m) => a.vpaddd(zmm(9), zmm(9), m.bcst()));
ripCases((m) => `vpaddd ymm9, ymm9, ymmword ptr ${m}`, (a, m) => a.vpaddd(ymm(9), ymm(9), m));
ripCases((m) => `vroundps ymm7, ymmword ptr ${m}, 8`, (a, m) => a.vroundps(ymm(7), m, 8));
ripCases((m) => `vrndscaleps zmm7, dword ptr ${m}{1to16}, 0`, (a, m) => a.vrndscaleps(zmm(7), m.bcst(), 0));
ripCases((m) => `vmaskmovps ymm0, ymm15, ymmword ptr ${m}`, (a, m) => a.vmaskmovps(ymm(0), ymm(15), m));

// ---- the NOPs `align` uses -------------------------------------------------------------------

const NOP_TEXT = ['', 'nop', 'nop', 'nop dword ptr [rax]', 'nop dword ptr [rax]', 'nop dword ptr [rax + rax]',
  'nop word ptr [rax + rax]', 'nop dword ptr [rax]', 'nop dword ptr [rax + rax]', 'nop word ptr [rax + rax]'];
for (let n = 1; n < NOPS.length; n++) {
  // recommended NOPs use zero displacements on purpose: llvm-mc would encode these shorter
  add('align nops', NOP_TEXT[n]!, (a) => a.emitBytes(NOPS[n]!), { canonical: n === 1 || n === 3, len: n });
}

// ---- VEX: AVX / AVX2 / FMA -------------------------------------------------------------------

const VEX_IDS = [0, 1, 7, 8, 9, 15];
const VEX_TRIPLES: [number, number, number][] = [[0, 1, 2], [8, 9, 10], [15, 0, 8], [1, 15, 7], [9, 3, 15], [7, 8, 0], [4, 4, 4]];
const vw = (v: Vec): PtrSize => (v.bytes === 16 ? 'xmmword' : v.bytes === 32 ? 'ymmword' : 'zmmword');

type MoveName = 'vmovups' | 'vmovaps' | 'vmovdqu';
for (const op of ['vmovups', 'vmovaps', 'vmovdqu'] as MoveName[]) {
  for (const f of [xmm, ymm] as ((i: number) => Xmm | Ymm)[]) {
    const regs = VEX_IDS.map(f);
    for (const d of regs) for (const s of regs) add('vex moves', `${op} ${d}, ${s}`, (a) => a[op](d, s));
    VMEMS.forEach((m, i) => {
      const r = regs[i % regs.length]!;
      add('vex moves', `${op} ${r}, ${fmtMem(m, vw(r))}`, (a) => a[op](r, m));
      add('vex moves', `${op} ${fmtMem(m, vw(r))}, ${r}`, (a) => a[op](m, r));
    });
  }
}
VMEMS.forEach((m, i) => {
  const r = xmm(VEX_IDS[i % VEX_IDS.length]!);
  add('vex moves', `vmovss ${r}, ${fmtMem(m, 'dword')}`, (a) => a.vmovss(r, m));
  add('vex moves', `vmovss ${fmtMem(m, 'dword')}, ${r}`, (a) => a.vmovss(m, r));
});

type PackedName = 'vfmadd231ps' | 'vaddps' | 'vsubps' | 'vmulps' | 'vdivps' | 'vminps' | 'vmaxps' | 'vxorps' | 'vpcmpeqd' | 'vpxord'
  | 'vfmadd213ps' | 'vfnmadd231ps' | 'vfnmsub231ps' | 'vpaddd';
const VEX_PACKED: PackedName[] = [
  'vfmadd231ps', 'vaddps', 'vsubps', 'vmulps', 'vdivps', 'vminps', 'vmaxps', 'vxorps', 'vpcmpeqd', 'vfmadd213ps', 'vfnmadd231ps', 'vfnmsub231ps', 'vpaddd',
];
for (const op of VEX_PACKED) {
  for (const f of [xmm, ymm] as ((i: number) => Xmm | Ymm)[]) {
    for (const [d, s1, s2] of VEX_TRIPLES) {
      add('vex packed', `${op} ${f(d)}, ${f(s1)}, ${f(s2)}`, (a) => a[op](f(d), f(s1), f(s2)));
    }
    VMEMS.forEach((m, i) => {
      const [d, s1] = VEX_TRIPLES[i % VEX_TRIPLES.length]!;
      add('vex packed', `${op} ${f(d)}, ${f(s1)}, ${fmtMem(m, vw(f(d)))}`, (a) => a[op](f(d), f(s1), m));
    });
  }
}

type ScalarName = 'vfmadd231ss' | 'vaddss' | 'vsubss' | 'vmulss' | 'vdivss' | 'vminss' | 'vmaxss';
const SCALARS: ScalarName[] = ['vfmadd231ss', 'vaddss', 'vsubss', 'vmulss', 'vdivss', 'vminss', 'vmaxss'];
for (const op of SCALARS) {
  for (const [d, s1, s2] of VEX_TRIPLES) add('vex scalar', `${op} xmm${d}, xmm${s1}, xmm${s2}`, (a) => a[op](xmm(d), xmm(s1), xmm(s2)));
  VMEMS.forEach((m, i) => {
    const [d, s1] = VEX_TRIPLES[i % VEX_TRIPLES.length]!;
    add('vex scalar', `${op} xmm${d}, xmm${s1}, ${fmtMem(m, 'dword')}`, (a) => a[op](xmm(d), xmm(s1), m));
  });
}

for (const f of [xmm, ymm] as ((i: number) => Xmm | Ymm)[]) {
  for (const d of VEX_IDS) {
    for (const s of VEX_IDS) add('vex broadcast', `vbroadcastss ${f(d)}, xmm${s}`, (a) => a.vbroadcastss(f(d), xmm(s)));
  }
  VMEMS.forEach((m, i) => {
    const d = f(VEX_IDS[i % VEX_IDS.length]!);
    add('vex broadcast', `vbroadcastss ${d}, ${fmtMem(m, 'dword')}`, (a) => a.vbroadcastss(d, m));
  });
  // vmaskmovps: mask in vvvv
  VMEMS.forEach((m, i) => {
    const [d, k] = VEX_TRIPLES[i % VEX_TRIPLES.length]!;
    add('vex maskmov', `vmaskmovps ${f(d)}, ${f(k)}, ${fmtMem(m, vw(f(d)))}`, (a) => a.vmaskmovps(f(d), f(k), m));
    add('vex maskmov', `vmaskmovps ${fmtMem(m, vw(f(d)))}, ${f(k)}, ${f(d)}`, (a) => a.vmaskmovps(m, f(k), f(d)));
  });
  // AVX2 gather: destination, index and mask distinct
  const G: [number, number, number][] = [[0, 1, 2], [8, 9, 10], [15, 14, 13], [3, 12, 4], [11, 5, 15]];
  for (const [d, x, k] of G) {
    for (const [base, disp, scale] of [[rax, 0, 4], [rsp, 8, 1], [rbp, 0, 8], [r13, -64, 4], [r12, 1024, 2], [null, 16, 4]] as const) {
      const m = mem(base, disp, f(x), scale);
      add('vex gather', `vgatherdps ${f(d)}, ${fmtMem(m, vw(f(d)))}, ${f(k)}`, (a) => a.vgatherdps(f(d), m, f(k)));
    }
  }
}
add('vex misc', 'vzeroupper', (a) => a.vzeroupper(), { len: 3 });

// permutes and shuffles of strided vector reads (emit.ts loadStrided): vshufps, vpermps (index in vvvv), vpermpd (W1, imm)
for (const f of [xmm, ymm] as ((i: number) => Xmm | Ymm)[]) {
  for (const [d, s1, s2] of VEX_TRIPLES) {
    for (const imm of [0, 0x88, 0xd8, 0xff]) add('vex permute', `vshufps ${f(d)}, ${f(s1)}, ${f(s2)}, ${imm}`, (a) => a.vshufps(f(d), f(s1), f(s2), imm));
  }
  VMEMS.forEach((m, i) => {
    const [d, s1] = VEX_TRIPLES[i % VEX_TRIPLES.length]!;
    add('vex permute', `vshufps ${f(d)}, ${f(s1)}, ${fmtMem(m, vw(f(d)))}, 216`, (a) => a.vshufps(f(d), f(s1), m, 0xd8));
  });
}
for (const [d, s1, s2] of VEX_TRIPLES) {
  add('vex permute', `vpermps ymm${d}, ymm${s1}, ymm${s2}`, (a) => a.vpermps(ymm(d), ymm(s1), ymm(s2)));
  for (const imm of [0, 0x8d, 0xd8, 0xff]) add('vex permute', `vpermpd ymm${d}, ymm${s1}, ${imm}`, (a) => a.vpermpd(ymm(d), ymm(s1), imm));
}
VMEMS.forEach((m, i) => {
  const [d, s1] = VEX_TRIPLES[i % VEX_TRIPLES.length]!;
  add('vex permute', `vpermps ymm${d}, ymm${s1}, ${fmtMem(m, 'ymmword')}`, (a) => a.vpermps(ymm(d), ymm(s1), m));
  add('vex permute', `vpermpd ymm${d}, ${fmtMem(m, 'ymmword')}, 141`, (a) => a.vpermpd(ymm(d), m, 0x8d));
});

// ---- EVEX: AVX-512F --------------------------------------------------------------------------

const Z_IDS = [0, 7, 8, 15, 16, 23, 24, 31];
const Z_TRIPLES: [number, number, number][] = [[0, 1, 2], [16, 17, 18], [31, 30, 29], [8, 24, 15], [23, 7, 31], [15, 16, 0], [4, 12, 20], [31, 31, 31]];
/** destination decorations: none, merge-masking, zeroing-masking */
const DECOS: ((v: Zmm) => Zmm)[] = [(v) => v, (v) => v.k(1), (v) => v.k(7).z(), (v) => v.k(k3)];
const EMEMS: Mem[] = [
  mem(rax), mem(rsp, 64), mem(rbp), mem(r12, -64), mem(r13, 8128), mem(r8, 8192), mem(r15, -8192), mem(rdi, -8256), mem(rsi, 100),
  mem(rax, 128, rcx, 4), mem(rbp, 0, r12, 8), mem(rsp, -4, r15, 2), mem(r13, 64, r13, 1), mem(null, 64, r9, 4),
];

for (const op of ['vmovups', 'vmovaps', 'vmovdqu32'] as const) {
  for (const d of Z_IDS) {
    for (const s of [0, 9, 17, 31]) {
      DECOS.forEach((deco) => add('evex moves', `${op} ${fmtVec(deco(zmm(d)))}, zmm${s}`, (a) => a[op](deco(zmm(d)), zmm(s))));
    }
  }
  EMEMS.forEach((m, i) => {
    const r = zmm(Z_IDS[i % Z_IDS.length]!);
    for (const deco of DECOS) add('evex moves', `${op} ${fmtVec(deco(r))}, ${fmtMem(m, 'zmmword')}`, (a) => a[op](deco(r), m));
    for (const km of [0, 2, 7]) {
      const mm = km ? m.k(km) : m;
      add('evex moves', `${op} ${fmtMem(mm, 'zmmword')}, ${r}`, (a) => a[op](mm, r));
    }
  });
}

const EVEX_PACKED: PackedName[] = ['vfmadd231ps', 'vaddps', 'vsubps', 'vmulps', 'vdivps', 'vminps', 'vmaxps', 'vpxord', 'vfmadd213ps', 'vfnmadd231ps', 'vfnmsub231ps', 'vpaddd'];
for (const op of EVEX_PACKED) {
  for (const [d, s1, s2] of Z_TRIPLES) {
    for (const deco of DECOS) add('evex packed', `${op} ${fmtVec(deco(zmm(d)))}, zmm${s1}, zmm${s2}`, (a) => a[op](deco(zmm(d)), zmm(s1), zmm(s2)));
  }
  EMEMS.forEach((m, i) => {
    const [d, s1] = Z_TRIPLES[i % Z_TRIPLES.length]!;
    const deco = DECOS[i % DECOS.length]!;
    add('evex packed', `${op} ${fmtVec(deco(zmm(d)))}, zmm${s1}, ${fmtMem(m, 'zmmword')}`, (a) => a[op](deco(zmm(d)), zmm(s1), m));
    const b = mem(m.base, Math.trunc(m.disp / 16) || 0, m.index, m.scale).bcst();
    add('evex packed', `${op} ${fmtVec(deco(zmm(s1)))}, zmm${d}, ${fmtMem(b, 'dword')}`, (a) => a[op](deco(zmm(s1)), zmm(d), b));
  });
}
for (const [d, s1, s2] of Z_TRIPLES) {
  for (const imm of [0, 0xff, 0x96]) add('evex ternlog', `vpternlogd zmm${d}, zmm${s1}, zmm${s2}, ${imm}`, (a) => a.vpternlogd(zmm(d), zmm(s1), zmm(s2), imm));
  add('evex ternlog', `vpternlogd zmm${d} {k2}, zmm${s1}, ${fmtMem(mem(rax, 64), 'zmmword')}, 255`, (a) => a.vpternlogd(zmm(d).k(2), zmm(s1), mem(rax, 64), 255));
}

// permutes and shuffles (zmm): two-table vpermt2ps, vpermps, vshufps, with masks, memory and broadcast
for (const [d, s1, s2] of Z_TRIPLES) {
  for (const deco of DECOS) {
    add('evex permute', `vpermt2ps ${fmtVec(deco(zmm(d)))}, zmm${s1}, zmm${s2}`, (a) => a.vpermt2ps(deco(zmm(d)), zmm(s1), zmm(s2)));
    add('evex permute', `vpermps ${fmtVec(deco(zmm(d)))}, zmm${s1}, zmm${s2}`, (a) => a.vpermps(deco(zmm(d)), zmm(s1), zmm(s2)));
    add('evex permute', `vshufps ${fmtVec(deco(zmm(d)))}, zmm${s1}, zmm${s2}, 136`, (a) => a.vshufps(deco(zmm(d)), zmm(s1), zmm(s2), 0x88));
  }
}
EMEMS.forEach((m, i) => {
  const [d, s1] = Z_TRIPLES[i % Z_TRIPLES.length]!;
  const deco = DECOS[i % DECOS.length]!;
  add('evex permute', `vpermt2ps ${fmtVec(deco(zmm(d)))}, zmm${s1}, ${fmtMem(m, 'zmmword')}`, (a) => a.vpermt2ps(deco(zmm(d)), zmm(s1), m));
  add('evex permute', `vpermps ${fmtVec(deco(zmm(d)))}, zmm${s1}, ${fmtMem(m, 'zmmword')}`, (a) => a.vpermps(deco(zmm(d)), zmm(s1), m));
  add('evex permute', `vshufps ${fmtVec(deco(zmm(d)))}, zmm${s1}, ${fmtMem(m, 'zmmword')}, 216`, (a) => a.vshufps(deco(zmm(d)), zmm(s1), m, 0xd8));
  const b = mem(m.base, Math.trunc(m.disp / 16) || 0, m.index, m.scale).bcst();
  add('evex permute', `vpermt2ps ${fmtVec(deco(zmm(s1)))}, zmm${d}, ${fmtMem(b, 'dword')}`, (a) => a.vpermt2ps(deco(zmm(s1)), zmm(d), b));
});

for (const d of Z_IDS) {
  for (const s of [0, 5, 8, 16, 31]) {
    for (const deco of DECOS) add('evex broadcast', `vbroadcastss ${fmtVec(deco(zmm(d)))}, xmm${s}`, (a) => a.vbroadcastss(deco(zmm(d)), xmm(s)));
  }
}
EMEMS.forEach((m0, i) => {
  const m = mem(m0.base, Math.trunc(m0.disp / 16) || 0, m0.index, m0.scale);
  for (const deco of DECOS) {
    const d = deco(zmm(Z_IDS[i % Z_IDS.length]!));
    add('evex broadcast', `vbroadcastss ${fmtVec(d)}, ${fmtMem(m, 'dword')}`, (a) => a.vbroadcastss(d, m));
  }
});

// scalar EVEX (AVX-512F without VL): xmm16-31 and masks
const X_TRIPLES: [number, number, number][] = [[16, 17, 18], [0, 31, 1], [31, 0, 20], [8, 9, 24], [3, 3, 3]];
const XDECOS: ((v: Xmm) => Xmm)[] = [(v) => v, (v) => v.k(1), (v) => v.k(6).z()];
for (const op of SCALARS) {
  for (const [d, s1, s2] of X_TRIPLES) {
    for (const deco of XDECOS) {
      if (d < 16 && s1 < 16 && s2 < 16 && deco(xmm(d)).mask === 0) continue; // that one is VEX
      add('evex scalar', `${op} ${fmtVec(deco(xmm(d)))}, xmm${s1}, xmm${s2}`, (a) => a[op](deco(xmm(d)), xmm(s1), xmm(s2)));
    }
  }
  EMEMS.forEach((m0, i) => {
    const m = mem(m0.base, Math.trunc(m0.disp / 16) || 0, m0.index, m0.scale);
    const [d, s1] = X_TRIPLES[i % 4]!;
    const deco = XDECOS[i % 3]!;
    add('evex scalar', `${op} ${fmtVec(deco(xmm(d)))}, xmm${s1}, ${fmtMem(m, 'dword')}`, (a) => a[op](deco(xmm(d)), xmm(s1), m));
  });
}
EMEMS.forEach((m0, i) => {
  const m = mem(m0.base, Math.trunc(m0.disp / 16) || 0, m0.index, m0.scale);
  const r = xmm([16, 31, 20, 5][i % 4]!);
  const d = [r, r.k(2), r.k(5).z()][i % 3]!;
  add('evex scalar', `vmovss ${fmtVec(d)}, ${fmtMem(m, 'dword')}`, (a) => a.vmovss(d, m));
  const ms = i % 2 ? m.k(4) : m;
  if (r.id >= 16 || ms.mask) add('evex scalar', `vmovss ${fmtMem(ms, 'dword')}, ${r}`, (a) => a.vmovss(ms, r));
});

// AVX-512 gather: opmask on the destination, zmm index (V' carries its fifth bit)
for (const [d, x, km] of [[0, 1, 1], [16, 17, 2], [31, 8, 7], [8, 31, 3], [20, 4, 5]] as const) {
  for (const [base, disp, scale] of [[rax, 0, 4], [rsp, 8, 1], [rbp, 0, 8], [r13, -64, 4], [r12, 1024, 2], [r15, 508, 4], [rdx, 512, 4], [null, 16, 4]] as const) {
    const m = mem(base, disp, zmm(x), scale);
    add('evex gather', `vgatherdps zmm${d} {k${km}}, ${fmtMem(m, 'zmmword')}`, (a) => a.vgatherdps(zmm(d).k(km), m));
  }
}

// opmask instructions
for (const k of [k0, k1, k7]) {
  for (const r of G32) add('opmask', `kmovw ${k}, ${r}`, (a) => a.kmovw(k, r));
  for (const r of [eax, r8d, r15d, esp]) add('opmask', `kmovw ${r}, ${k}`, (a) => a.kmovw(r, k));
  for (const m of VMEMS) {
    add('opmask', `kmovw ${k}, ${fmtMem(m, 'word')}`, (a) => a.kmovw(k, m));
    add('opmask', `kmovw ${fmtMem(m, 'word')}, ${k}`, (a) => a.kmovw(m, k));
  }
}
for (let i = 0; i < 8; i++) {
  const [d, s1, s2] = [kreg(i), kreg((i + 3) % 8), kreg((i * 5) % 8)];
  add('opmask', `kmovw ${d}, ${s1}`, (a) => a.kmovw(d, s1));
  add('opmask', `kxnorw ${d}, ${s1}, ${s2}`, (a) => a.kxnorw(d, s1, s2));
  add('opmask', `kortestw ${d}, ${s2}`, (a) => a.kortestw(d, s2));
}

// ---- the epilogue's unary forms: rounding, float-to-int conversion, dword shift by immediate ----

for (const f of [xmm, ymm] as ((i: number) => Xmm | Ymm)[]) {
  for (const [d, s] of VEX_TRIPLES) {
    for (const imm of [0, 1, 8, 11]) add('epilogue forms', `vroundps ${f(d)}, ${f(s)}, ${imm}`, (a) => a.vroundps(f(d), f(s), imm));
    add('epilogue forms', `vcvtps2dq ${f(d)}, ${f(s)}`, (a) => a.vcvtps2dq(f(d), f(s)));
    for (const imm of [0, 1, 23, 31]) add('epilogue forms', `vpslld ${f(d)}, ${f(s)}, ${imm}`, (a) => a.vpslld(f(d), f(s), imm));
  }
  VMEMS.forEach((m, i) => {
    const d = f(VEX_IDS[i % VEX_IDS.length]!);
    add('epilogue forms', `vroundps ${d}, ${fmtMem(m, vw(d))}, 0`, (a) => a.vroundps(d, m, 0));
    add('epilogue forms', `vcvtps2dq ${d}, ${fmtMem(m, vw(d))}`, (a) => a.vcvtps2dq(d, m));
  });
}
for (const [d, s] of Z_TRIPLES) {
  for (const deco of DECOS) {
    add('epilogue forms', `vrndscaleps ${fmtVec(deco(zmm(d)))}, zmm${s}, 0`, (a) => a.vrndscaleps(deco(zmm(d)), zmm(s), 0));
    add('epilogue forms', `vcvtps2dq ${fmtVec(deco(zmm(d)))}, zmm${s}`, (a) => a.vcvtps2dq(deco(zmm(d)), zmm(s)));
    add('epilogue forms', `vpslld ${fmtVec(deco(zmm(d)))}, zmm${s}, 23`, (a) => a.vpslld(deco(zmm(d)), zmm(s), 23));
  }
  for (const imm of [1, 8, 0x10, 0xfb]) add('epilogue forms', `vrndscaleps zmm${d}, zmm${s}, ${imm}`, (a) => a.vrndscaleps(zmm(d), zmm(s), imm));
}
EMEMS.forEach((m, i) => {
  const d = DECOS[i % DECOS.length]!(zmm(Z_IDS[i % Z_IDS.length]!));
  add('epilogue forms', `vrndscaleps ${fmtVec(d)}, ${fmtMem(m, 'zmmword')}, 0`, (a) => a.vrndscaleps(d, m, 0));
  add('epilogue forms', `vcvtps2dq ${fmtVec(d)}, ${fmtMem(m, 'zmmword')}`, (a) => a.vcvtps2dq(d, m));
  const b = mem(m.base, Math.trunc(m.disp / 16) || 0, m.index, m.scale).bcst();
  add('epilogue forms', `vrndscaleps ${fmtVec(d)}, ${fmtMem(b, 'dword')}, 0`, (a) => a.vrndscaleps(d, b, 0));
  add('epilogue forms', `vcvtps2dq ${fmtVec(d)}, ${fmtMem(b, 'dword')}`, (a) => a.vcvtps2dq(d, b));
});

// ---- compressed displacement disp8*N: explicit boundaries ---------------------------------------

/** [disp, displacement bytes] for N = 64 (full zmm) and N = 4 (broadcast / scalar / tuple1) */
const DISP64: [number, number][] = [[64, 1], [-64, 1], [8128, 1], [8192, 4], [-8192, 1], [-8256, 4], [100, 4], [4, 4], [60, 4], [8191, 4], [1 << 20, 4], [-(1 << 20), 4]];
const DISP4: [number, number][] = [[4, 1], [-4, 1], [508, 1], [512, 4], [-512, 1], [-516, 4], [6, 4], [2, 4], [400, 1], [1 << 16, 4]];
const DISP_BASES: [Gp64 | null, Gp64 | null, number][] = [
  // base, index, bytes of ModRM.rm extras (1: SIB)
  [rax, null, 0], [rbx, null, 0], [rsp, null, 1], [rbp, null, 0], [r12, null, 1], [r13, null, 0], [r8, null, 0], [r15, null, 0],
  [rax, rcx, 1], [r13, r12, 1], [rsp, r15, 1],
];
for (const [base, index, sib] of DISP_BASES) {
  const at = (disp: number): Mem => mem(base, disp, index, index ? 4 : 1);
  // EVEX(4) + opcode + ModRM + SIB? + disp
  for (const [disp, n] of [...DISP64, [0, base && (base.id & 7) === 5 ? 1 : 0] as [number, number]]) {
    const m = at(disp);
    add('disp8*N', `vfmadd231ps zmm1, zmm2, ${fmtMem(m, 'zmmword')}`, (a) => a.vfmadd231ps(zmm(1), zmm(2), m), { len: 6 + sib + n });
    add('disp8*N', `vmovups ${fmtMem(m, 'zmmword')}, zmm17`, (a) => a.vmovups(m, zmm(17)), { len: 6 + sib + n });
    add('disp8*N', `vaddps zmm3 {k1} {z}, zmm4, ${fmtMem(m, 'zmmword')}`, (a) => a.vaddps(zmm(3).k(1).z(), zmm(4), m), { len: 6 + sib + n });
  }
  for (const [disp, n] of DISP4) {
    const m = at(disp);
    add('disp8*N', `vfmadd231ps zmm1, zmm2, ${fmtMem(m.bcst(), 'dword')}`, (a) => a.vfmadd231ps(zmm(1), zmm(2), m.bcst()), { len: 6 + sib + n });
    add('disp8*N', `vmaxps zmm30 {k5}, zmm29, ${fmtMem(m.bcst(), 'dword')}`, (a) => a.vmaxps(zmm(30).k(5), zmm(29), m.bcst()), { len: 6 + sib + n });
    add('disp8*N', `vbroadcastss zmm5, ${fmtMem(m, 'dword')}`, (a) => a.vbroadcastss(zmm(5), m), { len: 6 + sib + n });
    add('disp8*N', `vaddss xmm17, xmm18, ${fmtMem(m, 'dword')}`, (a) => a.vaddss(xmm(17), xmm(18), m), { len: 6 + sib + n });
  }
  // VEX has no compression: a multiple of 64 beyond 127 is disp32
  for (const [disp, n] of [[64, 1], [-128, 1], [127, 1], [128, 4], [8128, 4]] as [number, number][]) {
    const m = at(disp);
    add('disp8*N', `vfmadd231ps ymm1, ymm2, ${fmtMem(m, 'ymmword')}`, (a) => a.vfmadd231ps(ymm(1), ymm(2), m),
      { len: 3 + 2 + sib + n }); // map 0F38 always takes the 3-byte VEX
  }
}

// ---- the example of the API docs, as a whole -------------------------------------------------

{
  const lines = [
    'vfmadd231ps zmm0, zmm1, zmmword ptr [rax + 64]',
    'vfmadd231ps zmm2, zmm3, dword ptr [rdi + 8]{1to16}',
    'vmovups zmm4 {k1} {z}, zmmword ptr [rsi]',
    'vmovups zmmword ptr [rsi + 128] {k2}, zmm4',
  ];
  const emitters: ((a: Assembler) => void)[] = [
    (a) => a.vfmadd231ps(zmm(0), zmm(1), mem(rax, 64)),
    (a) => a.vfmadd231ps(zmm(2), zmm(3), mem(rdi, 8).bcst()),
    (a) => a.vmovups(zmm(4).k(1).z(), mem(rsi, 0)),
    (a) => a.vmovups(mem(rsi, 128).k(2), zmm(4)),
  ];
  lines.forEach((t, i) => add('docs example', t, emitters[i]!, { len: 7 - (i === 2 ? 1 : 0) }));
}

// =============================================================================================
// Oracle tests
// =============================================================================================

let results: OracleResult[] | undefined;
function resultsOf(family: string): OracleResult[] {
  results ??= runOracle(cases);
  return results.filter((r) => r.c.family === family);
}

const families = [...new Set(cases.map((c) => c.family))];
for (const family of families) {
  test(`llvm-mc agrees: ${family}`, () => {
    const rs = resultsOf(family);
    assert.ok(rs.length > 0);
    const bad = rs.filter((r) => !r.ok);
    if (bad.length) {
      assert.unreachable(`${bad.length} of ${rs.length} ${family} encodings disagree with llvm-mc:\n${bad.slice(0, 12).map(describe).join('\n')}`);
    }
  });
}

test('the oracle table is broad', () => {
  assert.ok(cases.length > 4000, `only ${cases.length} cases`);
  if (process.env.X86_ORACLE_COUNT) console.log(`x86 oracle: ${cases.length} encodings in ${families.length} families`);
});

// =============================================================================================
// Errors: forms that cannot be encoded
// =============================================================================================

const ERRORS: [string, (a: Assembler) => void, RegExp][] = [
  ['zmm in a VEX-only instruction', (a) => a.vxorps(zmm(0), zmm(0), zmm(0)), /vxorps.*no AVX-512F form.*vpxord/],
  ['ymm16 in a VEX-only instruction', (a) => a.vmaskmovps(ymm(16), ymm(1), mem(rax)), /register 16-31 needs EVEX/],
  ['xmm/ymm EVEX needs AVX512VL', (a) => a.vaddps(ymm(16), ymm(1), ymm(2)), /AVX512VL/],
  ['masked ymm needs AVX512VL', (a) => a.vaddps(ymm(1).k(1), ymm(1), ymm(2)), /AVX512VL/],
  ['k0 as a write mask', () => zmm(0).k(0), /k0 cannot be used as a write mask/],
  ['k0 as a store mask', () => mem(rax).k(k0), /k0 cannot be used as a write mask/],
  ['{z} without a mask', (a) => a.vaddps(zmm(0).z(), zmm(1), zmm(2)), /\{z\} needs a write mask/],
  ['mask on a source', (a) => a.vaddps(zmm(0), zmm(1).k(1), zmm(2)), /destination only/],
  ['mask on a load address', (a) => a.vmovups(zmm(0), mem(rax).k(1)), /destination only/],
  ['broadcast in VEX', (a) => a.vfmadd231ps(ymm(0), ymm(1), mem(rax).bcst()), /AVX512VL/],
  ['broadcast on a move', (a) => a.vmovups(zmm(0), mem(rax).bcst()), /no embedded-broadcast form/],
  ['broadcast on a scalar op', (a) => a.vaddss(xmm(16), xmm(1), mem(rax).bcst()), /no embedded-broadcast form/],
  ['broadcast on a store', (a) => a.vmovups(mem(rax).bcst(), zmm(1)), /cannot broadcast/],
  ['rsp as an index', () => mem(rax, 0, rsp, 4), /rsp cannot be an index/],
  ['bad scale', () => mem(rax, 0, rcx, 3 as 1), /scale/],
  ['disp beyond 32 bits', () => mem(rax, 2 ** 31), /32-bit/],
  ['mixed vector sizes', (a) => a.vaddps(ymm(0) as Vec as Ymm, zmm(1) as Vec as Ymm, ymm(2)), /must all be ymm/],
  ['mixed gp sizes', (a) => a.mov(rax, ecx as Gp as Gp64), /register sizes differ/],
  ['unsized memory immediate', (a) => a.mov(mem(rsp, 8), 1), /operand size unknown/],
  ['unsized inc', (a) => a.inc(mem(rsp, 8)), /operand size unknown/],
  ['imm32 out of range', (a) => a.add(rax, 0x80000000), /sign-extended imm32/],
  ['imm for 32-bit out of range', (a) => a.add(eax, 2 ** 32), /does not fit 32 bits/],
  ['unsafe number immediate', (a) => a.mov(rax, 2 ** 60), /bigint/],
  ['memory to memory', (a) => a.mov(mem(rax) as Mem, mem(rcx) as Mem as unknown as Gp64), /memory to memory/],
  ['vector index outside a gather', (a) => a.mov(rax, mem(rcx, 0, zmm(1), 4)), /only valid in gathers/],
  ['vector index in a vector op', (a) => a.vaddps(zmm(0), zmm(1), mem(rcx, 0, zmm(1), 4)), /only valid in gathers/],
  ['gather without vector index', (a) => a.vgatherdps(zmm(0).k(1), mem(rax, 0, rcx, 4)), /vector index/],
  ['gather without opmask', (a) => a.vgatherdps(zmm(0), mem(rax, 0, zmm(1), 4)), /needs an opmask/],
  ['gather with {z}', (a) => a.vgatherdps(zmm(0).k(1).z(), mem(rax, 0, zmm(1), 4)), /cannot use \{z\}/],
  ['gather dst = index', (a) => a.vgatherdps(zmm(1).k(1), mem(rax, 0, zmm(1), 4)), /different registers/],
  ['AVX2 gather mask = dst', (a) => a.vgatherdps(ymm(1), mem(rax, 0, ymm(2), 4), ymm(1)), /different registers/],
  ['AVX2 gather index size', (a) => a.vgatherdps(ymm(1), mem(rax, 0, xmm(2), 4), ymm(3)), /indices/],
  ['vpxord on ymm', (a) => a.vpxord(ymm(0), ymm(0), ymm(0)), /AVX512VL/],
  ['vpcmpeqd on zmm', (a) => a.vpcmpeqd(zmm(0), zmm(0), zmm(0)), /vpternlogd/],
  ['vmovdqu on zmm', (a) => a.vmovdqu(zmm(0), mem(rax)), /vmovdqu32/],
  ['vmovss register copy', (a) => a.vmovss(xmm(0), xmm(1) as unknown as Mem), /vmovaps/],
  ['scalar op on ymm', (a) => a.vaddss(ymm(0) as Vec as Xmm, ymm(1) as Vec as Xmm, ymm(2) as Vec as Xmm), /xmm/],
  ['shift count', (a) => a.shl(eax, 32), /shift count/],
  ['ternlog imm', (a) => a.vpternlogd(zmm(0), zmm(0), zmm(0), 256), /imm8/],
  ['vshufps imm', (a) => a.vshufps(ymm(0), ymm(1), ymm(2), -1), /imm8/],
  ['vpermps on xmm', (a) => a.vpermps(xmm(0) as Vec as Ymm, xmm(1) as Vec as Ymm, xmm(2) as Vec as Ymm), /no xmm form/],
  ['vpermt2ps on ymm', (a) => a.vpermt2ps(ymm(0) as Vec as Zmm, ymm(1) as Vec as Zmm, ymm(2) as Vec as Zmm), /zmm/],
  ['vpermpd on zmm', (a) => a.vpermpd(zmm(0) as Vec as Ymm, zmm(1) as Vec as Ymm, 0), /vpermt2ps/],
  ['masked vpermpd', (a) => a.vpermpd(ymm(0).k(1), ymm(1), 0), /no AVX-512F form/],
  ['vroundps on zmm', (a) => a.vroundps(zmm(0) as Vec as Ymm, zmm(1) as Vec as Ymm, 0), /vrndscaleps/],
  ['vrndscaleps on ymm', (a) => a.vrndscaleps(ymm(0) as Vec as Zmm, ymm(1) as Vec as Zmm, 0), /vroundps/],
  ['vroundps imm', (a) => a.vroundps(ymm(0), ymm(1), 256), /imm8/],
  ['vpslld from memory', (a) => a.vpslld(ymm(0), mem(rax) as unknown as Ymm, 3), /no memory source/],
  ['vpslld imm', (a) => a.vpslld(zmm(0), zmm(1), -1), /imm8/],
  ['vcvtps2dq on ymm with a mask', (a) => a.vcvtps2dq(ymm(0).k(1), ymm(1)), /AVX512VL/],
  ['register number', () => zmm(32), /out of range/],
  ['gp register number', () => gp64(16), /out of range/],
  ['opmask register number', () => kreg(8), /out of range/],
  ['kmovw between gp registers', (a) => a.kmovw(eax as unknown as typeof k1, ecx), /opmask/],
  ['unbound label', (a) => {
    a.jmp(a.newLabel());
    a.finish();
  }, /never bound/],
  ['label bound twice', (a) => {
    const l = a.newLabel();
    a.bind(l);
    a.bind(l);
  }, /already bound/],
  ['label of another assembler', (a) => a.jmp(new Assembler().newLabel()), /another Assembler/],
  ['align not a power of two', (a) => a.align(12), /power of two/],
];
for (const [what, fn, re] of ERRORS) {
  test(`throws: ${what}`, () => {
    assert.throws(() => fn(new Assembler()), re);
  });
}

test('errors name the instruction and operands', () => {
  try {
    new Assembler().vmaskmovps(zmm(1) as Vec as Ymm, zmm(2) as Vec as Ymm, mem(rax, 64));
    assert.unreachable();
  } catch (e) {
    assert.match(String(e), /x86 vmaskmovps zmm1, zmm2, \[rax \+ 64\]: a zmm register needs EVEX/);
  }
});

// =============================================================================================
// Labels, data, alignment
// =============================================================================================

test('data emission is little-endian and dataLabel marks the code size', () => {
  const a = new Assembler();
  a.ret();
  a.align(16, 'int3');
  assert.is(a.offset, 16);
  const d = a.dataLabel();
  a.emitU16(0xbeef);
  a.emitU32(0xdeadbeef);
  a.emitU32(-1);
  a.emitF32(1.5);
  a.emitU64(0x0102030405060708n);
  a.emitBytes([1, 2, 3]);
  a.emitF64(-2);
  const b = a.finish();
  assert.is(a.labelOffset(d), 16);
  assert.is(a.codeSize, 16);
  assert.is(hexBytes(b.subarray(0, 16)), `c3${' cc'.repeat(15)}`);
  const v = new DataView(b.buffer, b.byteOffset + 16);
  assert.is(v.getUint16(0, true), 0xbeef);
  assert.is(v.getUint32(2, true), 0xdeadbeef);
  assert.is(v.getInt32(6, true), -1);
  assert.is(v.getFloat32(10, true), 1.5);
  assert.is(v.getBigUint64(14, true), 0x0102030405060708n);
  assert.equal(Array.from(b.subarray(16 + 22, 16 + 25)), [1, 2, 3]);
  assert.is(v.getFloat64(25, true), -2);
});

test('align pads with the longest recommended NOPs first, and not at all when aligned', () => {
  for (let start = 0; start < 70; start++) {
    for (const n of [1, 2, 16, 32, 64]) {
      const a = new Assembler();
      a.emitBytes(new Array<number>(start).fill(0xc3));
      a.align(n);
      const expected = new Array<number>(start).fill(0xc3);
      for (let pad = (n - (start % n)) % n; pad > 0;) {
        const k = Math.min(pad, NOPS.length - 1);
        expected.push(...NOPS[k]!);
        pad -= k;
      }
      assert.equal(Array.from(a.finish()), expected);
    }
  }
  const z = new Assembler();
  z.nop();
  z.align(8, 'zero');
  assert.is(hexBytes(z.finish()), '90 00 00 00 00 00 00 00');
});

test('rel8 is used for a close backward label, rel32 for forward and far ones', () => {
  const a = new Assembler();
  const top = a.newLabel();
  a.bind(top);
  a.dec(rcx);
  a.jnz(top);
  const fwd = a.newLabel();
  a.jmp(fwd);
  a.bind(fwd);
  a.ret();
  assert.is(hexBytes(a.finish()), '48 ff c9 75 fb e9 00 00 00 00 c3');
});

test('finish can be called again after more code', () => {
  const a = new Assembler();
  const l = a.newLabel();
  a.jmp(l);
  a.bind(l);
  const first = a.finish();
  a.ret();
  const second = a.finish();
  assert.is(hexBytes(first), 'e9 00 00 00 00');
  assert.is(hexBytes(second), 'e9 00 00 00 00 c3');
});

test('golden bytes: prefixes with inverted fields', () => {
  const one = (emit: (a: Assembler) => void): string => {
    const a = new Assembler();
    emit(a);
    return hexBytes(a.finish());
  };
  // EVEX: R̄ X̄ B̄ R̄' all set (no extension), vvvv = ~1, V̄' = 1, aaa = 0
  assert.is(one((a) => a.vfmadd231ps(zmm(0), zmm(1), mem(rax, 64))), '62 f2 75 48 b8 40 01');
  // zmm31, zmm17 and [r13 + 8*r12 - 8192]: R' and R clear, X (r12) and B (r13) clear, V' clear
  assert.is(one((a) => a.vfmadd231ps(zmm(31), zmm(17), mem(r13, -8192, r12, 8))), '62 02 75 40 b8 7c e5 80');
  // register rm 16-31 uses EVEX.X as its fifth bit
  assert.is(one((a) => a.vaddps(zmm(0), zmm(0), zmm(16))), '62 b1 7c 48 58 c0');
  // VSIB: V' is the fifth bit of the index
  assert.is(one((a) => a.vgatherdps(zmm(0).k(1), mem(rax, 64, zmm(17), 4))), '62 f2 7d 41 92 44 88 10');
  // VEX 2-byte when map 0F, W0 and no X/B; 3-byte otherwise
  assert.is(one((a) => a.vaddps(ymm(8), ymm(1), ymm(2))), 'c5 74 58 c2');
  assert.is(one((a) => a.vaddps(ymm(1), ymm(1), ymm(8))), 'c4 c1 74 58 c8');
  assert.is(one((a) => a.vzeroupper()), 'c5 f8 77');
  assert.is(one((a) => a.kxnorw(k1, k0, k0)), 'c5 fc 46 c8');
  assert.is(one((a) => a.kmovw(k1, r8d)), 'c4 c1 78 92 c8');
  assert.is(one((a) => a.mov(qword(rsp, 8), 1)), '48 c7 44 24 08 01 00 00 00');
  assert.is(one((a) => a.mov(rax, mem(r13))), '49 8b 45 00');
});

// =============================================================================================
// Disassembly listing
// =============================================================================================

test('disassembleX86 lists offsets, branch targets, NOP padding and data', () => {
  const a = new Assembler();
  const top = a.newLabel();
  a.mov(ecx, 10);
  a.align(16);
  a.bind(top);
  a.vfmadd231ps(zmm(0), zmm(1), memRip(top));
  a.dec(ecx);
  a.jnz(top);
  a.ret();
  a.align(16);
  const pool = a.dataLabel();
  a.emitF32(1);
  a.emitBytes([0xff, 0xff, 0xff]);
  const bytes = a.finish();
  void pool;
  const text = disassembleX86(bytes, { codeSize: a.codeSize, bytes: true });
  const lines = text.trimEnd().split('\n');
  assert.match(lines[0]!, /^0000:  b9 0a 00 00 00 +mov +ecx, 10$/);
  assert.match(lines[1]!, /^0005:  .* nop +word ptr \[rax \+ rax\]$/);
  assert.match(lines[3]!, /^0010:  .* vfmadd231ps zmm0, zmm1, zmmword ptr \[rip - 10\]$/);
  assert.match(text, /001c:  .* jne +-14 +# -> 0010/);
  assert.match(text, /001e:  c3 +ret/);
  assert.match(text, /0020:  \.byte 0x00, 0x00, 0x80, 0x3f, 0xff, 0xff, 0xff/);
  const att = disassembleX86(bytes.subarray(0, 16), { syntax: 'att', offsets: false });
  assert.match(att, /^movl +\$10, %ecx$/m);
});

test('disassembleX86 marks undecodable bytes and keeps going', () => {
  // 0x06 (push es) and 0x07 (pop es) do not exist in 64-bit mode
  const bytes = new Uint8Array([0xc3, 0x06, 0x07, 0x90, 0xc3]);
  const text = disassembleX86(bytes);
  assert.match(text, /^0000:  ret$/m);
  assert.match(text, /^0001:  \(bad\) \.byte 0x06$/m);
  assert.match(text, /^0002:  \(bad\) \.byte 0x07$/m);
  assert.match(text, /^0003:  nop$/m);
  assert.match(text, /^0004:  ret$/m);
});

test('disassembleX86 finds the true length of non-canonical encodings', () => {
  // llvm-mc re-encodes what it decodes (shortest form): offsets must come from the input bytes
  const bytes = new Uint8Array([
    0x48, 0x8b, 0x40, 0x00, // mov rax, [rax + 0] with a disp8 of 0
    0x62, 0xf1, 0x7c, 0x48, 0x58, 0x80, 0x40, 0x00, 0x00, 0x00, // vaddps zmm0, zmm0, [rax + 64] with disp32
    0xc3,
  ]);
  const text = disassembleX86(bytes);
  assert.match(text, /^0000:  mov +rax, qword ptr \[rax\]$/m);
  assert.match(text, /^0004:  vaddps +zmm0, zmm0, zmmword ptr \[rax \+ 64\]$/m);
  assert.match(text, /^000e:  ret$/m);
});

test('disassembleX86 names the Debian package when llvm-mc is missing', () => {
  assert.throws(() => disassembleX86(new Uint8Array([0xc3]), { llvmMc: '/nonexistent/llvm-mc-14' }), /install the Debian package llvm-14/);
});

// =============================================================================================
// The peak kernel
// =============================================================================================

const CALLEE_SAVED = /\b(rbx|ebx|rbp|ebp|rsp|esp|r12d?|r13d?|r14d?|r15d?|push|pop)\b/;

for (const [isa, chains, iters] of [['avx2', 12, 100], ['avx2', 14, 1], ['avx2', 1, 7], ['avx512', 12, 1000], ['avx512', 30, 6]] as const) {
  test(`peakKernel(${isa}, ${chains}, ${iters}) disassembles cleanly`, () => {
    const listing = disassembleX86(peakKernel(isa, chains, iters), { offsets: false });
    const lines = listing.trimEnd().split('\n').map((l) => l.replace(/\s+/g, ' ').trim());
    assert.not.match(listing, /\(bad\)/);
    assert.not.match(listing, CALLEE_SAVED, 'touches a callee-saved register or the stack');
    assert.is(lines.at(-1), 'ret');
    assert.is(lines.at(-2), 'vzeroupper');
    const reg = isa === 'avx512' ? 'zmm' : 'ymm';
    const fmas = lines.filter((l) => l.startsWith('vfmadd231ps'));
    assert.ok(fmas.length >= chains && fmas.length % chains === 0);
    const unroll = fmas.length / chains;
    assert.is(iters % unroll, 0);
    // each accumulator appears once per unrolled copy, with the two fixed sources
    for (let i = 0; i < chains; i++) {
      assert.is(fmas.filter((l) => l === `vfmadd231ps ${reg}${i}, ${reg}${chains}, ${reg}${chains + 1}`).length, unroll);
    }
    // accumulators and sources are zeroed first; the inner count is itersPerRep / unroll
    assert.is(lines.filter((l) => /^(vpxord|vxorps) /.test(l)).length, chains + 2);
    assert.ok(lines.includes(`mov eax, ${iters / unroll}`));
    assert.ok(lines.includes('test rsi, rsi'));
  });
}

test('peakKernel rejects chain counts beyond the registers', () => {
  assert.is(maxPeakChains('avx2'), 14);
  assert.is(maxPeakChains('avx512'), 30);
  assert.throws(() => peakKernel('avx2', 15, 100), /chains must be 1..14/);
  assert.throws(() => peakKernel('avx512', 31, 100), /chains must be 1..30/);
  assert.throws(() => peakKernel('avx512', 0, 100), /chains/);
  assert.throws(() => peakKernel('avx2', 4, 0), /itersPerRep/);
  assert.is(peakFlopsPerRep('avx512', 12, 1000), 12 * 16 * 2 * 1000);
  assert.is(peakFlopsPerRep('avx2', 10, 100), 10 * 8 * 2 * 100);
});

test.run();
