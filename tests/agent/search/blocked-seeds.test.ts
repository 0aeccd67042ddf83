/** NCHWc register-tile seeds (agent/search/sketch.ts blockedSeeds): shape of the tile, and each seed computes the layer. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { interpret, maxRelativeError, randomArray } from '../../../ir/interpret.ts';
import { blockedVariant } from '../../../ir/layout.ts';
import { elementCount } from '../../../ir/problem.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { parseProblem } from '../../../ir/spec.ts';
import { blockedSeeds, cpuSketches } from '../../../agent/search/sketch.ts';

const TARGETS = [{ lanes: 16, registers: 31 }, { lanes: 8, registers: 14 }] as const;
const LAYERS = [
  'conv2d n1 c32 h7 w7 k64 r3 s3 stride1 pad1 +bias +relu',
  'conv2d n1 c32 h14 w14 k32 r1 s1 stride2 +bias',
  'conv2d n1 c32 h8 w8 k32 r3 s3 stride1 groups32 pad1 +bias +relu6',
  'maxpool2d n1 c32 h14 w14 r3 s3 stride2 pad1',
];

for (const target of TARGETS) {
  for (const spec of LAYERS) {
    test(`blocked seeds of ${spec} (${target.lanes} lanes): the channel block innermost, accumulators fit, same result as the default`, () => {
      const p = blockedVariant(parseProblem(spec), target.lanes)!;
      const seeds = blockedSeeds(p, target, 10);
      assert.ok(seeds.length >= 2, `${seeds.length} seeds`);
      const inputs = p.tensors.slice(1).map((t, i) => randomArray(elementCount(t), 7 + i));
      const expected = interpret(Schedule.initial(p), inputs);
      const names = p.vars.map((v) => v.name);
      for (const s of seeds) {
        const loops = s.loops;
        const last = loops[loops.length - 1]!;
        assert.is(names[last.var], p.op.startsWith('maxpool') ? 'ci' : 'ki', s.text());
        assert.is(last.size, target.lanes, s.text());
        assert.is(names[loops[loops.length - 2]!.var], 'w', s.text());
        // the register tile is the output loops below the last reduction: rows x columns vectors
        let accumulators = 1;
        for (let i = loops.length - 2; i >= 0 && !['cb', 'ci', 'r', 's'].includes(names[loops[i]!.var]!); i--) accumulators *= loops[i]!.size;
        assert.ok(accumulators <= target.registers - 2, `${s.text()}: ${accumulators} accumulators`);
        assert.ok(maxRelativeError(interpret(s, inputs), expected) < 1e-12, s.text());
      }
    });
  }
}

test('blocked seeds only for a blocked layer whose block is the vector; the CPU sketches hand them out with the GEMM seeds', () => {
  assert.equal(blockedSeeds(parseProblem('conv2d n1 c32 h7 w7 k64 r3 s3 pad1'), TARGETS[0], 10), []);
  assert.equal(blockedSeeds(blockedVariant(parseProblem('conv2d n1 c32 h7 w7 k64 r3 s3 pad1'), 8)!, TARGETS[0], 10), []);
  assert.equal(blockedSeeds(parseProblem('matmul 64x64x64'), TARGETS[0], 10), []);
  const p = blockedVariant(parseProblem(LAYERS[0]!), 16)!;
  const handed = cpuSketches(TARGETS[0]).seeds!(p, 10).map((s) => s.text());
  assert.equal(handed, blockedSeeds(p, TARGETS[0], 10).map((s) => s.text()));
});

test.run();
