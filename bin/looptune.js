#!/usr/bin/env node
// Executable shim: runs the TypeScript CLI through tsx, so a clone needs no build step.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
