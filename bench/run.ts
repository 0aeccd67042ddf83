/**
 * `npm run bench [-- <name> ...] [--quick]`: runs the named benchmarks (default: all that are
 * available on this machine) one after another, never two at once, and writes their JSON under
 * bench/results/.
 */
import { benchCodegen } from './codegen.ts';
import { benchSearch } from './search.ts';
import { benchLlvm } from './llvm.ts';
import { benchTune } from './tune.ts';
import { benchParallel } from './parallel.ts';
import { benchKernelCall } from './kernel-call.ts';
import { benchLayers } from './layers.ts';
import { benchModels } from './models.ts';

/** A benchmark; `options` holds the command line's `--name value` pairs (e.g. models' --budget 60). */
type Bench = (opts: { quick: boolean; options: Record<string, string> }) => Promise<unknown>;
const BENCHES: Record<string, () => Promise<Bench>> = {
  codegen: async () => benchCodegen,
  search: async () => benchSearch,
  llvm: async () => benchLlvm,
  tune: async () => benchTune,
  parallel: async () => benchParallel,
  'kernel-call': async () => benchKernelCall,
  layers: async () => benchLayers,
  models: async () => async ({ quick, options }) => benchModels({
    quick,
    ...(options.models ? { models: options.models.split(',') } : {}),
    ...(options.threads ? { threads: options.threads.split(',').map(Number) } : {}),
    ...(options.budget ? { budget: Number(options.budget.replace(/s$/, '')) } : {}),
    ...(options.more ? { more: Number(options.more.replace(/s$/, '')) } : {}),
    ...(process.argv.includes('--memory-only') ? { memoryOnly: true } : {}),
  }),
  // needs redis-server (Debian's package); --workers 1,2,4 adds the scaling mode, --seconds its time per count
  farm: async () => {
    const { benchFarm, workerCounts } = await import('./farm.ts');
    return async ({ quick, options }) => benchFarm({
      quick,
      ...(options.workers ? { workers: workerCounts(options.workers) } : {}),
      ...(options.seconds ? { seconds: Number(options.seconds.replace(/s$/, '')) } : {}),
    });
  },
};

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const costOnly = args.includes('--cost-only');
const VALUE_OPTIONS = new Set(['--models', '--threads', '--budget', '--more', '--workers', '--seconds']);
const options: Record<string, string> = {};
const names: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (VALUE_OPTIONS.has(a)) {
    const v = args[++i];
    if (v === undefined) {
      console.error(`bench: ${a} needs a value`);
      process.exit(1);
    }
    options[a.slice(2)] = v;
  } else if (!a.startsWith('--')) names.push(a);
}
const unknown = names.filter((n) => !(n in BENCHES));
if (unknown.length) {
  console.error(`bench: unknown benchmark ${unknown.join(', ')} (expected: ${Object.keys(BENCHES).join(', ')})`);
  process.exit(1);
}
for (const name of names.length ? names : Object.keys(BENCHES)) {
  console.log(`== ${name}`);
  const run = await BENCHES[name]!();
  await run({ quick, options, ...(costOnly ? { costOnly } : {}) });
}
