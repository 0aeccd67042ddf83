/**
 * The sampled oracle (large problems): on every op it accepts the interpreter's own result and
 * rejects a result with one wrong element among those it samples (the first and last always are).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem } from '../../ir/spec.ts';
import { Schedule } from '../../ir/schedule.ts';
import { elementCount } from '../../ir/problem.ts';
import { checkSampledAgainstOracle, interpret, randomArray } from '../../ir/interpret.ts';

const SPECS = [
  'matmul 37x41x53', 'bmm b3 m5 n6 k7', 'conv1d n2 c3 w12 k4 s3', 'conv2d n2 c3 h9 w10 k4 r3 s2 stride2',
  'conv3d n1 c2 d4 h5 w6 k3 t2 r2 s3', 'add 30x7', 'mul 11x5', 'relu 40', 'reduce 13x17', 'copy 9x4', 'transpose 9x7',
];

for (const spec of SPECS) {
  test(`${spec}: accepts the interpreter's result, rejects a wrong last element`, () => {
    const p = parseProblem(spec);
    const inputs = p.tensors.slice(1).map((t, i) => randomArray(elementCount(t), 5 + i));
    const init = randomArray(elementCount(p.tensors[0]!), 3);
    const right = Float32Array.from(interpret(Schedule.initial(p), inputs, init));
    const ok = checkSampledAgainstOracle(p, inputs, init, right, 64, 9);
    assert.ok(ok.ok, `error ${ok.maxError} > ${ok.tolerance}`);
    assert.is(ok.checked, 64);
    const wrong = right.slice();
    wrong[wrong.length - 1] = wrong[wrong.length - 1]! + 0.05;
    assert.not.ok(checkSampledAgainstOracle(p, inputs, init, wrong, 64, 9).ok);
    const nan = right.slice();
    nan[0] = NaN;
    assert.not.ok(checkSampledAgainstOracle(p, inputs, init, nan, 64, 9).ok);
  });
}

test.run();
