/** cli/show.ts: a tensor-core matmul shown on cuda without a schedule starts from the target's first sketch seed. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { registerShow } from '../../cli/show.ts';
import { runCommand } from '../helpers/run-command.ts';

async function show(args: string[]): Promise<string> {
  return (await runCommand(registerShow, ['show', ...args])).join('\n');
}

test('show --ptx of a bf16 matmul without --schedule prints a tensor-core module (the first sketch seed: wgmma)', async () => {
  const ptx = await show(['matmul 256x256x256 bf16', '--ptx']);
  assert.match(ptx, /\.target sm_90a/);
  assert.match(ptx, /wgmma\.mma_async\.sync\.aligned\.m64n\d+k16\.f32\.bf16\.bf16/);
  assert.match(ptx, /wgmma\.wait_group/);
  const plain = await show(['matmul 256x256x256 bf16', '--target', 'cuda']);
  assert.match(plain, /thread loops are warpgroups of 128 threads/);
});

test('show --ptx of a bf16 matmul with an mma.sync schedule prints mma.sync with ldmatrix', async () => {
  const ptx = await show(['matmul 256x256x256 bf16', '--target', 'cuda', '--schedule', 'm:2b n:2b k:8s m:2t n:2t k:2 m:4 n:8 m:16 n:8 k:16', '--ptx']);
  assert.match(ptx, /mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.bf16\.bf16\.f32/);
  assert.match(ptx, /ldmatrix/);
});

test('show on cuda keeps the initial schedule where it has a kernel (fp32)', async () => {
  const out = await show(['matmul 64x64x64', '--target', 'cuda']);
  assert.match(out, /schedule: m:64 n:64 k:64/);
  assert.not.match(out, /mma\.sync/);
});

test.run();
