/**
 * The A64 encoder against the llvm-mc-14 disassembler (the oracle). Every case emits one or more
 * instructions with the encoder and states the text llvm-mc must print for them (its aliases
 * included: `mov`, `cmp`, `lsl`...). All cases go to llvm-mc in ONE process; any warning on its
 * stderr (invalid or unpredictable encoding) fails the case it points at.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  A64Assembler, A64Error, b, d, mem, memIndex, post, pre, q, s, sp, v, w, wsp, wzr, x, xzr,
  type Arrangement, type Cond, type GpReg, type XReg,
} from '../../../targets/arm64/encoder.ts';
import { disassembleArm64Words, formatListing, type DisasmWord } from '../../../targets/arm64/disassemble.ts';
import { findTool } from '../../../targets/arm64/tools.ts';

type Emit = (a: A64Assembler) => void;
interface Case {
  expect: string[];
  emit: Emit;
  /** the words to send to llvm-mc (default: all the case emitted) */
  pick?: (bytes: Uint8Array) => Uint8Array;
  /** custom check instead of comparing texts with `expect`; returns a failure message or null */
  check?: (words: DisasmWord[]) => string | null;
  /** the case contains deliberately invalid words */
  allowWarnings?: boolean;
}

const cases: Case[] = [];
/** `expect` is what llvm-mc prints, one string per emitted instruction. */
const T = (expect: string | string[], emit: Emit) => cases.push({ expect: Array.isArray(expect) ? expect : [expect], emit });

const X = [x(0), x(9), x(28)];
const gpName = (r: GpReg) => r.name;

// ---------------------------------------------------------------------------------------------
// Integer add/sub/cmp

for (const [rd, rn] of [[x(0), x(1)], [x(9), x(28)], [sp, sp], [x(28), sp], [sp, x(9)]] as [XReg, XReg][]) {
  for (const imm of [1, 4095]) T(`add ${rd.name}, ${rn.name}, #${imm}`, (a) => a.add(rd, rn, imm));
  T(`add ${rd.name}, ${rn.name}, #1, lsl #12 // =4096`, (a) => a.add(rd, rn, 4096));
  T(`sub ${rd.name}, ${rn.name}, #4095, lsl #12 // =16773120`, (a) => a.sub(rd, rn, 4095 * 4096));
  T(`sub ${rd.name}, ${rn.name}, #16`, (a) => a.add(rd, rn, -16)); // negative add = sub
}
T('mov x0, sp', (a) => a.add(x(0), sp, 0));
T('add x0, x1, #0', (a) => a.add(x(0), x(1), 0));
T('add x0, x1, #5, lsl #12 // =20480', (a) => a.add(x(0), x(1), 5, 12));
T('add w0, w1, #4095', (a) => a.add(w(0), w(1), 4095));
T('add wsp, w1, #1', (a) => a.add(wsp, w(1), 1));
for (const rd of X) {
  T(`subs ${rd.name}, ${rd.name}, #1`, (a) => a.subs(rd, rd, 1));
  T(`adds ${rd.name}, x1, #4095`, (a) => a.adds(rd, x(1), 4095));
  T(`cmp ${rd.name}, #0`, (a) => a.cmp(rd, 0));
  T(`cmn ${rd.name}, #7`, (a) => a.cmp(rd, -7));
  T(`cmp ${rd.name}, x2`, (a) => a.cmp(rd, x(2)));
}
T('subs x9, sp, #8', (a) => a.subs(x(9), sp, 8));
T('cmp sp, #16', (a) => a.cmp(sp, 16));
T('cmp w3, #4095', (a) => a.cmp(w(3), 4095));
// register forms (shifted register), incl. the zero register
for (const rd of [...X, xzr]) {
  T(`add ${rd.name}, x1, x2`, (a) => a.add(rd, x(1), x(2)));
  T(`sub ${rd.name}, x28, x9, lsl #63`, (a) => a.sub(rd, x(28), x(9), 63));
}
T('add w0, w1, w2, lsl #31', (a) => a.add(w(0), w(1), w(2), 31));
T('subs x0, x1, x2, lsl #2', (a) => a.subs(x(0), x(1), x(2), 2));
T('adds x0, x1, x2', (a) => a.adds(x(0), x(1), x(2)));
// with sp: extended register form
T('add sp, sp, x1', (a) => a.add(sp, sp, x(1)));
T('add x0, sp, x1, lsl #2', (a) => a.add(x(0), sp, x(1), 2));
T('sub sp, sp, x9', (a) => a.sub(sp, sp, x(9)));
T('add sp, x1, x2', (a) => a.add(sp, x(1), x(2)));
T('cmp sp, x3', (a) => a.cmp(sp, x(3)));
T('add wsp, wsp, w1', (a) => a.add(wsp, wsp, w(1)));

// ---------------------------------------------------------------------------------------------
// Moves

for (const [rd, rn] of [[x(0), x(1)], [x(28), x(9)], [x(9), xzr]] as [XReg, XReg][]) T(`mov ${rd.name}, ${rn.name}`, (a) => a.mov(rd, rn));
T('mov sp, x0', (a) => a.mov(sp, x(0)));
T('mov x29, sp', (a) => a.mov(x(29), sp));
T('mov w0, w1', (a) => a.mov(w(0), w(1)));
T('mov w3, wzr', (a) => a.mov(w(3), wzr));
T('movz x1, #0, lsl #16', (a) => a.movz(x(1), 0, 16));
T('movk x1, #65535, lsl #48', (a) => a.movk(x(1), 0xffff, 48));
T('mov x1, #-305397761', (a) => a.movn(x(1), 0x1234, 16));
T('movk w1, #1, lsl #16', (a) => a.movk(w(1), 1, 16));

/** Constants checked by evaluating llvm-mc's text of the emitted mov/movz/movn/movk sequence. */
const MOV_CONSTANTS: [GpReg, bigint, number][] = [
  [x(0), 0n, 1], [x(0), 1n, 1], [x(9), 0xffffn, 1], [x(28), 0x10000n, 1], [x(0), 0x12345678n, 2],
  [x(0), -1n, 1], [x(0), -2n, 1], [x(0), -65536n, 1], [x(0), 0x7fffffffffffffffn, 1],
  [x(0), -0x8000000000000000n, 1], [x(0), 0xffff0000ffff0000n, 2], [x(0), 0x123456789abcdef0n, 4],
  [x(0), 0xffffffffn, 2], [x(0), 0x100000000n, 1], [x(0), 0x0000ffff00000000n, 1], [x(0), -0x123456789n, 3],
  [w(0), 0xffffffffn, 1], [w(0), -1n, 1], [w(0), 0x12345678n, 2], [w(0), 0x80000000n, 1], [w(0), 0xfffe0001n, 2],
  [xzr, 5n, 1],
];
for (const [rd, value, count] of MOV_CONSTANTS) {
  cases.push({
    expect: [],
    emit: (a) => a.mov(rd, value),
    check: (words) => {
      const texts = words.map((dw) => dw.text ?? '<invalid>');
      if (texts.length !== count) return `expected ${count} instruction(s), got ${texts.length}: ${texts.join('; ')}`;
      const got = evalMovSequence(texts, rd.bits);
      const want = BigInt.asUintN(rd.bits, value);
      return got === want ? null : `${texts.join('; ')} computes 0x${got?.toString(16)}, want 0x${want.toString(16)}`;
    },
  });
}
T(['mov x0, #22136', 'movk x0, #4660, lsl #16'], (a) => a.mov(x(0), 0x12345678));

// ---------------------------------------------------------------------------------------------
// Multiply, shifts, logical, select

for (const rd of X) {
  T(`madd ${rd.name}, x1, x2, x3`, (a) => a.madd(rd, x(1), x(2), x(3)));
  T(`mul ${rd.name}, x28, x9`, (a) => a.mul(rd, x(28), x(9)));
  T(`msub ${rd.name}, x1, x2, x3`, (a) => a.msub(rd, x(1), x(2), x(3)));
}
T('mul w0, w1, w2', (a) => a.mul(w(0), w(1), w(2)));
T('madd w0, w1, w2, w3', (a) => a.madd(w(0), w(1), w(2), w(3)));
T('udiv x0, x1, x2', (a) => a.udiv(x(0), x(1), x(2)));
T('sdiv w0, w1, w2', (a) => a.sdiv(w(0), w(1), w(2)));
for (const n of [1, 2, 4, 63]) {
  T(`lsl x0, x1, #${n}`, (a) => a.lsl(x(0), x(1), n));
  T(`lsr x9, x28, #${n}`, (a) => a.lsr(x(9), x(28), n));
  T(`asr x0, x1, #${n}`, (a) => a.asr(x(0), x(1), n));
}
T('lsl w0, w1, #31', (a) => a.lsl(w(0), w(1), 31));
T('lsr w0, w1, #0', (a) => a.lsl(w(0), w(1), 0)); // lsl #0 is ubfm #0, #31, printed as lsr #0
T('lsl x0, x1, x2', (a) => a.lsl(x(0), x(1), x(2)));
T('lsr w0, w1, w2', (a) => a.lsr(w(0), w(1), w(2)));
T('asr x0, x1, x2', (a) => a.asr(x(0), x(1), x(2)));
T('and x0, x1, x2', (a) => a.and(x(0), x(1), x(2)));
T('orr x0, x1, x2, lsl #4', (a) => a.orr(x(0), x(1), x(2), 4));
T('eor w0, w1, w2', (a) => a.eor(w(0), w(1), w(2)));
for (const c of ['eq', 'ne', 'lt', 'ge', 'gt', 'le', 'hi', 'lo'] as Cond[]) T(`csel x0, x1, x2, ${c}`, (a) => a.csel(x(0), x(1), x(2), c));

// ---------------------------------------------------------------------------------------------
// Branches (llvm-mc prints PC-relative targets: `b #-8`)

T(['b #8', 'nop', 'nop'], (a) => { const l = a.newLabel(); a.b(l); a.nop(); a.bind(l); a.nop(); });
T(['nop', 'b #-4'], (a) => { const l = a.here(); a.nop(); a.b(l); });
T(['b #0'], (a) => { const l = a.here(); a.b(l); });
T(['bl #4', 'ret'], (a) => { const l = a.newLabel(); a.bl(l); a.bind(l); a.ret(); });
for (const c of ['eq', 'ne', 'hs', 'lo', 'mi', 'pl', 'hi', 'ls', 'ge', 'lt', 'gt', 'le'] as Cond[]) {
  T(['nop', `b.${c} #-4`], (a) => { const l = a.here(); a.nop(); a.bcond(c, l); });
}
T(['b.ne #8', 'nop', 'nop'], (a) => { const l = a.newLabel(); a.bne(l); a.nop(); a.bind(l); a.nop(); });
T(['subs x9, x9, #1', 'b.ne #-4'], (a) => { const top = a.here(); a.subs(x(9), x(9), 1); a.bne(top); });
for (const r of [x(0), x(9), x(28), xzr, w(3)] as GpReg[]) {
  T([`cbz ${gpName(r)}, #8`, 'nop', 'nop'], (a) => { const l = a.newLabel(); a.cbz(r, l); a.nop(); a.bind(l); a.nop(); });
  T(['nop', `cbnz ${gpName(r)}, #-4`], (a) => { const l = a.here(); a.nop(); a.cbnz(r, l); });
}
T('ret', (a) => a.ret());
T('ret x9', (a) => a.ret(x(9)));
T('br x16', (a) => a.br(x(16)));
T('blr x17', (a) => a.blr(x(17)));
T('nop', (a) => a.nop());
T('brk #0x1', (a) => a.brk(1));
T('udf #0', (a) => a.udf(0));
T(['nop', 'nop', 'nop', 'nop'], (a) => { a.nop(); a.align(16); }); // pads to a 16-byte boundary

// imm19 boundaries (b.cond / cbz reach ±1 MiB): build the long program, send only the branch word
const MAX19 = (1 << 18) - 1; // words
cases.push({
  expect: [`b.ne #${MAX19 * 4}`],
  emit: (a) => { const l = a.newLabel(); a.bne(l); for (let i = 1; i < MAX19; i++) a.nop(); a.bind(l); },
  pick: (bytes) => bytes.subarray(0, 4),
});
cases.push({
  expect: [`cbz x0, #-${(1 << 18) * 4}`],
  emit: (a) => { const top = a.here(); for (let i = 0; i < 1 << 18; i++) a.nop(); a.cbz(x(0), top); },
  pick: (bytes) => bytes.subarray(bytes.length - 4),
});
cases.push({
  expect: ['b #4194304'], // imm26 reaches ±128 MiB; 4 MiB is far enough to exercise the upper bits
  emit: (a) => { const l = a.newLabel(); a.b(l); for (let i = 1; i < 1 << 20; i++) a.nop(); a.bind(l); },
  pick: (bytes) => bytes.subarray(0, 4),
});

// the listing (formatListing): offsets, labels for branch targets, invalid words
cases.push({
  expect: [],
  allowWarnings: true,
  emit: (a) => { const top = a.here(); a.subs(x(9), x(9), 1); a.bne(top); a.inst(0xffffffff); a.ret(); },
  check: (words) => {
    const listing = formatListing(words.map((dw, i) => ({ ...dw, offset: 4 * i })));
    const want = [
      '.L0:',
      '  0000:  f1000529  subs x9, x9, #1',
      '  0004:  54ffffe1  b.ne #-4  // -> .L0',
      '  0008:  ffffffff  .inst 0xffffffff  // invalid',
      '  000c:  d65f03c0  ret',
    ].join('\n');
    return listing === want ? null : `listing differs:\n${listing}`;
  },
});

// ---------------------------------------------------------------------------------------------
// Loads and stores

/** `[xn, #off]` as llvm-mc prints it (no `#0`). */
const at = (base: XReg, off: number) => (off === 0 ? `[${base.name}]` : `[${base.name}, #${off}]`);
const GP_LS: [GpReg, number][] = [[x(0), 8], [x(9), 8], [x(28), 8], [xzr, 8], [w(0), 4], [w(28), 4], [wzr, 4]];
for (const [rt, size] of GP_LS) {
  for (const base of [x(1), x(28), sp]) {
    for (const off of [0, size, 4095 * size]) {
      T(`ldr ${rt.name}, ${at(base, off)}`, (a) => a.ldr(rt, base, off));
      T(`str ${rt.name}, ${at(base, off)}`, (a) => a.str(rt, base, off));
    }
  }
  for (const off of [-256, -size, 1, 255]) T(`ldur ${rt.name}, [x1, #${off}]`, (a) => a.ldr(rt, x(1), off));
  T(`stur ${rt.name}, [sp, #-4]`, (a) => a.str(rt, sp, -4));
}
for (const off of [-256, 255, 16]) {
  T(`ldr x0, [x1, #${off}]!`, (a) => a.ldr(x(0), pre(x(1), off)));
  T(`str x0, [sp], #${off}`, (a) => a.str(x(0), post(sp, off)));
  T(`ldr w9, [x28], #${off}`, (a) => a.ldr(w(9), post(x(28), off)));
}
T('str x30, [sp, #-16]!', (a) => a.str(x(30), pre(sp, -16)));
T('ldr x0, [x1, x2]', (a) => a.ldr(x(0), x(1), x(2)));
T('ldr x0, [x1, x2, lsl #3]', (a) => a.ldr(x(0), x(1), x(2), 3));
T('str x9, [sp, x28, lsl #3]', (a) => a.str(x(9), sp, x(28), 3));
T('ldr w0, [x1, w2, uxtw #2]', (a) => a.ldr(w(0), memIndex(x(1), w(2), 2)));
T('ldr w0, [x1, w2, sxtw]', (a) => a.ldr(w(0), memIndex(x(1), w(2), 0, 'sxtw')));
T('ldr x0, [x1, x2, sxtx #3]', (a) => a.ldr(x(0), memIndex(x(1), x(2), 3, 'sxtx')));
T('ldr w0, [x1, xzr, lsl #2]', (a) => a.ldr(w(0), x(1), xzr, 2));

// FP / SIMD scalar registers: s (4 bytes), d (8), q (16)
const FP_LS: [string, number, 'ldrS' | 'ldrD' | 'ldrQ', 'strS' | 'strD' | 'strQ'][] = [
  ['s', 4, 'ldrS', 'strS'], ['d', 8, 'ldrD', 'strD'], ['q', 16, 'ldrQ', 'strQ'],
];
for (const [sz, size, ld, st] of FP_LS) {
  for (const n of [0, 9, 31]) {
    for (const base of [x(1), x(28), sp]) {
      for (const off of [0, size, 4095 * size]) {
        T(`ldr ${sz}${n}, ${at(base, off)}`, (a) => a[ld](v(n), base, off));
        T(`str ${sz}${n}, ${at(base, off)}`, (a) => a[st](v(n), base, off));
      }
    }
    T(`ldur ${sz}${n}, [x1, #-${size}]`, (a) => a[ld](v(n), x(1), -size));
    T(`${size === 4 ? 'str' : 'stur'} ${sz}${n}, [x1, #4]`, (a) => a[st](v(n), x(1), 4)); // 4 is scaled only for s
    T(`ldr ${sz}${n}, [x1, #-256]!`, (a) => a[ld](v(n), pre(x(1), -256)));
    T(`ldr ${sz}${n}, [x1], #${size}`, (a) => a[ld](v(n), post(x(1), size)));
    T(`str ${sz}${n}, [x2], #255`, (a) => a[st](v(n), post(x(2), 255)));
    T(`ldr ${sz}${n}, [x1, x2]`, (a) => a[ld](v(n), x(1), x(2)));
    T(`ldr ${sz}${n}, [x1, x2, lsl #${Math.log2(size)}]`, (a) => a[ld](v(n), x(1), x(2), Math.log2(size)));
    T(`str ${sz}${n}, [x1, w2, sxtw #${Math.log2(size)}]`, (a) => a[st](v(n), memIndex(x(1), w(2), Math.log2(size), 'sxtw')));
  }
}
T('ldr q3, [x1, #32]', (a) => a.ldrQ(v(3), x(1), 32));
T('ldr s0, [x1, #16380]', (a) => a.ldr(s(0), x(1), 16380));
T('str d8, [sp, #8]', (a) => a.str(d(8), sp, 8));

// pairs: X (stack frames), D (callee-saved d8-d15), Q, W, S
for (const [r1, r2] of [[x(29), x(30)], [x(0), x(1)], [x(19), x(28)]] as [XReg, XReg][]) {
  T(`stp ${r1.name}, ${r2.name}, [sp, #-16]!`, (a) => a.stp(r1, r2, pre(sp, -16)));
  T(`ldp ${r1.name}, ${r2.name}, [sp], #16`, (a) => a.ldp(r1, r2, post(sp, 16)));
  T(`stp ${r1.name}, ${r2.name}, [x2, #504]`, (a) => a.stp(r1, r2, x(2), 504));
  T(`ldp ${r1.name}, ${r2.name}, [x2, #-512]`, (a) => a.ldp(r1, r2, x(2), -512));
}
T('stp xzr, xzr, [x0]', (a) => a.stp(xzr, xzr, x(0)));
T('ldp w0, w1, [x2, #-256]', (a) => a.ldp(w(0), w(1), x(2), -256));
T('stp w0, w1, [x2, #252]', (a) => a.stp(w(0), w(1), x(2), 252));
for (const [r1, r2] of [[8, 9], [10, 11], [12, 13], [14, 15]]) {
  T(`stp d${r1}, d${r2}, [sp, #-64]!`, (a) => a.stp(d(r1), d(r2), pre(sp, -64)));
  T(`stp d${r1}, d${r2}, ${at(sp, (r1 - 8) * 8)}`, (a) => a.stp(d(r1), d(r2), sp, (r1 - 8) * 8));
  T(`ldp d${r1}, d${r2}, [sp], #64`, (a) => a.ldp(d(r1), d(r2), post(sp, 64)));
}
for (const [r1, r2] of [[0, 1], [30, 31], [9, 20]]) {
  T(`ldp q${r1}, q${r2}, [x1, #1008]`, (a) => a.ldpQ(v(r1), v(r2), x(1), 1008));
  T(`stp q${r1}, q${r2}, [x1, #-1024]`, (a) => a.stpQ(v(r1), v(r2), x(1), -1024));
  T(`ldp q${r1}, q${r2}, [x1], #32`, (a) => a.ldp(q(r1), q(r2), post(x(1), 32)));
  T(`stp q${r1}, q${r2}, [sp, #-32]!`, (a) => a.stp(q(r1), q(r2), pre(sp, -32)));
}
T('ldp s0, s1, [x1, #8]', (a) => a.ldp(s(0), s(1), x(1), 8));

T('prfm pldl1keep, [x1]', (a) => a.prfm('pldl1keep', x(1)));
T('prfm pldl1keep, [x1, #256]', (a) => a.prfm('pldl1keep', x(1), 256));
T('prfm pldl2strm, [sp, #32760]', (a) => a.prfm('pldl2strm', sp, 32760));
T('prfm pstl1keep, [x1, x2, lsl #3]', (a) => a.prfm('pstl1keep', x(1), x(2), 3));
T('prfum pldl1keep, [x1, #-8]', (a) => a.prfm('pldl1keep', x(1), -8));

// ---------------------------------------------------------------------------------------------
// NEON structure loads / stores

const ALL_ARR: Arrangement[] = ['8b', '16b', '4h', '8h', '2s', '4s', '1d', '2d'];
const vecBytes = (arr: Arrangement) => (arr === '16b' || arr === '8h' || arr === '4s' || arr === '2d' ? 16 : 8);
const va = (n: number, arr: Arrangement) => v(n)[(`${arr.replace(/\d+/, '')}${arr.replace(/\D+/, '')}`) as 'b8'];
for (const arr of ALL_ARR) {
  for (const n of [0, 9, 31]) {
    for (const base of [x(1), x(28), sp]) {
      T(`ld1 { v${n}.${arr} }, [${base.name}]`, (a) => a.ld1(va(n, arr), base));
      T(`st1 { v${n}.${arr} }, [${base.name}]`, (a) => a.st1(va(n, arr), base));
    }
    T(`ld1 { v${n}.${arr} }, [x1], #${vecBytes(arr)}`, (a) => a.ld1(va(n, arr), post(x(1), vecBytes(arr))));
    T(`st1 { v${n}.${arr} }, [x1], #${vecBytes(arr)}`, (a) => a.st1(va(n, arr), post(x(1), vecBytes(arr))));
    T(`ld1 { v${n}.${arr} }, [x1], x2`, (a) => a.ld1(va(n, arr), post(x(1), x(2))));
    T(`st1 { v${n}.${arr} }, [sp], x28`, (a) => a.st1(va(n, arr), post(sp, x(28))));
  }
}
for (const count of [2, 3, 4]) {
  for (const first of [0, 30]) {
    const regs = Array.from({ length: count }, (_, k) => v((first + k) % 32).s4);
    const list = `{ ${regs.map((r) => r.name).join(', ')} }`;
    T(`ld1 ${list}, [x1]`, (a) => a.ld1(regs, x(1)));
    T(`st1 ${list}, [x1], #${16 * count}`, (a) => a.st1(regs, post(x(1), 16 * count)));
    T(`ld1 ${list}, [x1], x2`, (a) => a.ld1(regs, post(x(1), x(2))));
  }
}
T('ld1 { v0.2s, v1.2s }, [x1], #16', (a) => a.ld1([v(0).s2, v(1).s2], post(x(1), 16)));
for (const arr of ['4s', '2s', '2d', '16b', '8h', '1d'] as Arrangement[]) {
  const esz = { '4s': 4, '2s': 4, '2d': 8, '16b': 1, '8h': 2, '1d': 8 }[arr as '4s']!;
  for (const n of [0, 5, 31]) {
    T(`ld1r { v${n}.${arr} }, [x2]`, (a) => a.ld1r(va(n, arr), x(2)));
    T(`ld1r { v${n}.${arr} }, [sp], #${esz}`, (a) => a.ld1r(va(n, arr), post(sp, esz)));
    T(`ld1r { v${n}.${arr} }, [x2], x3`, (a) => a.ld1r(va(n, arr), post(x(2), x(3))));
  }
}
// single lanes: every index of every element size
for (const [e, lanes, size] of [['s', 4, 4], ['d', 2, 8], ['b', 16, 1], ['h', 8, 2]] as ['s' | 'd' | 'b' | 'h', number, number][]) {
  for (let i = 0; i < lanes; i++) {
    for (const n of [0, 31]) {
      T(`ld1 { v${n}.${e} }[${i}], [x1]`, (a) => a.ld1(v(n)[e](i), x(1)));
      T(`st1 { v${n}.${e} }[${i}], [x28]`, (a) => a.st1(v(n)[e](i), x(28)));
    }
    T(`ld1 { v3.${e} }[${i}], [x1], #${size}`, (a) => a.ld1(v(3)[e](i), post(x(1), size)));
    T(`st1 { v3.${e} }[${i}], [sp], x2`, (a) => a.st1(v(3)[e](i), post(sp, x(2))));
  }
}

// ---------------------------------------------------------------------------------------------
// NEON copies

for (const [e, lanes, arrs] of [['s', 4, ['4s', '2s']], ['d', 2, ['2d']], ['b', 16, ['16b', '8b']], ['h', 8, ['8h', '4h']]] as ['s' | 'd' | 'b' | 'h', number, Arrangement[]][]) {
  for (const arr of arrs) {
    for (let i = 0; i < lanes; i++) T(`dup v0.${arr}, v31.${e}[${i}]`, (a) => a.dup(va(0, arr), v(31)[e](i)));
    const g = e === 'd' ? x(9) : w(9);
    T(`dup v31.${arr}, ${g.name}`, (a) => a.dup(va(31, arr), g));
    T(`dup v5.${arr}, ${e === 'd' ? 'xzr' : 'wzr'}`, (a) => a.dup(va(5, arr), e === 'd' ? xzr : wzr));
  }
  for (let i = 0; i < lanes; i += Math.max(1, lanes / 4)) {
    T(`mov v0.${e}[${i}], v31.${e}[${lanes - 1 - i}]`, (a) => a.ins(v(0)[e](i), v(31)[e](lanes - 1 - i)));
    T(`mov v9.${e}[${i}], ${e === 'd' ? 'x1' : 'w1'}`, (a) => a.ins(v(9)[e](i), e === 'd' ? x(1) : w(1)));
  }
}
for (let i = 0; i < 4; i++) {
  T(`mov w0, v1.s[${i}]`, (a) => a.umov(w(0), v(1).s(i)));
  T(`mov s0, v31.s[${i}]`, (a) => a.mov(s(0), v(31).s(i)));
}
T('mov x0, v1.d[1]', (a) => a.mov(x(0), v(1).d(1)));
T('mov d2, v3.d[1]', (a) => a.dup(d(2), v(3).d(1)));
T('mov v0.s[1], v1.s[2]', (a) => a.mov(v(0).s(1), v(1).s(2)));
T('mov v0.s[3], w7', (a) => a.mov(v(0).s(3), w(7)));

// ---------------------------------------------------------------------------------------------
// FP arithmetic: vector (2s/4s/2d), by element, scalar

const FP_VEC_OPS = ['fadd', 'fsub', 'fmul', 'fdiv', 'fmla', 'fmls', 'fmax', 'fmin', 'fmaxnm', 'fminnm', 'faddp', 'fmaxp', 'fminp'] as const;
const REG3 = [[0, 1, 2], [31, 30, 29], [9, 16, 23]];
for (const op of FP_VEC_OPS) {
  for (const arr of ['2s', '4s', '2d'] as Arrangement[]) {
    for (const [rd, rn, rm] of REG3) {
      T(`${op} v${rd}.${arr}, v${rn}.${arr}, v${rm}.${arr}`, (a) => (a[op] as (d: unknown, n: unknown, m: unknown) => void).call(a, va(rd!, arr), va(rn!, arr), va(rm!, arr)));
    }
  }
}
for (const op of ['fmla', 'fmls', 'fmul'] as const) {
  const elem = { fmla: 'fmlaElem', fmls: 'fmlsElem', fmul: 'fmulElem' } as const;
  for (let i = 0; i < 4; i++) {
    for (const m of [0, 15, 16, 31]) { // v16..v31 are legal element registers for .s / .d
      T(`${op} v0.4s, v1.4s, v${m}.s[${i}]`, (a) => a[elem[op]](v(0).s4, v(1).s4, v(m).s(i)));
    }
    T(`${op} v31.2s, v9.2s, v2.s[${i}]`, (a) => a[elem[op]](v(31).s2, v(9).s2, v(2).s(i)));
    T(`${op} s0, s1, v31.s[${i}]`, (a) => a[elem[op]](s(0), s(1), v(31).s(i)));
  }
  for (let i = 0; i < 2; i++) {
    T(`${op} v0.2d, v1.2d, v31.d[${i}]`, (a) => a[elem[op]](v(0).d2, v(1).d2, v(31).d(i)));
    T(`${op} d7, d8, v20.d[${i}]`, (a) => a[elem[op]](d(7), d(8), v(20).d(i)));
  }
}
T('fmla v0.4s, v4.4s, v8.s[1]', (a) => a.fmlaElem(v(0).s4, v(4).s4, v(8).s(1)));
T('fmla v0.4s, v1.4s, v2.s[3]', (a) => a.fmla(v(0).s4, v(1).s4, v(2).s(3)));
T('fmul v3.4s, v4.4s, v5.s[2]', (a) => a.fmul(v(3).s4, v(4).s4, v(5).s(2)));
for (const op of ['fadd', 'fsub', 'fmul', 'fdiv', 'fmax', 'fmin', 'fmaxnm', 'fminnm'] as const) {
  for (const [rd, rn, rm] of REG3) {
    T(`${op} s${rd}, s${rn}, s${rm}`, (a) => (a[op] as (d: unknown, n: unknown, m: unknown) => void).call(a, s(rd!), s(rn!), s(rm!)));
    T(`${op} d${rd}, d${rn}, d${rm}`, (a) => (a[op] as (d: unknown, n: unknown, m: unknown) => void).call(a, d(rd!), d(rn!), d(rm!)));
  }
}
for (const op of ['fmadd', 'fmsub', 'fnmadd', 'fnmsub'] as const) {
  T(`${op} s0, s1, s2, s3`, (a) => a[op](s(0), s(1), s(2), s(3)));
  T(`${op} s31, s9, s16, s28`, (a) => a[op](s(31), s(9), s(16), s(28)));
  T(`${op} d0, d31, d2, d30`, (a) => a[op](d(0), d(31), d(2), d(30)));
}
for (const op of ['faddp', 'fmaxp', 'fminp'] as const) {
  T(`${op} s0, v1.2s`, (a) => a[op](s(0), v(1).s2));
  T(`${op} d31, v9.2d`, (a) => a[op](d(31), v(9).d2));
}

// ---------------------------------------------------------------------------------------------
// FP unary and conversions, integer vector add/sub/shl (the epilogue's exp and erf)

for (const op of ['frintn', 'frintm', 'fabs', 'fneg', 'fcvtzs', 'fcvtns', 'scvtf'] as const) {
  for (const arr of ['2s', '4s', '2d'] as Arrangement[]) {
    for (const [rd, rn] of [[0, 1], [31, 9], [16, 23]]) {
      T(`${op} v${rd}.${arr}, v${rn}.${arr}`, (a) => (a[op] as (d: unknown, n: unknown) => void).call(a, va(rd!, arr), va(rn!, arr)));
    }
  }
}
for (const op of ['frintn', 'frintm', 'fabs', 'fneg', 'fsqrt'] as const) {
  T(`${op} s0, s1`, (a) => (a[op] as (d: unknown, n: unknown) => void).call(a, s(0), s(1)));
  T(`${op} d31, d9`, (a) => (a[op] as (d: unknown, n: unknown) => void).call(a, d(31), d(9)));
}
for (const op of ['add', 'sub'] as const) {
  for (const arr of ['8b', '16b', '4h', '8h', '2s', '4s', '2d'] as Arrangement[]) {
    for (const [rd, rn, rm] of REG3) {
      T(`${op} v${rd}.${arr}, v${rn}.${arr}, v${rm}.${arr}`, (a) => (a[op] as (d: unknown, n: unknown, m: unknown) => void).call(a, va(rd!, arr), va(rn!, arr), va(rm!, arr)));
    }
  }
}
for (const [arr, shifts] of [['4s', [0, 1, 23, 31]], ['2s', [5]], ['16b', [0, 7]], ['8b', [3]], ['8h', [15]], ['4h', [1]], ['2d', [0, 32, 63]]] as [Arrangement, number[]][]) {
  for (const sh of shifts) T(`shl v30.${arr}, v2.${arr}, #${sh}`, (a) => a.shl(va(30, arr), va(2, arr), sh));
}
// PC-relative literal loads (a constant pool after the code): forward and backward
for (const rt of [q(0), d(31), s(9), x(28), w(3), xzr]) {
  T([`ldr ${rt.name}, #8`, 'nop', 'nop'], (a) => { const l = a.newLabel(); a.ldrLit(rt, l); a.nop(); a.bind(l); a.nop(); });
  T(['nop', `ldr ${rt.name}, #-4`], (a) => { const l = a.here(); a.nop(); a.ldrLit(rt, l); });
}
cases.push({
  expect: [`ldr q5, #${MAX19 * 4}`],
  emit: (a) => { const l = a.newLabel(); a.ldrLit(q(5), l); for (let i = 1; i < MAX19; i++) a.nop(); a.bind(l); },
  pick: (b) => b.slice(0, 4),
});

// ---------------------------------------------------------------------------------------------
// NEON logical, immediates, fmov

for (const op of ['and', 'orr', 'eor', 'bic'] as const) {
  for (const arr of ['16b', '8b'] as Arrangement[]) {
    T(`${op} v0.${arr}, v31.${arr}, v9.${arr}`, (a) => (a[op] as (d: unknown, n: unknown, m: unknown) => void).call(a, va(0, arr), va(31, arr), va(9, arr)));
  }
}
T('mov v0.16b, v1.16b', (a) => a.mov(v(0).b16, v(1).b16));
T('mov v31.8b, v9.8b', (a) => a.mov(v(31).b8, v(9).b8));
T('mov v2.16b, v3.16b', (a) => a.orr(v(2).b16, v(3).b16, v(3).b16));
for (const n of [0, 9, 31]) T(`movi v${n}.2d, #0000000000000000`, (a) => a.movi(v(n).d2, 0));
T('movi v0.2d, #0xff00ff00ff00ff00', (a) => a.movi(v(0).d2, 0xff00ff00ff00ff00n));
T('movi v0.2d, #0xffffffffffffffff', (a) => a.movi(v(0).d2, -1));
T('movi d1, #0000000000000000', (a) => a.movi(d(1), 0));
T('movi v0.16b, #85', (a) => a.movi(v(0).b16, 0x55));
T('movi v0.8b, #255', (a) => a.movi(v(0).b8, 255));
for (const sh of [0, 8, 16, 24]) T(`movi v0.4s, #255${sh ? `, lsl #${sh}` : ''}`, (a) => a.movi(v(0).s4, 255, sh));
T('movi v7.2s, #1', (a) => a.movi(v(7).s2, 1));
T('movi v7.8h, #3, lsl #8', (a) => a.movi(v(7).h8, 3, 8));
T('fmov s0, s1', (a) => a.fmov(s(0), s(1)));
T('fmov d31, d9', (a) => a.fmov(d(31), d(9)));
T('fmov s0, w1', (a) => a.fmov(s(0), w(1)));
T('fmov s0, wzr', (a) => a.fmov(s(0), wzr));
T('fmov w1, s31', (a) => a.fmov(w(1), s(31)));
T('fmov d0, x28', (a) => a.fmov(d(0), x(28)));
T('fmov x9, d8', (a) => a.fmov(x(9), d(8)));
for (const value of [1, -1, 2.5, 0.125, 31, -31, 0.1328125, 1.9375, 16]) {
  const txt = value.toFixed(8);
  T(`fmov s0, #${txt}`, (a) => a.fmov(s(0), value));
  T(`fmov d31, #${txt}`, (a) => a.fmov(d(31), value));
  T(`fmov v0.4s, #${txt}`, (a) => a.fmov(v(0).s4, value));
  T(`fmov v9.2s, #${txt}`, (a) => a.fmov(v(9).s2, value));
  T(`fmov v31.2d, #${txt}`, (a) => a.fmov(v(31).d2, value));
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Value computed by llvm-mc's text of a mov/movz/movn/movk sequence. */
function evalMovSequence(texts: string[], bits: number): bigint | null {
  let acc = 0n;
  const mask = (1n << BigInt(bits)) - 1n;
  for (const t of texts) {
    const m = /^(mov|movz|movn|movk) [wx](?:\d+|zr), #(-?(?:0x)?[0-9a-f]+)(?:, lsl #(\d+))?$/.exec(t);
    if (!m) return null;
    const imm = BigInt(m[2]!.startsWith('-') ? -BigInt(m[2]!.slice(1)) : BigInt(m[2]!));
    const sh = BigInt(m[3] ?? 0);
    if (m[1] === 'mov') acc = imm & mask;
    else if (m[1] === 'movz') acc = (imm << sh) & mask;
    else if (m[1] === 'movn') acc = ~(imm << sh) & mask;
    else acc = ((acc & ~(0xffffn << sh)) | (imm << sh)) & mask;
  }
  return acc;
}

// ---------------------------------------------------------------------------------------------
// The oracle run: one llvm-mc process for every case

test('every encoding matches llvm-mc-14 --disassemble', () => {
  if (findTool('llvm-mc-14') === null) {
    assert.unreachable('llvm-mc-14 not found: install the Debian package llvm-14 (apt-get install llvm-14)');
  }
  const ranges: { start: number; count: number; c: Case }[] = [];
  const chunks: Uint8Array[] = [];
  let words = 0;
  for (const c of cases) {
    const a = new A64Assembler();
    c.emit(a);
    const bytes = c.pick ? c.pick(a.finish()) : a.finish();
    ranges.push({ start: words, count: bytes.length / 4, c });
    chunks.push(bytes);
    words += bytes.length / 4;
  }
  const all = new Uint8Array(words * 4);
  let o = 0;
  for (const ch of chunks) { all.set(ch, o); o += ch.length; }
  const decoded = disassembleArm64Words(all);
  assert.is(decoded.length, words);
  const failures: string[] = [];
  for (const { start, count, c } of ranges) {
    const got = decoded.slice(start, start + count);
    const hex = got.map((g) => g.word.toString(16).padStart(8, '0')).join(' ');
    const warn = got.find((g) => g.warning);
    if (warn && !c.allowWarnings) { failures.push(`${c.expect.join('; ') || '(mov constant)'} [${hex}]: llvm-mc warning: ${warn.warning}`); continue; }
    const texts = got.map((g) => g.text ?? '<invalid>');
    if (c.check) {
      const err = c.check(got);
      if (err) failures.push(`[${hex}] ${err}`);
    } else if (texts.join('; ') !== c.expect.join('; ')) {
      failures.push(`want: ${c.expect.join('; ')}\n     got:  ${texts.join('; ')} [${hex}]`);
    }
  }
  console.log(`  arm64 encoder oracle: ${cases.length} cases, ${words} encodings checked by llvm-mc-14`);
  if (failures.length) assert.unreachable(`${failures.length} of ${cases.length} cases differ:\n  ${failures.slice(0, 40).join('\n  ')}`);
});

test('a branch one word beyond imm19 range throws at finish()', () => {
  const over = new A64Assembler();
  const far = over.newLabel();
  over.bne(far);
  for (let i = 0; i < MAX19; i++) over.nop();
  over.bind(far);
  assert.throws(() => over.finish(), /b\.ne L0: 262144 does not fit a signed 19-bit field/);
});

test('unencodable operands throw A64Error with the instruction in the message', () => {
  const bad: [string, Emit][] = [
    ['imm 4097', (a) => a.add(x(0), x(1), 4097)],
    ['imm 0x1001000', (a) => a.add(x(0), x(1), 0x1001000)],
    ['bad imm shift', (a) => a.add(x(0), x(1), 1, 4)],
    ['mixed widths', (a) => a.add(x(0), w(1), x(2))],
    ['xzr as add-imm dest', (a) => a.add(xzr, x(1), 1)],
    ['sp as subs dest', (a) => a.subs(sp, x(1), 1)],
    ['sp as rm', (a) => a.add(x(0), x(1), sp)],
    ['sp in shifted register', (a) => a.orr(x(0), sp, x(1))],
    ['shift 64', (a) => a.add(x(0), x(1), x(2), 64)],
    ['w const too big', (a) => a.mov(w(0), 0x100000000)],
    ['unsafe number', (a) => a.mov(x(0), 2 ** 60)],
    ['movz bad shift', (a) => a.movz(w(0), 1, 32)],
    ['ldr offset too big', (a) => a.ldr(x(0), x(1), 32768)],
    ['ldr misaligned big', (a) => a.ldrQ(v(0), x(1), 264)],
    ['ldr pre too big', (a) => a.ldr(x(0), pre(x(1), 256))],
    ['ldr writeback rt=rn', (a) => a.ldr(x(1), post(x(1), 8))],
    ['ldr index bad shift', (a) => a.ldr(x(0), x(1), x(2), 2)],
    ['ldr w index with lsl', (a) => a.ldr(x(0), memIndex(x(1), w(2), 3, 'lsl'))],
    ['ldr register post', (a) => a.ldr(x(0), post(x(1), x(2)))],
    ['ldp same regs', (a) => a.ldp(x(0), x(0), x(1))],
    ['ldp range', (a) => a.ldpQ(v(0), v(1), x(1), 1024)],
    ['ldp misaligned', (a) => a.ldp(x(0), x(1), x(2), 4)],
    ['ldp mixed', (a) => a.ldp(x(0), d(1), x(2))],
    ['ld1 post wrong size', (a) => a.ld1(v(0).s4, post(x(1), 8))],
    ['ld1 non-consecutive', (a) => a.ld1([v(0).s4, v(2).s4], x(1))],
    ['ld1 mixed arrangement', (a) => a.ld1([v(0).s4, v(1).s2], x(1))],
    ['ld1 five regs', (a) => a.ld1([0, 1, 2, 3, 4].map((n) => v(n).s4), x(1))],
    ['ld1 offset', (a) => a.ld1(v(0).s4, mem(x(1), 16))],
    ['ld1 post xzr', (a) => a.ld1(v(0).s4, post(x(1), xzr))],
    ['ld1r post wrong size', (a) => a.ld1r(v(0).s4, post(x(1), 16))],
    ['lane post wrong size', (a) => a.ld1(v(0).s(1), post(x(1), 16))],
    ['fmla arrangements differ', (a) => a.fmla(v(0).s4, v(1).s2, v(2).s4)],
    ['fmla element size', (a) => a.fmlaElem(v(0).s4, v(1).s4, v(2).d(1))],
    ['fadd 8b', (a) => a.fadd(v(0).b8, v(1).b8, v(2).b8)],
    ['fadd 1d', (a) => a.fadd(v(0).d1, v(1).d1, v(2).d1)],
    ['fadd mixed', (a) => a.fadd(s(0), d(1), s(2))],
    ['fmadd q', (a) => a.fmadd(q(0), q(1), q(2), q(3))],
    ['dup 4s from x', (a) => a.dup(v(0).s4, x(1))],
    ['dup elem size', (a) => a.dup(v(0).s4, v(1).d(0))],
    ['fmov 0.0', (a) => a.fmov(s(0), 0)],
    ['fmov 0.1', (a) => a.fmov(s(0), 0.1)],
    ['fmov 32', (a) => a.fmov(s(0), 32)],
    ['fmov s, x', (a) => a.fmov(s(0), x(1))],
    ['movi 2d bytes', (a) => a.movi(v(0).d2, 0x1234)],
    ['movi 4s 256', (a) => a.movi(v(0).s4, 256)],
    ['movi 4s lsl 4', (a) => a.movi(v(0).s4, 1, 4)],
    ['orr 4s', (a) => a.orr(v(0).s4, v(1).s4, v(2).s4)],
    ['shl 4s #32', (a) => a.shl(v(0).s4, v(1).s4, 32)],
    ['shl 2d/4s', (a) => a.shl(v(0).d2, v(1).s4, 1)],
    ['shl 1d', (a) => a.shl(v(0).d1, v(1).d1, 1)],
    ['add vector 1d', (a) => a.add(v(0).d1, v(1).d1, v(2).d1)],
    ['add vector mixed', (a) => a.add(v(0).s4, v(1).s2, v(2).s4)],
    ['frintn 8h', (a) => a.frintn(v(0).h8, v(1).h8)],
    ['frintn s, d', (a) => a.frintn(s(0), d(1))],
    ['fcvtzs mixed', (a) => a.fcvtzs(v(0).s4, v(1).d2)],
    ['fsqrt q', (a) => a.fsqrt(q(0), q(1))],
    ['ldr literal b', (a) => { const l = a.here(); a.ldrLit(b(0), l); }],
    ['ldr literal sp', (a) => { const l = a.here(); a.ldrLit(sp, l); }],
    ['ldr literal unbound', (a) => { a.ldrLit(q(0), a.newLabel()); a.finish(); }],
    ['unbound label', (a) => { a.b(a.newLabel()); a.finish(); }],
    ['label bound twice', (a) => { const l = a.here(); a.bind(l); }],
    ['brk imm', (a) => a.brk(0x10000)],
    ['x31', () => x(31)],
    ['v32', () => v(32)],
    ['lane 4', () => v(0).s(4)],
    ['lane d2', () => v(0).d(2)],
  ];
  for (const [name, emit] of bad) {
    const a = new A64Assembler();
    try {
      emit(a);
      a.finish();
    } catch (e) {
      assert.instance(e, A64Error, `${name}: threw ${(e as Error).message}`);
      continue;
    }
    assert.unreachable(`${name}: did not throw`);
  }
  assert.throws(() => new A64Assembler().add(x(0), x(1), 4097), /add x0, x1, #4097: immediate 4097 is not encodable/);
  assert.throws(() => new A64Assembler().ldrQ(v(0), x(1), 264), /ldr q0, \[x1, #264\]: offset 264 is not encodable/);
});

test.run();
