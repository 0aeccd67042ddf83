/** `looptune show`: the scheduled loop nest, its schedule text, and optionally its code. */
import type { Command } from 'commander';
import { prettyPrint } from '../ir/pretty.ts';
import { compileSchedule, getTarget, targetNames } from '../targets/registry.ts';
import { lower } from '../loopnest/lower.ts';
import { hostTarget } from '../targets/runtime/host.ts';
import { scheduleFor } from './problem.ts';
import { describeDecision } from './format.ts';
import { nonEmpty } from './options.ts';

interface ShowOptions { schedule?: string; actions?: string; json?: boolean; asm?: boolean; ir?: boolean; ptx?: boolean; target?: string }

export function registerShow(program: Command): void {
  program
    .command('show')
    .description('print a problem\'s scheduled loop nest and its textual schedule')
    .argument('<spec>', 'problem, e.g. "matmul 256x256x256" or "conv2d n1 c64 h56 w56 k64 r3 s3 stride1"')
    .option('--schedule <text>', 'start from this schedule, e.g. "m:64 n:4 k:256 m:4 n:64"', nonEmpty('schedule'))
    .option('--actions <list>', 'comma-separated actions applied at the cursor, e.g. split_16,down,swap_up', nonEmpty('action list'))
    .option('--json', 'print the schedule as JSON')
    .option('--asm', 'also print the generated machine code (disassembled) and the register tile')
    .option('--ir', 'print the LLVM IR of the nest (the llvm-avx2/llvm-avx512 targets\' input)')
    .option('--ptx', 'print only the PTX module of the cuda target (ready for ptxas)')
    .option('--target <name>', `target for --asm (${targetNames().join(', ')}; default: the host's best)`)
    .action(async (spec: string, opts: ShowOptions) => {
      const s = scheduleFor(spec, opts);
      if (opts.ptx || opts.target === 'cuda') {
        const { compileCuda } = await import('../targets/cuda/target.ts');
        const { describeMapping } = await import('../targets/cuda/mapping.ts');
        const k = compileCuda(s);
        if (!opts.ptx) {
          console.log(prettyPrint(s));
          console.log(`schedule: ${s.text()}`);
          console.log(describeMapping(k.mapping));
        }
        console.log(k.text);
        return;
      }
      if (opts.ir) {
        const { llvmIr } = await import('../targets/llvm/index.ts');
        const name = opts.target ?? `llvm-${hostTarget()}`;
        const isa = name.endsWith('avx2') ? 'avx2' : 'avx512';
        console.log(llvmIr(lower(s, getTarget(isa).caps)));
        return;
      }
      if (opts.asm) {
        const target = getTarget(opts.target ?? hostTarget());
        const k = compileSchedule(s, target);
        console.log(prettyPrint(s));
        console.log(`schedule: ${s.text()}`);
        console.log(`register tile: ${describeDecision(k)}`);
        console.log(`${target.name}: ${k.code.length} bytes in ${k.codegenMicros.toFixed(0)} us`);
        console.log(target.disassemble ? target.disassemble(k) : '(this target has no disassembler)');
        return;
      }
      if (opts.json) {
        console.log(JSON.stringify({
          problem: s.problem.spec,
          schedule: s.text(),
          cursor: s.cursor,
          hash: s.hash(),
          loops: s.loops.map((l, i) => ({ var: s.problem.vars[l.var]!.name, size: l.size, tail: l.tail, step: s.steps[i] })),
        }, null, 2));
        return;
      }
      console.log(prettyPrint(s));
      console.log(`schedule: ${s.text()}`);
    });
}
