#!/usr/bin/env node
// Executable shim: runs the TypeScript CLI through tsx, so a clone needs no build step.
import { register } from 'tsx/esm/api';

register();
try {
  await import('../cli/main.ts');
} catch (e) {
  // only a broken install gets here (the CLI reports its own failures): still one line
  process.stderr.write(`looptune: internal error: ${String(e instanceof Error ? e.message : e).split('\n')[0]} (set LOOPTUNE_DEBUG=1 for the stack trace)\n`);
  if (process.env.LOOPTUNE_DEBUG && process.env.LOOPTUNE_DEBUG !== '0') console.error(e);
  process.exit(1);
}
