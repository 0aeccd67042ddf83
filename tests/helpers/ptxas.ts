/**
 * ptxas, the CUDA toolkit's PTX assembler, as the cuda tests run it without a GPU: every module
 * assembled for an architecture, a failure naming the module and ptxas's first lines. A missing
 * ptxas fails the test (no test skips): set PTXAS to its path where it is not on PATH.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { PTX_TARGET, PTX_VERSION } from '../../targets/cuda/ptx.ts';

export const PTXAS = process.env.PTXAS ?? 'ptxas';

/** Fails the test, saying how to fix it, where ptxas cannot be run. */
export function assertPtxasFound(): void {
  const probe = spawnSync(PTXAS, ['--version'], { encoding: 'utf8' });
  assert.is(probe.status, 0, `'${PTXAS}' not found (${probe.error?.message ?? probe.stderr}): install the CUDA toolkit's ptxas or set PTXAS`);
}

/** Assembles each module (one ptxas run each: it takes one input file) for `arch`, e.g. 'sm_90a'. */
export function assertAssembles(modules: readonly string[], arch: string): void {
  assertPtxasFound();
  const dir = mkdtempSync(join(tmpdir(), 'looptune-ptxas-'));
  try {
    modules.forEach((text, i) => {
      const f = join(dir, `k${i}.ptx`);
      writeFileSync(f, text);
      const r = spawnSync(PTXAS, [`-arch=${arch}`, f, '-o', `${f}.cubin`], { encoding: 'utf8' });
      assert.is(r.status, 0, `module ${i}: ${r.stderr.split('\n').slice(0, 4).join(' | ')}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The entries of sm_90 kernels (one per distinct entry name) as one module, what ptxas assembles in one run. */
export function oneModule(kernels: readonly { readonly text?: string; readonly launch: { readonly entry: string } }[]): { text: string; entries: number } {
  const seen = new Set<string>();
  const parts = [`.version ${PTX_VERSION}`, `.target ${PTX_TARGET}`, '.address_size 64', ''];
  for (const k of kernels) {
    if (seen.has(k.launch.entry)) continue;
    seen.add(k.launch.entry);
    parts.push(k.text!.slice(k.text!.indexOf('.visible .entry')));
  }
  return { text: parts.join('\n'), entries: seen.size };
}
