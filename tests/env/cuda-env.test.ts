/**
 * The cuda target in the shared environment, without a GPU: an evaluator whose target is 'cuda'
 * (timings replaced by the PTX simulator's verdict plus a stand-in speed) makes LoopNestEnv offer
 * bind_block / bind_thread / stage_shared and show the bindings in its observation; other targets
 * refuse those actions; schedules without a GPU kernel cost a search nothing; the evolution's GPU
 * sketches and mutations only measure schedules that compile, and its winner computes the right
 * result in the simulator.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem } from '../../ir/spec.ts';
import { Schedule } from '../../ir/schedule.ts';
import { CUDA_ACTIONS } from '../../ir/transforms.ts';
import { GPU_LOOP_FEATURES, GPU_MAX_LOOPS, LOOP_FEATURES } from '../../ir/graph.ts';
import { CachingEvaluator, type Evaluator } from '../../env/evaluator.ts';
import type { Box } from '../../env/core.ts';
import { backend } from '../../targets/registry.ts';
import { cudaSketches } from '../../targets/cuda/sketches.ts';

const cudaObstacle = (s: Schedule): string | undefined => backend('cuda').validate!(s);
import { LoopNestEnv, LOOPTUNE_ACTIONS, actionsForTarget } from '../../env/loopnest-env.ts';
import { createSearcher } from '../../agent/search/index.ts';
import { SearchContext } from '../../agent/searcher.ts';
import { compileCuda } from '../../targets/cuda/target.ts';
import { simRunner } from '../../targets/cuda/sim-runner.ts';
import { verifyKernel } from '../../targets/verify.ts';
import { LoopTuneError } from '../../ir/errors.ts';

/** A cuda evaluator without a GPU: GFLOPS from threads and staging, 0 for kernels the simulator rejects. */
function fakeGpu(measured: Schedule[] = []): Evaluator & { validate(s: Schedule): string | undefined } {
  const e = new CachingEvaluator({
    target: 'cuda', peakGflops: 1000, host: 'no GPU',
    measure: async (s) => {
      measured.push(s);
      const k = compileCuda(s);
      const threads = k.launch.block[0] * k.launch.block[1] * k.launch.block[2];
      return { gflops: 5 + Math.log2(threads) * 10 + (k.mapping.staged !== null ? 30 : 0) + k.mapping.accumulators / 4 };
    },
  });
  return Object.assign(e, { validate: cudaObstacle, sketches: cudaSketches });
}

test('on cuda the env offers the GPU actions and its observation carries the bindings', async () => {
  const env = new LoopNestEnv({ evaluator: fakeGpu(), dataset: ['matmul 64x32x16'] });
  assert.equal([...env.actions], [...LOOPTUNE_ACTIONS, ...CUDA_ACTIONS]);
  assert.equal((env.observationSpace as Box).shape, [GPU_MAX_LOOPS * (LOOP_FEATURES + GPU_LOOP_FEATURES)]);
  assert.is(env.maxLoops, GPU_MAX_LOOPS);
  const { observation } = await env.reset({ options: { problem: 'matmul 64x32x16', schedule: 'm:64 n:32 k:16' } });
  const gpuBlock = (o: Float32Array) => Array.from(o.subarray(GPU_MAX_LOOPS * LOOP_FEATURES, GPU_MAX_LOOPS * LOOP_FEATURES + 3 * GPU_LOOP_FEATURES));
  assert.equal(gpuBlock(observation), [0, 0, 0, 0, 0, 0, 0, 0, 0]);
  // cursor on m: bind it to blocks; then n (down) to threads
  let r = await env.step(env.actions.indexOf('bind_block'));
  assert.is(r.info.illegal, undefined);
  r = await env.step(env.actions.indexOf('down'));
  r = await env.step(env.actions.indexOf('bind_thread'));
  assert.is(r.info.schedule, 'm:64b n:32t k:16');
  assert.equal(gpuBlock(r.observation), [1, 0, 0, 0, 1, 0, 0, 0, 0]);
  assert.ok(r.info.gflops > 0, 'the bound schedule was measured');
  // stage_shared on a non-reduction loop is illegal: a no-op with a reason
  r = await env.step(env.actions.indexOf('stage_shared'));
  assert.match(r.info.illegal ?? '', /not a reduction loop/);
});

test("start 'sketch': episodes begin from GPU tilings; only on cuda", async () => {
  const env = new LoopNestEnv({ evaluator: fakeGpu(), dataset: ['matmul 256x128x64', 'conv2d n1 c8 h10 w10 k16 r3 s3 stride1'], start: 'sketch' });
  for (let seed = 0; seed < 6; seed++) {
    const { info } = await env.reset({ seed });
    const s = env.schedule;
    assert.ok(s.loops.some((l) => l.bind === 'block') && s.loops.some((l) => l.bind === 'thread'), info.schedule);
    assert.ok(s.loops.length > 3, info.schedule);
    assert.ok(info.gflops > 0);
  }
  const cpu = new CachingEvaluator({ target: 'avx2', peakGflops: 100, host: 'x', measure: async () => ({ gflops: 1 }) });
  assert.throws(() => new LoopNestEnv({ evaluator: cpu, start: 'sketch' }), /start 'sketch' is for the cuda target/);
});

test('other targets have no GPU actions and refuse them with one line', () => {
  assert.equal([...actionsForTarget('avx512')], [...LOOPTUNE_ACTIONS, 'parallel']);
  const cpu = new CachingEvaluator({ target: 'avx512', peakGflops: 100, host: 'x', measure: async () => ({ gflops: 1 }) });
  assert.throws(() => new LoopNestEnv({ evaluator: cpu, actions: ['up', 'bind_thread'] }),
    (e: unknown) => e instanceof LoopTuneError && e.message === "action 'bind_thread' exists only on the cuda target (this evaluator's target is avx512)");
  assert.throws(() => new LoopNestEnv({ evaluator: fakeGpu(), observation: 'graph' }), /graph observation does not encode GPU bindings/);
});

test('a schedule without a GPU kernel is skipped free of charge', async () => {
  const p = parseProblem('matmul 64x64x64');
  const ctx = new SearchContext('t', p, { evaluator: fakeGpu(), budget: { measurements: 5 } });
  // 64 x 64 threads in one block: over the 1024-thread limit
  const tooMany = Schedule.parse(p, 'm:64t n:64t k:64');
  assert.ok(cudaObstacle(tooMany));
  assert.not.ok(ctx.feasible(tooMany));
  const e = await ctx.evaluation(tooMany);
  assert.is(e.gflops, 0);
  assert.match(e.error ?? '', /no GPU kernel/);
  assert.is(ctx.measurements, 0);
  await ctx.evaluate(Schedule.parse(p, 'm:64b n:64t k:64'));
  assert.is(ctx.measurements, 1);
});

test('evolution on cuda: seeds first, only compilable schedules measured, the winner verified in the simulator', async () => {
  const p = parseProblem('matmul 128x96x32');
  const measured: Schedule[] = [];
  const r = await createSearcher('evolution').search(p, { evaluator: fakeGpu(measured), budget: { measurements: 30 }, seed: 2 });
  assert.is(r.measurements, 30);
  const seeds = cudaSketches.seeds!(p, 16).map((s) => s.hash());
  assert.ok(seeds.length >= 5, `gemm seeds fit the problem (${seeds.length})`);
  // the default schedule, then the seeds
  assert.equal(measured.slice(1, 1 + seeds.length).map((s) => s.hash()), seeds);
  for (const s of measured) assert.is(cudaObstacle(s), undefined, s.text());
  assert.ok(measured.some((s) => s.loops.some((l) => l.bind)), 'GPU bindings explored');
  assert.ok(r.best.gflops > r.defaultGflops);
  const v = await verifyKernel(compileCuda(r.best.schedule), r.best.schedule, simRunner(), { seed: 3 });
  assert.ok(v.verified, `${r.best.schedule.text()}: ${v.error}`);
});

test.run();
