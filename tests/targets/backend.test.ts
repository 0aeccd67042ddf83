/** The one Backend per target: what differs between targets is a field, read the same way everywhere. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../ir/errors.ts';
import { parseProblem } from '../../ir/spec.ts';
import { Schedule } from '../../ir/schedule.ts';
import { actionAllowed, actionsWith, LOOPTUNE_ACTIONS, tryAction } from '../../ir/actions.ts';
import { backend, backendNames, backendsWithAction, findBackend } from '../../targets/registry.ts';
import { compareWithBaseline, type Device } from '../../targets/backend.ts';
import { openblasLibraryName } from '../../targets/x86/device.ts';
import { evaluatorFor } from '../../env/evaluator-for.ts';
import { MeasuredEvaluator, PredictedEvaluator } from '../../env/evaluator.ts';
import { actionsForTarget, checkActionsForTarget, maxLoopsForTarget } from '../../env/loopnest-env.ts';
import { describeBaseline } from '../../cli/format.ts';

test('the registry holds every target, synthetic included; unknown names are one line', () => {
  assert.equal(backendNames().sort(), ['avx2', 'avx512', 'cuda', 'llvm-avx2', 'llvm-avx512', 'neon', 'synthetic']);
  assert.throws(() => backend('z80'), (e: unknown) => e instanceof LoopTuneError && /unknown target 'z80'/.test((e as Error).message));
  assert.is(findBackend('z80'), undefined);
  assert.is(backend('avx512').timing, 'native');
  assert.is(backend('neon').timing, 'emulated');
  assert.is(backend('synthetic').timing, 'model');
  assert.is(backend('cuda').processor, 'gpu');
  // one nominal-peak table: the backends' fields
  assert.is(backend('avx512').nominalPeakGflops, 230);
  assert.is(backend('avx2').nominalPeakGflops, 115);
  assert.is(backend('neon').nominalPeakGflops, 48);
  assert.is(backend('llvm-avx2').nominalPeakGflops, backend('avx2').nominalPeakGflops);
});

test('actions: a target adds its own; others refuse them; the loop limit is the backend\'s', () => {
  // threaded CPU targets add the parallel action; neon (one thread) and the model target do not
  assert.equal(actionsForTarget('avx512'), [...LOOPTUNE_ACTIONS, 'parallel']);
  assert.equal(actionsForTarget('llvm-avx2'), [...LOOPTUNE_ACTIONS, 'parallel']);
  assert.equal(actionsForTarget('neon'), LOOPTUNE_ACTIONS);
  assert.equal([...backendsWithAction('parallel')].sort(), ['avx2', 'avx512', 'llvm-avx2', 'llvm-avx512']);
  assert.equal(actionsForTarget('cuda'), [...LOOPTUNE_ACTIONS, 'bind_block', 'bind_thread', 'stage_shared', 'stages_2', 'stages_3', 'stages_4', 'warps_more', 'warps_fewer']);
  assert.equal(actionsWith(backend('cuda').actions), actionsForTarget('cuda'));
  assert.equal(backendsWithAction('bind_block'), ['cuda']);
  assert.ok(actionAllowed('bind_block', backend('cuda').actions));
  assert.not.ok(actionAllowed('bind_block', backend('avx2').actions));
  assert.is(maxLoopsForTarget('cuda'), 16);
  assert.is(maxLoopsForTarget('avx2'), 10);
  assert.is(maxLoopsForTarget('a plugin of a test'), 10);
  assert.throws(() => checkActionsForTarget(['fly'], 'avx2'), (e: Error) => e.message === "unknown action 'fly' (expected up, down, swap_up, swap_down, split_N or merge; bind_block, bind_thread, stage_shared, stages_2, stages_3, stages_4, warps_more, warps_fewer on cuda; parallel on avx2, avx512, llvm-avx2, llvm-avx512)");
  const full = Schedule.parse(parseProblem('matmul 64x64x64'), 'm:2 m:2 m:2 m:2 m:4 n:4 n:4 n:4 k:8 k:8');
  assert.match((tryAction(full, 'split_2', 10) as { error: string }).error, /at most 10/);
  assert.ok(tryAction(full, 'split_2', 16).ok);
});

test('evaluatorFor: the backend decides where figures come from', async () => {
  const s = Schedule.initial(parseProblem('matmul 32x32x32'));
  const model = await evaluatorFor('synthetic');
  assert.is(model.target, 'synthetic');
  assert.is(model.peakGflops, 100);
  assert.is((await model.evaluate(s)).source, 'measured');
  assert.throws(() => backend('synthetic').compile(s), /generates no code/);
  // neon cannot be timed here: a predictor is required, and its nominal peak is the denominator
  try {
    await evaluatorFor('neon');
    assert.unreachable('neon without a predictor');
  } catch (e) {
    assert.match((e as Error).message, /neon kernels run only under emulation here/);
  }
  const neon = await evaluatorFor('neon', { predict: (xs) => xs.map(() => 7) });
  assert.instance(neon, PredictedEvaluator);
  assert.is(neon.peakGflops, 48);
  assert.is((await neon.evaluate(s)).gflops, 7);
  // a native backend measures on the device it is given, with the backend's validate and sketches
  const calls: string[] = [];
  const device: Device = {
    native: true, host: 'test-gpu',
    run: async () => ({ ok: false, error: 'unused' }),
    time: async (k) => (calls.push(k.target), { ok: true, gflops: 5, bestSeconds: 1, medianSeconds: 1, reps: 1, samples: 1 }),
    peak: async () => ({ gflops: 1000, source: 'measured' }),
    close: async () => {},
  };
  const gpu = await evaluatorFor('cuda', { device });
  assert.instance(gpu, MeasuredEvaluator);
  assert.is(gpu.peakGflops, 1000);
  assert.ok(gpu.sketches, 'cuda sketches come with the backend');
  assert.ok(gpu.validate!(Schedule.initial(parseProblem('matmul 64x64x64'))) === undefined);
  const mapped = gpu.sketches!.seeds!(parseProblem('matmul 128x128x128'), 16)[0]!;
  assert.is((await gpu.evaluate(mapped)).gflops, 5);
  assert.equal(calls, ['cuda']);
  assert.is((gpu as MeasuredEvaluator).host, 'test-gpu');
});

test('baseline: the library\'s own name in every field; the CLI line is built from it', async () => {
  assert.is(openblasLibraryName('OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64', 'Cooperlake'), 'OpenBLAS 0.3.21 (Cooperlake)');
  const p = parseProblem('matmul 64x64x64');
  const device: Device = {
    native: true, host: 'h', run: async () => ({ ok: false, error: '' }), time: async () => ({ ok: false, error: '' }),
    peak: async () => ({ gflops: 1, source: 'measured' }), close: async () => {},
    baseline: { family: 'cuBLAS', coverage: () => undefined, time: async () => ({ ok: true, library: 'cuBLAS 13.1', gflops: 40000, bestSeconds: 1, medianSeconds: 1 }) },
  };
  const c = await compareWithBaseline(p, device, 20000);
  assert.equal(c.baseline, { library: 'cuBLAS 13.1', gflops: 40000, ratio: 0.5 });
  assert.is(c.openblasCorename, 'cuBLAS 13.1', 'deprecated alias');
  assert.is(describeBaseline(c.baseline!), 'cuBLAS 13.1 sgemm: 40000.0 GFLOPS -> 0.50x cuBLAS');
  assert.is(describeBaseline({ library: 'OpenBLAS 0.3.21 (Cooperlake)', gflops: 200, ratio: 1.13, threads: 1 }),
    'OpenBLAS sgemm (OpenBLAS 0.3.21 (Cooperlake), 1 thread): 200.0 GFLOPS -> 1.13x OpenBLAS');
  const none = await compareWithBaseline(p, { ...device, baseline: undefined } as Device, 1);
  assert.match(none.baselineError!, /no vendor library/);
});

test.run();
