/**
 * The one name -> Backend map. Everything that differs between targets is a field of its Backend
 * (targets/backend.ts); callers ask the registry for one by name and never branch on the name.
 */
import { fail } from '../ir/errors.ts';
import type { Schedule } from '../ir/schedule.ts';
import type { Backend } from './backend.ts';
import type { Kernel } from './kernel.ts';
import { arm64Backend } from './arm64/backend.ts';
import { cudaBackend } from './cuda/backend.ts';
import { llvmBackend } from './llvm/backend.ts';
import { hostTarget } from './runtime/host.ts';
import { syntheticBackend } from './synthetic/backend.ts';
import { x86Backend } from './x86/backend.ts';

export type TargetName = 'avx2' | 'avx512' | (string & {});

const factories = new Map<string, () => Backend>([
  ['avx2', () => x86Backend('avx2')],
  ['avx512', () => x86Backend('avx512')],
  // the LLVM baseline; compile throws one line naming what to install when LLVM is missing
  ['llvm-avx2', () => llvmBackend('avx2')],
  ['llvm-avx512', () => llvmBackend('avx512')],
  ['neon', () => arm64Backend()],
  ['cuda', () => cudaBackend()],
  ['synthetic', () => syntheticBackend()],
]);
const cache = new Map<string, Backend>();

/** Adds a backend (plugins, and optional targets that register themselves when available). */
export function registerBackend(name: string, factory: () => Backend): void {
  factories.set(name, factory);
  cache.delete(name);
}

export function backendNames(): string[] {
  return [...factories.keys()];
}

/** The backend of a target name; one line listing the known names when there is none. */
export function backend(name: TargetName): Backend {
  let b = cache.get(name);
  if (!b) {
    const f = factories.get(name);
    if (!f) fail(`unknown target '${name}' (expected one of: ${backendNames().join(', ')})`);
    b = f();
    cache.set(name, b);
  }
  return b;
}

/** The backend of a name, or undefined (evaluators of tests and plugins may carry other names). */
export function findBackend(name: string): Backend | undefined {
  return factories.has(name) ? backend(name) : undefined;
}

/** The backends that add `action` to LoopTune's (for messages: where an action exists). */
export function backendsWithAction(action: string): string[] {
  return backendNames().filter((n) => backend(n).actions.includes(action));
}

/** The backend of this machine's best x86 ISA ('avx512' where it has AVX-512F). */
export function hostBackend(): Backend {
  return backend(hostTarget());
}

/** A backend, by itself or by name. */
export function resolveBackend(target: Backend | TargetName): Backend {
  return typeof target === 'string' ? backend(target) : target;
}

/** Lowers and compiles; `codegenMicros` covers both steps (Backend.compile by name). */
export function compileSchedule(schedule: Schedule, target: Backend | TargetName): Kernel {
  return resolveBackend(target).compile(schedule);
}
