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

type Bench = (opts: { quick: boolean }) => Promise<unknown>;
const BENCHES: Record<string, () => Promise<Bench>> = {
  codegen: async () => benchCodegen,
  search: async () => benchSearch,
  llvm: async () => benchLlvm,
  tune: async () => benchTune,
  parallel: async () => benchParallel,
  'kernel-call': async () => benchKernelCall,
  layers: async () => benchLayers,
};

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const costOnly = args.includes('--cost-only');
const names = args.filter((a) => !a.startsWith('--'));
const unknown = names.filter((n) => !(n in BENCHES));
if (unknown.length) {
  console.error(`bench: unknown benchmark ${unknown.join(', ')} (expected: ${Object.keys(BENCHES).join(', ')})`);
  process.exit(1);
}
for (const name of names.length ? names : Object.keys(BENCHES)) {
  console.log(`== ${name}`);
  const run = await BENCHES[name]!();
  await run({ quick, ...(costOnly ? { costOnly } : {}) });
}
