import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { policySpecOf, testProblems, trainProblems } from '../../experiments/runner.ts';
import { ExperimentError, loadExperiment, parseExperiment } from '../../experiments/schema.ts';
import { split } from '../../env/datasets.ts';

const BASE = ['name: t', 'target: avx512', 'iterations: 2'];
const parse = (...lines: string[]) => parseExperiment([...BASE, ...lines].join('\n'), 'exp.yaml');

function errorOf(...lines: string[]): string {
  try {
    parse(...lines);
  } catch (e) {
    if (e instanceof ExperimentError) return e.message;
    throw e;
  }
  throw new Error('expected an ExperimentError');
}

test('threads: default 1, a positive count on CPU targets, refused where kernels run on one thread', () => {
  assert.is(parse('dataset: { name: mm64-256 }').spec.threads, 1);
  assert.is(parse('dataset: { name: mm64-256 }', 'threads: 2').spec.threads, 2);
  assert.match(errorOf('dataset: { name: mm64-256 }', 'threads: 0'), /exp\.yaml:5: threads: /);
});

test('threads on a target without parallel bands is one line naming the field', () => {
  let message = '';
  try {
    parseExperiment('name: t\ntarget: synthetic\ndataset: { name: mm64-256 }\nreward: { source: synthetic }\nthreads: 4\niterations: 2\n', 'exp.yaml');
  } catch (e) {
    message = e instanceof Error ? e.message : String(e);
  }
  assert.is(message, 'exp.yaml:5: threads: the synthetic target runs kernels on one thread (no parallel bands)');
});

test('dataset.mix: each mixed split is drawn about its share of the episodes', () => {
  const x = parse('dataset:', '  name: mm64-256', '  mix:', '    - { name: resnet18-conv2d, share: 0.15 }', '    - { name: bert-gemm, share: 0.15 }');
  const ps = trainProblems(x);
  const share = (names: Set<string>) => ps.filter((p) => names.has(p.spec)).length / ps.length;
  const resnet = new Set(split('resnet18-conv2d', 'train').map((p) => p.spec));
  const bert = new Set(split('bert-gemm', 'train').map((p) => p.spec));
  assert.ok(Math.abs(share(resnet) - 0.15) < 0.01, `resnet ${share(resnet)}`);
  assert.ok(Math.abs(share(bert) - 0.15) < 0.01, `bert ${share(bert)}`);
  assert.is(ps.filter((p) => !resnet.has(p.spec) && !bert.has(p.spec)).length, split('mm64-256', 'train').length);
  // no mix: the dataset's split as before
  assert.is(trainProblems(parse('dataset: { name: mm64-256 }')).length, split('mm64-256', 'train').length);
  assert.match(errorOf('dataset:', '  name: mm64-256', '  mix: [{ name: bert-gemm, share: 0.6 }, { name: resnet18-conv2d, share: 0.4 }]'), /dataset\.mix: the shares add up to 1/);
  assert.match(errorOf('dataset:', '  name: mm64-256', '  mix: [{ name: nope, share: 0.1 }]'), /dataset\.mix\[0\]\.name: unknown dataset 'nope'/);
});

test('evaluation: the test split, the mixed test splits, then extra problems, each once', () => {
  const x = parse('dataset:', '  name: mm64-256', '  mix: [{ name: resnet18-conv2d, share: 0.1 }]',
    'evaluation:', '  problems: 3', '  extra_problems: ["matmul 1024x1024x1024", "conv2d n1 c512 h9 w9 k512 r3 s3 stride1"]');
  const specs = testProblems(x).map((p) => p.spec);
  const resnetTest = split('resnet18-conv2d', 'test').map((p) => p.spec);
  assert.equal(specs.slice(0, 3), split('mm64-256', 'test').slice(0, 3).map((p) => p.spec));
  assert.equal(specs.slice(3, 3 + resnetTest.length), resnetTest);
  assert.ok(specs.includes('matmul 1024x1024x1024'));
  assert.is(new Set(specs).size, specs.length);
  assert.match(errorOf('dataset: { name: mm64-256 }', 'evaluation: { extra_problems: ["matmul 1024x"] }'), /evaluation\.extra_problems\[0\]: not a problem spec/);
  assert.match(errorOf('dataset: { name: mm64-256 }', 'evaluation:', '  policies: [{ name: a, path: x }, { name: a, path: y }]'), /evaluation\.policies\[1\]\.name: 'a' is named twice/);
  assert.is(parse('dataset: { name: mm64-256 }', 'evaluation: { policies: [{ name: old, path: x }] }').spec.evaluation.policies![0]!.band, false);
});

test('the policy spec records the parallel flags when the actions have parallel', () => {
  const withBand = parse('dataset: { name: mm64-256 }', 'env: { actions: [up, down, split_4, parallel] }');
  assert.is(policySpecOf(withBand.variants[0]!, 'avx512').parallel, true);
  const serial = parse('dataset: { name: mm64-256 }');
  assert.is(policySpecOf(serial.variants[0]!, 'avx512').parallel, undefined);
});

test('experiments/ppo-mm-avx512-threads.yaml: 2 threads, the parallel action, large problems in the mix and the evaluation', () => {
  const x = loadExperiment(path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'experiments', 'ppo-mm-avx512-threads.yaml'));
  assert.is(x.spec.threads, 2);
  assert.ok(x.variants[0]!.env.actions.includes('parallel'));
  assert.is(x.variants[0]!.reward.source, 'costmodel');
  assert.ok(testProblems(x).some((p) => p.spec === 'matmul 2048x2048x2048'));
  assert.ok(x.spec.evaluation.policies!.some((p) => p.band));
});

test.run();
