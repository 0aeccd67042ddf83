/**
 * Builds `.device/looptune/`: what a GPU machine without Node.js or node_modules needs to run
 * looptune: the CLI itself (`looptune show|run|search|tune ... --target cuda`) and the cuda
 * benchmark (bench/cuda.ts: info, run, search, collect, fuzz, bench).
 *
 *   npx tsx targets/cuda/bundle.ts          (npm run bundle)
 *
 * It writes
 *   .device/looptune/looptune.mjs             esbuild bundle of cli/main.ts (ESM, node 20)
 *   .device/looptune/looptune-cuda.mjs        esbuild bundle of bench/cuda.ts
 *   .device/looptune/looptune-cuda-model.mjs  esbuild bundle of bench/cuda-model.ts (a whole ONNX model on cuda)
 *   .device/looptune/node_modules/koffi       koffi's JS (kept external: it finds its native
 *   .device/looptune/node_modules/@koromix/koffi-linux-x64   module relative to itself)
 *   .device/looptune/*.wasm                   TensorFlow.js's wasm backend (the cost model)
 *   .device/looptune/pretrained/cuda/costmodel   the shipped cuda cost model (paths in the bundle are
 *                                             relative to it, as agent/ in the tree: agent/pretrained-paths.ts)
 *   .device/looptune/run.sh                   unpacks ../node.xz to /tmp once and runs the CLI
 *   .device/looptune/bench.sh                 the same for the cuda benchmark
 *   .device/looptune/fuzz.sh                  the differential fuzz (bench/fuzz.ts), for the avx512 fuzz on its Xeon
 *   .device/looptune/tc.sh                    the tensor-core benchmark (bench/cuda-tc.ts)
 *   .device/looptune/cuda-model.sh            the whole-model benchmark (bench/cuda-model.ts)
 * and checks that it stays under 40 MB. Pack Node itself with `bash ../shared/tools/device-node.sh`
 * (.device/node.xz, about 24 MB). On the GPU machine, from the repository root:
 *
 *   sh .device/looptune/run.sh search "matmul 2048x2048x2048" --target cuda --searcher evolution --budget 128m
 *   sh .device/looptune/bench.sh bench --out $OUT/cuda.json
 */
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = join(root, '.device', 'looptune');
const LIMIT = 40 * 1024 * 1024;

function size(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((a, e) => a + size(join(path, e)), 0);
}

async function main(): Promise<void> {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const t0 = performance.now();
  // the CLI, the measurement worker it forks for CPU kernels, the cuda benchmark, the CPU scaling benchmark
  const entries = [
    [join(root, 'cli', 'main.ts'), 'looptune.mjs'], [join(root, 'targets', 'runtime', 'worker.ts'), 'looptune-worker.mjs'],
    [join(root, 'bench', 'cuda.ts'), 'looptune-cuda.mjs'], [join(root, 'bench', 'scaling.ts'), 'looptune-scaling.mjs'],
    [join(root, 'bench', 'fuzz.ts'), 'looptune-fuzz.mjs'], [join(root, 'bench', 'cuda-tc.ts'), 'looptune-cuda-tc.mjs'],
    [join(root, 'bench', 'farm.ts'), 'looptune-farm.mjs'], [join(root, 'bench', 'cuda-model.ts'), 'looptune-cuda-model.mjs'],
  ] as const;
  for (const [entry, file] of entries) {
    await build({
      entryPoints: [entry],
      outfile: join(out, file),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      // native or optional packages: koffi is copied below; the others are optional and absent there
      // (onnxruntime-node is imported on demand by run-model's --compare only)
      external: ['koffi', 'llvm-bindings', '@tensorflow/tfjs-node', 'onnxruntime-node'],
      // CommonJS dependencies (TensorFlow.js's wasm loader) expect require and __dirname
      banner: {
        js: "import { createRequire as __looptuneRequire } from 'node:module'; import { fileURLToPath as __looptuneUrl } from 'node:url'; import { dirname as __looptuneDir } from 'node:path';"
          + ' const require = __looptuneRequire(import.meta.url); const __filename = __looptuneUrl(import.meta.url); const __dirname = __looptuneDir(__filename);',
      },
      legalComments: 'none',
      logLevel: 'error',
      // minified (names kept: errors and stacks read the same) the folder stays under LIMIT; the
      // entries carry TensorFlow.js and the farm client, 45 MB unminified with esbuild 0.28
      minify: true, keepNames: true,
    });
  }
  // koffi, and its linux x64 native module, laid out as in node_modules
  const req = createRequire(join(root, 'package.json'));
  // koffi's exports map hides package.json: walk up from its main file
  let koffiDir = dirname(req.resolve('koffi'));
  while (!existsSync(join(koffiDir, 'package.json'))) koffiDir = dirname(koffiDir);
  const skip = new Set(['doc', 'vendor', 'lib', 'cnoke.cjs', 'CHANGELOG.md']);
  cpSync(koffiDir, join(out, 'node_modules', 'koffi'), {
    recursive: true,
    filter: (src) => {
      const rel = relative(koffiDir, src);
      const top = rel.split('/')[0] ?? '';
      return !skip.has(top);
    },
  });
  const nativeDir = join(dirname(koffiDir), '@koromix', 'koffi-linux-x64');
  if (!existsSync(nativeDir)) throw new Error(`koffi's native module for linux x64 is missing (${nativeDir})`);
  cpSync(nativeDir, join(out, 'node_modules', '@koromix', 'koffi-linux-x64'), {
    recursive: true,
    filter: (src) => !relative(nativeDir, src).startsWith('musl'),
  });
  // TensorFlow.js's wasm backend looks for its binaries next to the script that loads it
  const wasmDir = join(dirname(req.resolve('@tensorflow/tfjs-backend-wasm')), '..');
  for (const f of readdirSync(join(wasmDir, 'dist')).filter((x) => x.endsWith('.wasm'))) cpSync(join(wasmDir, 'dist', f), join(out, f));
  const model = join(root, 'agent', 'pretrained', 'cuda', 'costmodel');
  if (existsSync(model)) cpSync(model, join(out, 'pretrained', 'cuda', 'costmodel'), { recursive: true });
  else console.log('note: no shipped cuda cost model yet (agent/pretrained/cuda/costmodel): searches run without one');
  for (const model of ['avx512', 'avx2']) {
    const dir = join(root, 'agent', 'pretrained', model);
    if (existsSync(dir)) cpSync(dir, join(out, 'pretrained', model), { recursive: true, filter: (src) => !src.endsWith('.jsonl') });
  }
  const scripts = [
    ['run.sh', 'looptune.mjs', 'the looptune CLI'], ['bench.sh', 'looptune-cuda.mjs', 'the cuda benchmark (bench/cuda.ts)'],
    ['scaling.sh', 'looptune-scaling.mjs', 'the CPU scaling benchmark (bench/scaling.ts)'],
    ['fuzz.sh', 'looptune-fuzz.mjs', 'the differential fuzz (bench/fuzz.ts; its host has AVX-512: the avx512 fuzz runs there)'],
    ['tc.sh', 'looptune-cuda-tc.mjs', 'the tensor-core benchmark (bench/cuda-tc.ts: bf16/f16/tf32 vs cublasGemmEx, GPU fuzz per precision)'],
    ['farm.sh', 'looptune-farm.mjs', 'the measurement-farm benchmark (bench/farm.ts; --redis-server .device/redis/redis-server)'],
    ['cuda-model.sh', 'looptune-cuda-model.mjs', 'the whole-model benchmark on cuda (bench/cuda-model.ts: an ONNX file at batch 1 and 8 vs the CPU reference)'],
  ] as const;
  for (const [script, bundle, what] of scripts) {
    const path = join(out, script);
    writeFileSync(path, [
      '#!/bin/sh',
      `# Runs ${what} on a machine without Node.js: sh .device/looptune/${script} <command> [options]`,
      'set -e',
      'here=$(cd "$(dirname "$0")" && pwd)',
      'node=${LOOPTUNE_NODE:-/tmp/looptune-node}',
      'if [ ! -x "$node" ]; then xz -dc "$here/../node.xz" > "$node.tmp" && chmod +x "$node.tmp" && mv "$node.tmp" "$node"; fi',
      'export LD_LIBRARY_PATH="$here/../redis${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"',
      `exec "$node" "$here/${bundle}" "$@"`,
      '',
    ].join('\n'));
    chmodSync(path, 0o755);
  }
  // Debian's redis-server and the two libraries it links beyond glibc, for the farm benchmark on a
  // machine without the package (run it with LD_LIBRARY_PATH=.device/redis, which farm.sh sets)
  const redis = '/usr/bin/redis-server';
  if (existsSync(redis)) {
    const dir = join(root, '.device', 'redis');
    mkdirSync(dir, { recursive: true });
    cpSync(redis, join(dir, 'redis-server'), { dereference: true });
    for (const lib of ['liblzf.so.1', 'libjemalloc.so.2']) {
      const from = ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu'].map((d) => join(d, lib)).find((f) => existsSync(f));
      if (from) cpSync(from, join(dir, lib), { dereference: true });
      else console.log(`note: ${lib} not found: the bundled redis-server may not start`);
    }
  } else console.log('note: no /usr/bin/redis-server (apt-get install redis-server): the farm benchmark needs one on the GPU machine');
  const total = size(out);
  if (total > LIMIT) throw new Error(`.device/looptune is ${(total / 2 ** 20).toFixed(1)} MB, over the 40 MB limit`);
  const node = join(root, '.device', 'node.xz');
  console.log(`bundled .device/looptune (${(total / 2 ** 20).toFixed(1)} MB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (!existsSync(node)) console.log('note: .device/node.xz is missing; pack Node with: bash ../shared/tools/device-node.sh');
  console.log('on the GPU machine: sh .device/looptune/run.sh search "matmul 2048x2048x2048" --target cuda --budget 128m');
  console.log('                    sh .device/looptune/bench.sh bench --out $OUT/cuda.json');
  console.log('                    sh .device/looptune/tc.sh bench --fuzz 500 --out $OUT/cuda-tc.json');
  console.log('                    sh .device/looptune/cuda-model.sh resnet18 --batches 1,8 --out $OUT/cuda-model.json');
}

await main();
