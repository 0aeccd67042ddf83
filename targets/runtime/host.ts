/**
 * What the machine we run on can execute and how big its caches are (Linux: /proc and /sys).
 * /proc/cpuinfo flags are already masked by the kernel for OS support (XSAVE state), so a flag
 * listed there is usable.
 */
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';

export interface HostIsa {
  /** Node's process.arch: 'x64', 'arm64', ... */
  arch: string;
  avx2: boolean;
  /** AVX-512 Foundation (zmm registers, opmasks): all the x86 emitter needs. */
  avx512: boolean;
  fma: boolean;
  model: string;
  /** model name plus vendor, family, model and stepping numbers: tells CPUs apart whose
   *  model name is generic (a VM may report just "AMD EPYC"). */
  signature: string;
}

export interface HostCaches {
  /** bytes per core (L1d, L2) and of the last level (L3, shared); 0 when unknown. */
  l1d: number;
  l2: number;
  l3: number;
}

export type HostTarget = 'avx512' | 'avx2';

/** The ISAs the FMA peak probe measures (targets/runtime/peak.ts), best first. */
export const HOST_TARGETS: readonly HostTarget[] = ['avx512', 'avx2'];

export function isHostTarget(name: string): name is HostTarget {
  return (HOST_TARGETS as readonly string[]).includes(name);
}

let isa: HostIsa | undefined;

export function isX86Host(): boolean {
  return process.arch === 'x64';
}

export function hostIsa(): HostIsa {
  if (isa) return isa;
  const cpuinfo = readText('/proc/cpuinfo');
  const field = (name: string): string => cpuinfoField(cpuinfo, name);
  const flags = new Set(field('flags').split(/\s+/));
  const x86 = isX86Host();
  // x86 says "model name"; arm64 kernels have no model string, so fall back to Node's view.
  const model = field('model name') || os.cpus()[0]?.model || `unknown ${process.arch} CPU`;
  isa = {
    arch: process.arch,
    avx2: x86 && flags.has('avx2'),
    avx512: x86 && flags.has('avx512f'),
    fma: x86 && flags.has('fma'),
    model,
    signature: x86
      ? `${model} (${field('vendor_id')} family ${field('cpu family')} model ${field('model')} stepping ${field('stepping')})`
      : model,
  };
  return isa;
}

/** The first `name : value` of /proc/cpuinfo text ('' when absent). */
function cpuinfoField(cpuinfo: string, name: string): string {
  return cpuinfo.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm'))?.[1]?.trim() ?? '';
}

/** The ISA extensions a kernel's speed depends on, in the order a key lists them. */
const KEY_FLAGS: Record<string, readonly string[]> = {
  x64: ['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16', 'amx_tile', 'amx_bf16'],
  arm64: ['asimd', 'asimdhp', 'asimddp', 'i8mm', 'bf16', 'sve', 'sve2', 'sme'],
};

let key: string | undefined;

/**
 * The host a timing belongs to, written into tuning records and required of the records a run
 * reuses as its own measurements. Precise enough that another CPU generation or a differently
 * sized VM never matches: model name, vendor, family/model/stepping (implementer/part/variant/revision
 * on Arm), the ISA extensions that change kernel speed, and the core count, e.g.
 * "AMD EPYC (AuthenticAMD family 26 model 2 stepping 1, avx2+fma+avx512f+avx512bw+avx512vl+avx512_vnni+avx512_bf16, 2 cores)".
 */
export function hostKey(): string {
  key ??= hostKeyOf(readText('/proc/cpuinfo'), process.arch, os.cpus().length || hostCores(), hostIsa().model);
  return key;
}

/** The host key of records measured on `threads` threads: the machine's, plus the count above one. */
export function threadedHostKey(host: string, threads: number): string {
  return threads > 1 ? `${host} threads=${threads}` : host;
}

/** hostKey from /proc/cpuinfo text (testable with any CPU's text). */
export function hostKeyOf(cpuinfo: string, arch: string, cores: number, fallbackModel = `unknown ${arch} CPU`): string {
  const field = (name: string): string => cpuinfoField(cpuinfo, name);
  const model = field('model name') || fallbackModel;
  const flags = new Set((field('flags') || field('Features')).split(/\s+/));
  const isaFlags = (KEY_FLAGS[arch] ?? []).filter((f) => flags.has(f));
  const id = arch === 'x64'
    ? `${field('vendor_id') || 'unknown vendor'} family ${field('cpu family') || '?'} model ${field('model') || '?'} stepping ${field('stepping') || '?'}`
    : `implementer ${field('CPU implementer') || '?'} part ${field('CPU part') || '?'} variant ${field('CPU variant') || '?'} revision ${field('CPU revision') || '?'}`;
  return `${model} (${id}, ${isaFlags.length ? isaFlags.join('+') : 'no vector ISA flags'}, ${cores} cores)`;
}

/** A GPU's host key: its name and the CUDA driver's version (records of another driver are another host's). */
export function gpuHostKey(device: { name: string; driverVersion: string }): string {
  return `${device.name} (driver ${device.driverVersion})`;
}

/** The best native x86 target of this host; throws on hosts that cannot run x86-64 AVX2 code. */
export function hostTarget(): HostTarget {
  const h = hostIsa();
  if (h.arch !== 'x64') {
    throw new Error(`host is ${h.arch} (${h.model}), not x86-64: native x86 kernels cannot run here`);
  }
  if (h.avx512) return 'avx512';
  if (h.avx2 && h.fma) return 'avx2';
  throw new Error(`host CPU ${h.model} has no AVX2+FMA: native x86 kernels cannot run here`);
}

/**
 * Why this CPU cannot execute `isa` code, in one line (undefined when it can). Checked before any
 * kernel runs: a worker that ran the code anyway would only report SIGILL. `host` defaults to this
 * machine's (a parameter so that the message can be tested for any CPU).
 */
export function hostIsaError(isa: HostTarget, host: HostIsa = hostIsa()): string | undefined {
  if (host.arch !== 'x64') return `this CPU (${host.model}) is ${host.arch}, not x86-64: it cannot run ${isa} code`;
  const missing = missingFlags(isa, host);
  if (missing.length === 0) return undefined;
  // name the target that does run here, when there is one
  const best = HOST_TARGETS.find((t) => missingFlags(t, host).length === 0);
  return `this CPU (${host.model}) cannot run ${isa} code: /proc/cpuinfo lacks ${missing.join(' and ')}${best ? ` (its target is ${best})` : ''}`;
}

/** The /proc/cpuinfo flags `isa` code needs that this x86 CPU lacks. */
function missingFlags(isa: HostTarget, host: HostIsa): string[] {
  if (isa === 'avx512') return host.avx512 ? [] : ['avx512f'];
  return [...(host.avx2 ? [] : ['avx2']), ...(host.fma ? [] : ['fma'])];
}

/** Whether this CPU executes `isa` code. */
export function hostRuns(isa: HostTarget, host: HostIsa = hostIsa()): boolean {
  return hostIsaError(isa, host) === undefined;
}

/** Cache sizes of cpu0 from /sys/devices/system/cpu/cpu0/cache/index*. */
export function hostCaches(): HostCaches {
  const caches: HostCaches = { l1d: 0, l2: 0, l3: 0 };
  const dir = '/sys/devices/system/cpu/cpu0/cache';
  let entries: string[];
  try {
    entries = readdirSync(dir).filter((e) => /^index\d+$/.test(e));
  } catch {
    return caches;
  }
  for (const entry of entries) {
    const level = Number(readText(`${dir}/${entry}/level`).trim());
    const type = readText(`${dir}/${entry}/type`).trim();
    const size = parseCacheSize(readText(`${dir}/${entry}/size`));
    if (type === 'Instruction') continue;
    if (level === 1) caches.l1d = size;
    else if (level === 2) caches.l2 = size;
    else if (level === 3) caches.l3 = size;
  }
  return caches;
}

/** "48K" / "1024K" / "32M" → bytes. */
export function parseCacheSize(text: string): number {
  const m = text.trim().match(/^(\d+)\s*([KMG]?)/i);
  if (!m) return 0;
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * unit;
}

/** CPUs this process may run on (its affinity mask; a cgroup CPU quota is not seen). */
export function hostCores(): number {
  return os.availableParallelism();
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
