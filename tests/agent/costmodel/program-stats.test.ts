import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, randomBand, randomProblem, randomSchedule, parseProblem, parallelizeOuter, Schedule, RANDOM_OPS } from '../../../ir/index.ts';
import { lower, loweredBand } from '../../../loopnest/lower.ts';
import { backend } from '../../../targets/registry.ts';
import { analyticStats, programStats, tileDecision } from '../../../agent/costmodel/program-stats.ts';
import { featureContext, scheduleFeatures } from '../../../agent/costmodel/features.ts';
import { mutateTiles, mutateOrder } from '../../../agent/search/moves.ts';
import { gemmCandidates } from '../../../bench/gemm-candidates.ts';
import { schedulesOf } from './helpers.ts';

/**
 * Random small problems of every op, and schedules of mid-sized matmuls/convs with tails at several
 * levels; a third of them with a parallel band (random bands: collapsed, below serial loops, tails;
 * Ansor's outer band).
 */
function cases(seed: number, n: number): Schedule[] {
  const rng = new Rng(seed + 100);
  return serialCases(seed, n).map((s, i) => (i % 3 === 1 ? randomBand(s, rng) : i % 3 === 2 ? parallelizeOuter(s, rng.int(2, 4)) : s));
}

function serialCases(seed: number, n: number): Schedule[] {
  const rng = new Rng(seed);
  const out: Schedule[] = [];
  for (let i = 0; i < n; i++) {
    const p = randomProblem(rng, RANDOM_OPS[i % RANDOM_OPS.length], 1.5);
    out.push(randomSchedule(p, rng, rng.int(2, 20)));
  }
  for (const spec of ['matmul 80x176x80', 'matmul 160x224x128', 'conv2d n1 c16 h18 w30 k24 r3 s3 stride1', 'relu 37x91', 'bmm b3 m40 n50 k24']) {
    out.push(...schedulesOf(parseProblem(spec), 60, rng));
  }
  // register-blocked schedules (accumulators hoisted over k) and their mutations
  for (const spec of ['matmul 64x64x64', 'matmul 100x70x90', 'matmul 176x144x240']) {
    for (const lanes of [8, 16]) {
      for (const g of gemmCandidates(parseProblem(spec), lanes)) {
        out.push(g);
        const m = rng.next() < 0.5 ? mutateTiles(g, rng, 10) : mutateOrder(g, rng, 10);
        if (m) out.push(m);
      }
    }
  }
  return out;
}

for (const target of ['avx512', 'avx2']) {
  test(`${target}: tileDecision and analyticStats equal lower()'s decision and its program's statistics`, () => {
    const caps = backend(target).caps;
    for (const s of cases(target === 'avx512' ? 1 : 2, 600)) {
      const prog = lower(s, caps);
      const where = `${s.problem.spec} | ${s.text()}`;
      assert.equal(tileDecision(s, caps), prog.decision, where);
      assert.equal(analyticStats(s, prog.decision, undefined, loweredBand(s, caps)), programStats(prog), where);
    }
  });
}

test('band instances: chunks and runs of every ParallelNode, none for a serial program', () => {
  const caps = backend('avx512').caps;
  const mm = parseProblem('matmul 256x200x64');
  const stats = (text: string) => programStats(lower(Schedule.parse(mm, text), caps)).bands;
  assert.equal(stats('m:4 n:200 k:64 m:64'), []);
  assert.equal(stats('m:4p n:200 k:64 m:64'), [{ chunks: 4, runs: 1 }]);
  // collapsed band with a tail: (3 + 1) x 4 chunks
  assert.equal(stats('n:3r8p m:4p k:64 n:64 m:64'), [{ chunks: 16, runs: 1 }]);
  // below a serial loop: one instance per outer iteration
  assert.equal(stats('k:4 m:4p n:200 k:16 m:64'), [{ chunks: 4, runs: 4 }]);
  // the serial loop's tail enters a band of fewer chunks (the band's n range is shorter there)
  assert.equal(stats('n:2r8 n:3p m:256 k:64 n:32'), [{ chunks: 1, runs: 1 }, { chunks: 3, runs: 2 }]);
  let banded = 0;
  for (const s of cases(5, 90)) {
    const prog = lower(s, caps);
    const st = analyticStats(s, prog.decision, undefined, loweredBand(s, caps));
    assert.equal(st.bands, programStats(prog).bands, `${s.problem.spec} | ${s.text()}`);
    if (st.bands.length) banded++;
  }
  assert.ok(banded > 20, `only ${banded} banded cases`);
});

test('fast and exact feature paths give identical features', () => {
  const fast = featureContext('avx2');
  const exact = { ...fast, exact: true };
  for (const s of cases(3, 200)) {
    assert.equal(Array.from(scheduleFeatures(s, fast)), Array.from(scheduleFeatures(s, exact)), `${s.problem.spec} | ${s.text()}`);
  }
});

test.run();
