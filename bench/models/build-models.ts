/**
 * `npx tsx bench/models/build-models.ts [--out DIR] [--seed S] [names...]`: writes the zoo's models
 * (ir/model/zoo: random weights, no downloads) as `<name>.onnx` under DIR (default
 * bench/models/onnx/, git-ignored). Without names, all of them; an unknown name fails with one line
 * before anything is written.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { exitWithFailure } from '../../cli/errors.ts';
import { fail } from '../../ir/errors.ts';
import { ZOO_NAMES, zooModel, zooName, zooSignature } from '../../ir/model/zoo/index.ts';

const DEFAULT_OUT = join(import.meta.dirname, 'onnx');

const program = new Command()
  .name('build-models')
  .description(`writes ONNX test models; names: ${ZOO_NAMES.join(', ')} (default: all)`)
  .argument('[names...]', 'models to write')
  .option('--out <dir>', 'folder of the .onnx files', DEFAULT_OUT)
  .option('--seed <n>', 'seed of the random weights', '1')
  .parse(process.argv);

try {
  const { out, seed: seedText } = program.opts<{ out: string; seed: string }>();
  const seed = Number(seedText);
  if (!/^\d+$/.test(seedText)) fail(`--seed must be a non-negative integer, got "${seedText}"`);
  const names = (program.args.length ? program.args : [...ZOO_NAMES]).map(zooName);
  mkdirSync(out, { recursive: true });
  for (const name of names) {
    const start = performance.now();
    const bytes = zooModel(name, { seed });
    const path = join(out, `${name}.onnx`);
    writeFileSync(path, bytes);
    const { input, output } = zooSignature(name);
    const dims = (d: readonly (number | string)[]) => `[${d.join(',')}]`;
    console.log(`${path}: ${(bytes.length / 2 ** 20).toFixed(1)} MiB, ${input.name}${dims(input.dims)} -> ${output.name}${dims(output.dims)}, built in ${((performance.now() - start) / 1000).toFixed(2)} s`);
  }
} catch (e) {
  exitWithFailure(e);
}
