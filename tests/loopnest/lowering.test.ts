/**
 * Golden tests of the CPU lowering (loopnest/lower.ts): schedule text and a target's caps ->
 * LoopProgram. Each case pins the tile decision (lanes, vectorized variable, unrolled region,
 * register tile, accumulators, unrolled ops, zero and mask registers, why the scalar path), the
 * packing decision and the loop tree, as the lowering produced them when pinned; the comment above a
 * case says which rule of lower.ts it pins (the rules are numbered in that file's header). A change
 * here changes the generated code: check the emitters' tests and the codegen benchmark before
 * re-pinning. The caps come through the targets' public objects (backend(name).caps).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem } from '../../ir/spec.ts';
import { Schedule } from '../../ir/schedule.ts';
import { lower } from '../../loopnest/lower.ts';
import { walkProgram, type LoopProgram, type ProgramNode, type TileDecision, type TileNode } from '../../loopnest/program.ts';
import { backend } from '../../targets/registry.ts';

type CpuTarget = 'avx512' | 'avx2' | 'neon';

interface Golden {
  rule: string;
  target: CpuTarget;
  spec: string;
  schedule: string;
  /** the TileDecision, with the vectorized variable by name */
  decision: Omit<TileDecision, 'vectorVar'> & { vectorVar: string | null };
  tree: string[];
}

function lowered(target: CpuTarget, spec: string, schedule: string): LoopProgram {
  return lower(Schedule.parse(parseProblem(spec), schedule), backend(target).caps);
}

/**
 * The loop tree, one line per node: `loop <var> x<count>` with the tensors' pointer advances per
 * iteration (and `at` the offsets on entry, when not zero), `pack <tensor> <count>@<stride>...`,
 * `tile <accumulators by lane count>` (`load` when the combine accumulates into the output), and
 * `compute <groups> groups, <ops> ops` with each input's operand mode.
 */
function outline(program: LoopProgram): string[] {
  const vars = program.problem.vars.map((v) => v.name);
  const tensors = program.tensors.map((t) => t.name);
  const byTensor = (values: number[], sign: string) => values.flatMap((x, t) => (x === 0 ? [] : [`${tensors[t]}${sign}${x}`])).join(' ');
  const lines: string[] = [];
  const visit = (nodes: readonly ProgramNode[], indent: string): void => {
    for (const n of nodes) {
      if (n.kind === 'loop') {
        const at = byTensor(n.offsets, '+');
        lines.push(`${indent}loop ${vars[n.var]} x${n.count}${at ? ` at ${at}` : ''} step ${byTensor(n.advance, '+')}`);
        visit(n.body, `${indent}  `);
      } else if (n.kind === 'pack') {
        lines.push(`${indent}pack ${tensors[n.tensor]}${n.offset ? ` at ${n.offset}` : ''} ${n.dims.map((d) => `${d.count}@${d.stride}`).join(' ')}`);
        visit(n.body, `${indent}  `);
      } else if (n.kind === 'parallel') {
        const dims = n.dims.map((d) => `${vars[d.var]} x${d.count}${d.tail ? '+tail' : ''} step ${byTensor(d.advance, '+')}`).join(', ');
        lines.push(`${indent}parallel ${dims}`);
        n.bodies.forEach((body, mask) => {
          if (!body) return;
          lines.push(`${indent}  mask ${mask}`);
          visit(body, `${indent}    `);
        });
      } else if (n.kind === 'tile') {
        const byCount = new Map<number, number>();
        for (const a of n.accumulators) byCount.set(a.count, (byCount.get(a.count) ?? 0) + 1);
        lines.push(`${indent}tile ${[...byCount].map(([lanes, k]) => `${k}x${lanes}`).join(' + ')}${n.loadOutput ? ' load' : ''}`);
        visit(n.body, `${indent}  `);
      } else {
        const ops = n.groups.reduce((a, g) => a + g.length, 0);
        const modes = n.groups[0]![0]!.inputs.map((i) => `${tensors[i.tensor]} ${i.mode}${i.stride === undefined ? '' : ` stride ${i.stride}`}`).join(', ');
        lines.push(`${indent}compute ${n.groups.length} groups, ${ops} ops (${modes})`);
      }
    }
  };
  visit(program.body, '');
  return lines;
}

const GOLDEN: Golden[] = [
  // 18 of 32 - 2 zmm accumulators with k:8 unrolled inside and k:32 joining the tile; the m and n tails are
  // separate instances at constant offsets (the 6-row n tail at B+240, the 4-row m tail at A and C +64512)
  {
    rule: 'rules 2-4: the tuned 256^3 tile (6x48), k joining it, tails as instances',
    target: 'avx512', spec: 'matmul 256x256x256', schedule: 'm:42r4 n:5r16 k:32 n:3 k:8 n:16 m:6',
    decision: { lanes: 16, vectorVar: 'n', unrollFrom: 3, tileFrom: 2, accumulators: 18, unrolledOps: 144, zeroRegister: false, maskRegister: false },
    tree: [
      'loop m x42 step C+1536 A+1536',
      '  loop n x5 step C+48 B+48',
      '    tile 18x16 load',
      '      loop k x32 step A+8 B+2048',
      '        compute 8 groups, 144 ops (A broadcast, B vector)',
      '  tile 6x16 load',
      '    loop k x32 at B+240 step A+8 B+2048',
      '      compute 8 groups, 48 ops (A broadcast, B vector)',
      'loop n x5 at C+64512 A+64512 step C+48 B+48',
      '  tile 12x16 load',
      '    loop k x32 step A+8 B+2048',
      '      compute 8 groups, 96 ops (A broadcast, B vector)',
      'tile 4x16 load',
      '  loop k x32 at A+64512 B+240 step A+8 B+2048',
      '    compute 8 groups, 32 ops (A broadcast, B vector)',
    ],
  },
  // n:64 k:64 fits (4 accumulators, 256 ops); with m it would need 256 accumulators
  {
    rule: 'rule 2: the default order unrolls the suffix that fits',
    target: 'avx512', spec: 'matmul 64x64x64', schedule: 'm:64 n:64 k:64',
    decision: { lanes: 16, vectorVar: 'n', unrollFrom: 1, tileFrom: 1, accumulators: 4, unrolledOps: 256, zeroRegister: false, maskRegister: false },
    tree: [
      'loop m x64 step C+64 A+64',
      '  tile 4x16 load',
      '    compute 64 groups, 256 ops (A broadcast, B vector)',
    ],
  },
  // the suffix that fits (k:64) leaves out n's innermost loop, so the nest runs one element per register;
  // the scalar budget (512 / 8 = 64 ops) still unrolls k:64
  {
    rule: 'rule 2: scalar fallback when the innermost loop of n is outside the tile',
    target: 'avx512', spec: 'matmul 64x64x64', schedule: 'n:64 m:64 k:64',
    decision: { lanes: 1, vectorVar: null, unrollFrom: 2, tileFrom: 2, accumulators: 1, unrolledOps: 64, zeroRegister: false, maskRegister: false, scalarReason: 'the innermost loop of n is outside the unrolled register tile' },
    tree: [
      'loop n x64 step C+1 B+1',
      '  loop m x64 step C+64 A+64',
      '    tile 1x1 load',
      '      compute 64 groups, 64 ops (A broadcast, B broadcast)',
    ],
  },
  // the unroll budget stops the suffix at m:6 n:64 (24 ops; with k:32, 768 > 512); k:32 joins the tile, so
  // the 24 accumulators stay in registers across k
  {
    rule: 'rule 3: a reduction directly above the unrolled region joins the tile',
    target: 'avx512', spec: 'matmul 24x64x32', schedule: 'm:4 k:32 m:6 n:64',
    decision: { lanes: 16, vectorVar: 'n', unrollFrom: 2, tileFrom: 1, accumulators: 24, unrolledOps: 24, zeroRegister: false, maskRegister: false },
    tree: [
      'loop m x4 step C+384 A+192',
      '  tile 24x16 load',
      '    loop k x32 step A+1 B+64',
      '      compute 1 groups, 24 ops (A broadcast, B vector)',
    ],
  },
  // m:8 n:64 needs 32 accumulators > 32 - 2 operand registers, so only n:64 is unrolled; k:32 is not
  // directly above it and stays outside the tile
  {
    rule: 'rule 2: the register limit (32 - 2 on AVX-512)',
    target: 'avx512', spec: 'matmul 24x64x32', schedule: 'm:3 k:32 m:8 n:64',
    decision: { lanes: 16, vectorVar: 'n', unrollFrom: 3, tileFrom: 3, accumulators: 4, unrolledOps: 4, zeroRegister: false, maskRegister: false },
    tree: [
      'loop m x3 step C+512 A+256',
      '  loop k x32 step A+1 B+64',
      '    loop m x8 step C+64 A+32',
      '      tile 4x16 load',
      '        compute 1 groups, 4 ops (A broadcast, B vector)',
    ],
  },
  // n = 35 is 2 full vectors and one of 3 lanes in the same tile; opmasks need no mask vector register
  {
    rule: 'rule 4 on AVX-512: a partial vector in the tile, no mask register',
    target: 'avx512', spec: 'matmul 24x35x16', schedule: 'm:24 k:16 n:35',
    decision: { lanes: 16, vectorVar: 'n', unrollFrom: 1, tileFrom: 1, accumulators: 3, unrolledOps: 48, zeroRegister: false, maskRegister: false },
    tree: [
      'loop m x24 step C+35 A+16',
      '  tile 2x16 + 1x3 load',
      '    compute 16 groups, 48 ops (A broadcast, B vector)',
    ],
  },
  // the input moves by 40 elements along the output's unit-stride variable; j:40 would need 40 scalar
  // accumulators > 16 - 2, so nothing is unrolled; a copy does not load the output
  {
    rule: 'rule 1: transpose takes the scalar path, nothing unrolled',
    target: 'avx512', spec: 'transpose 96x40', schedule: 'i:96 j:40',
    decision: { lanes: 1, vectorVar: null, unrollFrom: 2, tileFrom: 2, accumulators: 1, unrolledOps: 1, zeroRegister: false, maskRegister: false, scalarReason: 'A moves by 40 elements along i' },
    tree: [
      'loop i x96 step O+1 A+40',
      '  loop j x40 step O+96 A+1',
      '    tile 1x1',
      '      compute 1 groups, 1 ops (A broadcast)',
    ],
  },
  // vectorized along j (the input follows it with stride 1); the whole nest is one tile of 4 accumulators (3
  // full vectors and 2 lanes), one group per i
  {
    rule: 'rules 1-3: a sum over rows is one vectorized tile',
    target: 'avx512', spec: 'reduce 64x50 axis0', schedule: 'i:64 j:50',
    decision: { lanes: 16, vectorVar: 'j', unrollFrom: 0, tileFrom: 0, accumulators: 4, unrolledOps: 256, zeroRegister: false, maskRegister: false },
    tree: [
      'tile 3x16 + 1x2 load',
      '  compute 64 groups, 256 ops (A vector)',
    ],
  },
  // the output's variable i moves the input by 50; j:50 is unrolled within the scalar budget (64 ops)
  {
    rule: 'rule 1: a sum along rows takes the scalar path',
    target: 'avx512', spec: 'reduce 64x50 axis1', schedule: 'i:64 j:50',
    decision: { lanes: 1, vectorVar: null, unrollFrom: 1, tileFrom: 1, accumulators: 1, unrolledOps: 50, zeroRegister: false, maskRegister: false, scalarReason: 'A moves by 50 elements along i' },
    tree: [
      'loop i x64 step O+1 A+50',
      '  tile 1x1 load',
      '    compute 50 groups, 50 ops (A broadcast)',
    ],
  },
  // j:100 would be 100 ops > 64, so nothing is unrolled, yet the reduction loop joins the tile (the
  // accumulator stays in a register)
  {
    rule: 'the scalar unroll budget: nothing unrolled, the reduction still joins the tile',
    target: 'avx512', spec: 'reduce 64x100 axis1', schedule: 'i:64 j:100',
    decision: { lanes: 1, vectorVar: null, unrollFrom: 2, tileFrom: 1, accumulators: 1, unrolledOps: 1, zeroRegister: false, maskRegister: false, scalarReason: 'A moves by 100 elements along i' },
    tree: [
      'loop i x64 step O+1 A+100',
      '  tile 1x1 load',
      '    loop j x100 step A+1',
      '      compute 1 groups, 1 ops (A broadcast)',
    ],
  },
  // 91 = 5 full vectors and 11 lanes; relu does not accumulate, so the output is not loaded
  {
    rule: 'relu on AVX-512: a zero register, no output load',
    target: 'avx512', spec: 'relu 37x91', schedule: 'i:37 j:91',
    decision: { lanes: 16, vectorVar: 'j', unrollFrom: 1, tileFrom: 1, accumulators: 6, unrolledOps: 6, zeroRegister: true, maskRegister: false },
    tree: [
      'loop i x37 step O+91 A+91',
      '  tile 5x16 + 1x11',
      '    compute 1 groups, 6 ops (A vector)',
    ],
  },
  // I moves by 1 along w, W by 0: k:4 x w:16 = 4 accumulators with r and s unrolled (9 groups); the n:1 loop
  // runs once and emits no loop node
  {
    rule: 'conv2d: vectorized along w, r and s unrolled, c joining the tile',
    target: 'avx512', spec: 'conv2d n1 c16 h18 w18 k32 r3 s3', schedule: 'n:1 k:8 h:16 c:16 r:3 k:4 s:3 w:16',
    decision: { lanes: 16, vectorVar: 'w', unrollFrom: 4, tileFrom: 3, accumulators: 4, unrolledOps: 36, zeroRegister: false, maskRegister: false },
    tree: [
      'loop k x8 step O+1024 W+576',
      '  loop h x16 step O+16 I+18',
      '    tile 4x16 load',
      '      loop c x16 step I+324 W+9',
      '        compute 9 groups, 36 ops (I vector, W broadcast)',
    ],
  },
  // I moves by 2 along w, a stride the x86 caps list: I is a stride-2 vector operand (8 of 16
  // lanes), and a register is set aside for the permutation index; c r s w are all unrolled
  {
    rule: 'rule 1: a strided conv vectorizes where the caps list stride 2',
    target: 'avx512', spec: 'conv2d n1 c16 h18 w18 k32 r3 s3 stride2', schedule: 'n:1 k:32 h:8 c:16 r:3 s:3 w:8',
    decision: { lanes: 16, vectorVar: 'w', unrollFrom: 3, tileFrom: 3, accumulators: 1, unrolledOps: 144, zeroRegister: false, maskRegister: false, indexRegister: true },
    tree: [
      'loop k x32 step O+64 W+144',
      '  loop h x8 step O+8 I+36',
      '    tile 1x8 load',
      '      compute 144 groups, 144 ops (I vector stride 2, W broadcast)',
    ],
  },
  // AVX2 permutes with immediates (vshufps + vpermpd): no index register
  {
    rule: 'rule 1: a strided conv vectorizes on avx2 without an index register',
    target: 'avx2', spec: 'conv2d n1 c16 h18 w18 k32 r3 s3 stride2', schedule: 'n:1 k:32 h:8 c:16 r:3 s:3 w:8',
    decision: { lanes: 8, vectorVar: 'w', unrollFrom: 3, tileFrom: 3, accumulators: 1, unrolledOps: 144, zeroRegister: false, maskRegister: false },
    tree: [
      'loop k x32 step O+64 W+144',
      '  loop h x8 step O+8 I+36',
      '    tile 1x8 load',
      '      compute 144 groups, 144 ops (I vector stride 2, W broadcast)',
    ],
  },
  // neon's caps list no vector strides: s:3 w:8 unrolled (8 accumulators, 24 ops), c and r join the tile
  {
    rule: 'rule 1: a strided conv takes the scalar path where the caps do not list its stride',
    target: 'neon', spec: 'conv2d n1 c16 h18 w18 k32 r3 s3 stride2', schedule: 'n:1 k:32 h:8 c:16 r:3 s:3 w:8',
    decision: { lanes: 1, vectorVar: null, unrollFrom: 5, tileFrom: 3, accumulators: 8, unrolledOps: 24, zeroRegister: false, maskRegister: false, scalarReason: 'I moves by 2 elements along w' },
    tree: [
      'loop k x32 step O+64 W+144',
      '  loop h x8 step O+8 I+36',
      '    tile 8x1 load',
      '      loop c x16 step I+324 W+9',
      '        loop r x3 step I+18 W+3',
      '          compute 3 groups, 24 ops (I broadcast, W broadcast)',
    ],
  },
  // B's rows are 4 KB apart, so B is packed at the outermost loop where its box holds at most 48K elements
  // read at least 8 times (inside n:16: 256 x 64, read by 96 rows); below the pack B advances in the packed
  // layout (k: +64)
  {
    rule: 'rule 5: rows 1024 floats apart are packed',
    target: 'avx512', spec: 'matmul 96x1024x256', schedule: 'n:16 m:16 k:256 m:6 n:64',
    decision: { lanes: 16, vectorVar: 'n', unrollFrom: 3, tileFrom: 2, accumulators: 24, unrolledOps: 24, zeroRegister: false, maskRegister: false },
    tree: [
      'loop n x16 step C+64 B+64',
      '  pack B 256@1024 64@1',
      '    loop m x16 step C+6144 A+1536',
      '      tile 24x16 load',
      '        loop k x256 step A+1 B+64',
      '          compute 1 groups, 24 ops (A broadcast, B vector)',
    ],
  },
  // 1008 is not a multiple of 1024; n:63 ends in a 15-lane vector
  {
    rule: 'rule 5: rows 1008 floats apart are not packed',
    target: 'avx512', spec: 'matmul 96x1008x256', schedule: 'n:16 m:16 k:256 m:6 n:63',
    decision: { lanes: 16, vectorVar: 'n', unrollFrom: 3, tileFrom: 2, accumulators: 24, unrolledOps: 24, zeroRegister: false, maskRegister: false },
    tree: [
      'loop n x16 step C+63 B+63',
      '  loop m x16 step C+6048 A+1536',
      '    tile 18x16 + 6x15 load',
      '      loop k x256 step A+1 B+1008',
      '        compute 1 groups, 24 ops (A broadcast, B vector)',
    ],
  },
  // 7 rows x 2 vectors = 14 ymm accumulators, and with k:32 the body is 448 <= 512 ops, so k is unrolled too
  {
    rule: 'AVX2: 14 accumulators (16 - 2) and the whole reduction unrolled',
    target: 'avx2', spec: 'matmul 28x16x32', schedule: 'm:4 k:32 m:7 n:16',
    decision: { lanes: 8, vectorVar: 'n', unrollFrom: 1, tileFrom: 1, accumulators: 14, unrolledOps: 448, zeroRegister: false, maskRegister: false },
    tree: [
      'loop m x4 step C+112 A+224',
      '  tile 14x8 load',
      '    compute 32 groups, 448 ops (A broadcast, B vector)',
    ],
  },
  // 5 rows x 3 vectors = 15 accumulators, one more than 16 - 2: only n:24 is unrolled
  {
    rule: 'AVX2: one accumulator over the limit leaves the rows out of the tile',
    target: 'avx2', spec: 'matmul 20x24x8', schedule: 'm:4 k:8 m:5 n:24',
    decision: { lanes: 8, vectorVar: 'n', unrollFrom: 3, tileFrom: 3, accumulators: 3, unrolledOps: 3, zeroRegister: false, maskRegister: false },
    tree: [
      'loop m x4 step C+120 A+40',
      '  loop k x8 step A+1 B+24',
      '    loop m x5 step C+24 A+8',
      '      tile 3x8 load',
      '        compute 1 groups, 3 ops (A broadcast, B vector)',
    ],
  },
  // n = 12 leaves a 4-lane vector; 7 x 2 = 14 accumulators exceed 16 - 1 - 2, so only n:12 is unrolled
  {
    rule: 'AVX2: a partial vector takes a mask register, one accumulator less',
    target: 'avx2', spec: 'matmul 28x12x32', schedule: 'm:4 k:32 m:7 n:12',
    decision: { lanes: 8, vectorVar: 'n', unrollFrom: 3, tileFrom: 3, accumulators: 2, unrolledOps: 2, zeroRegister: false, maskRegister: true },
    tree: [
      'loop m x4 step C+84 A+224',
      '  loop k x32 step A+1 B+12',
      '    loop m x7 step C+12 A+32',
      '      tile 1x8 + 1x4 load',
      '        compute 1 groups, 2 ops (A broadcast, B vector)',
    ],
  },
  // n:2r4 covers 20 = 2 x 8 + 4; the tail runs as a 4-lane tile after the loop
  {
    rule: 'AVX2: a tail in an outer loop of the vector variable also needs the mask',
    target: 'avx2', spec: 'matmul 8x20x8', schedule: 'n:2r4 m:8 k:8 n:8',
    decision: { lanes: 8, vectorVar: 'n', unrollFrom: 1, tileFrom: 1, accumulators: 8, unrolledOps: 64, zeroRegister: false, maskRegister: true },
    tree: [
      'loop n x2 step C+8 B+8',
      '  tile 8x8 load',
      '    compute 8 groups, 64 ops (A broadcast, B vector)',
      'tile 8x4 load',
      '  compute 8 groups, 64 ops (A broadcast, B vector)',
    ],
  },
  // 35 = 4 full vectors and 3 lanes
  {
    rule: 'rule 4 on AVX2: a partial vector with the mask register',
    target: 'avx2', spec: 'matmul 24x35x16', schedule: 'm:24 k:16 n:35',
    decision: { lanes: 8, vectorVar: 'n', unrollFrom: 1, tileFrom: 1, accumulators: 5, unrolledOps: 80, zeroRegister: false, maskRegister: true },
    tree: [
      'loop m x24 step C+35 A+16',
      '  tile 4x8 + 1x3 load',
      '    compute 16 groups, 80 ops (A broadcast, B vector)',
    ],
  },
  // 91 = 11 x 8 + 3
  {
    rule: 'relu on AVX2: a zero and a mask register',
    target: 'avx2', spec: 'relu 37x91', schedule: 'i:37 j:91',
    decision: { lanes: 8, vectorVar: 'j', unrollFrom: 1, tileFrom: 1, accumulators: 12, unrolledOps: 12, zeroRegister: true, maskRegister: true },
    tree: [
      'loop i x37 step O+91 A+91',
      '  tile 11x8 + 1x3',
      '    compute 1 groups, 12 ops (A vector)',
    ],
  },
  // the tile is n:32 alone (m:6 n:32 would need 24 > 14 accumulators); B is packed inside n:32 (256 x 32)
  {
    rule: 'rule 5 on AVX2: the same packing trigger',
    target: 'avx2', spec: 'matmul 96x1024x256', schedule: 'n:32 m:16 k:256 m:6 n:32',
    decision: { lanes: 8, vectorVar: 'n', unrollFrom: 4, tileFrom: 4, accumulators: 4, unrolledOps: 4, zeroRegister: false, maskRegister: false },
    tree: [
      'loop n x32 step C+32 B+32',
      '  pack B 256@1024 32@1',
      '    loop m x16 step C+6144 A+1536',
      '      loop k x256 step A+1 B+32',
      '        loop m x6 step C+1024 A+256',
      '          tile 4x8 load',
      '            compute 1 groups, 4 ops (A broadcast, B vector)',
    ],
  },
  // BLIS's NEON tile: 8 rows x 3 vectors = 24 of 32 - 2 registers; k:32 joins the tile
  {
    rule: 'NEON: the 8x12 tile',
    target: 'neon', spec: 'matmul 64x12x32', schedule: 'm:8 k:32 m:8 n:12',
    decision: { lanes: 4, vectorVar: 'n', unrollFrom: 2, tileFrom: 1, accumulators: 24, unrolledOps: 24, zeroRegister: false, maskRegister: false },
    tree: [
      'loop m x8 step C+96 A+256',
      '  tile 24x4 load',
      '    loop k x32 step A+1 B+12',
      '      compute 1 groups, 24 ops (A broadcast, B vector)',
    ],
  },
  // 13 = 3 vectors and 1 lane; 7 rows x 4 = 28 accumulators (limit 30)
  {
    rule: 'NEON: partial vectors without a mask',
    target: 'neon', spec: 'matmul 56x13x32', schedule: 'm:8 k:32 m:7 n:13',
    decision: { lanes: 4, vectorVar: 'n', unrollFrom: 2, tileFrom: 1, accumulators: 28, unrolledOps: 28, zeroRegister: false, maskRegister: false },
    tree: [
      'loop m x8 step C+91 A+224',
      '  tile 21x4 + 7x1 load',
      '    loop k x32 step A+1 B+13',
      '      compute 1 groups, 28 ops (A broadcast, B vector)',
    ],
  },
  // the 1024-wide matmul of the packing case; m:6 n:64 would need 96 accumulators, so only n:64 is unrolled
  {
    rule: 'NEON: no packing rule, so no packing',
    target: 'neon', spec: 'matmul 96x1024x256', schedule: 'n:16 m:16 k:256 m:6 n:64',
    decision: { lanes: 4, vectorVar: 'n', unrollFrom: 4, tileFrom: 4, accumulators: 16, unrolledOps: 16, zeroRegister: false, maskRegister: false },
    tree: [
      'loop n x16 step C+64 B+64',
      '  loop m x16 step C+6144 A+1536',
      '    loop k x256 step A+1 B+1024',
      '      loop m x6 step C+1024 A+256',
      '        tile 16x4 load',
      '          compute 1 groups, 16 ops (A broadcast, B vector)',
    ],
  },
  // 91 = 22 vectors and 3 lanes in 23 accumulators
  {
    rule: 'relu on NEON: no zero register of its own',
    target: 'neon', spec: 'relu 37x91', schedule: 'i:37 j:91',
    decision: { lanes: 4, vectorVar: 'j', unrollFrom: 1, tileFrom: 1, accumulators: 23, unrolledOps: 23, zeroRegister: false, maskRegister: false },
    tree: [
      'loop i x37 step O+91 A+91',
      '  tile 22x4 + 1x3',
      '    compute 1 groups, 23 ops (A vector)',
    ],
  },
];

for (const c of GOLDEN) {
  test(`${c.target}: ${c.rule}`, () => {
    const p = lowered(c.target, c.spec, c.schedule);
    const { vectorVar, ...rest } = p.decision;
    assert.equal({ ...rest, vectorVar: vectorVar === null ? null : p.problem.vars[vectorVar]!.name }, c.decision);
    assert.equal(outline(p), c.tree);
  });
}

/** The ops of a program's compute nodes, one string per group: `acc<i> <tensor>[<offset>]` (`x<lanes>` for a vector operand). */
function opsOf(p: LoopProgram): string[] {
  const out: string[] = [];
  walkProgram(p.body, (n) => {
    if (n.kind !== 'compute') return;
    for (const g of n.groups) {
      out.push(g.map((o) => `acc${o.acc} ${o.inputs.map((i) => `${p.tensors[i.tensor]!.name}[${i.offset}]${i.mode === 'vector' ? `x${i.count}` : ''}${i.stride === undefined ? '' : `/${i.stride}`}`).join(' ')}`).join(', '));
    }
  });
  return out;
}

function tilesOf(p: LoopProgram): TileNode[] {
  const out: TileNode[] = [];
  walkProgram(p.body, (n) => { if (n.kind === 'tile') out.push(n); });
  return out;
}

test('avx512: a compute group is ordered in runs that share the operand of the input with more distinct operands (B here)', () => {
  // 2 rows x 3 vectors: per k, B has 3 distinct vectors and A 2 broadcasts, so B's vector is loaded once per run
  const p = lowered('avx512', 'matmul 2x48x2', 'm:2 k:2 n:48');
  assert.equal(tilesOf(p).map((t) => t.accumulators.map((a) => `${a.offset}:${a.count}`)), [['0:16', '16:16', '32:16', '48:16', '64:16', '80:16']]);
  assert.equal(opsOf(p), [
    'acc0 A[0] B[0]x16, acc3 A[2] B[0]x16, acc1 A[0] B[16]x16, acc4 A[2] B[16]x16, acc2 A[0] B[32]x16, acc5 A[2] B[32]x16',
    'acc0 A[1] B[48]x16, acc3 A[3] B[48]x16, acc1 A[1] B[64]x16, acc4 A[3] B[64]x16, acc2 A[1] B[80]x16, acc5 A[3] B[80]x16',
  ]);
});

test('avx512: ... and in runs that share A when A has more distinct operands', () => {
  const p = lowered('avx512', 'matmul 3x32x2', 'm:3 k:2 n:32');
  assert.equal(opsOf(p), [
    'acc0 A[0] B[0]x16, acc1 A[0] B[16]x16, acc2 A[2] B[0]x16, acc3 A[2] B[16]x16, acc4 A[4] B[0]x16, acc5 A[4] B[16]x16',
    'acc0 A[1] B[32]x16, acc1 A[1] B[48]x16, acc2 A[3] B[32]x16, acc3 A[3] B[48]x16, acc4 A[5] B[32]x16, acc5 A[5] B[48]x16',
  ]);
});

test('avx512: a stride-2 input is a vector operand of stride 2 at every vector of w, its tail included', () => {
  // w = 21 output columns read input columns 0, 2, ..., 40: vectors at input offsets 0 (16 lanes) and 32 (5 lanes)
  const p = lowered('avx512', 'conv2d n1 c2 h1 w42 k1 r1 s1 stride2', 'n:1 k:1 h:1 c:2 r:1 s:1 w:21');
  assert.equal(tilesOf(p).map((t) => t.accumulators.map((a) => `${a.offset}:${a.count}`)), [['0:16', '16:5']]);
  assert.equal(opsOf(p), ['acc0 I[0]x16/2 W[0], acc1 I[32]x5/2 W[0]', 'acc0 I[42]x16/2 W[1], acc1 I[74]x5/2 W[1]']);
  assert.is(p.decision.indexRegister, true);
});

test('avx2: a stride-2 input with a tail reserves the lane mask (its masked loads use it), no index register', () => {
  const p = lowered('avx2', 'conv2d n1 c2 h1 w42 k1 r1 s1 stride2', 'n:1 k:1 h:1 c:2 r:1 s:1 w:21');
  assert.equal(opsOf(p)[0], 'acc0 I[0]x8/2 W[0], acc1 I[16]x8/2 W[0], acc2 I[32]x5/2 W[0]');
  assert.is(p.decision.maskRegister, true);
  assert.is(p.decision.indexRegister, undefined);
});

test('a stride-2 input is never packed (packing copies contiguous rows)', () => {
  // 32 input channels of 64x64 rows: I's rows are 4 KB apart, but I moves by 2 along w
  const caps = { ...backend('avx512').caps, packing: { strideMultiple: 1, maxElements: 1 << 20, minReuse: 1 } };
  const p = lower(Schedule.parse(parseProblem('conv2d n1 c32 h64 w64 k32 r3 s3 stride2'), 'n:1 k:8 h:31 c:32 r:3 s:3 k:4 w:31'), caps);
  const packed: number[] = [];
  walkProgram(p.body, (n) => { if (n.kind === 'pack') packed.push(n.tensor); });
  assert.ok(!packed.includes(1), `I packed: ${JSON.stringify(packed)}`);
  assert.is(p.decision.lanes, 16);
});

test('avx2: the tail of an outer loop of the vector variable becomes a partial accumulator of the same tile', () => {
  // n:2r4 n:8 covers 20 = 8 + 8 + 4, all unrolled: the tail's vector starts at 16 with 4 lanes
  const p = lowered('avx2', 'matmul 1x20x1', 'n:2r4 m:1 k:1 n:8');
  assert.equal(tilesOf(p).map((t) => t.accumulators.map((a) => `${a.offset}:${a.count}`)), [['0:8', '8:8', '16:4']]);
  assert.equal(opsOf(p), ['acc0 A[0] B[0]x8, acc1 A[0] B[8]x8, acc2 A[0] B[16]x4']);
  assert.is(p.decision.maskRegister, true);
});

test.run();
