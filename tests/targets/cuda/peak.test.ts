/**
 * The GPU peak kernel and the launch-time floor, without a GPU: the peak PTX passes ptxas (a
 * failure where ptxas is missing) with CHAINS x UNROLL FMAs in its loop, and the floor
 * rejects a schedule that binds 4 threads to a 4096^3 matmul while a tiled one passes.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem } from '../../../ir/spec.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { peakPtx, PEAK_ENTRY } from '../../../targets/cuda/peak.ts';
import { compileCuda } from '../../../targets/cuda/target.ts';
import { launchFloorSeconds, MAX_LAUNCH_SECONDS } from '../../../targets/cuda/tuner.ts';

const PTXAS = process.env.PTXAS ?? 'ptxas';

test('the peak kernel: 128 independent FMAs per loop iteration, accepted by ptxas -arch=sm_90', () => {
  const ptx = peakPtx();
  assert.ok(ptx.includes(`.visible .entry ${PEAK_ENTRY}(`));
  const loop = ptx.slice(ptx.indexOf('LOOP:'), ptx.indexOf('@%p bra LOOP'));
  assert.is(loop.split('\n').filter((l) => l.includes('fma.rn.f32')).length, 128);
  // ptxas comes with this kind of machine's image (CUDA 13): without it the check fails, it never skips
  assert.is(spawnSync(PTXAS, ['--version']).status, 0, `'${PTXAS}' not found`);
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'looptune-peak-')), 'peak.ptx');
  writeFileSync(file, ptx);
  const r = spawnSync(PTXAS, ['-arch=sm_90', '-v', file, '-o', `${file}.cubin`], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /0 bytes spill stores/);
});

test('launch floor: 4 threads for a 4096^3 matmul are not launched, a tiled kernel is', () => {
  const p = parseProblem('matmul 4096x4096x4096');
  const starved = compileCuda(Schedule.parse(p, 'm:2t m:1t m:4 m:4 m:2b m:8 m:8 n:4096 k:4096'));
  const tiled = compileCuda(Schedule.parse(p, 'm:32b n:32b k:512s m:1 n:2 m:16t n:16t k:8 m:8 n:4'));
  const h200 = { clock: 1.98, peak: 132 * 128 * 2 * 1.98 };
  // 137 GFLOP at 4 threads x 4 GFLOPS: over 8 s
  assert.ok(launchFloorSeconds(starved, h200.clock, h200.peak) > 8);
  assert.ok(launchFloorSeconds(starved, h200.clock, h200.peak) > MAX_LAUNCH_SECONDS);
  // the tiled kernel's floor is the whole GPU at peak: about 2 ms
  const floor = launchFloorSeconds(tiled, h200.clock, h200.peak);
  assert.ok(floor > 0.001 && floor < 0.003, `floor ${floor}`);
});

test.run();
