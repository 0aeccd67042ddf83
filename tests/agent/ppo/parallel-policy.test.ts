import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initBackend, setBackendLogging } from '../../../agent/backend.ts';
import { createPolicy, loadPolicy, savePolicy, type PolicySpec } from '../../../agent/policy/index.ts';
import { greedyRollout, observe, policySearcher } from '../../../agent/ppo/search.ts';
import { bandedSearcher } from '../../../agent/ppo/banded-searcher.ts';
import { pretrainedDir } from '../../../agent/pretrained-paths.ts';
import type { Evaluation, Evaluator } from '../../../env/evaluator.ts';
import { parseProblem, Schedule } from '../../../ir/index.ts';
import { parallelBand } from '../../../ir/schedule.ts';
import { parallelizeOuter } from '../../../ir/parallelize.ts';

setBackendLogging(false);
const ACTIONS = ['up', 'down', 'swap_up', 'swap_down', 'split_4', 'split_8', 'split_16', 'parallel'];
const SERIAL_ACTIONS = ACTIONS.filter((a) => a !== 'parallel');
const spec = (parallel: boolean): PolicySpec => ({
  network: { kind: 'mlp', hidden: [16], activation: 'tanh' }, actions: parallel ? ACTIONS : SERIAL_ACTIONS, observation: 'vector', maxLoops: 10, ...(parallel ? { parallel: true } : {}),
});

/** avx512 on `threads` threads; a banded schedule reads twice the serial figure. Records every schedule asked. */
function spied(threads: number): Evaluator & { asked: Schedule[] } {
  const asked: Schedule[] = [];
  return {
    target: 'avx512', peakGflops: 100, threads, asked,
    async evaluate(s): Promise<Evaluation> {
      asked.push(s);
      const tiles = s.loops.length;
      return { gflops: tiles * (parallelBand(s.loops).length > 0 ? 2 : 1), source: 'predicted', hash: s.hash() };
    },
  };
}

test('a policy with parallel flags reads 210 floats and the search encodes schedules that way', async () => {
  await initBackend();
  const p = createPolicy(spec(true), 1);
  const s = Schedule.initial(parseProblem('matmul 64x64x64'));
  assert.is((observe(p, s) as Float32Array).length, 210);
  // the band shows in what the policy sees
  const banded = s.withLoops(s.loops.map((l, i) => (i === 0 ? { ...l, parallel: true } : l)), 0);
  assert.not.equal(Array.from(observe(p, banded) as Float32Array), Array.from(observe(p, s) as Float32Array));
  // inference runs end to end (it threw on the 200-float form before the policy spec said which form)
  assert.ok(greedyRollout(p, s, 6).length >= 2);
  p.dispose();
});

test('the flag survives save and load; old policies (no flag) keep reading 200 floats', async () => {
  await initBackend();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'looptune-ppolicy-'));
  try {
    const p = createPolicy(spec(true), 2);
    await savePolicy(p, dir);
    const { policy } = loadPolicy(dir);
    assert.is(policy.spec.parallel, true);
    assert.is((observe(policy, Schedule.initial(parseProblem('matmul 64x80x96'))) as Float32Array).length, 210);
    policy.dispose();
    p.dispose();
    // a policy without the flag (as every policy before issue 15) reads 200 floats after a round trip
    const old = createPolicy(spec(false), 2);
    await savePolicy(old, dir);
    const reloaded = loadPolicy(dir).policy;
    assert.is(reloaded.spec.parallel ?? false, false);
    assert.is((observe(reloaded, Schedule.initial(parseProblem('matmul 64x80x96'))) as Float32Array).length, 200);
    reloaded.dispose();
    old.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // both shipped policies have the flag (avx512's since issue 15, avx2's mixed-set one since issue 16)
  for (const target of ['avx2', 'avx512']) {
    const shipped = loadPolicy(pretrainedDir(target)).policy;
    assert.is(shipped.spec.parallel ?? false, true, target);
    assert.is((observe(shipped, Schedule.initial(parseProblem('matmul 64x64x64'))) as Float32Array).length, shipped.spec.parallel ? 210 : 200);
    assert.ok(greedyRollout(shipped, Schedule.initial(parseProblem('matmul 128x128x128')), 4).length >= 2);
    shipped.dispose();
  }
});

test('bandedSearcher: on threads > 1 every schedule evaluated has the band, and so has the best', async () => {
  await initBackend();
  const p = createPolicy(spec(false), 3);
  const big = parseProblem('matmul 512x512x512');
  const e = spied(2);
  const r = await bandedSearcher(policySearcher(p, { depth: 4 }), { name: 'old+band' }).search(big, { evaluator: e, budget: { measurements: 12 }, seed: 1 });
  assert.is(r.searcher, 'old+band');
  assert.ok(e.asked.length >= 12);
  // what is evaluated is the rule's output (its fixed point), most of it banded (a nest that starts
  // m:1 m:4 has no outer band the rule can take)
  const ruled = (s: Schedule) => parallelizeOuter(s, 2).hash() === s.hash();
  for (const s of e.asked) assert.ok(ruled(s), s.text());
  assert.ok(e.asked.filter((s) => parallelBand(s.loops).length > 0).length > e.asked.length / 2);
  assert.ok(ruled(r.best.schedule) && parallelBand(r.best.schedule.loops).length > 0, r.best.schedule.text());
  // one thread, or a problem too small for a fork-join: proposals pass unchanged
  const one = spied(1);
  await bandedSearcher(policySearcher(p, { depth: 4 })).search(big, { evaluator: one, budget: { measurements: 8 }, seed: 1 });
  const small = spied(2);
  await bandedSearcher(policySearcher(p, { depth: 4 })).search(parseProblem('matmul 64x64x64'), { evaluator: small, budget: { measurements: 8 }, seed: 1 });
  for (const s of [...one.asked, ...small.asked]) assert.is(parallelBand(s.loops).length, 0, s.text());
  p.dispose();
});

test.run();
