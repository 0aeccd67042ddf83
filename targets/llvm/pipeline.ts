/**
 * The LLVM pipeline: LoopProgram -> IR (llvm-bindings) -> bitcode -> `opt-14 -O3` -> `llc-14 -O3`
 * (PIC relocatable object) -> the kernel's raw, position-independent machine code, which the
 * runtime maps like the direct emitter's bytes.
 *
 * Getting the bytes: the object's `.text.kernel` section IS the kernel when it has no
 * relocations and nothing else is allocated (the usual case: loops, loads, FMAs); it is copied
 * out directly, without another process. When llc put constants in a pool (`.rodata.cst*`, e.g.
 * for a blend mask) the text has PC-relative relocations against them: then `ld.lld-14` links
 * text and constants into one flat image (`--oformat=binary`, the kernel first at offset 0)
 * and resolves them, so the bytes stay position independent. Anything else the kernel would
 * need from outside (a call to memcpy, a GOT entry) fails the link with lld's message.
 *
 * Intermediate files live in a fresh temporary folder that is always removed. Every tool runs
 * under a time limit (runtime/child-tool.ts: $LOOPTUNE_TOOL_TIMEOUT, default 30 s); a failure is
 * one line with the first line of its stderr. A tool that timed out is not started again in this
 * process (a hung llc would otherwise cost a search the limit on every candidate).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fail, LoopTuneError } from '../../ir/errors.ts';
import type { LoopProgram } from '../../loopnest/program.ts';
import { runTool, toolTimeoutSeconds, TOOL_TIMEOUT_VARIABLE } from '../runtime/child-tool.ts';
import { loadBindings } from './bindings.ts';
import { slpRecursionDepth } from './epilogue.ts';
import { elfSections, SHF_ALLOC, SHT_REL, SHT_RELA } from './elf.ts';
import { buildModule, KERNEL_SYMBOL } from './ir.ts';

export type LlvmIsa = 'avx2' | 'avx512';

export interface LlvmTools {
  opt: string;
  llc: string;
  lld: string;
}

/** $LLVM_OPT / $LLVM_LLC / $LLVM_LLD, else the Debian llvm-14 / lld-14 names on PATH */
export const DEFAULT_TOOLS: LlvmTools = {
  opt: process.env.LLVM_OPT || 'opt-14',
  llc: process.env.LLVM_LLC || 'llc-14',
  lld: process.env.LLVM_LLD || 'ld.lld-14',
};

const TOOL_PACKAGE: Record<keyof LlvmTools, string> = { opt: 'llvm-14', llc: 'llvm-14', lld: 'lld-14' };

/**
 * CPU and features given to both opt (its cost models decide the vector width) and llc.
 * LLVM 14 knows no Zen 4/5. avx2 = x86-64-v3 (AVX2, FMA, BMI2: Haswell-class generic tuning).
 * avx512 = x86-64-v4 (AVX-512 F/BW/CD/DQ/VL, as Zen 4/5 have) minus the `prefer-256-bit`
 * tuning that LLVM applies to every AVX-512 CPU it knows (it would vectorize with ymm, not zmm:
 * an Intel-frequency-licence heuristic that does not apply to AMD).
 */
export const LLVM_ISA_FLAGS: Record<LlvmIsa, { cpu: string; mattr: string }> = {
  avx2: { cpu: 'x86-64-v3', mattr: '+avx2,+fma' },
  avx512: { cpu: 'x86-64-v4', mattr: '+avx512f,+fma,-prefer-256-bit' },
};

/**
 * The middle end: -O3, then one EarlyCSE. LLVM 14's SLP vectorizer visits the loop exit (the
 * tile's stores) before the loop and vectorizes the stored values and the loop-carried
 * accumulator phis as two trees, leaving the last FMA of every accumulator twice; nothing later
 * in -O3 merges them, so every register tile needed twice the registers and spilled. EarlyCSE
 * merges the twins (it changes nothing else: same instructions, same fp semantics).
 */
export const OPT_PIPELINE = 'default<O3>,function(early-cse)';

/**
 * Loop idioms become calls to memcpy/memmove, which raw kernel bytes cannot reach: a kernel is
 * freestanding code (clang's -ffreestanding would not help either: LLVM may still emit them).
 */
const OPT_FREESTANDING = ['-disable-memcpy-idiom', '-disable-memmove-idiom'];

export interface LlvmOptions {
  tools?: Partial<LlvmTools>;
  /** -mcpu for opt and llc (default LLVM_ISA_FLAGS[isa].cpu) */
  cpu?: string;
  /** -mattr for opt and llc (default LLVM_ISA_FLAGS[isa].mattr) */
  mattr?: string;
  /** opt's -passes pipeline (default OPT_PIPELINE; 'default<O3>' for plain -O3) */
  optPipeline?: string;
  /** extra arguments to opt, after the pipeline */
  optArgs?: readonly string[];
  /** extra arguments to llc, after -O3 */
  llcArgs?: readonly string[];
  /** parent of the temporary folder (default os.tmpdir()) */
  tmpRoot?: string;
  /** limit for each tool run, seconds (default $LOOPTUNE_TOOL_TIMEOUT, else 30) */
  toolTimeoutSeconds?: number;
}

export interface LlvmPhases {
  /** building the module through llvm-bindings and writing its bitcode */
  irMs: number;
  optMs: number;
  llcMs: number;
  /** reading the object and taking the bytes out (including ld.lld when it links) */
  extractMs: number;
  totalMs: number;
}

export interface LlvmCompileResult {
  code: Uint8Array;
  /** bytes of machine code at the start of `code`; constants (when linked) follow */
  codeSize: number;
  /** whether ld.lld had to link constants (false: the text section was copied out as is) */
  linked: boolean;
  phases: LlvmPhases;
}

const toolCheck = new Map<string, string | null>();

/** null when `exe` starts and answers --version in time, else why not (one line). */
function checkTool(exe: string, role: keyof LlvmTools, timeoutSeconds: number): string | null {
  let r = toolCheck.get(exe);
  if (r === undefined) {
    const p = spawnSync(exe, ['--version'], { encoding: 'utf8', timeout: timeoutSeconds * 1000, killSignal: 'SIGKILL' });
    const code = (p.error as NodeJS.ErrnoException | undefined)?.code;
    r = code === undefined
      ? null
      : code === 'ETIMEDOUT'
        ? `${exe} --version timed out after ${timeoutSeconds} s (${TOOL_TIMEOUT_VARIABLE} sets the limit)`
        : `${exe} not found (install the Debian package ${TOOL_PACKAGE[role]}, or set $LLVM_${role.toUpperCase()})`;
    toolCheck.set(exe, r);
  }
  return r;
}

export function resolveTools(tools: Partial<LlvmTools> = {}): LlvmTools {
  return { ...DEFAULT_TOOLS, ...tools };
}

/** null when the pipeline can run, else the first missing piece and what to install (one line). */
export function llvmUnavailableReason(tools: Partial<LlvmTools> = {}, timeoutSeconds?: number): string | null {
  const b = loadBindings();
  if (!b.ok) return b.error;
  const t = resolveTools(tools);
  const limit = timeoutSeconds ?? toolTimeoutSeconds();
  for (const role of ['opt', 'llc', 'lld'] as const) {
    const why = checkTool(t[role], role, limit);
    if (why) return why;
  }
  return null;
}

/** Tools that timed out in this process, with the line that said so. */
const hungTools = new Map<string, string>();

/** Runs one tool under the time limit; throws one line (LoopTuneError) when it fails. */
function run(exe: string, args: readonly string[], role: keyof LlvmTools, timeoutSeconds?: number): void {
  const hung = hungTools.get(exe);
  if (hung) fail(`${hung} (earlier in this run; not started again)`);
  try {
    runTool(exe, args, {
      installHint: `install the Debian package ${TOOL_PACKAGE[role]}, or set $LLVM_${role.toUpperCase()}`,
      maxBuffer: 1 << 26,
      ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
    });
  } catch (e) {
    if (e instanceof LoopTuneError && / timed out after /.test(e.message)) hungTools.set(exe, e.message);
    throw e;
  }
}

const LINKER_SCRIPT = `SECTIONS {
  . = 0;
  .text : { *(.text.${KERNEL_SYMBOL}) *(.text .text.*) }
  .rodata : { *(.rodata .rodata.*) }
  /DISCARD/ : { *(.eh_frame) *(.note*) *(.comment) }
}
`;

export function compileWithLlvm(program: LoopProgram, isa: LlvmIsa, options: LlvmOptions = {}): LlvmCompileResult {
  const t0 = performance.now();
  const tools = resolveTools(options.tools);
  const cpu = options.cpu ?? LLVM_ISA_FLAGS[isa].cpu;
  const mattr = options.mattr ?? LLVM_ISA_FLAGS[isa].mattr;
  const dir = mkdtempSync(join(options.tmpRoot ?? tmpdir(), 'looptune-llvm-'));
  try {
    const bc = join(dir, 'kernel.bc');
    const optBc = join(dir, 'kernel.opt.bc');
    const obj = join(dir, 'kernel.o');
    const { module, llvm } = buildModule(program);
    llvm.WriteBitcodeToFile(module, bc);
    const t1 = performance.now();
    const limit = options.toolTimeoutSeconds;
    // an epilogue deepens the SLP trees (epilogue.ts); without one the flags stay as they were
    const slp = program.epilogue?.length ? [`-slp-recursion-max-depth=${slpRecursionDepth(program.epilogue)}`] : [];
    run(tools.opt, [
      `-passes=${options.optPipeline ?? OPT_PIPELINE}`, `-mcpu=${cpu}`, `-mattr=${mattr}`, ...OPT_FREESTANDING, ...slp, ...(options.optArgs ?? []), bc, '-o', optBc,
    ], 'opt', limit);
    const t2 = performance.now();
    run(tools.llc, [
      '-O3', `-mcpu=${cpu}`, `-mattr=${mattr}`, '-relocation-model=pic', '-function-sections', '-filetype=obj',
      ...(options.llcArgs ?? []), optBc, '-o', obj,
    ], 'llc', limit);
    const t3 = performance.now();
    const extracted = extract(readFileSync(obj), dir, tools.lld, limit);
    const t4 = performance.now();
    return {
      ...extracted,
      phases: { irMs: t1 - t0, optMs: t2 - t1, llcMs: t3 - t2, extractMs: t4 - t3, totalMs: t4 - t0 },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The kernel's bytes from the object: copied out, or linked with its constants. */
function extract(object: Uint8Array, dir: string, lld: string, timeoutSeconds?: number): { code: Uint8Array; codeSize: number; linked: boolean } {
  const sections = elfSections(object);
  const textIndex = sections.findIndex((s) => s.name === `.text.${KERNEL_SYMBOL}`);
  if (textIndex < 0) throw new Error(`llc's object has no .text.${KERNEL_SYMBOL} section`);
  const text = sections[textIndex]!;
  const relocated = sections.some((s) => (s.type === SHT_RELA || s.type === SHT_REL) && s.info === textIndex && s.size > 0);
  // besides the kernel's text, only unwind tables may be allocated (they are not needed to run)
  const others = sections.filter((s, i) => i !== textIndex && (s.flags & SHF_ALLOC) !== 0n && s.size > 0 && s.name !== '.eh_frame');
  if (!relocated && others.length === 0) {
    return { code: object.slice(text.offset, text.offset + text.size), codeSize: text.size, linked: false };
  }
  const obj = join(dir, 'kernel.o');
  const script = join(dir, 'kernel.ld');
  const image = join(dir, 'kernel.bin');
  writeFileSync(script, LINKER_SCRIPT);
  run(lld, ['--oformat=binary', '-T', script, '--no-undefined', obj, '-o', image], 'lld', timeoutSeconds);
  return { code: new Uint8Array(readFileSync(image)), codeSize: text.size, linked: true };
}
