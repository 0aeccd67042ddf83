/**
 * `npm run fuzz -- [--target avx512|avx2|...] [--cases N] [--seed S]`: the differential fuzz of
 * generated kernels against the interpreter, on guarded buffers. Exits non-zero on any mismatch,
 * crash or code-generation error, printing what reproduces the first ones. Writes
 * bench/results/fuzz-<target>.json. `--layers` draws padded layers, average pools and epilogues.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import { fuzzTarget } from '../targets/fuzz.ts';
import { fuzzNeon } from '../targets/arm64/runner.ts';
import { backend } from '../targets/registry.ts';
import { hostTarget } from '../targets/runtime/host.ts';
import type { X86Isa } from '../targets/x86/emit.ts';
import { forcedPackingFuzz } from './packing-fuzz.ts';
import { LAYER_OPS, randomLayer, type Rng } from '../ir/random.ts';

const opts = new Command()
  .option('--target <name>', 'target to fuzz (default: the host\'s best x86 ISA)')
  .option('--cases <n>', 'number of random problem x schedule cases', (v) => Number(v), 10000)
  .option('--seed <n>', 'seed of the case generator', (v) => Number(v), 1)
  .option('--packing', 'x86: force the packing rule on small matmul/bmm sketches (bench/packing-fuzz.ts); writes fuzz-<target>-packing.json')
  .option('--overwrite', 'compile half of the cases to overwrite their output (compileKernel\'s kernels); writes fuzz-<target>-overwrite.json')
  .option('--layers', 'draw real layers: padding, output borders, average pools and fused epilogues (ir/random.ts randomLayer); writes fuzz-<target>-layers.json')
  .option('--threads <n>', 'give 4 of 5 schedules a random parallel band and run them on 1..n threads; writes fuzz-<target>-threads<n>.json', (v) => Number(v))
  .parse(process.argv)
  .opts<{ target?: string; cases: number; seed: number; packing?: boolean; threads?: number; overwrite?: boolean; layers?: boolean }>();

const target = opts.target ?? hostTarget();
backend(target);
// neon runs batched under qemu (one emulator process per batch); the others through their executor
const executor = target === 'neon' ? null : await backend(target).open({ timeoutSeconds: 30 });
const bar = new cliProgress.SingleBar({ format: `fuzz ${target} [{bar}] {value}/{total} cases, {failed} failed, {eta_formatted} left` }, cliProgress.Presets.shades_classic);
bar.start(opts.cases, 0, { failed: 0 });
try {
  const onProgress = (done: number, failed: number) => bar.update(done, { failed });
  if (opts.packing && target !== 'avx2' && target !== 'avx512') throw new Error(`--packing: x86 targets only, not ${target}`);
  if (opts.layers && !executor) throw new Error('--layers: not on neon yet (its batched qemu fuzz draws plain problems)');
  const report = executor
    ? await fuzzTarget({
      target, cases: opts.cases, seed: opts.seed, runner: executor.run, onProgress,
      ...(opts.packing ? forcedPackingFuzz(target as X86Isa) : {}),
      ...(opts.threads !== undefined ? { threads: Array.from({ length: opts.threads }, (_, i) => i + 1) } : {}),
      ...(opts.overwrite ? { overwrite: true } : {}),
      ...(opts.layers ? { ops: LAYER_OPS, problemFor: (rng: Rng, op: string) => randomLayer(rng, op) } : {}),
    })
    : await fuzzNeon(opts.cases, opts.seed, onProgress);
  bar.stop();
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(`bench/results/fuzz-${target}${opts.packing ? '-packing' : ''}${opts.threads !== undefined ? `-threads${opts.threads}` : ''}${opts.overwrite ? '-overwrite' : ''}${opts.layers ? '-layers' : ''}.json`, JSON.stringify(report, null, 2) + '\n');
  console.log(`${report.cases} cases in ${report.seconds.toFixed(1)} s: ${report.mismatches} mismatches, ${report.crashes} crashes, ${report.codegenErrors} code-generation errors${report.packed !== undefined ? `; ${report.packed} kernels packed` : ''}`);
  if (report.overwriting !== undefined) console.log(`kernels overwriting their output: ${report.overwriting}`);
  if (report.epilogueInTile !== undefined || report.epiloguePass !== undefined) console.log(`epilogues in the register tile: ${report.epilogueInTile ?? 0}, in a separate pass: ${report.epiloguePass ?? 0}`);
  if (report.parallelByThreads) console.log(`parallel kernels by threads: ${Object.entries(report.parallelByThreads).map(([t, n]) => `${t}: ${n}`).join(', ')}`);
  console.log(`per op: ${Object.entries(report.perOp).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const f of report.failures.slice(0, 5)) console.log(`  ${f.kind}: looptune run "${f.problem}" --schedule "${f.schedule}" --target ${target}  # ${f.message}`);
  process.exitCode = report.mismatches + report.crashes + report.codegenErrors > 0 ? 1 : 0;
} finally {
  bar.stop();
  await executor?.close();
}
