/**
 * The observation's parallel flag (issue #15): the default 10 x 20 vector form is unchanged, the
 * `parallel` vector form appends one flag per loop, and graph loop nodes carry it as a feature.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CPU_LOOP_FEATURES, GPU_LOOP_FEATURES, GPU_MAX_LOOPS, GRAPH_LOOP_FEATURES, LOOP_FEATURES, MAX_LOOPS, NODE_FEATURES, NODE_KINDS,
  Rng, STRIDE_BUCKETS, graphEncoding, parseProblem, parallelizeOuter, randomBand, randomProblem, randomSchedule, RANDOM_OPS, Schedule,
  strideBucket, vectorEncoding, vectorSize,
} from '../../ir/index.ts';

const mm = parseProblem('matmul 256x256x64');
const serial = Schedule.parse(mm, 'm:4 n:4 k:64 m:64 n:64', 1);
const banded = Schedule.parse(mm, 'm:4p n:4p k:64 m:64 n:64', 1);

test('no free column in the 10 x 20 form: every stride bucket 0..14 is reachable', () => {
  // the reason the flag needs a block of its own (ir/graph.ts header)
  assert.is(5 + STRIDE_BUCKETS, LOOP_FEATURES);
  const reached = new Set<number>();
  for (const stride of [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 1 << 20]) reached.add(strideBucket(stride));
  assert.equal([...reached].sort((a, b) => a - b), Array.from({ length: STRIDE_BUCKETS }, (_, i) => i));
  // and a real schedule lands in the last bucket: m's outer loop moves A by 64 rows of 128 elements
  const big = Schedule.parse(parseProblem('matmul 4096x64x128'), 'm:64 n:64 k:128 m:64');
  assert.ok(vectorEncoding(big)[5 + STRIDE_BUCKETS - 1]! > 0);
});

test('the default vector form is the same 200 features with or without a band', () => {
  assert.is(vectorSize(), MAX_LOOPS * LOOP_FEATURES);
  assert.is(vectorEncoding(banded).length, 200);
  assert.equal(Array.from(vectorEncoding(banded)), Array.from(vectorEncoding(serial)));
});

test('parallel vector form: 10 x 20 then one flag per loop, set exactly on the band', () => {
  assert.is(vectorSize({ parallel: true }), MAX_LOOPS * (LOOP_FEATURES + CPU_LOOP_FEATURES));
  const v = vectorEncoding(banded, { parallel: true });
  assert.is(v.length, vectorSize({ parallel: true }));
  // the first 200 are the default form's
  assert.equal(Array.from(v.subarray(0, MAX_LOOPS * LOOP_FEATURES)), Array.from(vectorEncoding(banded)));
  const flags = Array.from(v.subarray(MAX_LOOPS * LOOP_FEATURES));
  assert.equal(flags, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(Array.from(vectorEncoding(serial, { parallel: true }).subarray(MAX_LOOPS * LOOP_FEATURES)), new Array(MAX_LOOPS).fill(0));
  // Ansor's rule on 2 threads: the flags follow the band it chose
  const auto = parallelizeOuter(Schedule.parse(mm, 'm:4 n:4 k:64 m:64 n:64'), 2);
  const autoFlags = Array.from(vectorEncoding(auto, { parallel: true }).subarray(MAX_LOOPS * LOOP_FEATURES, MAX_LOOPS * LOOP_FEATURES + auto.loops.length));
  assert.equal(autoFlags, auto.loops.map((l) => (l.parallel ? 1 : 0)));
  assert.ok(autoFlags.includes(1));
});

test('the gpu form is unchanged and a boolean still selects it', () => {
  assert.is(vectorSize(true), GPU_MAX_LOOPS * (LOOP_FEATURES + GPU_LOOP_FEATURES));
  assert.equal(Array.from(vectorEncoding(serial, true)), Array.from(vectorEncoding(serial, { gpu: true })));
  assert.throws(() => vectorSize({ gpu: true, parallel: true }), /either gpu or parallel/);
});

test('graph form: loop nodes carry the parallel flag after the loop features', () => {
  assert.is(NODE_FEATURES, NODE_KINDS + GRAPH_LOOP_FEATURES);
  const flagAt = NODE_KINDS + LOOP_FEATURES;
  const g = graphEncoding(banded);
  const loops = g.nodes.filter((n) => n.kind === 'loop');
  assert.equal(loops.map((n) => n.features[flagAt]), [1, 1, 0, 0, 0]);
  // the loop features before it are the vector form's row
  const v = vectorEncoding(banded);
  loops.forEach((n, i) => assert.equal(n.features.slice(NODE_KINDS, flagAt).map(Math.fround), Array.from(v.subarray(i * LOOP_FEATURES, (i + 1) * LOOP_FEATURES))));
  for (const n of g.nodes) assert.is(n.features.length, NODE_FEATURES);
  // tensors and the statement never set it
  for (const n of g.nodes.filter((x) => x.kind !== 'loop')) assert.is(n.features[flagAt], 0);
  assert.equal(graphEncoding(serial).nodes.filter((n) => n.kind === 'loop').map((n) => n.features[flagAt]), [0, 0, 0, 0, 0]);
});

test('random bands: flags in both forms equal the schedule loops\' parallel annotations', () => {
  const rng = new Rng(15);
  let withBand = 0;
  for (let i = 0; i < 200; i++) {
    const s = randomBand(randomSchedule(randomProblem(rng, RANDOM_OPS[i % RANDOM_OPS.length], 1), rng, rng.int(2, 12)), rng);
    const want = s.loops.slice(0, MAX_LOOPS).map((l) => (l.parallel ? 1 : 0));
    if (want.includes(1)) withBand++;
    const v = vectorEncoding(s, { parallel: true });
    assert.equal(Array.from(v.subarray(MAX_LOOPS * LOOP_FEATURES, MAX_LOOPS * LOOP_FEATURES + want.length)), want);
    assert.equal(graphEncoding(s).nodes.filter((n) => n.kind === 'loop').map((n) => n.features[NODE_KINDS + LOOP_FEATURES]), s.loops.map((l) => (l.parallel ? 1 : 0)));
  }
  assert.ok(withBand > 50, `only ${withBand} schedules got a band`);
});

test.run();
