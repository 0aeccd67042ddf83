/** `looptune peak`: the machine's FMA peak on one core and on N, the denominators of every reward. */
import type { Command } from 'commander';
import { LoopTuneError } from '../ir/errors.ts';
import { HOST_TARGETS, hostTarget, isHostTarget } from '../targets/runtime/host.ts';
import { MeasurementPool } from '../targets/runtime/measure.ts';
import { forkJoinSeconds, peakRecord, type PeakRecord } from '../targets/runtime/peak.ts';
import { defaultThreads } from '../targets/runtime/threads.ts';
import { threadCount } from './options.ts';

export function registerPeak(program: Command): void {
  program
    .command('peak')
    .description("measure this machine's fp32 FMA peak with a generated kernel of independent FMA chains, on one core and on --threads cores side by side")
    .option('--target <isa>', 'avx2 or avx512 (default: the host\'s best)')
    .option('--threads <n>', 'cores measured together beside one (default: every core)', threadCount)
    .option('--fresh', 'measure again instead of using the cached figures')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { target?: string; threads?: number; fresh?: boolean; json?: boolean }) => {
      const isa = opts.target ?? hostTarget();
      // the FMA probe is the x86 ISAs' (targets/runtime/peak.ts)
      if (!isHostTarget(isa)) throw new LoopTuneError(`peak: unknown target '${isa}' (expected ${HOST_TARGETS.join(' or ')})`);
      const threads = opts.threads ?? defaultThreads();
      // in a worker: its libgomp threads are pinned one per core, as when kernels are measured
      const pool = new MeasurementPool();
      try {
        const one = await peakRecord(isa, { fresh: opts.fresh ?? false, pool });
        const many = threads > 1 ? await peakRecord(isa, { fresh: opts.fresh ?? false, pool, threads }) : undefined;
        const forkJoin = threads > 1 ? await forkJoinSeconds(pool, threads) : undefined;
        if (opts.json) {
          console.log(JSON.stringify({ ...one, ...(many ? { threaded: many, scaling: many.gflops / one.gflops } : {}), ...(forkJoin !== undefined ? { forkJoinMicros: forkJoin * 1e6 } : {}) }, null, 2));
          return;
        }
        const line = (r: PeakRecord, n: number): string =>
          `${isa} peak, ${n} thread${n > 1 ? 's' : ''}: ${r.gflops.toFixed(1)} GFLOPS (${r.chains} independent FMA chains per core; ${r.model})${r.cached ? ' [cached; --fresh to re-measure]' : ''}${r.disturbed ? ' [measured on a busy machine: low, not cached]' : ''}`;
        console.log(line(one, 1));
        console.log(one.perChains.map((c) => `  ${c.chains} chains: ${c.gflops.toFixed(1)}`).join('\n'));
        if (many) {
          console.log(line(many, threads));
          console.log(`  ${(many.gflops / one.gflops).toFixed(2)}x one thread (${((100 * many.gflops) / (one.gflops * threads)).toFixed(0)}% parallel efficiency)`);
        }
        if (forkJoin !== undefined) console.log(`fork-join (libgomp, ${threads} threads): ${(forkJoin * 1e6).toFixed(1)} µs per parallel kernel call`);
      } finally {
        await pool.close();
      }
    });
}
