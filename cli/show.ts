/** `looptune show`: the scheduled loop nest, its schedule text, and optionally its code. */
import type { Command } from 'commander';
import { prettyPrint } from '../ir/pretty.ts';
import { LoopTuneError } from '../ir/errors.ts';
import { backend, backendNames } from '../targets/registry.ts';
import { hostTarget } from '../targets/runtime/host.ts';
import { scheduleFor, withScheduleOptions } from './problem.ts';

interface ShowOptions { schedule?: string; actions?: string; json?: boolean; asm?: boolean; ir?: boolean; ptx?: boolean; target?: string }

export function registerShow(program: Command): void {
  withScheduleOptions(program
    .command('show')
    .description('print a problem\'s scheduled loop nest and its textual schedule')
    .argument('<spec>', 'problem, e.g. "matmul 256x256x256" or "conv2d n1 c64 h56 w56 k64 r3 s3 stride1"'))
    .option('--json', 'print the schedule as JSON')
    .option('--asm', 'also print the generated machine code (disassembled) and the register tile')
    .option('--ir', 'print the LLVM IR of the nest (the llvm-avx2/llvm-avx512 targets\' input)')
    .option('--ptx', 'print only the PTX module of the cuda target (ready for ptxas)')
    .option('--target <name>', `target for --asm (${backendNames().join(', ')}; default: the host's best)`)
    .action(async (spec: string, opts: ShowOptions) => {
      let s = scheduleFor(spec, opts);
      // --ptx names the GPU backend's module text
      const named = opts.ptx ? backend('cuda') : opts.target !== undefined ? backend(opts.target) : undefined;
      // no schedule given and the initial one has no kernel on the target (a tensor-core matmul): its first sketch seed
      if (named && opts.schedule === undefined && opts.actions === undefined && named.validate?.(s) !== undefined) {
        const seed = named.sketches?.seeds?.(s.problem, named.maxLoops)[0];
        if (seed) s = seed;
      }
      if (named?.processor === 'gpu') {
        // a GPU kernel is module text: show prints the plan and the module (--ptx: the module only)
        const k = named.compile(s);
        if (!opts.ptx) {
          console.log(prettyPrint(s));
          console.log(`schedule: ${s.text()}`);
          console.log(named.describe(k));
        }
        console.log(k.text);
        return;
      }
      if (opts.ir) {
        const b = named ?? backend(`llvm-${hostTarget()}`);
        if (!b.moduleText) throw new LoopTuneError(`--ir: the ${b.name} target has no LLVM IR (use ${backendNames().filter((n) => backend(n).moduleText).join(' or ')})`);
        console.log(b.moduleText(s));
        return;
      }
      if (opts.asm) {
        const target = named ?? backend(hostTarget());
        const k = target.compile(s);
        console.log(prettyPrint(s));
        console.log(`schedule: ${s.text()}`);
        console.log(`register tile: ${target.describe(k)}`);
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
