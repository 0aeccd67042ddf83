/**
 * The neon differential fuzz: random problems of every op kind under random legal schedules,
 * compiled for neon, run under qemu-aarch64 on guarded buffers in batches, compared with the
 * interpreter. Also checks that the batched fuzz runs exactly fuzzTarget's cases, and the runner.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseProblem } from '../../../ir/spec.ts';
import { Schedule } from '../../../ir/schedule.ts';
import { fuzzTarget } from '../../../targets/fuzz.ts';
import { compileSchedule } from '../../../targets/registry.ts';
import { arm64Available } from '../../../targets/arm64/qemu-runner.ts';
import { Arm64BatchRunner, fuzzCase, fuzzNeon } from '../../../targets/arm64/runner.ts';
import { RANDOM_OPS } from '../../../ir/random.ts';

const avail = arm64Available();
const requireArm64 = () => {
  if (!avail.ok) assert.unreachable(avail.reason); // names the Debian packages to install
};

test('differential fuzz neon: 500 random problems x schedules, guarded buffers, zero failures', async () => {
  requireArm64();
  const r = await fuzzNeon(500, 20261121);
  console.log(`  neon fuzz: ${r.cases} cases in ${r.seconds.toFixed(1)} s`);
  assert.is(r.cases, 500);
  assert.equal(r.failures, [], JSON.stringify(r.failures.slice(0, 3)));
  assert.is(r.mismatches + r.crashes + r.codegenErrors, 0);
  assert.is(Object.keys(r.perOp).length, RANDOM_OPS.length, 'every op kind was exercised');
});

test('the batched fuzz runs exactly the cases of fuzzTarget', async () => {
  const seen: string[] = [];
  const r = await fuzzTarget({
    target: 'neon', cases: 33, seed: 5,
    runner: async (kernel) => {
      seen.push(`${kernel.program.problem.spec} | ${kernel.program.schedule}`);
      return { ok: false, error: 'not run' };
    },
  });
  assert.is(r.crashes, 33);
  assert.equal(seen, Array.from({ length: 33 }, (_, i) => {
    const c = fuzzCase(5, i);
    return `${c.schedule.problem.spec} | ${c.schedule.text()}`;
  }));
});

test('batch runner: concurrent runs share harness processes; a crash fails only its own job', async () => {
  requireArm64();
  const runner = new Arm64BatchRunner({ batchSize: 8 });
  const s = Schedule.parse(parseProblem('add 3x5'), 'i:3 j:5');
  const kernel = compileSchedule(s, 'neon');
  const jobs = Array.from({ length: 20 }, (_, i) => {
    const a = Float32Array.from({ length: 15 }, (_, j) => i + j);
    const b = Float32Array.from({ length: 15 }, () => 0.5);
    // job 9 gets a too-short input: the kernel reads past it and faults on the guard page
    return runner.run(kernel, [new Float32Array(15), i === 9 ? a.subarray(0, 10) : a, b], { guard: true });
  });
  const out = await Promise.all(jobs);
  assert.is(runner.stats.jobs, 20);
  assert.ok(runner.stats.batches >= 3 && runner.stats.batches <= 4, `${runner.stats.batches} batches`);
  out.forEach((r, i) => {
    if (i === 9) {
      assert.not.ok(r.ok);
      assert.match((r as { error: string }).error, /SIGSEGV.*tensor 1/);
    } else {
      if (!r.ok) assert.unreachable(r.error);
      else assert.equal(Array.from(r.output), Array.from({ length: 15 }, (_, j) => i + j + 0.5));
    }
  });
  // a kernel of another target is refused, not run
  const x86 = compileSchedule(s, 'avx2');
  const refused = await runner.run(x86, [new Float32Array(15), new Float32Array(15), new Float32Array(15)], { guard: false });
  assert.not.ok(refused.ok);
});

test.run();
