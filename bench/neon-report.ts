/**
 * Inner-loop statistics of neon kernels next to the x86 kernels of the same schedules (issue 7):
 * the register tile the lowering chose, and in the innermost loop of the main tile (the innermost
 * loop with the most FMAs: the instructions from its label to its backward branch) the FMAs per
 * load and the instructions per FMA, counted from the emitted code's disassembly (llvm-mc-14).
 * Each neon kernel is also checked against the interpreter under qemu-aarch64.
 * Prints JSON; writes bench/results/neon-report.json.
 *
 *   npx tsx bench/neon-report.ts [--problem "matmul 256x256x256"] [--no-verify]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseProblem } from '../ir/spec.ts';
import { Schedule } from '../ir/schedule.ts';
import { compileSchedule, backend } from '../targets/registry.ts';
import { verifyKernel } from '../targets/verify.ts';
import type { Kernel } from '../targets/kernel.ts';
import { disassembleArm64Words } from '../targets/arm64/disassemble.ts';
import { Arm64BatchRunner } from '../targets/arm64/runner.ts';
import { disassembleX86 } from '../targets/x86/disassemble.ts';

export interface Insn {
  offset: number;
  text: string;
  /** absolute target of a branch */
  target?: number;
}

export interface InnerLoop {
  instructions: number;
  fmas: number;
  loads: number;
  fmasPerLoad: number;
  instructionsPerFma: number;
  /** the loop's listing (label to branch) */
  listing?: string[];
}

export function arm64Insns(code: Uint8Array): Insn[] {
  return disassembleArm64Words(code).map((w) => {
    const text = w.text ?? '.inst';
    const m = /^(?:b\.\w+|b|cbz|cbnz)\s.*#(-?\d+)$/.exec(text);
    return { offset: w.offset, text, ...(m ? { target: w.offset + Number(m[1]) } : {}) };
  });
}

export function x86Insns(code: Uint8Array): Insn[] {
  const out: Insn[] = [];
  for (const line of disassembleX86(code).split('\n')) {
    const m = /^([0-9a-f]+):\s+(.*?)\s*(?:#\s*->\s*([0-9a-f]+))?$/.exec(line.trim());
    if (!m) continue;
    out.push({ offset: parseInt(m[1]!, 16), text: m[2]!.replace(/\s+/g, ' '), ...(m[3] ? { target: parseInt(m[3], 16) } : {}) });
  }
  return out;
}

const isFma = (t: string) => /^(fmla|fmadd|vfmadd\d+[ps]s)\b/.test(t);

/** An instruction that reads memory: A64 loads; x86 instructions with a memory source operand. */
function isLoad(t: string, arch: 'arm64' | 'x86'): boolean {
  if (arch === 'arm64') return /^(ldr|ldur|ldp|ld1|ld1r|ld2|ld3|ld4)\b/.test(t);
  if (!t.includes('[') || /^(lea|nop|prefetch)/.test(t)) return false;
  const [, ...ops] = t.split(' ');
  const operands = ops.join(' ').split(/,(?![^[]*\])/).map((s) => s.trim());
  return !operands[0]!.includes('['); // a memory destination is a store
}

/** The innermost backward loop with the most FMAs (the main register tile's loop). */
export function innerLoop(insns: Insn[], arch: 'arm64' | 'x86', withListing = false): InnerLoop | null {
  const loops = insns
    .filter((i) => i.target !== undefined && i.target <= i.offset)
    .map((b) => ({ from: b.target!, to: b.offset }));
  const innermost = loops.filter((l) => !loops.some((o) => o !== l && o.from >= l.from && o.to < l.to && (o.from > l.from || o.to < l.to)));
  let best: InnerLoop | null = null;
  for (const l of innermost) {
    const body = insns.filter((i) => i.offset >= l.from && i.offset <= l.to);
    const fmas = body.filter((i) => isFma(i.text)).length;
    const loads = body.filter((i) => isLoad(i.text, arch)).length;
    if (!best || fmas > best.fmas) {
      best = {
        instructions: body.length, fmas, loads,
        fmasPerLoad: round(fmas / Math.max(1, loads)),
        instructionsPerFma: round(body.length / Math.max(1, fmas)),
        ...(withListing ? { listing: body.map((i) => i.text) } : {}),
      };
    }
  }
  return best;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** The schedules reported: BLIS's NEON 8x12, 4x16-style tiles (k unrolled or not), and the x86 favourites. */
export const REPORT_SCHEDULES: { name: string; schedule: string }[] = [
  { name: 'BLIS NEON 8x12 (8 rows x 3 vectors)', schedule: 'm:32 n:21r4 k:256 m:8 n:12' },
  { name: '4x16 (4 rows x 4 vectors)', schedule: 'm:64 n:16 k:256 m:4 n:16' },
  { name: '4x16, k unrolled by 4', schedule: 'm:64 n:16 k:64 m:4 n:16 k:4' },
  { name: '6x16', schedule: 'm:42r4 n:16 k:256 m:6 n:16' },
  { name: '6x16, k unrolled by 4', schedule: 'm:42r4 n:16 k:64 m:6 n:16 k:4' },
  { name: '5x16, k unrolled by 4', schedule: 'm:51r1 n:16 k:64 m:5 n:16 k:4' },
  { name: 'AVX-512 6x64 / AVX2-style', schedule: 'm:42r4 n:4 k:256 m:6 n:64' },
  { name: 'AVX2 4x32', schedule: 'm:64 n:8 k:256 m:4 n:32' },
];

function describe(kernel: Kernel, schedule: Schedule, insns: Insn[], arch: 'arm64' | 'x86', micros: number) {
  const d = kernel.program.decision;
  return {
    lanes: d.lanes,
    unrolled: schedule.text().split(' ').slice(d.unrollFrom).join(' '),
    tileLoops: schedule.text().split(' ').slice(d.tileFrom, d.unrollFrom).join(' '),
    accumulators: d.accumulators,
    unrolledOps: d.unrolledOps,
    ...(d.scalarReason ? { scalarReason: d.scalarReason } : {}),
    codeBytes: kernel.code.length,
    codegenMicros: Math.round(micros * 10) / 10,
    innerLoop: innerLoop(insns, arch),
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const pi = args.indexOf('--problem');
  const spec = pi >= 0 ? args[pi + 1]! : 'matmul 256x256x256';
  const verify = !args.includes('--no-verify');
  const listing = args.includes('--listing');
  const problem = parseProblem(spec);
  const runner = new Arm64BatchRunner({ batchSize: 8, timeoutMs: 120_000 });
  const rows = [];
  // warm the code generators up on every schedule first, so the codegen times compare fairly
  for (const target of ['neon', 'avx2', 'avx512']) {
    for (const { schedule: text } of REPORT_SCHEDULES) {
      try {
        const s = Schedule.parse(problem, text);
        for (let i = 0; i < 30; i++) compileSchedule(s, target);
      } catch {
        // reported below
      }
    }
  }
  for (const { name, schedule: text } of REPORT_SCHEDULES) {
    let schedule: Schedule;
    try {
      schedule = Schedule.parse(problem, text);
    } catch (e) {
      rows.push({ name, schedule: text, error: (e as Error).message });
      continue;
    }
    const row: Record<string, unknown> = { name, schedule: text };
    for (const target of ['neon', 'avx2', 'avx512']) {
      const t = backend(target);
      const micros = median(Array.from({ length: 21 }, () => compileSchedule(schedule, t).codegenMicros));
      const kernel = compileSchedule(schedule, t);
      const insns = target === 'neon' ? arm64Insns(kernel.code) : x86Insns(kernel.code);
      const arch = target === 'neon' ? 'arm64' : 'x86';
      const r: Record<string, unknown> = describe(kernel, schedule, insns, arch, micros);
      if (listing) r.listing = innerLoop(insns, arch, true)?.listing;
      if (target === 'neon' && verify) {
        const v = await verifyKernel(kernel, schedule, runner.run, { guard: true });
        r.verifiedUnderQemu = v.verified;
        if (!v.verified) r.error = v.error;
      }
      row[target] = r;
    }
    rows.push(row);
  }
  const out = { problem: spec, date: new Date().toISOString(), note: 'inner loop = innermost loop with the most FMAs, label to backward branch; loads = instructions reading memory (x86: incl. FMAs with a memory operand); one FMA instruction is 4 (neon), 8 (avx2) or 16 (avx512) fp32 lanes', rows };
  const json = JSON.stringify(out, null, 2);
  console.log(json);
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/neon-report.json', json + '\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
