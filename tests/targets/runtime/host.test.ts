import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LoopTuneError } from '../../../ir/errors.ts';
import { backend } from '../../../targets/registry.ts';
import { gpuHostKey, hostCaches, hostCores, hostIsa, hostIsaError, hostKey, hostKeyOf, hostRuns, hostTarget, parseCacheSize, type HostIsa } from '../../../targets/runtime/host.ts';
import { RUNNABLE_X86, RUN_TARGET, hostRunsTarget, isaOf } from '../../host.ts';

test('host ISA is consistent with the architecture', () => {
  const isa = hostIsa();
  assert.type(isa.model, 'string');
  assert.ok(isa.model.length > 0);
  if (isa.arch === 'x64') {
    assert.ok(isa.avx2 || !isa.avx512, 'AVX-512 without AVX2 is not a real CPU');
    assert.is(hostTarget(), isa.avx512 ? 'avx512' : 'avx2');
  } else {
    assert.not.ok(isa.avx2 || isa.avx512 || isa.fma);
    assert.throws(() => hostTarget(), /not x86-64/);
  }
});

test('cache sizes and core count are sane', () => {
  const c = hostCaches();
  if (c.l1d) assert.ok(c.l1d >= 8 * 1024 && c.l1d <= 1024 * 1024, `L1d ${c.l1d}`);
  if (c.l1d && c.l2) assert.ok(c.l2 > c.l1d);
  if (c.l2 && c.l3) assert.ok(c.l3 >= c.l2);
  assert.ok(Number.isInteger(hostCores()) && hostCores() >= 1);
});

test('cache size strings', () => {
  assert.is(parseCacheSize('48K\n'), 48 * 1024);
  assert.is(parseCacheSize('32M'), 32 * 1024 * 1024);
  assert.is(parseCacheSize('512'), 512);
  assert.is(parseCacheSize(''), 0);
});

const cpuinfo = (family: number, model: number, flags: string) =>
  `processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: ${family}\nmodel\t\t: ${model}\nmodel name\t: AMD EPYC\nstepping\t: 1\nflags\t\t: fpu sse2 ${flags}\n`;
const zen5 = cpuinfo(26, 2, 'avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16 avx512vbmi');
const zen4 = cpuinfo(25, 17, 'avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16');
const zen3 = cpuinfo(25, 1, 'avx2 fma');

test('the host key names the CPU precisely: family/model/stepping, the ISA flags that matter, the core count', () => {
  const key = hostKeyOf(zen5, 'x64', 2);
  assert.is(key, 'AMD EPYC (AuthenticAMD family 26 model 2 stepping 1, avx2+fma+avx512f+avx512bw+avx512vl+avx512_vnni+avx512_bf16, 2 cores)');
  // a VM reporting the same generic model name on another generation, ISA or size is another host
  const others = [hostKeyOf(zen4, 'x64', 2), hostKeyOf(zen3, 'x64', 2), hostKeyOf(zen5, 'x64', 16)];
  assert.is(new Set([key, ...others]).size, 4);
  assert.is(hostKeyOf(zen5, 'x64', 2), key, 'stable for the same machine');
  assert.match(hostKeyOf(zen3, 'x64', 2), /, avx2\+fma, 2 cores\)$/);
  const arm = hostKeyOf('processor\t: 0\nFeatures\t: fp asimd sve bf16\nCPU implementer\t: 0x41\nCPU part\t: 0xd40\nCPU variant\t: 0x1\nCPU revision\t: 1\n', 'arm64', 4, 'Neoverse-V1');
  assert.is(arm, 'Neoverse-V1 (implementer 0x41 part 0xd40 variant 0x1 revision 1, asimd+bf16+sve, 4 cores)');
});

test('this machine\'s host key is not the old coarse one (the bare model name)', () => {
  const key = hostKey();
  assert.is.not(key, hostIsa().model);
  assert.ok(key.startsWith(hostIsa().model));
  assert.match(key, /\d+ cores\)$/);
});

test('a GPU host key carries the driver version', () => {
  assert.is(gpuHostKey({ name: 'NVIDIA H200', driverVersion: '12.8' }), 'NVIDIA H200 (driver 12.8)');
});

const cpu = (flags: Partial<HostIsa>): HostIsa => ({ arch: 'x64', avx2: true, avx512: false, fma: true, model: 'AMD EPYC', signature: 'AMD EPYC (test)', ...flags });

test('hostIsaError: one line naming the missing flag and the target that does run; undefined when it runs', () => {
  const zen3Isa = cpu({});
  const zen5Isa = cpu({ avx512: true });
  assert.is(hostIsaError('avx512', zen3Isa), 'this CPU (AMD EPYC) cannot run avx512 code: /proc/cpuinfo lacks avx512f (its target is avx2)');
  assert.is(hostIsaError('avx2', zen3Isa), undefined);
  assert.is(hostIsaError('avx512', zen5Isa), undefined);
  assert.is(hostIsaError('avx2', zen5Isa), undefined);
  assert.ok(hostRuns('avx2', zen3Isa) && !hostRuns('avx512', zen3Isa));
  assert.is(hostIsaError('avx2', cpu({ avx2: false, fma: false })), 'this CPU (AMD EPYC) cannot run avx2 code: /proc/cpuinfo lacks avx2 and fma');
  assert.is(hostIsaError('avx512', cpu({ arch: 'arm64', avx2: false, fma: false, model: 'Neoverse-V1' })),
    'this CPU (Neoverse-V1) is arm64, not x86-64: it cannot run avx512 code');
  // this machine: what the tests run on is what hostIsaError allows, best first
  assert.equal([...RUNNABLE_X86], (['avx512', 'avx2'] as const).filter((isa) => hostRuns(isa)));
  assert.is(RUNNABLE_X86[0], RUN_TARGET);
  assert.is(RUN_TARGET, hostTarget());
  assert.ok(RUNNABLE_X86.includes('avx2'), 'npm test runs on x86-64 hosts with AVX2+FMA');
});

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

test('a device for an ISA this CPU cannot execute refuses in one line before running anything; the others open', async () => {
  for (const name of ['avx512', 'llvm-avx512', 'avx2', 'llvm-avx2']) {
    const why = hostIsaError(isaOf(name));
    assert.is(hostRunsTarget(name), why === undefined, name);
    if (why === undefined) {
      const device = await backend(name).open();
      assert.ok(device.native, name);
      await device.close();
      continue;
    }
    try {
      await backend(name).open();
      assert.unreachable(`${name} opened on a CPU that cannot run it`);
    } catch (e) {
      assert.instance(e, LoopTuneError);
      assert.is((e as Error).message, why);
    }
    // the CLI says the same line and exits 1 (not a worker's SIGILL)
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'looptune.js'), 'run', 'matmul 8x16x8', '--target', name], { encoding: 'utf8', timeout: 60_000 });
    assert.is(r.status, 1, name);
    assert.is(r.stderr, `looptune: ${why}\n`);
  }
});

test.run();
