import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gpuHostKey, hostCaches, hostCores, hostIsa, hostKey, hostKeyOf, hostTarget, parseCacheSize } from '../../../targets/runtime/host.ts';

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

test.run();
