/**
 * The GPU results page renders from H200 results (tests/fixtures/cuda-bench.json, a copy of a
 * bench/results/cuda.json): two bar charts, two best-so-far curves, and one table row per matmul
 * size and per ResNet-18 layer.
 */
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { renderCudaReport } from '../../bench/cuda-report.ts';

test('the cuda bench results render as a page of plots and tables', () => {
  const r = JSON.parse(readFileSync(new URL('../fixtures/cuda-bench.json', import.meta.url), 'utf8')) as Parameters<typeof renderCudaReport>[0];
  const html = renderCudaReport(r);
  assert.is((html.match(/<svg/g) ?? []).length, 4);
  for (const m of r.matmul) assert.ok(html.includes(`<td>${m.problem}</td>`), m.problem);
  for (const c of r.conv) assert.ok(html.includes(`<td>${c.layer}</td>`), c.layer);
  assert.ok(html.includes('cuDNN (FMA math)'));
});

test.run();
