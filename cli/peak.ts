/** `looptune peak`: the machine's FMA peak, the denominator of every reward. */
import type { Command } from 'commander';
import { LoopTuneError } from '../ir/errors.ts';
import { HOST_TARGETS, hostTarget, isHostTarget } from '../targets/runtime/host.ts';
import { peakRecord } from '../targets/runtime/peak.ts';

export function registerPeak(program: Command): void {
  program
    .command('peak')
    .description("measure this machine's single-core fp32 FMA peak with a generated kernel of independent FMA chains")
    .option('--target <isa>', 'avx2 or avx512 (default: the host\'s best)')
    .option('--fresh', 'measure again instead of using the cached figure')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { target?: string; fresh?: boolean; json?: boolean }) => {
      const isa = opts.target ?? hostTarget();
      // the FMA probe is the x86 ISAs' (targets/runtime/peak.ts)
      if (!isHostTarget(isa)) throw new LoopTuneError(`peak: unknown target '${isa}' (expected ${HOST_TARGETS.join(' or ')})`);
      const r = await peakRecord(isa, { fresh: opts.fresh ?? false });
      if (opts.json) console.log(JSON.stringify(r, null, 2));
      else {
        console.log(`${isa} peak: ${r.gflops.toFixed(1)} GFLOPS (${r.chains} independent FMA chains; ${r.model})${r.cached ? ' [cached; --fresh to re-measure]' : ''}`);
        console.log(r.perChains.map((c) => `  ${c.chains} chains: ${c.gflops.toFixed(1)}`).join('\n'));
      }
    });
}
