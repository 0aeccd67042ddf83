/**
 * The cuda cost model: its features come from the GPU mapping and the PTX (finite, named, and
 * different where the kernels differ), a fresh model uses them, and the shipped model (trained on
 * H200 records) ranks the measurements of the bench problems, none of which it was trained on,
 * well above chance: Spearman 0.69 when it was shipped (bench/results/cuda.json). The measurements
 * are a copy of bench/results/cuda-heldout-records.jsonl in tests/fixtures/.
 */
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setBackendLogging } from '../../../agent/backend.ts';
import { CUDA_FEATURE_COUNT, CUDA_FEATURE_NAMES, cudaFeatures, featurizeCuda } from '../../../agent/costmodel/cuda-features.ts';
import { CostModel } from '../../../agent/costmodel/model.ts';
import { evalCostModel } from '../../../agent/costmodel/cli.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { Schedule } from '../../../ir/schedule.ts';

setBackendLogging(false);
const p = parseProblem('matmul 1024x1024x1024');
const staged = Schedule.parse(p, 'm:16b n:16b k:128s m:1 n:2 m:16t n:8t k:8 m:4 n:4');
const plain = Schedule.parse(p, 'm:16b n:16b k:128 m:1 n:2 m:16t n:8t k:8 m:4 n:4');

test('features: one per name, finite, and they see staging and the register tile', () => {
  assert.is(CUDA_FEATURE_NAMES.length, CUDA_FEATURE_COUNT);
  const a = cudaFeatures(staged), b = cudaFeatures(plain);
  assert.is(a.length, CUDA_FEATURE_COUNT);
  assert.ok([...a, ...b].every(Number.isFinite));
  const at = (f: Float32Array, name: string) => f[CUDA_FEATURE_NAMES.indexOf(name)]!;
  assert.is(at(a, 'staged'), 1);
  assert.is(at(b, 'staged'), 0);
  assert.ok(at(a, 'log_shared_bytes') > 0 && at(b, 'log_shared_bytes') === 0);
  assert.ok(at(a, 'global_loads_per_fma') < at(b, 'global_loads_per_fma'), 'staging moves loads to shared memory');
  assert.is(at(a, 'log_accumulators'), Math.log2(32));
  // a schedule without a GPU kernel gets zeros instead of throwing
  const tooMany = Schedule.parse(p, 'm:1024t n:1024t k:1024');
  assert.ok(featurizeCuda([tooMany]).every((x) => x === 0));
});

test('tensor-core features: mma / wgmma count their multiply-adds, the pipeline depth and warp grid show', () => {
  const p = parseProblem('matmul 4096x4096x4096 bf16');
  const at = (name: string, f: Float32Array) => f[CUDA_FEATURE_NAMES.indexOf(name)]!;
  const wgmma = (depth: string, groups: string) => cudaFeatures(Schedule.parse(p, `m:32b n:16b k:64${depth} ${groups} k:4 m:1 n:1 m:64 n:256 k:16`));
  const deep = wgmma('s4', 'm:2t n:1t'), shallow = wgmma('s2', 'm:2t n:1t');
  assert.ok(at('log_shared_bytes', deep) > at('log_shared_bytes', shallow), 'a deeper pipeline holds more shared memory');
  const mma = cudaFeatures(Schedule.parse(p, 'm:32b n:32b k:128s m:2t n:2t k:2 m:4 n:8 m:16 n:8 k:16'));
  for (const f of [deep, shallow, mma]) {
    assert.ok(f.every(Number.isFinite));
    // loads per multiply-add are small and the other instructions are not negative: the tensor-core ops count as fma
    assert.ok(at('global_loads_per_fma', f) > 0 && at('global_loads_per_fma', f) < 0.1, `${at('global_loads_per_fma', f)}`);
    assert.ok(at('other_per_fma', f) >= 0);
  }
  assert.is.not(at('log_threads', mma), at('log_threads', deep));
});

test('a new cuda model uses the cuda features', async () => {
  const m = await CostModel.create({ target: 'cuda', hidden: [8] });
  assert.is(m.meta.featureSet, 'cuda');
  assert.is(m.meta.featureCount, CUDA_FEATURE_COUNT);
  assert.is(m.predict([staged, plain]).gflops.length, 2);
  m.dispose();
});

test('the shipped cuda model ranks unseen H200 measurements: Spearman > 0.6, pairwise accuracy > 0.7', async () => {
  const e = await evalCostModel('default:cuda', fileURLToPath(new URL('../../fixtures/cuda-heldout-records.jsonl', import.meta.url)));
  assert.is(e.problems, 9);
  assert.ok(e.spearman > 0.6, `spearman ${e.spearman}`);
  assert.ok(e.pairwiseAccuracy > 0.7, `pairwise ${e.pairwiseAccuracy}`);
});

test.run();
