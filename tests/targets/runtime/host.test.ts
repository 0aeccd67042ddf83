import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hostCaches, hostCores, hostIsa, hostTarget, parseCacheSize } from '../../../targets/runtime/host.ts';

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

test.run();
