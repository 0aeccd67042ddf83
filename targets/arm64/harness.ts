/**
 * Builds the AArch64 harness (source: harness-asm.ts, protocol: job-format.ts) once and caches it
 * under `os.tmpdir()/looptune-arm64-harness-<hash of the source>/harness`; a changed source gets a
 * new directory, so a stale binary is never used. Concurrent builders (test files, workers) each
 * build in a private file and rename it into place, which is atomic.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoopTuneError } from '../../ir/errors.ts';
import { runTool } from '../runtime/child-tool.ts';
import { HARNESS_ASM } from './harness-asm.ts';
import { requireTool } from './tools.ts';

export { HARNESS_ASM } from './harness-asm.ts';
export * from './job-format.ts';

/** First 16 hex digits of the sha256 of the harness source. */
export function harnessHash(): string {
  return createHash('sha256').update(HARNESS_ASM).digest('hex').slice(0, 16);
}

let cached: string | null = null;

/** Path of the harness binary, building it if needed (about 50 ms, once per source version). */
export function harnessPath(): string {
  if (cached && existsSync(cached)) return cached;
  const dir = join(tmpdir(), `looptune-arm64-harness-${harnessHash()}`);
  const bin = join(dir, 'harness');
  if (!existsSync(bin)) buildHarness(dir, bin);
  cached = bin;
  return bin;
}

function buildHarness(dir: string, bin: string): void {
  const mc = requireTool('llvm-mc-14');
  const ld = requireTool('ld.lld-14');
  mkdirSync(dir, { recursive: true });
  const tag = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const src = join(dir, `harness-${tag}.s`);
  const obj = join(dir, `harness-${tag}.o`);
  const out = join(dir, `harness-${tag}`);
  try {
    writeFileSync(src, HARNESS_ASM);
    run(mc, ['-triple=aarch64-linux-gnu', '-mattr=+neon', '-filetype=obj', '-o', obj, src], 'llvm-mc-14 (assembling the harness)');
    run(ld, ['-static', '-o', out, obj], 'ld.lld-14 (linking the harness)');
    renameSync(src, join(dir, 'harness.s')); // kept next to the binary for reading and debugging
    renameSync(out, bin);
  } finally {
    rmSync(obj, { force: true });
    rmSync(src, { force: true });
    rmSync(out, { force: true });
  }
}

/** Runs a build tool under the tool time limit (runtime/child-tool.ts); a failure is one line naming `what`. */
function run(tool: string, args: string[], what: string): void {
  try {
    runTool(tool, args);
  } catch (e) {
    throw new LoopTuneError(`${what}: ${(e as Error).message}`);
  }
}
