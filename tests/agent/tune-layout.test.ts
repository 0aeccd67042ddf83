/**
 * tuneLayouts (issue 16 item 4): a conv tuned in NCHW and in its NCHWc twin on one device, the
 * twin charged for its two conversions, the faster chosen; ops without a blocked layout stay NCHW.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tuneLayouts } from '../../agent/tune-layout.ts';
import { parseProblem } from '../../ir/spec.ts';
import { backend } from '../../targets/registry.ts';
import { RUN_TARGET } from '../host.ts';

test('a 7x7 conv: both layouts tuned and verified, the choice follows the measured seconds', async () => {
  const b = backend(RUN_TARGET);
  const c = await tuneLayouts(parseProblem('conv2d n1 c32 h7 w7 k32 r3 s3 stride1 pad1 +bias +relu'), { target: b, threads: 1, budgetSeconds: 0.5, noRecords: true });
  assert.ok(c.blocked && c.nchw.verified && c.blocked.verified);
  assert.match(c.blockedSpec!, new RegExp(` layout${b.caps.vectorLanes} \\+bias \\+relu$`));
  assert.is(c.blocked.problem, c.blockedSpec);
  assert.ok(c.conversionSeconds! > 0 && Number.isFinite(c.conversionSeconds!), `conversions ${c.conversionSeconds}`);
  const blockedWins = c.blockedSeconds! + c.conversionSeconds! < c.nchwSeconds;
  assert.is(c.layout, blockedWins ? `nchw${b.caps.vectorLanes}c` : 'nchw');
  assert.is(c.keptLayout, c.blockedSeconds! < c.nchwSeconds ? `nchw${b.caps.vectorLanes}c` : 'nchw');
});

test('a matmul has no blocked layout: NCHW, nothing else tuned', async () => {
  const c = await tuneLayouts(parseProblem('matmul 32x32x32'), { target: RUN_TARGET, threads: 1, budgetSeconds: 0.3, noRecords: true });
  assert.is(c.layout, 'nchw');
  assert.is(c.blocked, undefined);
  assert.ok(c.nchw.verified);
});

test.run();
