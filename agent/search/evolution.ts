/**
 * The evolutionary search, in the style of Ansor / MetaSchedule, and the one evolution loop of the
 * code: the `evolution` baseline runs it alone, the policy searcher (agent/ppo/search.ts) runs it
 * after the policy's proposals with the policy as one of its mutators.
 *  - the population starts with the default schedule, the seeds (given ones, then the target's
 *    known-good sketches, e.g. the GPU template points) and `initial` fresh schedules;
 *  - fresh schedules: mostly the target's sketches (sketch.ts; on cuda GPU tilings), else random walks
 *    in the action space; with a cost model, the n wanted are the best predicted of n * `freshDraws`
 *    distinct untried draws, measured best predicted first (the initial ones too);
 *  - each generation breeds children from parents picked by tournament on fitness: each child slot
 *    draws a mutator by weight (`mutators`, default the baselines' mix in mutators.ts) or, with
 *    probability `crossover`, takes the loop order of one parent with the tile sizes of another;
 *  - selection: with a cost model (`options.predict`), `candidates` children are scored and the top
 *    ones measured; without one, children are measured directly (fitness = measured GFLOPS);
 *  - `batch` real measurements per generation, of which a share `epsilon` are fresh schedules
 *    (eps-greedy exploration);
 *  - survivors: the best `population` distinct schedules measured.
 * Candidates the target cannot run (Evaluator.validate) are dropped by SearchContext.untried before
 * they cost a measurement or a step, like every other searcher does.
 * Crossover defaults to off: Ansor dropped it, and here it showed no gain either. On the synthetic
 * evaluator (30 mm64-256 test problems, 60 measurements, 2-4 seeds each) crossover probabilities
 * 0 / 0.1 / 0.3 / 0.5 gave geomean best/peak of 0.37-0.41 / 0.34 / 0.40-0.42 / 0.38: within seed
 * noise. Not yet compared on real measurements. The option stays for experiments.
 */
import type { Problem } from '../../ir/problem.ts';
import type { Schedule } from '../../ir/schedule.ts';
import { runWithBudget, type SearchContext, type SearchOptions, type SearchResult, type Searcher, type StopReason } from '../searcher.ts';
import { sketchSourceOf } from './sketch.ts';
import { crossover, sampleSchedule } from './moves.ts';
import { DEFAULT_MUTATORS, MutatorMix, type MutationContext, type WeightedMutator } from './mutators.ts';

export interface EvolutionOptions {
  /** survivors per generation (default 16). */
  population?: number;
  /** real measurements per generation (default 8). */
  batch?: number;
  /** children scored by the cost model per generation when one is given (default 64). */
  candidates?: number;
  /** share of each batch spent on fresh schedules (default 0.2; at least one when above 0). */
  epsilon?: number;
  /** probability that a child comes from crossover instead of a mutator (default 0). */
  crossover?: number;
  /** fresh schedules measured to start the population (default 8). */
  initial?: number;
  /** mutation operators and their weights (default DEFAULT_MUTATORS). */
  mutators?: readonly WeightedMutator[];
  /** with a cost model, a fresh schedule is the best predicted of this many draws (default 1). */
  freshDraws?: number;
  /** called after each generation's measurements. */
  onGeneration?: (g: GenerationReport) => void;
}

export interface EvolutionSearchOptions extends EvolutionOptions {
  /** name in reports (default 'evolution'). */
  name?: string;
  /** schedules of the problem measured first, right after the default: the first generation. */
  seeds?: (problem: Problem) => readonly Schedule[];
}

/** One generation: how many child slots each mutator drew and how many of its children became candidates. */
export interface GenerationReport {
  generation: number;
  drawn: Record<string, number>;
  kept: Record<string, number>;
  crossovers: number;
  measured: number;
  bestGflops: number;
}

/** The evolution inside a running search: `ctx` charges and tracks, `seeds` are measured first. */
export interface EvolveSettings extends EvolutionOptions {
  seeds?: readonly Schedule[];
  /** loops a schedule may have (default ctx.maxLoops; the policy searcher's policy may allow fewer). */
  maxLoops?: number;
}

/** generations in a row without a new candidate before the search counts as converged. */
const PATIENCE = 20;

interface Member {
  s: Schedule;
  v: number;
}

/** Runs the evolution until the budget throws BudgetExhausted (caught by runWithBudget) or it converges. */
export async function evolve(ctx: SearchContext, o: EvolveSettings = {}): Promise<StopReason> {
  const popSize = o.population ?? 16;
  const batch = o.batch ?? 8;
  const nCandidates = o.candidates ?? 64;
  const epsilon = o.epsilon ?? 0.2;
  const pCross = o.crossover ?? 0;
  const nInitial = o.initial ?? 8;
  const freshDraws = o.freshDraws ?? 1;
  const mix = new MutatorMix(o.mutators ?? DEFAULT_MUTATORS);
  const maxLoops = o.maxLoops ?? ctx.maxLoops;
  const { problem, rng } = ctx;
  const mctx: MutationContext = { rng, actions: ctx.actions, maxLoops };
  const sketches = sketchSourceOf(ctx.evaluator);
  const initial = ctx.initial;
  const nFresh = epsilon > 0 ? Math.max(1, Math.round(epsilon * batch)) : 0;
  const nBred = Math.max(0, batch - nFresh);

  let pop: Member[] = [{ s: initial, v: ctx.defaultGflops }];
  const add = (s: Schedule, v: number) => {
    if (!pop.some((p) => p.s.hash() === s.hash())) pop.push({ s, v });
  };
  const draw = (): Schedule => (rng.next() < sketches.share ? sketches.sample(problem, rng, maxLoops) : undefined)
    ?? sampleSchedule(initial, rng, ctx.actions, maxLoops);
  // with a cost model, fresh schedules are the best predicted of `freshDraws` draws each: a random
  // walk from the default is often a kernel a hundred times slower than the rest, and on a large
  // problem one call of it takes seconds. The draws are ranked together and measured best first.
  const freshBatch = async (n: number, taken: ReadonlySet<string>): Promise<Schedule[]> => {
    if (n <= 0) return [];
    const ranked = ctx.predictFn !== undefined && freshDraws > 1;
    const want = ranked ? n * freshDraws : n;
    const xs = new Map<string, Schedule>();
    for (let tries = 0; xs.size < want && tries < want * 20; tries++) {
      const s = draw();
      if (!xs.has(s.hash()) && !taken.has(s.hash()) && ctx.untried(s)) xs.set(s.hash(), s);
    }
    const list = [...xs.values()];
    const v = ranked ? await ctx.predict(list) : undefined;
    if (!v) return list.slice(0, n);
    return list.map((_, i) => i).sort((a, b) => v[b]! - v[a]!).slice(0, n).map((i) => list[i]!);
  };

  // seeds already evaluated (e.g. the policy's proposals) join at no charge
  for (const s of [...(o.seeds ?? []), ...(sketches.seeds?.(problem, maxLoops) ?? [])]) {
    if (s.loops.length > maxLoops || !ctx.feasible(s)) continue;
    add(s, ctx.known(s) ?? await ctx.evaluate(s));
  }
  const firstBatch = await freshBatch(nInitial, new Set());
  (await ctx.evaluateAll(firstBatch)).forEach((v, i) => add(firstBatch[i]!, v));
  pop = pop.sort((a, b) => b.v - a.v).slice(0, popSize);

  const tournament = (): Member => {
    const a = rng.pick(pop), b = rng.pick(pop);
    return a.v >= b.v ? a : b;
  };
  let barren = 0;
  for (let generation = 0; ; generation++) {
    const want = ctx.predictFn ? nCandidates : nBred;
    const cands = new Map<string, Schedule>();
    const drawn: Record<string, number> = {};
    const kept: Record<string, number> = {};
    let crossovers = 0;
    const accept = (c: Schedule | undefined, by: string) => {
      if (!c || cands.size >= want || c.loops.length > maxLoops || cands.has(c.hash()) || !ctx.untried(c)) return;
      cands.set(c.hash(), c);
      kept[by] = (kept[by] ?? 0) + 1;
    };
    for (let tries = 0; cands.size < want && tries < want * 20;) {
      // the open slots' parents and operators first, then each operator once on its parents
      const slots = want - cands.size;
      tries += slots;
      const parents: Schedule[][] = mix.mutators.map(() => []);
      for (let i = 0; i < slots; i++) {
        const parent = tournament();
        if (pop.length > 1 && pCross > 0 && rng.next() < pCross) {
          crossovers++;
          accept(crossover(parent.s, tournament().s, maxLoops), 'crossover');
        } else {
          parents[mix.draw(rng)]!.push(parent.s);
        }
      }
      mix.mutators.forEach((m, i) => {
        const ps = parents[i]!;
        if (ps.length === 0) return;
        drawn[m.name] = (drawn[m.name] ?? 0) + ps.length;
        for (const c of m.mutate(ps, mctx)) accept(c, m.name);
      });
    }
    let chosen = [...cands.values()];
    const scores = await ctx.predict(chosen);
    if (scores) {
      const order = chosen.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
      chosen = order.slice(0, nBred).map((i) => chosen[i]!);
    } else {
      chosen = chosen.slice(0, nBred);
    }
    chosen.push(...await freshBatch(nFresh, new Set(cands.keys())));
    if (chosen.length === 0) {
      if (++barren > PATIENCE) return 'converged';
      continue;
    }
    barren = 0;
    (await ctx.evaluateAll(chosen)).forEach((v, i) => add(chosen[i]!, v));
    pop = pop.sort((a, b) => b.v - a.v).slice(0, popSize);
    o.onGeneration?.({ generation, drawn, kept, crossovers, measured: chosen.length, bestGflops: ctx.best.gflops });
  }
}

/** The `evolution` searcher: the default schedule, then evolve() with these options. */
export function evolutionSearch(params: EvolutionSearchOptions = {}): Searcher {
  const name = params.name ?? 'evolution';
  // validate the mutator list now, not at the first search
  if (params.mutators) new MutatorMix(params.mutators);
  return {
    name,
    search(problem: Problem, options: SearchOptions): Promise<SearchResult> {
      return runWithBudget(name, problem, options, (ctx) => evolve(ctx, { ...params, seeds: params.seeds?.(problem) ?? [] }));
    },
  };
}
