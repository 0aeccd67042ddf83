import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, randomProblem, randomSchedule, parseProblem, Schedule, RANDOM_OPS } from '../../../ir/index.ts';
import { lower } from '../../../loopnest/lower.ts';
import { backend } from '../../../targets/registry.ts';
import { analyticStats, programStats, tileDecision } from '../../../agent/costmodel/program-stats.ts';
import { featureContext, scheduleFeatures } from '../../../agent/costmodel/features.ts';
import { mutateTiles, mutateOrder } from '../../../agent/search/moves.ts';
import { gemmCandidates } from '../../../bench/gemm-candidates.ts';
import { schedulesOf } from './helpers.ts';

/** Random small problems of every op, and schedules of mid-sized matmuls/convs with tails at several levels. */
function cases(seed: number, n: number): Schedule[] {
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
      assert.equal(analyticStats(s, prog.decision), programStats(prog), where);
    }
  });
}

test('fast and exact feature paths give identical features', () => {
  const fast = featureContext('avx2');
  const exact = { ...fast, exact: true };
  for (const s of cases(3, 200)) {
    assert.equal(Array.from(scheduleFeatures(s, fast)), Array.from(scheduleFeatures(s, exact)), `${s.problem.spec} | ${s.text()}`);
  }
});

test.run();
