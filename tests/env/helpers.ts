import * as assert from 'uvu/assert';

/** uvu has no assert.rejects: awaits `p` and checks it rejects with a message matching `pattern`. */
export async function rejects(p: Promise<unknown>, pattern?: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (pattern) assert.match(e instanceof Error ? e.message : String(e), pattern);
    return;
  }
  assert.unreachable('expected a rejection');
}
