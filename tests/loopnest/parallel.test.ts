/**
 * The parallel split of the CPU lowering (issue #15): "the chunks of every thread count 1..8 cover
 * the band exactly once". Checked twice: on threadRange / chunkIndices directly, and on lowered
 * programs, by following a LoopProgram's pointer arithmetic for each tid in plain JS (no machine
 * code) and collecting the output elements its register tiles store.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../ir/errors.ts';
import { elementCount, type Problem } from '../../ir/problem.ts';
import { RANDOM_OPS, randomBand, randomProblem, randomSchedule, Rng } from '../../ir/random.ts';
import { parallelBand, Schedule } from '../../ir/schedule.ts';
import { parseProblem } from '../../ir/spec.ts';
import type { TargetCaps } from '../../loopnest/caps.ts';
import { lower } from '../../loopnest/lower.ts';
import {
  chunkCount, chunkIndices, hasParallelBand, maskChunks, threadRange, walkProgram, type LoopProgram, type ParallelDim, type ProgramNode,
} from '../../loopnest/program.ts';
import { backend } from '../../targets/registry.ts';

const MAX_T = 8;

test('threadRange: for n = 0..100 chunks and T = 1..8, contiguous ranges cover 0..n-1 once, sizes within one', () => {
  for (let n = 0; n <= 100; n++) {
    for (let threads = 1; threads <= MAX_T; threads++) {
      const seen = new Uint8Array(n);
      let next = 0;
      const sizes: number[] = [];
      for (let tid = 0; tid < threads; tid++) {
        const { begin, end } = threadRange(n, tid, threads);
        assert.is(begin, next, `n=${n} T=${threads} tid=${tid}: starts where the previous thread ended`);
        assert.ok(end >= begin, `n=${n} T=${threads} tid=${tid}: empty at worst`);
        for (let c = begin; c < end; c++) seen[c]!++;
        sizes.push(end - begin);
        next = end;
      }
      assert.is(next, n, `n=${n} T=${threads}: the last thread ends at n`);
      assert.ok(seen.every((x) => x === 1), `n=${n} T=${threads}: every chunk exactly once`);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `n=${n} T=${threads}: sizes ${sizes.join(',')} differ by more than one`);
    }
  }
});

/** Random band shapes: 1-3 dims, counts 0..5 (0 only with a tail), tails. */
function randomDims(rng: Rng): Pick<ParallelDim, 'count' | 'tail'>[] {
  return Array.from({ length: rng.int(1, 3) }, () => {
    const tail = rng.next() < 0.5;
    return { count: rng.int(tail ? 0 : 1, 5), tail };
  });
}

test('chunkIndices numbers the band points innermost fastest, once each, with the tail mask; maskChunks counts them', () => {
  const rng = new Rng(15);
  for (let trial = 0; trial < 300; trial++) {
    const dims = randomDims(rng);
    const n = chunkCount(dims);
    assert.is(n, dims.reduce((a, d) => a * (d.count + (d.tail ? 1 : 0)), 1));
    const points = new Set<string>();
    const perMask = new Map<number, number>();
    let previous: number[] | undefined;
    for (let c = 0; c < n; c++) {
      const { index, mask } = chunkIndices(dims, c);
      dims.forEach((d, j) => {
        assert.ok(index[j]! >= 0 && index[j]! <= d.count - (d.tail ? 0 : 1), `${JSON.stringify(dims)} chunk ${c}: index ${index[j]} out of its dim`);
        assert.is(((mask >> j) & 1) === 1, index[j] === d.count, `${JSON.stringify(dims)} chunk ${c}: mask bit ${j}`);
      });
      points.add(index.join(','));
      perMask.set(mask, (perMask.get(mask) ?? 0) + 1);
      // innermost fastest: the flat number is the mixed-radix value of the indices
      const flat = index.reduce((a, x, j) => a * (dims[j]!.count + (dims[j]!.tail ? 1 : 0)) + x, 0);
      assert.is(flat, c);
      if (previous) assert.ok(index.join(',') !== previous.join(','));
      previous = index;
    }
    assert.is(points.size, n, `${JSON.stringify(dims)}: every band point once`);
    for (let mask = 0; mask < 1 << dims.length; mask++) assert.is(maskChunks(dims, mask), perMask.get(mask) ?? 0, `mask ${mask}`);
  }
});

/** What one thread's walk of a program stores: per output element, how many tile stores hit it. */
interface Walk {
  stores: Map<number, number>;
  /** tiles and packs met outside the parallel node in a program that has one */
  outsideBand: string[];
}

/** Every point of a band, outermost dim slowest, by nested loops (independent of chunkIndices). */
function bandPoints(dims: readonly Pick<ParallelDim, 'count' | 'tail'>[]): number[][] {
  let points: number[][] = [[]];
  for (const d of dims) points = points.flatMap((p) => Array.from({ length: d.count + (d.tail ? 1 : 0) }, (_, x) => [...p, x]));
  return points;
}

/**
 * Follows the output pointer (tensor 0) through the program as thread `tid` of `threads` would:
 * LoopNode offsets and advances, ParallelNode offsets, chunk ranges and per-dim advances, and the
 * accumulators each TileNode stores (`count` lanes from `offset`). Packs only move input pointers.
 * With `threads` 'all', a parallel node runs every point of its band once (bandPoints), the
 * reference the threads' walks must add up to.
 */
function walkThread(program: LoopProgram, tid: number, threads: number | 'all'): Walk {
  const walk: Walk = { stores: new Map(), outsideBand: [] };
  const banded = hasParallelBand(program);
  const elements = program.tensors[0]!.elements;
  const visit = (nodes: readonly ProgramNode[], out: number, inBand: boolean): void => {
    for (const n of nodes) {
      switch (n.kind) {
        case 'loop':
          for (let it = 0; it < n.count; it++) visit(n.body, out + n.offsets[0]! + it * n.advance[0]!, inBand);
          break;
        case 'parallel': {
          assert.is(inBand, false, 'a parallel node inside another');
          const base = out + n.offsets[0]!;
          const points = threads === 'all'
            ? bandPoints(n.dims).map((index) => ({ index, mask: index.reduce((m, x, j) => (x === n.dims[j]!.count ? m | (1 << j) : m), 0) }))
            : (({ begin, end }) => Array.from({ length: end - begin }, (_, c) => chunkIndices(n.dims, begin + c)))(threadRange(chunkCount(n.dims), tid, threads));
          for (const { index, mask } of points) {
            const body = n.bodies[mask];
            if (!body) return assert.unreachable(`band point ${index} has mask ${mask}, whose body is null`);
            visit(body, base + n.dims.reduce((a, d, j) => a + index[j]! * d.advance[0]!, 0), true);
          }
          break;
        }
        case 'pack':
          assert.is.not(n.tensor, 0, 'the output is never packed');
          if (banded && !inBand) walk.outsideBand.push('pack');
          visit(n.body, out, inBand);
          break;
        case 'tile':
          if (banded && !inBand) walk.outsideBand.push('tile');
          for (const acc of n.accumulators) {
            for (let lane = 0; lane < acc.count; lane++) {
              const e = out + acc.offset + lane;
              assert.ok(e >= 0 && e < elements, `${program.schedule}: tile stores element ${e} of ${elements}`);
              walk.stores.set(e, (walk.stores.get(e) ?? 0) + 1);
            }
          }
          break;
        case 'compute':
          break;
      }
    }
  };
  visit(program.body, 0, false);
  return walk;
}

const avx512 = (): TargetCaps => backend('avx512').caps;
/** avx512 with packing forced on every row stride (as bench/packing-fuzz.ts forces it). */
const forcedPacking = (): TargetCaps => ({ ...avx512(), packing: { strideMultiple: 1, maxElements: 4096, minReuse: 2 } });

interface Case {
  spec: string;
  schedule: string;
  what: string;
  caps?: () => TargetCaps;
  packs?: boolean;
}

const CASES: Case[] = [
  { spec: 'matmul 64x64x32', schedule: 'm:64p n:4 k:32 n:16', what: 'one-loop band without a tail' },
  { spec: 'matmul 23x55x16', schedule: 'm:5r3p n:3r7p k:16 n:16 m:4', what: 'two-loop band, tails in both dims' },
  { spec: 'matmul 10x16x8', schedule: 'm:2p m:5 n:16 k:8', what: 'fewer chunks than threads' },
  { spec: 'matmul 7x32x8', schedule: 'n:2 m:3r1p k:8 n:16 m:2', what: 'band below a serial loop' },
  { spec: 'matmul 6x40x12', schedule: 'm:1r1 m:2r1p n:2r8p k:12 n:16 m:2', what: 'a band dim with only a tail (count 0)' },
  { spec: 'matmul 40x48x64', schedule: 'k:2 m:3r4p n:3p k:32 m:12 n:16', what: 'a reduction loop above the band: tiles stored twice' },
  { spec: 'bmm b3 m10 n32 k8', schedule: 'b:3p m:2r2p n:2p k:8 m:4 n:16', what: 'bmm, three-loop band with a tail' },
  { spec: 'conv2d n2 c4 h10 w10 k13 r3 s3', schedule: 'n:2p h:2r2p k:3r1p c:4 r:3 s:3 h:3 k:4 w:8', what: 'conv2d, three-loop band, tails' },
  { spec: 'conv2d n1 c3 h9 w12 k8 r3 s3', schedule: 'n:1 h:3r1p k:8 c:3 r:3 s:3 h:2 w:10', what: 'conv2d, one-loop band with a tail' },
  { spec: 'conv2d n1 c8 h12 w12 k16 r3 s3', schedule: 'n:1 k:2p h:5p k:8 c:8 r:3 s:3 h:2 w:10', what: 'conv2d, two-loop band over k and h' },
  { spec: 'add 37x50', schedule: 'i:4r5p j:3r2p i:8 j:16', what: 'elementwise add, two-loop band' },
  // real caps: B's rows are 1024 floats (4 KB) apart, so B is packed below the band
  { spec: 'matmul 12x1024x64', schedule: 'n:16p m:2 k:64 m:6 n:64', what: 'real packing of a 4 KB-strided B', packs: true },
  { spec: 'matmul 30x56x40', schedule: 'm:3p n:3r8p k:40 m:10 n:16', what: 'forced packing inside a two-loop band', caps: forcedPacking, packs: true },
  { spec: 'bmm b2 m12 n32 k24', schedule: 'b:2p m:2p k:24 m:6 n:32', what: 'forced packing inside a bmm band', caps: forcedPacking, packs: true },
];

/** Per-element store counts of the serial program of the same nest: what all threads together must do. */
function serialStores(problem: Problem, text: string, caps: TargetCaps): Map<number, number> {
  const serial = lower(Schedule.parse(problem, text.replace(/p/g, '')), caps);
  assert.is(hasParallelBand(serial), false);
  return walkThread(serial, 0, 1).stores;
}

for (const c of CASES) {
  test(`${c.what} (${c.spec}, ${c.schedule}): for T = 1..8 the threads' tiles are disjoint and cover the output`, () => {
    const problem = parseProblem(c.spec);
    const schedule = Schedule.parse(problem, c.schedule);
    const caps = (c.caps ?? avx512)();
    const program = lower(schedule, caps);
    assert.ok(hasParallelBand(program), 'the program has a parallel node');
    const band = parallelBand(schedule.loops);
    assert.ok(program.decision.tileFrom > band[band.length - 1]!, `tileFrom ${program.decision.tileFrom} is inside the band ${band}`);
    let packs = false;
    walkProgram(program.body, (n) => (packs ||= n.kind === 'pack'));
    assert.is(packs, c.packs ?? false, 'whether the program packs');
    const elements = elementCount(problem.tensors[0]!);
    const expected = serialStores(problem, c.schedule, caps);
    assert.is(expected.size, elements, 'the serial program stores every output element');
    for (let threads = 1; threads <= MAX_T; threads++) {
      const owner = new Int32Array(elements).fill(-1);
      const total = new Map<number, number>();
      for (let tid = 0; tid < threads; tid++) {
        const w = walkThread(program, tid, threads);
        assert.equal(w.outsideBand, [], `T=${threads}: tiles and packs live below the parallel node`);
        for (const [e, n] of w.stores) {
          assert.is(owner[e], -1, `T=${threads}: element ${e} stored by tid ${owner[e]} and tid ${tid}`);
          owner[e] = tid;
          total.set(e, n);
        }
      }
      assert.is(owner.indexOf(-1), -1, `T=${threads}: element ${owner.indexOf(-1)} stored by no thread`);
      // each chunk ran exactly once: as many stores per element as the serial nest makes
      for (const [e, n] of expected) if (total.get(e) !== n) assert.unreachable(`T=${threads}: element ${e} stored ${total.get(e)} times, serially ${n}`);
    }
  });
}

test('random problems and schedules with random bands (the fuzz generators): disjoint, complete, once, for T = 1..8', () => {
  let banded = 0;
  for (let i = 0; i < 150; i++) {
    const rng = new Rng(20261215 + i);
    const problem = randomProblem(rng, RANDOM_OPS[i % RANDOM_OPS.length]);
    const schedule = randomBand(randomSchedule(problem, rng, rng.int(0, 24)), rng);
    const band = parallelBand(schedule.loops);
    if (band.length === 0) continue;
    banded++;
    const program = lower(schedule, avx512());
    assert.ok(program.decision.tileFrom > band[band.length - 1]!, `${problem.spec} ${schedule.text()}: the tile starts inside the band`);
    // the band may move the register tile (reductions above it leave the tile), so the reference is
    // the same program with every band point run once; the serial nest gives the elements
    const expected = walkThread(program, 0, 'all').stores;
    assert.equal([...expected.keys()].sort((a, b) => a - b), [...serialStores(problem, schedule.text(), avx512()).keys()].sort((a, b) => a - b));
    for (let threads = 1; threads <= MAX_T; threads++) {
      const total = new Map<number, number>();
      for (let tid = 0; tid < threads; tid++) {
        const w = walkThread(program, tid, threads);
        assert.equal(w.outsideBand, [], `${problem.spec} ${schedule.text()}: tiles and packs below the band`);
        for (const [e, n] of w.stores) {
          if (total.has(e)) assert.unreachable(`${problem.spec} ${schedule.text()} T=${threads}: element ${e} stored by two threads`);
          total.set(e, n);
        }
      }
      assert.is(total.size, expected.size, `${problem.spec} ${schedule.text()} T=${threads}: elements stored`);
      for (const [e, n] of expected) {
        if (total.get(e) !== n) assert.unreachable(`${problem.spec} ${schedule.text()} T=${threads}: element ${e} stored ${total.get(e)} times, serially ${n}`);
      }
    }
  }
  assert.ok(banded >= 80, `only ${banded} of 150 schedules got a band`);
});

test('threads past the chunks do nothing: 2 chunks on 5 threads go to tids 2 and 4', () => {
  const program = lower(Schedule.parse(parseProblem('matmul 10x16x8'), 'm:2p m:5 n:16 k:8'), avx512());
  const sizes = [0, 1, 2, 3, 4].map((tid) => walkThread(program, tid, 5).stores.size);
  assert.equal(sizes, [0, 0, 80, 0, 80]);
});

test('neon (no threads) refuses a band in validate and compile, with one line; its lowering stays serial', () => {
  const schedule = Schedule.parse(parseProblem('matmul 23x55x16'), 'm:5r3p n:3r7p k:16 n:16 m:4');
  const neon = backend('neon');
  assert.is(neon.caps.threads ?? false, false);
  assert.is(neon.actions.includes('parallel'), false);
  const expected = 'neon kernels run on one thread: a schedule with parallel loops (suffix p) needs a target with threads (avx2, avx512)';
  assert.is(neon.validate?.(schedule), expected);
  try {
    neon.compile(schedule);
    assert.unreachable('neon compiled a parallel schedule');
  } catch (e) {
    assert.instance(e, LoopTuneError);
    assert.is((e as Error).message, expected);
  }
  assert.is(neon.validate?.(Schedule.parse(schedule.problem, 'm:5r3 n:3r7 k:16 n:16 m:4')), undefined);
  assert.is(hasParallelBand(lower(schedule, neon.caps)), false);
  // the threaded targets offer the action
  for (const name of ['avx512', 'avx2'] as const) assert.ok(backend(name).actions.includes('parallel'), name);
});

test.run();
