/**
 * Target registry: name -> Target, and `compileSchedule` = lowering + code generation, timed
 * together (the "schedule to executable bytes" figure).
 */
import { fail } from '../ir/errors.ts';
import type { Schedule } from '../ir/schedule.ts';
import { lower } from '../loopnest/lower.ts';
import type { Kernel, Target } from './kernel.ts';
import { llvmTarget } from './llvm/target.ts';
import { x86Target } from './x86/target.ts';
import { arm64Target } from './arm64/target.ts';
import { cudaTarget } from './cuda/target.ts';

export type TargetName = 'avx2' | 'avx512' | (string & {});

const factories = new Map<string, () => Target>([
  ['avx2', () => x86Target('avx2')],
  ['avx512', () => x86Target('avx512')],
  // the LLVM baseline; compile throws one line naming what to install when LLVM is missing
  ['llvm-avx2', () => llvmTarget('avx2')],
  ['llvm-avx512', () => llvmTarget('avx512')],
  ['neon', () => arm64Target()],
  ['cuda', () => cudaTarget()],
]);
const cache = new Map<string, Target>();

/** Adds a target (plugins, and the optional targets that register themselves when available). */
export function registerTarget(name: string, factory: () => Target): void {
  factories.set(name, factory);
  cache.delete(name);
}

export function targetNames(): string[] {
  return [...factories.keys()];
}

export function getTarget(name: TargetName): Target {
  let t = cache.get(name);
  if (!t) {
    const f = factories.get(name);
    if (!f) fail(`unknown target '${name}' (expected one of: ${targetNames().join(', ')})`);
    t = f();
    cache.set(name, t);
  }
  return t;
}

/** Lowers and compiles; `codegenMicros` covers both steps. */
export function compileSchedule(schedule: Schedule, target: Target | TargetName): Kernel {
  const t = typeof target === 'string' ? getTarget(target) : target;
  const t0 = performance.now();
  const kernel = t.compileSchedule ? t.compileSchedule(schedule) : t.compile(lower(schedule, t.caps));
  kernel.codegenMicros = (performance.now() - t0) * 1000;
  return kernel;
}
