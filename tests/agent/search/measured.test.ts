/**
 * The real path: x86 code generation + measurement workers on a 64x64x64 matmul, tiny budgets.
 * Skipped (with a note) where the host cannot run x86 AVX2 code or the code generator is missing.
 * Timings are printed, never asserted.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseProblem, Schedule } from '../../../ir/index.ts';
import type { MeasuredEvaluator } from '../../../env/evaluator.ts';
import { evaluatorFor } from '../../../env/evaluator-for.ts';
import { hostBackend } from '../../../targets/registry.ts';
import { RecordStore } from '../../../env/records.ts';
import { LoopNestEnv } from '../../../env/loopnest-env.ts';
import { createSearcher, SEARCHER_NAMES } from '../../../agent/search/index.ts';

async function unavailable(): Promise<string | undefined> {
  try {
    const { hostTarget } = await import('../../../targets/runtime/host.ts');
    hostTarget();
    const { compileSchedule } = await import('../../../targets/registry.ts');
    compileSchedule(Schedule.initial(parseProblem('matmul 8x8x8')), 'avx2');
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

const dir = mkdtempSync(path.join(tmpdir(), 'looptune-measured-'));

test('every searcher runs on real measurements of matmul 64x64x64 (tiny budget)', async () => {
  const why = await unavailable();
  // npm test runs on x86-64 machines with AVX2 (README): an unavailable x86 path is a failure, not a skip
  if (why) assert.unreachable(`the x86 path is unavailable here (${why})`);
  const recordsPath = path.join(dir, 'records.jsonl');
  const evaluator = (await evaluatorFor(hostBackend(), { records: recordsPath, minSeconds: 0.005 })) as MeasuredEvaluator;
  const problem = parseProblem('matmul 64x64x64');
  const lines: string[] = [`peak ${evaluator.peakGflops.toFixed(1)} GFLOPS (${evaluator.peakSource}), target ${evaluator.target}`];
  try {
    for (const name of SEARCHER_NAMES) {
      const r = await createSearcher(name).search(problem, { evaluator, budget: { measurements: 8 }, seed: 1 });
      assert.ok(r.measurements <= 8);
      assert.ok(r.defaultGflops > 0, 'the default schedule runs');
      assert.ok(r.best.gflops >= r.defaultGflops);
      lines.push(`${r.searcher.padEnd(10)} default ${r.defaultGflops.toFixed(1)} -> best ${r.best.gflops.toFixed(1)} GFLOPS  ${r.best.schedule.text()}  (${r.timed} timed, ${r.seconds.toFixed(2)} s)`);
    }
    assert.is(evaluator.stats.failed, 0, 'no kernel failed');
    // the env on the real evaluator: a cursor move costs nothing, a split is measured
    const env = new LoopNestEnv({ evaluator, dataset: [problem] });
    await env.reset({ seed: 0 });
    const down = await env.step(env.actions.indexOf('down'));
    assert.is(down.info.source, 'cached');
    const split = await env.step(env.actions.indexOf('split_16'));
    assert.ok(split.info.gflops > 0);
  } finally {
    await evaluator.close();
  }
  const records = RecordStore.open(recordsPath);
  assert.is(records.size, evaluator.stats.measured);
  assert.ok(records.records().every((r) => r.bestSeconds! > 0 && r.medianSeconds! >= r.bestSeconds!));
  console.log(lines.map((l) => `  ${l}`).join('\n'));
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
