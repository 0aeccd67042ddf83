/** The scheduled nest as indented pseudo-code, with the cursor marked. */
import type { Access, AffineIndex, Problem } from './problem.ts';
import type { Schedule } from './schedule.ts';

function indexText(problem: Problem, ix: AffineIndex): string {
  if (ix.terms.length === 0) return '0';
  return ix.terms.map((t) => (t.coef === 1 ? '' : `${t.coef}*`) + problem.vars[t.var]!.name).join(' + ');
}

export function accessText(problem: Problem, a: Access): string {
  return `${problem.tensors[a.tensor]!.name}[${a.index.map((ix) => indexText(problem, ix)).join(', ')}]`;
}

export function statementText(problem: Problem): string {
  const out = accessText(problem, problem.output);
  const [a, b] = problem.inputs.map((x) => accessText(problem, x));
  switch (problem.combine) {
    case 'fma': return `${out} += ${a} * ${b}`;
    case 'sum': return `${out} += ${a}`;
    case 'max': return `${out} = max(${out}, ${a})`;
    case 'add': return `${out} = ${a} + ${b}`;
    case 'mul': return `${out} = ${a} * ${b}`;
    case 'relu': return `${out} = max(${a}, 0)`;
    case 'copy': return `${out} = ${a}`;
  }
}

export function prettyPrint(s: Schedule): string {
  const lines: string[] = [];
  s.loops.forEach((l, i) => {
    const name = s.problem.vars[l.var]!.name;
    const step = s.steps[i]!;
    const range = step === 1 ? `${l.size}` : `${l.size} x ${step}`;
    const tail = l.tail > 0 ? ` + tail ${l.tail}` : '';
    const bind = l.bind ? ` [${l.bind}]` : '';
    const mark = i === s.cursor ? '   <- cursor' : '';
    lines.push(`${'  '.repeat(i)}${l.parallel ? 'parallel for' : 'for'} ${name} in ${range}${tail}${bind}${mark}`);
  });
  lines.push(`${'  '.repeat(s.loops.length)}${statementText(s.problem)}`);
  return lines.join('\n');
}
