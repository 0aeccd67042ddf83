/** The GPU baselines refuse what their bindings cannot compute (grouped or dilated convs) with one line. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem } from '../../../ir/spec.ts';
import { LoopTuneError } from '../../../ir/errors.ts';
import { im2colFor } from '../../../targets/cuda/baselines.ts';

test('im2col: plain conv2d is planned; grouped and dilated ones are refused', () => {
  assert.ok(im2colFor(parseProblem('conv2d n1 c16 h10 w10 k16 r3 s3 stride1')).elements > 0);
  for (const spec of ['conv2d n1 c16 h10 w10 k16 r3 s3 stride1 groups16', 'conv2d n1 c16 h12 w12 k16 r3 s3 stride1 dilation2']) {
    assert.throws(() => im2colFor(parseProblem(spec)), (e: unknown) => e instanceof LoopTuneError && /ungrouped, undilated/.test((e as Error).message));
  }
});

test.run();
