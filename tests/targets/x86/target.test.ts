/**
 * The x86 target's listing (`looptune show --asm`) of kernels with a constant pool: the emitter
 * marks where its code ends (X86Code.codeSize, right after the `ret`), and the listing decodes the
 * code up to there and lists the pool (epilogue constants, tail masks, the strided-read index
 * table) as `.byte` data, also for a copy of the kernel's bytes; bytes that are not the emitter's
 * own are decoded whole.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Schedule } from '../../../ir/schedule.ts';
import { parseProblem } from '../../../ir/spec.ts';
import type { Kernel } from '../../../targets/kernel.ts';
import { emitX86, type X86Isa } from '../../../targets/x86/emit.ts';
import { x86Target } from '../../../targets/x86/target.ts';
import { backend } from '../../../targets/registry.ts';

interface Row {
  offset: number;
  text: string;
}

/** A listing's rows: offset and what follows it. */
function rows(listing: string): Row[] {
  return listing.trimEnd().split('\n').map((line) => {
    const m = /^([0-9a-f]+):\s+(.*)$/.exec(line);
    if (!m) throw new Error(`not a listing row: ${line}`);
    return { offset: parseInt(m[1]!, 16), text: m[2]! };
  });
}

const isData = (r: Row): boolean => r.text.startsWith('.byte');

/** The bytes of `.byte` rows, in order. */
function dataBytes(data: Row[]): number[] {
  return data.flatMap((r) => r.text.slice('.byte '.length).split(', ').map((b) => parseInt(b, 16)));
}

function compile(isa: X86Isa, spec: string, text?: string): Kernel {
  const problem = parseProblem(spec);
  return backend(isa).compile(text === undefined ? Schedule.initial(problem) : Schedule.parse(problem, text));
}

/** kernels with each kind of pool entry: epilogue constants, the tail mask table, the strided-read index and masks */
const POOLED: [X86Isa, string, string | undefined, string][] = [
  ['avx2', 'matmul 13x19x7 +bias +sigmoid', undefined, 'constants and the vmaskmovps mask table'],
  ['avx512', 'matmul 13x19x7 +bias +gelu', undefined, 'broadcast constants and the kmovw mask table'],
  ['avx512', 'conv2d n1 c4 h9 w41 k8 r3 s3 stride2', 'n:1 h:4 c:4 r:3 s:3 k:8 w:20', 'the vpermt2ps index and element masks'],
  ['avx2', 'copy 2x4001 +clip-1,2.5', 'j:4001 i:2', 'the scalar path\'s constants'],
];

for (const [isa, spec, text, what] of POOLED) {
  test(`${isa} ${spec}: the listing ends its code at the ret and lists the pool (${what}) as data`, () => {
    const kernel = compile(isa, spec, text);
    const { code, codeSize } = emitX86(kernel.program, isa);
    assert.equal(code, kernel.code, 'emitting again gives the same bytes');
    assert.ok(codeSize < code.length, 'there is a pool');
    assert.is(code[codeSize - 1], 0xc3, 'the code ends with ret');
    const listing = x86Target(isa).disassemble!(kernel);
    const all = rows(listing);
    const data = all.filter(isData);
    const instructions = all.filter((r) => !isData(r));
    assert.not.match(listing, /\(bad\)/);
    assert.is(instructions.at(-1)!.text, 'ret');
    assert.is(instructions.at(-1)!.offset, codeSize - 1);
    assert.is(data[0]!.offset, codeSize);
    assert.ok(instructions.every((r) => r.offset < codeSize) && data.every((r) => r.offset >= codeSize));
    assert.equal(dataBytes(data), Array.from(code.subarray(codeSize)));
    // every RIP-relative operand reads the pool: rip is the next row's offset
    let reads = 0;
    instructions.forEach((r, i) => {
      const m = /\[rip(?: ([+-]) (\d+))?\]/.exec(r.text);
      if (!m) return;
      const at = all[all.indexOf(r) + 1]!.offset + (m[1] === '-' ? -1 : 1) * Number(m[2] ?? 0);
      assert.ok(at >= codeSize && at < code.length, `row ${i} (${r.text}) reads ${at}, outside the pool [${codeSize}, ${code.length})`);
      reads++;
    });
    assert.ok(reads > 0, 'the code reads its pool');
    // a copy of the bytes (a kernel from a worker or a cache) lists the same
    assert.is(x86Target(isa).disassemble!({ ...kernel, code: code.slice() }), listing);
  });
}

test('a kernel without constants has no data rows; bytes that are not the emitter\'s are decoded whole', () => {
  const plain = compile('avx2', 'matmul 8x16x8', 'm:8 n:16 k:8');
  const { code, codeSize } = emitX86(plain.program, 'avx2');
  assert.is(codeSize, code.length);
  const listing = rows(x86Target('avx2').disassemble!(plain));
  assert.ok(!listing.some(isData));
  assert.is(listing.at(-1)!.text, 'ret');
  // one pool byte changed: not this program's code, so no pool is assumed and everything is decoded
  const kernel = compile('avx2', 'matmul 13x19x7 +bias +sigmoid');
  const patched = kernel.code.slice();
  patched[patched.length - 1] ^= 1;
  const whole = rows(x86Target('avx2').disassemble!({ ...kernel, code: patched }));
  assert.ok(!whole.some(isData));
  assert.ok(whole.at(-1)!.offset > emitX86(kernel.program, 'avx2').codeSize);
});

test.run();
