/**
 * How much memory a run may take, and the one check every path passes before it allocates
 * buffers (runSchedule, verifyKernel, MeasurementPool.run/time: so run, search, tune and verify).
 *
 * The allowance is half of the machine's physical memory, and never more than what is available
 * right now (MemAvailable); LOOPTUNE_MAX_MEMORY=<bytes, or a size such as 512M, 8G, 1.5T> replaces
 * both (binary units: 1G = 2^30 bytes). A problem whose footprint (ir/footprint.ts) is larger is
 * refused with one line before anything is allocated.
 */
import { freemem, totalmem } from 'node:os';
import { fail } from '../../ir/errors.ts';
import { MAX_TENSOR_ELEMENTS, oversizedTensor } from '../../ir/footprint.ts';
import type { Problem } from '../../ir/problem.ts';

export const MAX_MEMORY_VARIABLE = 'LOOPTUNE_MAX_MEMORY';

export interface MachineMemory {
  /** physical memory, bytes */
  total: number;
  /** memory available now (Linux MemAvailable), bytes */
  available: number;
}

export interface MemoryAllowance {
  bytes: number;
  /** where the figure comes from, for the refusal message */
  source: string;
}

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** "8G", "512M", "1.5T", "1073741824" (binary units, optional B/iB) into bytes; null when unreadable. */
export function parseByteSize(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) return null;
  const bytes = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  return Number.isFinite(bytes) && bytes > 0 ? Math.floor(bytes) : null;
}

/** Bytes as GiB (MiB below 1 GiB) with `digits` decimals. */
export function formatBytes(bytes: number, digits = 1): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(digits)} GiB` : `${(bytes / 2 ** 20).toFixed(digits)} MiB`;
}

export function machineMemory(): MachineMemory {
  return { total: totalmem(), available: freemem() };
}

/** The allowance: LOOPTUNE_MAX_MEMORY when set, else half of physical memory capped at what is available. */
export function memoryAllowance(env: NodeJS.ProcessEnv = process.env, machine: MachineMemory = machineMemory()): MemoryAllowance {
  const raw = env[MAX_MEMORY_VARIABLE];
  if (raw !== undefined) {
    const bytes = parseByteSize(raw);
    if (bytes === null) fail(`${MAX_MEMORY_VARIABLE}: cannot read '${raw.slice(0, 40)}' (expected bytes or a size such as 8G)`);
    return { bytes, source: `${MAX_MEMORY_VARIABLE}=${raw.trim()}` };
  }
  const half = Math.floor(machine.total / 2);
  if (machine.available < half) {
    return { bytes: machine.available, source: `the memory available now; set ${MAX_MEMORY_VARIABLE} to change` };
  }
  return { bytes: half, source: `half of its ${formatBytes(machine.total)}; set ${MAX_MEMORY_VARIABLE} to change` };
}

export interface MemoryCheckOptions {
  env?: NodeJS.ProcessEnv;
  machine?: MachineMemory;
}

/**
 * Throws one line (LoopTuneError) when `bytes` for `purpose` exceed the allowance, e.g.
 * "matmul 30000x30000x30000 needs 79.5 GiB for buffers and verification; this machine allows
 * 11.5 GiB (half of its 23.0 GiB; set LOOPTUNE_MAX_MEMORY to change)".
 */
export function assertMemoryFits(subject: string, bytes: number, purpose: string, options: MemoryCheckOptions = {}): void {
  const allowance = memoryAllowance(options.env, options.machine);
  if (bytes > allowance.bytes) {
    // two figures that round alike would read as if the check were wrong: show more digits
    const digits = formatBytes(bytes) === formatBytes(allowance.bytes) ? 3 : 1;
    fail(`${subject} needs ${formatBytes(bytes, digits)} for ${purpose}; this machine allows ${formatBytes(allowance.bytes, digits)} (${allowance.source})`);
  }
}

/** Throws one line when one of the problem's tensors has more elements than looptune handles. */
export function assertTensorSizes(problem: Problem): void {
  const big = oversizedTensor(problem);
  if (big) {
    fail(`${problem.spec} is too large: tensor ${big.name} has ${big.elements.toExponential(2)} elements, more than the ${MAX_TENSOR_ELEMENTS} a tensor may have`);
  }
}
