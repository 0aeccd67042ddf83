import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runSearch, runCompare } from '../../../agent/search/run.ts';
import { writeCompareReport, aggregateCurve, geomean, type CompareData } from '../../../agent/report/index.ts';
import { linePlot, barPlot, niceTicks } from '../../../agent/report/svg.ts';
import { RecordStore } from '../../../env/records.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'looptune-run-'));

test('runSearch (synthetic target): result fields, records written and reused', async () => {
  const recordsPath = path.join(dir, 'records.jsonl');
  const progress: number[] = [];
  const r = await runSearch('matmul 64x64x64', {
    searcher: 'greedy', budget: { measurements: 25 }, target: 'synthetic', recordsPath,
    onProgress: (p) => progress.push(p.measurements),
  });
  assert.is(r.problem, 'matmul 64x64x64');
  assert.is(r.target, 'synthetic');
  assert.is(r.searcher, 'greedy2');
  assert.is(r.measurements, 25);
  assert.ok(r.speedupOverDefault > 2);
  assert.is(r.fractionOfPeak, r.gflops / r.peakGflops);
  assert.ok(r.schedule.length > 0);
  assert.is(r.openblasGflops, undefined);
  assert.is(progress[progress.length - 1], 25);
  assert.is(RecordStore.open(recordsPath).size, 25);
  const again = await runSearch('matmul 64x64x64', { searcher: 'greedy', budget: { measurements: 25 }, target: 'synthetic', recordsPath });
  assert.is(again.timed, 0);
  assert.is(again.gflops, r.gflops);
  const blas = await runSearch('matmul 64x64x64', { searcher: 'random', budget: { measurements: 3 }, target: 'synthetic', compareBaseline: true });
  assert.match(blas.openblasError!, /synthetic/);
  assert.match(blas.baselineError!, /no baseline figure on the synthetic target/);
  assert.is(blas.baseline, undefined);
});

test('runCompare writes a self-contained HTML report and the same data as JSON', async () => {
  const outDir = path.join(dir, 'cmp');
  let calls = 0;
  const { data, html, json } = await runCompare(['matmul 64x64x64', 'matmul 48x80x32'], {
    searchers: ['random', 'greedy', 'beam', 'beam-dfs', 'evolution'], budget: { measurements: 20 }, target: 'synthetic', outDir,
    onProgress: () => calls++,
  });
  assert.ok(calls > 0);
  assert.is(data.problems.length, 2);
  assert.equal(data.searchers, ['random', 'greedy2', 'beam-bfs4', 'beam-dfs4', 'evolution']);
  for (const p of data.problems) {
    assert.is(p.results.length, 5);
    for (const r of p.results) assert.ok(r.measurements <= 20 && r.gflops >= p.defaultGflops);
  }
  for (const s of data.summary) assert.ok(s.geomeanSpeedupOverDefault > 1, s.searcher);
  const page = readFileSync(html!, 'utf8');
  assert.ok(page.startsWith('<!doctype html>'));
  assert.ok((page.match(/<svg /g) ?? []).length >= 4, 'aggregate, bars and one plot per problem');
  assert.not.match(page, /\b(src|href)=/);
  assert.not.match(page.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, ''), /https?:/);
  assert.equal(JSON.parse(readFileSync(json!, 'utf8')), JSON.parse(JSON.stringify(data)));
  // a dataset reference with a limit
  const ds = await runCompare('tall-skinny', { searchers: ['random'], budget: { measurements: 3 }, target: 'synthetic', limit: 2 });
  assert.is(ds.data.problems.length, 2);
  assert.is(ds.html, undefined);
});

test('aggregate curve: geomean over problems of best/peak, stepping at every improvement', () => {
  const mk = (h: [number, number][]) => h.map(([m, g]) => ({ t: m / 10, measurements: m, bestGflops: g }));
  const problems = [
    { spec: 'a', flops: 1, defaultGflops: 1, results: [{ searcher: 's', history: mk([[1, 10], [5, 40]]) }] },
    { spec: 'b', flops: 1, defaultGflops: 1, results: [{ searcher: 's', history: mk([[1, 10], [3, 90]]) }] },
  ] as unknown as CompareData['problems'];
  const c = aggregateCurve(problems, 's', 100, 'measurements');
  assert.equal(c.map(([x]) => x), [1, 3, 5]);
  assert.ok(Math.abs(c[0]![1] - 0.1) < 1e-12);
  assert.ok(Math.abs(c[1]![1] - Math.sqrt(0.1 * 0.9)) < 1e-12);
  assert.ok(Math.abs(c[2]![1] - Math.sqrt(0.4 * 0.9)) < 1e-12);
  assert.is(geomean([2, 8]), 4);
  assert.is(geomean([]), 0);
});

test('svg helpers', () => {
  assert.equal(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.equal(niceTicks(0, 97), [0, 20, 40, 60, 80]);
  const l = linePlot([{ name: 'a<b', points: [[0, 1], [2, 3]] }], { title: 't' });
  assert.ok(l.startsWith('<svg') && l.includes('a&lt;b') && l.includes('<polyline'));
  const b = barPlot([{ label: 'p', values: [{ name: 'x', value: 1 }, { name: 'y', value: 2 }] }]);
  assert.is((b.match(/<rect /g) ?? []).length, 1 + 2 + 2, 'frame, two bars, two legend swatches');
  const data = { title: 'x', createdAt: '', host: 'h', target: 't', peakGflops: 1, budget: { seconds: 1 }, seed: 0, searchers: [], problems: [], summary: [] };
  const out = writeCompareReport(path.join(dir, 'empty'), data);
  assert.ok(readFileSync(out.html, 'utf8').includes('<h1>x</h1>'));
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
